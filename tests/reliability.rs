//! Reliability: non-finite losses, lost devices, crashes while saving, long runs, threads,
//! determinism.

mod common;

use std::sync::Arc;
use std::time::Duration;

use shadergrad::data::Dataset;
use shadergrad::gpu::GpuContext;
use shadergrad::model::{Checkpoint, LossKind, Network, NetworkSpec};
use shadergrad::train::{Device, LrSchedule, TrainConfig, Trainer};
use shadergrad::{Activation, Error, Optimizer};

fn temp(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("rel-{name}"))
}

fn data(samples: usize) -> Dataset {
    common::four_class_data(samples, "reliability data")
}

fn spec() -> NetworkSpec {
    NetworkSpec::new(&[10, 32, 4], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap()
}

fn devices() -> Vec<Device> {
    let mut devices = vec![Device::Cpu];
    if common::gpu().is_some() {
        devices.push(Device::Gpu(Arc::new(GpuContext::new().unwrap())));
    }
    devices
}

#[test]
fn a_non_finite_loss_stops_with_epoch_step_and_the_last_good_checkpoint() {
    let data = data(300);
    for device in devices() {
        let dir = temp("nan");
        let path = dir.join("checkpoint.safetensors");
        // Epoch 1 trains normally; from epoch 2 the learning rate is 1e9 times larger.
        let config = TrainConfig {
            optimizer: Optimizer::sgd(0.05),
            schedule: LrSchedule::Step { every: 1, gamma: 1e9 },
            epochs: 3,
            batch_size: 30,
            checkpoint: Some(path.clone()),
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(Network::init(&spec(), 0), &device, config).unwrap();
        trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
        let err = trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap_err();
        let text = err.to_string();
        match &err {
            Error::NonFiniteLoss {
                epoch,
                step,
                checkpoint,
                ..
            } => {
                assert_eq!(*epoch, 2, "{text}");
                assert!(
                    (11..=20).contains(step),
                    "the first bad step is in epoch 2 (steps 11-20): {text}"
                );
                assert_eq!(checkpoint.as_deref(), Some(path.as_path()), "{text}");
            }
            other => panic!("expected NonFiniteLoss, got {other:?}"),
        }
        assert!(text.contains("--resume"), "{text}");
        // The checkpoint of the last good epoch still loads, and its parameters are finite.
        let saved = Checkpoint::load(&path).unwrap();
        assert_eq!(saved.progress.epoch, 1);
        assert!(
            saved
                .network
                .layers
                .iter()
                .all(|l| l.weight().iter().all(|w| w.is_finite()))
        );
    }
}

#[test]
fn non_finite_steps_can_be_skipped_instead() {
    let data = data(300);
    for device in devices() {
        let config = TrainConfig {
            optimizer: Optimizer::sgd(1e12),
            epochs: 1,
            batch_size: 30,
            skip_nonfinite: true,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(Network::init(&spec(), 0), &device, config).unwrap();
        let report = trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
        assert!(report.train.skipped_steps >= 1, "{:?}", report.train);
        assert!(report.train.nonfinite_step.is_some());
        let network = trainer.network().unwrap();
        assert!(
            network.layers.iter().all(|l| l.weight().iter().all(|w| w.is_finite())),
            "skipped steps leave finite weights"
        );
    }
}

#[test]
fn a_lost_device_is_an_error_and_training_resumes_from_the_checkpoint() {
    let Some(_) = common::gpu() else { return };
    let data = data(200);
    let dir = temp("lost");
    let path = dir.join("checkpoint.safetensors");
    let config = TrainConfig {
        optimizer: Optimizer::adam(1e-2),
        epochs: 4,
        batch_size: 25,
        seed: 5,
        checkpoint: Some(path.clone()),
        ..TrainConfig::default()
    };
    let ctx = Arc::new(GpuContext::new().unwrap());
    let mut trainer = Trainer::new(
        Network::init(&spec(), 2),
        &Device::Gpu(Arc::clone(&ctx)),
        config.clone(),
    )
    .unwrap();
    trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
    trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
    ctx.simulate_device_loss();
    let err = trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap_err();
    match &err {
        Error::DeviceLost { checkpoint, .. } => assert_eq!(checkpoint.as_deref(), Some(path.as_path())),
        other => panic!("expected DeviceLost, got {other:?}"),
    }
    // Later calls keep reporting the loss instead of panicking.
    assert!(matches!(trainer.network(), Err(Error::DeviceLost { .. })));
    drop(trainer);

    // Recovery: a new device, resume from the checkpoint, finish the run.
    let fresh = Device::Gpu(Arc::new(GpuContext::new().unwrap()));
    let mut resumed = Trainer::resume(Checkpoint::load(&path).unwrap(), &fresh, config.clone()).unwrap();
    assert_eq!(resumed.epochs_done(), 2);
    resumed.fit(&data, None, |_| {}).unwrap();
    let mut straight = Trainer::new(
        Network::init(&spec(), 2),
        &fresh,
        TrainConfig {
            checkpoint: None,
            ..config
        },
    )
    .unwrap();
    straight.fit(&data, None, |_| {}).unwrap();
    let (a, b) = (straight.network().unwrap(), resumed.network().unwrap());
    for (la, lb) in a.layers.iter().zip(&b.layers) {
        let err = common::relative_error(lb.weight(), la.weight());
        assert!(err < 1e-5, "resumed run differs from the uninterrupted one by {err:e}");
    }
}

/// Child mode of the crash test (run by it with `--ignored`): writes checkpoints to the given
/// path until killed.
#[test]
#[ignore = "the child process of killing_a_process_mid_save_never_corrupts_the_checkpoint"]
fn crash_writer_child() {
    let path = std::env::var("SHADERGRAD_CRASH_WRITER").expect("set by the crash test");
    let big = NetworkSpec::new(&[200, 300, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let mut seed = 100;
    loop {
        seed += 1;
        let checkpoint = Checkpoint {
            network: Network::init(&big, seed),
            optimizer: None,
            progress: Default::default(),
        };
        checkpoint.save(std::path::Path::new(&path)).unwrap();
    }
}

#[test]
fn killing_a_process_mid_save_never_corrupts_the_checkpoint() {
    let dir = temp("crash");
    let path = dir.join("checkpoint.safetensors");
    let big = NetworkSpec::new(&[200, 300, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    Checkpoint {
        network: Network::init(&big, 1),
        optimizer: None,
        progress: Default::default(),
    }
    .save(&path)
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seen = std::collections::HashSet::new();
    for round in 0..15 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("SHADERGRAD_CRASH_WRITER", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(40 + (round * 37) % 120));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let loaded = Checkpoint::load(&path).unwrap_or_else(|e| panic!("round {round}: checkpoint corrupted: {e}"));
        assert_eq!(loaded.network.spec, big);
        seen.insert(loaded.network.layers[0].weight()[0].to_bits());
    }
    eprintln!("15 kills, {} distinct checkpoints seen, every one loadable", seen.len());
    assert!(
        seen.len() > 1,
        "the child should have replaced the checkpoint at least once"
    );
}

#[test]
fn two_trainers_on_one_device_match_training_alone() {
    let Some(_) = common::gpu() else { return };
    let ctx = Arc::new(GpuContext::new().unwrap());
    let data = Arc::new(data(300));
    let config = TrainConfig {
        epochs: 3,
        batch_size: 30,
        optimizer: Optimizer::adam(5e-3),
        ..TrainConfig::default()
    };
    let train = |seed: u64| {
        let device = Device::Gpu(Arc::clone(&ctx));
        let mut t = Trainer::new(Network::init(&spec(), seed), &device, config.clone()).unwrap();
        t.fit(&data, Some(&data), |_| {}).unwrap();
        t.network().unwrap()
    };
    let alone = (train(1), train(2));
    let together = std::thread::scope(|s| {
        let a = s.spawn(|| train(1));
        let b = s.spawn(|| train(2));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(alone.0, together.0, "trainer 1 differs when sharing the device");
    assert_eq!(alone.1, together.1, "trainer 2 differs when sharing the device");
}

#[test]
fn same_seed_same_results_run_to_run() {
    let data = data(300);
    for device in devices() {
        let run = || {
            let config = TrainConfig {
                epochs: 2,
                batch_size: 32,
                seed: 11,
                ..TrainConfig::default()
            };
            let mut t = Trainer::new(Network::init(&spec(), 11), &device, config).unwrap();
            let reports = t.fit(&data, Some(&data), |_| {}).unwrap();
            (
                t.network().unwrap(),
                reports.iter().map(|r| (r.train, r.test)).collect::<Vec<_>>(),
            )
        };
        let (a, b) = (run(), run());
        assert_eq!(a.0, b.0, "parameters differ run to run");
        assert_eq!(a.1, b.1, "losses and accuracies differ run to run");
    }
}

#[test]
fn gpu_context_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GpuContext>();
    assert_send_sync::<shadergrad::gpu::Dispatch>();
}
