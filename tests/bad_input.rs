//! Bad input as a user gives it (issue 10): each case fails cleanly, at the boundary, with a
//! message naming the problem, and nothing is lost.

mod common;

use std::path::{Path, PathBuf};

use shadergrad::data::Dataset;
use shadergrad::model::{Checkpoint, LossKind, Network, NetworkSpec};
use shadergrad::train::{Device, LrSchedule, MetricsLog, TrainConfig, Trainer};
use shadergrad::{Activation, Error, Optimizer};

fn temp(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("bad-{name}"))
}

fn data() -> Dataset {
    let mut r = common::rng("bad input data");
    let features = common::random_vec(&mut r, 64 * 6, 1.0);
    let labels = features.chunks(6).map(|x| u32::from(x[0] > 0.0)).collect();
    Dataset::classification(features, 6, labels, 2).unwrap()
}

fn spec() -> NetworkSpec {
    NetworkSpec::new(&[6, 8, 2], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap()
}

fn config_saving_to(path: &Path) -> TrainConfig {
    TrainConfig {
        optimizer: Optimizer::sgd(0.1),
        batch_size: 16,
        epochs: 2,
        checkpoint: Some(path.to_path_buf()),
        ..TrainConfig::default()
    }
}

fn trainer(config: TrainConfig) -> Result<Trainer, Error> {
    Trainer::new(Network::init(&spec(), 0), &Device::Cpu, config)
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn saving_over_a_fifo_a_folder_or_into_a_missing_folder_is_refused_before_training() {
    let dir = temp("destinations");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    for (path, wanted) in [
        (fifo.clone(), "it is a FIFO, not a regular file"),
        (folder.clone(), "it is a folder, not a regular file"),
        (dir.join("missing/checkpoint.safetensors"), "cannot open the folder of"),
    ] {
        let err = trainer(config_saving_to(&path)).err().expect("refused");
        assert!(err.to_string().contains(wanted), "{}: {err}", path.display());
    }
    // Nothing was replaced: the FIFO is still a FIFO, the folder still a folder.
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(folder.is_dir());
    // The library call refuses too, not only the trainer.
    let c = Checkpoint {
        network: Network::init(&spec(), 0),
        optimizer: None,
        progress: Default::default(),
    };
    assert!(matches!(c.save(&fifo), Err(Error::NotARegularFile { .. })));
}

/// Reading a checkpoint or a data file from a FIFO (a pipe) or a device would block or never end:
/// refused at once with the error a write gets.
#[test]
fn reading_a_fifo_a_device_or_a_folder_is_refused_without_blocking() {
    let dir = temp("reads");
    let fifo = dir.join("checkpoint.safetensors");
    mkfifo(&fifo);
    let start = std::time::Instant::now();
    for (path, kind) in [
        (fifo.clone(), "a FIFO"),
        (PathBuf::from("/dev/zero"), "a device"),
        (dir.to_path_buf(), "a folder"),
    ] {
        let err = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("refusing to read {}: it is {kind}", path.display())),
            "{err}"
        );
        let err = shadergrad::data::idx::read_idx(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("it is {kind}, not a regular file")), "{err}");
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "a read blocked");
}

#[test]
fn a_symlinked_checkpoint_is_written_through_to_its_target() {
    let dir = temp("symlink");
    let target = dir.join("real.safetensors");
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink("real.safetensors", &link).unwrap();
    let mut t = trainer(config_saving_to(&link)).unwrap();
    t.train_epoch(&data(), None, &mut |_, _| {}).unwrap();
    assert!(
        std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
        "the link stays a link"
    );
    assert_eq!(Checkpoint::load(&target).unwrap().progress.epoch, 1);
    assert_eq!(Checkpoint::load(&link).unwrap().progress.epoch, 1);
}

#[test]
fn a_model_too_large_for_memory_is_refused_naming_the_layer_before_allocating() {
    let huge = NetworkSpec::new(
        &[784, 1_000_000_000, 10],
        Activation::Relu,
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap();
    let config = TrainConfig::default();
    let err = Device::Cpu.check_model(&huge, &config).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { layer: 0, .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("layer 0") && text.contains("host memory"), "{text}");
    let err = Network::try_init(&huge, 0).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { layer: 0, .. }), "{err}");
    if let Some(ctx) = common::gpu() {
        let device = Device::Gpu(std::sync::Arc::new(shadergrad::gpu::GpuContext::new().unwrap()));
        let _ = ctx;
        let err = device.check_model(&huge, &config).unwrap_err();
        assert!(err.to_string().contains("layer 0"), "{err}");
    }
    // Widths whose byte count overflows 64 bits are refused by the spec itself.
    let absurd: Vec<usize> = vec![1 << 30; 20];
    assert!(NetworkSpec::new(&absurd, Activation::Relu, LossKind::MeanSquaredError).is_err());
}

#[test]
fn stale_temporary_files_of_a_killed_save_are_removed_at_the_next_save() {
    let dir = temp("stale");
    let path = dir.join("checkpoint.safetensors");
    // A temp file of a process that no longer runs (a pid beyond Linux's pid_max), and one of a
    // process that still runs (it may be saving right now): only the first goes.
    let stale = dir.join(".checkpoint.safetensors.tmp-4194999");
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    let mut alive = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let busy = dir.join(format!(".checkpoint.safetensors.tmp-{}", alive.id()));
    std::fs::write(&busy, b"being written").unwrap();
    let mut t = trainer(config_saving_to(&path)).unwrap();
    t.train_epoch(&data(), None, &mut |_, _| {}).unwrap();
    alive.kill().unwrap();
    alive.wait().unwrap();
    assert!(!stale.exists(), "the stale temporary file is gone");
    assert!(busy.exists(), "a running process's temporary file is left alone");
    let own = dir.join(format!(".checkpoint.safetensors.tmp-{}", std::process::id()));
    assert!(!own.exists(), "this process leaves no temporary file behind");
    assert!(path.exists());
}

#[test]
fn metrics_rows_are_written_before_the_checkpoint_of_their_epoch() {
    let dir = temp("metrics-order");
    let path = dir.join("checkpoint.safetensors");
    let metrics = dir.join("metrics.csv");
    let config = TrainConfig {
        metrics: Some(metrics.clone()),
        epochs: 3,
        ..config_saving_to(&path)
    };
    let mut t = trainer(config.clone()).unwrap();
    // The checkpoint cannot be written any more (a folder took its place after the checks): the
    // epoch's metrics row must already be there when the save fails.
    std::fs::create_dir(&path).unwrap();
    let err = t.train_epoch(&data(), None, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, Error::NotARegularFile { .. }), "{err}");
    let rows = MetricsLog::at(&metrics).unwrap().read().unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1]);
    // With a writable path, after every epoch the rows cover what the checkpoint trained.
    std::fs::remove_dir(&path).unwrap();
    let mut t = trainer(config).unwrap();
    for _ in 0..3 {
        t.train_epoch(&data(), None, &mut |_, _| {}).unwrap();
        let trained = Checkpoint::load(&path).unwrap().progress.epoch;
        let rows = MetricsLog::at(&metrics).unwrap().read().unwrap();
        assert_eq!(
            rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            (1..=trained).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_metrics_file_that_is_not_metrics_is_refused_before_training() {
    let dir = temp("bad-metrics");
    let metrics = dir.join("metrics.csv");
    std::fs::write(&metrics, "epoch,learning_rate\nnot,numbers\n").unwrap();
    let path = dir.join("checkpoint.safetensors");
    let config = TrainConfig {
        metrics: Some(metrics),
        ..config_saving_to(&path)
    };
    assert!(matches!(trainer(config.clone()), Err(Error::CorruptFile { .. })));
    let same = TrainConfig {
        metrics: Some(path.clone()),
        ..config
    };
    let err = trainer(same).err().expect("refused").to_string();
    assert!(err.contains("is also the checkpoint file"), "{err}");
}

#[test]
fn errors_name_only_a_checkpoint_this_run_wrote() {
    let dir = temp("stale-checkpoint");
    let path = dir.join("checkpoint.safetensors");
    // A file left at the save path by an earlier, different run.
    std::fs::write(&path, b"an earlier run's file").unwrap();
    let config = TrainConfig {
        optimizer: Optimizer::sgd(1e30),
        ..config_saving_to(&path)
    };
    let err = trainer(config)
        .unwrap()
        .train_epoch(&data(), None, &mut |_, _| {})
        .unwrap_err();
    match err {
        Error::NonFiniteLoss { checkpoint, .. } | Error::Diverged { checkpoint, .. } => {
            assert_eq!(checkpoint, None, "named a checkpoint this run did not write")
        }
        other => panic!("{other}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"an earlier run's file");
    // After a healthy epoch of this run, the same kind of error names the file it wrote.
    let mut t = trainer(config_saving_to(&path)).unwrap();
    t.train_epoch(&data(), None, &mut |_, _| {}).unwrap();
    let written = std::fs::read(&path).unwrap();
    // Features of 1e30 (finite, so accepted) blow the logits up in the next epoch. The labels
    // alternate, so whichever class the huge input favours, half the samples are wrong by ~1e30.
    let labels = (0..16).map(|i| i % 2).collect();
    let huge = Dataset::classification(vec![1e30; 16 * 6], 6, labels, 2).unwrap();
    match t.train_epoch(&huge, None, &mut |_, _| {}).unwrap_err() {
        Error::NonFiniteLoss { checkpoint, .. } | Error::Diverged { checkpoint, .. } => {
            assert_eq!(checkpoint.as_deref(), Some(path.as_path()))
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        written,
        "the good checkpoint is untouched"
    );
}

#[test]
fn values_that_cannot_be_used_are_refused_at_the_boundary() {
    let d = data();
    assert!(matches!(d.take(0), Err(Error::EmptyDataset { .. })));
    assert_eq!(d.take(1000).unwrap().len(), d.len());
    for bad in ["step:0:0.5", "step:2:0", "step:2:nan", "cosine:-1", "cosine:inf"] {
        assert!(bad.parse::<LrSchedule>().is_err(), "{bad}");
    }
    let base = TrainConfig::default();
    for (config, wanted) in [
        (
            TrainConfig {
                optimizer: Optimizer::adamw(1e-3, f32::NAN),
                ..base.clone()
            },
            "weight decay NaN",
        ),
        (
            TrainConfig {
                optimizer: Optimizer::adamw(1e-3, -0.1),
                ..base.clone()
            },
            "weight decay -0.1",
        ),
        (
            TrainConfig {
                epochs: 0,
                ..base.clone()
            },
            "epochs must be at least 1",
        ),
        (
            TrainConfig {
                optimizer: Optimizer::momentum(0.1, 1.5),
                ..base.clone()
            },
            "momentum 1.5",
        ),
        (
            TrainConfig {
                schedule: LrSchedule::Step { every: 0, gamma: 0.5 },
                ..base.clone()
            },
            "EVERY ≥ 1",
        ),
    ] {
        let err = trainer(config).err().expect("refused").to_string();
        assert!(err.contains(wanted), "{err}");
    }
    // A checkpoint with a NaN weight does not load.
    let mut network = Network::init(&spec(), 0);
    network.layers[1].get_mut("weight").unwrap()[3] = f32::NAN;
    let c = Checkpoint {
        network,
        optimizer: None,
        progress: Default::default(),
    };
    let problem = Checkpoint::from_bytes(&c.to_bytes().unwrap(), None).unwrap_err();
    assert!(
        problem.contains("\"layers.1.weight\" holds NaN at index 3"),
        "{problem}"
    );
}

#[test]
fn runs_that_train_garbage_stop_with_a_typed_error() {
    // A learning rate of 1e9 with Adam: every step moves each weight by ~1e9, the loss stays
    // finite (softmax-CE is computed max-subtracted) but far past what chance reaches.
    let config = TrainConfig {
        optimizer: Optimizer::adam(1e9),
        ..TrainConfig::default()
    };
    let err = trainer(TrainConfig {
        batch_size: 16,
        ..config.clone()
    })
    .unwrap()
    .fit(&data(), None, |_| {})
    .unwrap_err();
    assert!(matches!(err, Error::Diverged { epoch: 1, .. }), "{err}");
    assert!(err.to_string().contains("training diverged in epoch 1"), "{err}");
    // With the check turned off, the same run goes on (and exits 0 with what it trained).
    let reports = trainer(TrainConfig {
        batch_size: 16,
        stop_on_divergence: false,
        ..config
    })
    .unwrap()
    .fit(&data(), None, |_| {});
    // Every epoch runs; the first is garbage. Later ones may not be: with some data
    // (SHADERGRAD_TEST_SEED=1796479314714256034) the huge weights separate the classes by a huge
    // margin and an epoch's loss falls back to near 0.
    let reports = reports.unwrap();
    assert_eq!(reports.len(), TrainConfig::default().epochs, "{reports:?}");
    assert!(reports[0].train.mean_loss() > 1e6, "garbage, but as asked: {reports:?}");
    // Data that is NaN at every step: every step skipped is an error, not an epoch.
    let nan_batch = Dataset::regression(vec![1.0; 6 * 4], 6, vec![0.5; 4 * 2], 2).unwrap();
    let mse = NetworkSpec::new(&[6, 2], Activation::Identity, LossKind::MeanSquaredError).unwrap();
    let mut t = Trainer::new(
        Network::init(&mse, 0),
        &Device::Cpu,
        TrainConfig {
            optimizer: Optimizer::sgd(1e38),
            skip_nonfinite: true,
            batch_size: 1,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    let mut result = Ok(());
    for _ in 0..4 {
        match t.train_epoch(&nan_batch, None, &mut |_, _| {}) {
            Ok(r) => assert!(r.skipped_steps < r.steps as u64),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Diverged { .. }), "{err}");
    assert!(err.to_string().contains("were skipped"), "{err}");
}

#[test]
fn io_errors_say_what_was_being_done() {
    let dir = temp("messages");
    let missing = dir.join("nope/metrics.csv");
    let err = MetricsLog::at(&missing).unwrap_err().to_string();
    assert!(err.starts_with("cannot open the folder of"), "{err}");
    let err = shadergrad::data::idx::read_idx(&dir.join("absent.idx"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cannot read"), "{err}");
    #[cfg(feature = "png")]
    {
        let err = shadergrad::data::image::digit_features(&dir.join("absent.png")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().starts_with("cannot read the image"), "{err}");
    }
}

/// Child mode of the kill test below (run by it with `--ignored`): trains tiny epochs, saving
/// metrics and checkpoints into the given folder, until killed.
#[test]
#[ignore = "the child process of killing_a_run_never_loses_metrics_rows"]
fn training_child() {
    let dir = PathBuf::from(std::env::var("SHADERGRAD_TRAINING_CHILD").expect("set by the kill test"));
    let path = dir.join("checkpoint.safetensors");
    let config = TrainConfig {
        epochs: 1_000_000,
        metrics: Some(dir.join("metrics.csv")),
        ..config_saving_to(&path)
    };
    let mut t = match Checkpoint::load(&path) {
        Ok(c) => Trainer::resume(c, &Device::Cpu, config).unwrap(),
        Err(_) => trainer(config).unwrap(),
    };
    loop {
        t.train_epoch(&data(), None, &mut |_, _| {}).unwrap();
    }
}

#[test]
fn killing_a_run_never_loses_metrics_rows() {
    let dir = temp("kills");
    let exe = std::env::current_exe().unwrap();
    let mut epochs_seen = std::collections::BTreeSet::new();
    for round in 0..10u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["training_child", "--exact", "--ignored", "--test-threads", "1"])
            .env("SHADERGRAD_TRAINING_CHILD", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(60 + (round * 53) % 150));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let Ok(c) = Checkpoint::load(&dir.join("checkpoint.safetensors")) else {
            continue; // killed before the first save
        };
        let trained = c.progress.epoch;
        let rows = MetricsLog::at(&dir.join("metrics.csv")).unwrap().read().unwrap();
        let epochs: Vec<usize> = rows.iter().map(|r| r.epoch).collect();
        assert!(
            (1..=trained).all(|e| epochs.contains(&e)),
            "round {round}: the checkpoint trained {trained} epochs but metrics.csv has rows {epochs:?}"
        );
        epochs_seen.insert(trained);
    }
    // Temporary files of killed saves do not pile up: at most the one of the last kill.
    let temps = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp-"))
        .count();
    assert!(temps <= 2, "{temps} temporary files left");
    eprintln!("10 kills; checkpoints of epochs {epochs_seen:?}, every one with its metrics rows");
    assert!(
        epochs_seen.len() > 1,
        "the runs should have made progress between kills"
    );
}

/// `bench --json` naming a folder (or anything unwritable) fails before measuring anything.
#[test]
fn bench_refuses_an_unwritable_results_path_before_measuring() {
    let dir = temp("bench-json");
    let start = std::time::Instant::now();
    let out = std::process::Command::new(common::example("bench"))
        .args(["--cpu-only", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("it is a folder, not a regular file"), "{stderr}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "it measured first"
    );
}

/// The mnist example as a user meets it: a partial MNIST_DIR names the missing file instead of
/// quietly training on the sample; --seed with --resume says it is not used; a resumed run
/// that goes non-finite before saving says its --resume file is unchanged; a test set of
/// another width says it is the test set.
#[test]
#[cfg(all(feature = "download", feature = "plot", feature = "progress"))]
fn the_mnist_example_names_what_it_does_not_use() {
    let dir = temp("mnist-example");
    let run = |args: &[&str], mnist_dir: Option<&Path>| {
        let mut cmd = std::process::Command::new(common::example("mnist"));
        cmd.args(["--backend", "cpu", "--limit-train", "300", "--limit-test", "100"])
            .args(args);
        match mnist_dir {
            Some(d) => cmd.env("MNIST_DIR", d),
            None => cmd.env_remove("MNIST_DIR"),
        };
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let partial = dir.join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist-sample");
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ] {
        std::fs::copy(sample.join(name), partial.join(name)).unwrap();
    }
    let out = dir.join("run");
    let (ok, stderr) = run(&["--epochs", "1", "--out", out.to_str().unwrap()], Some(&partial));
    assert!(
        !ok && stderr.contains("test labels not found in") && stderr.contains("t10k-labels-idx1-ubyte"),
        "{stderr}"
    );

    let (ok, stderr) = run(&["--epochs", "1", "--out", out.to_str().unwrap()], None);
    assert!(ok, "{stderr}");
    let checkpoint = out.join("checkpoint.safetensors");
    let resumed = dir.join("resumed");
    let args = [
        "--epochs",
        "2",
        "--lr",
        "1e30",
        "--seed",
        "4",
        "--resume",
        checkpoint.to_str().unwrap(),
        "--out",
        resumed.to_str().unwrap(),
    ];
    let before = std::fs::read(&checkpoint).unwrap();
    let (ok, stderr) = run(&args, None);
    assert!(!ok);
    assert!(
        stderr.contains("notice: --seed 4 is not used: a resumed run keeps the checkpoint's seed 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("the --resume file {} is unchanged", checkpoint.display())),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before);
}

#[test]
fn a_test_set_of_another_width_is_named_as_the_test_set() {
    let mut t = trainer(TrainConfig {
        epochs: 1,
        ..TrainConfig::default()
    })
    .unwrap();
    let narrow = Dataset::classification(vec![0.5; 7 * 3], 3, vec![0; 7], 2).unwrap();
    let err = t
        .train_epoch(&data(), Some(&narrow), &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("the test set: samples have 3 features"), "{err}");
}

/// The child of `a_kill_during_a_save_leaves_no_temporary_file`: saves a 6 MB checkpoint over
/// and over into the folder it is given.
#[test]
#[ignore = "run by a_kill_during_a_save_leaves_no_temporary_file"]
fn saving_child() {
    let Some(dir) = std::env::var_os("SHADERGRAD_SAVING_CHILD") else {
        return;
    };
    let spec = NetworkSpec::new(&[784, 2000, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let c = Checkpoint {
        network: Network::init(&spec, 0),
        optimizer: None,
        progress: Default::default(),
    };
    let path = PathBuf::from(dir).join("checkpoint.safetensors");
    // What the examples install: Ctrl-C or SIGTERM removes an unfinished save's temporary file.
    ctrlc::set_handler(|| {
        shadergrad::files::remove_unfinished_temps();
        std::process::exit(130);
    })
    .unwrap();
    loop {
        c.save(&path).unwrap();
    }
}

/// SIGTERM or SIGINT in the middle of saving leaves the previous checkpoint and no temporary
/// file: the bytes go to an unnamed file (named only for the instant between its link and its
/// rename), and the handler the examples install removes that name. (SIGKILL cannot be handled:
/// a name it leaves in that instant is removed by the next save to the path.)
#[test]
fn a_kill_during_a_save_leaves_no_temporary_file() {
    let dir = temp("kill-during-save");
    let exe = std::env::current_exe().unwrap();
    let child_log = dir.join("child-stderr.log");
    for (round, signal) in ["TERM", "INT"].iter().cycle().take(12).enumerate() {
        let mut child = std::process::Command::new(&exe)
            .args(["saving_child", "--exact", "--ignored", "--test-threads", "1"])
            .env("SHADERGRAD_SAVING_CHILD", &dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&child_log).unwrap())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150 + (round as u64 * 37) % 200));
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "round {round}: the saving child was gone before SIG{signal} ({:?}): {}",
            child.try_wait(),
            std::fs::read_to_string(&child_log).unwrap_or_default()
        );
        child.wait().unwrap();
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "SIG{signal}: {leftovers:?}");
        if dir.join("checkpoint.safetensors").exists() {
            Checkpoint::load(&dir.join("checkpoint.safetensors")).unwrap();
        }
    }
}

/// One folder, one run: a second run into a folder in use is refused naming the first one's
/// PID (and a killed run's lock does not linger); a new run never replaces an earlier run's
/// results without --resume or --overwrite; no output may be another output.
#[test]
#[cfg(all(feature = "download", feature = "plot", feature = "progress"))]
fn runs_do_not_share_or_replace_an_output_folder() {
    let dir = temp("run-folders");
    let mnist = |args: &[&str]| {
        let mut cmd = std::process::Command::new(common::example("mnist"));
        cmd.args(["--backend", "cpu", "--limit-train", "300", "--limit-test", "100"])
            .args(args)
            .env_remove("MNIST_DIR");
        cmd
    };
    let run = |args: &[&str]| {
        let out = mnist(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();
    let (ok, stderr) = run(&["--epochs", "1", "--out", out_s]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = run(&["--epochs", "1", "--out", out_s]);
    assert!(
        !ok && stderr.contains("already holds a run (1 epoch in metrics.csv") && stderr.contains("--resume"),
        "{stderr}"
    );
    // --overwrite with a setting refused at start-up costs the earlier run nothing.
    let (ok, _) = run(&["--epochs", "2", "--out", out_s, "--overwrite", "--lr", "-1"]);
    assert!(!ok);
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    let (ok, stderr) = run(&["--epochs", "2", "--out", out_s, "--overwrite"]);
    assert!(ok, "{stderr}");
    let rows = std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(rows, 3, "a header and the new run's 2 epochs");
    let curves = out.join("curves.svg");
    let (ok, stderr) = run(&[
        "--epochs",
        "1",
        "--out",
        out_s,
        "--overwrite",
        "--save",
        curves.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("would be the training curves too"), "{stderr}");
    assert!(std::fs::read_to_string(&curves).unwrap().contains("<svg"));

    // A long run holds its folder; a second run there is refused naming it.
    let busy = dir.join("busy");
    let mut first = mnist(&["--epochs", "100000", "--out", busy.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = busy.join(".shadergrad.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != first.id().to_string() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never locked its folder"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (ok, stderr) = run(&["--epochs", "1", "--out", busy.to_str().unwrap(), "--overwrite"]);
    assert!(
        !ok && stderr.contains(&format!("is in use by another run (process {})", first.id())),
        "{stderr}"
    );
    first.kill().unwrap(); // SIGKILL: the lock goes with the process
    first.wait().unwrap();
    let (ok, stderr) = run(&["--epochs", "1", "--out", busy.to_str().unwrap(), "--overwrite"]);
    assert!(ok, "{stderr}");
}
