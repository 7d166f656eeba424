//! Checkpoints: round trip, resume equals an uninterrupted run, precise errors on mismatch.

mod common;

use std::sync::Arc;

use safetensors::tensor::{Dtype, TensorView};
use shadergrad::data::Dataset;
use shadergrad::gpu::GpuContext;
use shadergrad::model::{Checkpoint, LossKind, Network, NetworkSpec};
use shadergrad::train::{Device, LrSchedule, TrainConfig, Trainer};
use shadergrad::{Activation, Error, Optimizer};

fn temp(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("ckpt-{name}"))
}

fn data() -> Dataset {
    let mut r = common::rng("checkpoint data");
    let features = common::random_vec(&mut r, 400 * 12, 1.0);
    let labels = features
        .chunks(12)
        .map(|x| u32::from(x[0] + x[1] > 0.0) + u32::from(x[2] > 0.5))
        .collect();
    Dataset::classification(features, 12, labels, 3).unwrap()
}

fn spec() -> NetworkSpec {
    NetworkSpec::new(&[12, 20, 16, 3], Activation::Tanh, LossKind::SoftmaxCrossEntropy).unwrap()
}

fn dropout_spec() -> NetworkSpec {
    NetworkSpec::parse(
        "12,dense20,relu,dropout0.3,dense16,tanh,dense3",
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap()
}

fn config(optimizer: Optimizer) -> TrainConfig {
    TrainConfig {
        optimizer,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        epochs: 4,
        batch_size: 32,
        seed: 9,
        ..TrainConfig::default()
    }
}

#[test]
fn save_and_load_round_trip_exactly() {
    let dir = temp("round-trip");
    let data = data();
    let mut trainer = Trainer::new(Network::init(&spec(), 1), &Device::Cpu, config(Optimizer::adam(1e-2))).unwrap();
    trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
    let checkpoint = trainer.checkpoint().unwrap();
    let path = dir.join("model.safetensors");
    checkpoint.save(&path).unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(
        loaded, checkpoint,
        "every tensor, the optimizer state and the progress survive"
    );
    assert_eq!(loaded.progress.epoch, 1);
    assert_eq!(loaded.progress.step, 13);
    assert_eq!(loaded.optimizer.as_ref().unwrap().progress.step, 13);

    // Identical predictions from the loaded network.
    let x = common::random_vec(&mut common::rng("round trip x"), 5 * 12, 1.0);
    let mut again = Trainer::new(loaded.network, &Device::Cpu, config(Optimizer::adam(1e-2))).unwrap();
    assert_eq!(again.predict(&x, 5).unwrap(), trainer.predict(&x, 5).unwrap());
    // No temporary files are left next to the checkpoint.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["model.safetensors".to_string()]);
}

#[test]
fn pytorch_names_and_shapes() {
    let checkpoint = Checkpoint {
        network: Network::init(&spec(), 0),
        optimizer: None,
        progress: Default::default(),
    };
    let bytes = checkpoint.to_bytes().unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = tensors.names();
    names.sort();
    assert_eq!(
        names,
        vec![
            "layers.0.bias",
            "layers.0.weight",
            "layers.1.bias",
            "layers.1.weight",
            "layers.2.bias",
            "layers.2.weight"
        ]
    );
    let w = tensors.tensor("layers.1.weight").unwrap();
    assert_eq!(
        (w.dtype(), w.shape()),
        (Dtype::F32, &[16usize, 20][..]),
        "nn.Linear(20, 16).weight is [out, in]"
    );
    assert_eq!(tensors.tensor("layers.2.bias").unwrap().shape(), &[3]);
}

#[test]
fn cnn_checkpoints_use_conv2d_names_and_shapes_and_round_trip() {
    let spec = NetworkSpec::parse(
        "1x6x6,conv4k3p1,relu,maxpool2,conv3k2,flatten,dense5,relu,dense3",
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap();
    let mut r = common::rng("cnn checkpoint data");
    let data = image_data(&mut r);
    let mut trainer = Trainer::new(Network::init(&spec, 1), &Device::Cpu, config(Optimizer::adam(1e-2))).unwrap();
    trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
    let checkpoint = trainer.checkpoint().unwrap();
    let bytes = checkpoint.to_bytes().unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // nn.Conv2d(1, 4, 3, padding=1).weight is [out, in, k, k]; the dense layers follow.
    assert_eq!(tensors.tensor("layers.0.weight").unwrap().shape(), &[4, 1, 3, 3]);
    assert_eq!(tensors.tensor("layers.0.bias").unwrap().shape(), &[4]);
    assert_eq!(tensors.tensor("layers.1.weight").unwrap().shape(), &[3, 4, 2, 2]);
    assert_eq!(tensors.tensor("layers.2.weight").unwrap().shape(), &[5, 12]);
    assert_eq!(
        tensors.tensor("optimizer.exp_avg.layers.1.weight").unwrap().shape(),
        &[3, 4, 2, 2]
    );
    let dir = temp("cnn");
    let path = dir.join("cnn.safetensors");
    checkpoint.save(&path).unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded, checkpoint);
    assert_eq!(loaded.network.spec.text(), spec.text());
    let x = common::random_vec(&mut r, 3 * 36, 1.0);
    let mut again = Trainer::new(loaded.network, &Device::Cpu, config(Optimizer::adam(1e-2))).unwrap();
    assert_eq!(again.predict(&x, 3).unwrap(), trainer.predict(&x, 3).unwrap());
}

/// 64 seeded 1×6×6 images in 3 classes.
fn image_data(r: &mut rand::rngs::StdRng) -> Dataset {
    let features = common::random_vec(r, 64 * 36, 1.0);
    let labels = features
        .chunks(36)
        .map(|x| u32::from(x[7] > 0.0) + u32::from(x[20] > 0.5))
        .collect();
    Dataset::classification(features, 36, labels, 3).unwrap()
}

fn batch_norm_spec() -> NetworkSpec {
    NetworkSpec::parse("12,dense20,batchnorm,relu,dense3", LossKind::SoftmaxCrossEntropy).unwrap()
}

/// Batch norm's tensors under PyTorch's `nn.BatchNorm1d`/`nn.BatchNorm2d` names: weight, bias,
/// running_mean, running_var (f32 `[C]`), num_batches_tracked (i64 scalar); the optimizer keeps
/// moments of the weight and bias only.
#[test]
fn batch_norm_checkpoints_use_pytorch_names_and_round_trip() {
    let spec = NetworkSpec::parse(
        "1x6x6,conv4k3p1,batchnorm,relu,maxpool2,flatten,dense5,batchnorm,relu,dense3",
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap();
    let mut r = common::rng("batch norm checkpoint data");
    let data = image_data(&mut r);
    let mut trainer = Trainer::new(Network::init(&spec, 1), &Device::Cpu, config(Optimizer::adam(1e-2))).unwrap();
    let report = trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
    let checkpoint = trainer.checkpoint().unwrap();
    let bytes = checkpoint.to_bytes().unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (i, channels) in [(1, 4usize), (3, 5)] {
        for name in ["weight", "bias", "running_mean", "running_var"] {
            let t = tensors.tensor(&format!("layers.{i}.{name}")).unwrap();
            assert_eq!(
                (t.dtype(), t.shape()),
                (Dtype::F32, &[channels][..]),
                "layers.{i}.{name}"
            );
        }
        let count = tensors.tensor(&format!("layers.{i}.num_batches_tracked")).unwrap();
        assert_eq!((count.dtype(), count.shape()), (Dtype::I64, &[][..]));
        assert_eq!(
            i64::from_le_bytes(count.data().try_into().unwrap()),
            report.steps as i64
        );
        assert!(tensors.tensor(&format!("optimizer.exp_avg.layers.{i}.weight")).is_ok());
        assert!(
            tensors
                .tensor(&format!("optimizer.exp_avg.layers.{i}.running_mean"))
                .is_err(),
            "running statistics are not trained: no optimizer moments"
        );
    }
    // The running statistics moved from their start (0 and 1).
    let mean = checkpoint.network.layers[1].get("running_mean").unwrap();
    assert!(mean.iter().all(|&m| m != 0.0), "{mean:?}");
    let dir = temp("batch-norm");
    let path = dir.join("bn.safetensors");
    checkpoint.save(&path).unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded, checkpoint);
    let x = common::random_vec(&mut r, 3 * 36, 1.0);
    let mut again = Trainer::new(loaded.network, &Device::Cpu, config(Optimizer::adam(1e-2))).unwrap();
    assert_eq!(again.predict(&x, 3).unwrap(), trainer.predict(&x, 3).unwrap());
}

fn resume_matches_uninterrupted(device: Device, tolerance: f64) {
    let data = data();
    for (spec, optimizer) in [
        (spec(), Optimizer::sgd(0.1)),
        (spec(), Optimizer::momentum(0.05, 0.9)),
        (spec(), Optimizer::adamw(1e-2, 0.01)),
        // Dropout masks follow the restored step counter and seed.
        (dropout_spec(), Optimizer::rmsprop(1e-2)),
        // Batch norm's running statistics come back from the checkpoint.
        (batch_norm_spec(), Optimizer::momentum(0.05, 0.9)),
    ] {
        let dir = temp(&format!("resume-{}", if tolerance == 0.0 { "cpu" } else { "gpu" }));
        let path = dir.join("checkpoint.safetensors");
        let mut straight = Trainer::new(Network::init(&spec, 3), &device, config(optimizer)).unwrap();
        let straight_reports = straight.fit(&data, Some(&data), |_| {}).unwrap();

        let mut first = Trainer::new(Network::init(&spec, 3), &device, config(optimizer)).unwrap();
        for _ in 0..2 {
            first.train_epoch(&data, Some(&data), &mut |_, _| {}).unwrap();
            first.checkpoint().unwrap().save(&path).unwrap();
        }
        drop(first);
        // A different seed in the new config is overridden by the checkpoint's.
        let resumed_config = TrainConfig {
            seed: 12345,
            ..config(optimizer)
        };
        let mut resumed =
            Trainer::resume(Checkpoint::load_for(&path, &spec).unwrap(), &device, resumed_config).unwrap();
        assert_eq!((resumed.epochs_done(), resumed.steps_done()), (2, 26));
        let resumed_reports = resumed.fit(&data, Some(&data), |_| {}).unwrap();
        assert_eq!(resumed_reports.len(), 2);

        let (a, b) = (straight.network().unwrap(), resumed.network().unwrap());
        if tolerance == 0.0 {
            assert_eq!(
                a, b,
                "{optimizer:?}: resumed parameters differ from an uninterrupted run"
            );
            assert_eq!(straight_reports[3].train, resumed_reports[1].train, "{optimizer:?}");
        } else {
            for (la, lb) in a.layers.iter().zip(&b.layers) {
                let err = common::relative_error(lb.weight(), la.weight());
                assert!(err <= tolerance, "{optimizer:?}: resumed weights differ by {err:e}");
            }
        }
    }
}

#[test]
fn resume_equals_an_uninterrupted_run_bit_for_bit_on_cpu() {
    resume_matches_uninterrupted(Device::Cpu, 0.0);
}

#[test]
fn resume_equals_an_uninterrupted_run_on_gpu_within_tolerance() {
    if common::gpu().is_none() {
        return;
    }
    resume_matches_uninterrupted(Device::Gpu(Arc::new(GpuContext::new().unwrap())), 1e-5);
}

fn write_tensors(
    path: &std::path::Path,
    tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>,
    meta: Option<Vec<(&str, &str)>>,
) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta = meta.map(|m| m.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    std::fs::write(path, safetensors::serialize(views, meta).unwrap()).unwrap();
}

#[test]
fn mismatched_checkpoints_say_exactly_what_does_not_match() {
    let dir = temp("mismatch");
    let small = NetworkSpec::new(&[2, 3], Activation::Relu, LossKind::MeanSquaredError).unwrap();
    let meta = vec![
        ("format", "shadergrad-checkpoint-1"),
        ("sizes", "2,3"),
        ("hidden_activation", "relu"),
        ("loss", "mse"),
        ("epoch", "0"),
        ("step", "0"),
        ("seed", "0"),
    ];
    let f32s = |n: usize| vec![0u8; n * 4];
    let path = dir.join("bad.safetensors");
    let load = |tensors, meta| {
        write_tensors(&path, tensors, meta);
        match Checkpoint::load_for(&path, &small) {
            Err(Error::Checkpoint { problem, .. }) => problem,
            other => panic!("expected a checkpoint error, got {other:?}"),
        }
    };
    let good_w = ("layers.0.weight", Dtype::F32, vec![3, 2], f32s(6));
    let good_b = ("layers.0.bias", Dtype::F32, vec![3], f32s(3));
    // The good file loads.
    write_tensors(&path, vec![good_w.clone(), good_b.clone()], Some(meta.clone()));
    assert!(Checkpoint::load_for(&path, &small).is_ok());

    type Case<'a> = (
        Vec<(&'a str, Dtype, Vec<usize>, Vec<u8>)>,
        Option<Vec<(&'a str, &'a str)>>,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            vec![good_b.clone()],
            Some(meta.clone()),
            "missing tensor \"layers.0.weight\" (expected F32 [3, 2])",
        ),
        (
            vec![("layers.0.weight", Dtype::F64, vec![3, 2], vec![0; 48]), good_b.clone()],
            Some(meta.clone()),
            "tensor \"layers.0.weight\" has dtype F64, expected F32",
        ),
        (
            vec![("layers.0.weight", Dtype::F32, vec![2, 3], f32s(6)), good_b.clone()],
            Some(meta.clone()),
            "tensor \"layers.0.weight\" has shape [2, 3], expected [3, 2]",
        ),
        (
            vec![
                good_w.clone(),
                good_b.clone(),
                ("layers.1.weight", Dtype::F32, vec![1], f32s(1)),
            ],
            Some(meta.clone()),
            "unexpected tensor \"layers.1.weight\"",
        ),
        (
            vec![good_w.clone(), good_b.clone()],
            None,
            "not a shadergrad checkpoint",
        ),
    ];
    for (tensors, meta, message) in cases {
        let problem = load(tensors, meta);
        assert!(problem.contains(message), "got {problem:?}, wanted {message:?}");
    }
    // A checkpoint of another network.
    let other = Checkpoint {
        network: Network::init(&spec(), 0),
        optimizer: None,
        progress: Default::default(),
    };
    other.save(&path).unwrap();
    let err = Checkpoint::load_for(&path, &small).unwrap_err().to_string();
    assert!(
        err.contains(
            "holds the model 12,dense20,tanh,dense16,tanh,dense3 (softmax_ce loss) but 2,dense3 (mse loss) was expected"
        ),
        "{err}"
    );
    // Not safetensors at all, and truncated.
    std::fs::write(&path, b"definitely not a checkpoint").unwrap();
    assert!(
        Checkpoint::load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a safetensors file")
    );
    let bytes = other.to_bytes().unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("but its header describes") && err.contains("truncated"),
        "{err}"
    );
    // A header that claims far more than the file holds is refused before any allocation.
    let mut lying = (u64::MAX / 2).to_le_bytes().to_vec();
    lying.extend_from_slice(b"{}");
    std::fs::write(&path, &lying).unwrap();
    let err = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(err.contains("header claims"), "{err}");
    // Optimizer state of another kind is refused on resume.
    let mut trainer = Trainer::new(Network::init(&spec(), 0), &Device::Cpu, config(Optimizer::adam(1e-3))).unwrap();
    let adam_checkpoint = trainer.checkpoint().unwrap();
    let err = Trainer::resume(adam_checkpoint, &Device::Cpu, config(Optimizer::sgd(0.1)))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("optimizer state is for adam, but this run uses sgd"),
        "{err}"
    );
}

#[test]
fn saving_replaces_the_file_atomically_and_reports_unwritable_paths() {
    let dir = temp("atomic");
    let path = dir.join("c.safetensors");
    let a = Checkpoint {
        network: Network::init(&spec(), 1),
        optimizer: None,
        progress: Default::default(),
    };
    let b = Checkpoint {
        network: Network::init(&spec(), 2),
        optimizer: None,
        progress: Default::default(),
    };
    a.save(&path).unwrap();
    b.save(&path).unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap(), b);
    let err = a.save(&dir.join("no/such/folder/c.safetensors")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

/// The bug of issue 9: settings given on resume were replaced by the checkpoint's.
fn settings_given_on_resume_take_effect(device: Device) {
    let data = data();
    let dir = temp(&format!("settings-{}", matches!(device, Device::Gpu(_))));
    let path = dir.join("checkpoint.safetensors");
    let saved = TrainConfig {
        max_grad_norm: 1.0,
        checkpoint: Some(path.clone()),
        ..config(Optimizer::adam(1e-2))
    };
    // ReLU, as the command line's default: a huge step overflows the logits.
    let relu = NetworkSpec::new(&[12, 20, 16, 3], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let mut first = Trainer::new(Network::init(&relu, 3), &device, saved.clone()).unwrap();
    first.train_epoch(&data, None, &mut |_, _| {}).unwrap();
    drop(first);
    let resume_with = |config: TrainConfig| {
        let mut t = Trainer::resume(Checkpoint::load(&path).unwrap(), &device, config).unwrap();
        t.train_epoch(&data, None, &mut |_, _| {})
            .map(|r| (r, t.network().unwrap()))
    };
    let without_path = TrainConfig {
        checkpoint: None,
        ..saved.clone()
    };
    // Clipping and weight decay given on resume change the result (they used to be ignored).
    let (_, clip1) = resume_with(without_path.clone()).unwrap();
    let (_, clip_tiny) = resume_with(TrainConfig {
        max_grad_norm: 1e-3,
        ..without_path.clone()
    })
    .unwrap();
    let (_, decayed) = resume_with(TrainConfig {
        optimizer: Optimizer::adamw(1e-2, 0.5),
        ..without_path.clone()
    })
    .unwrap();
    assert_ne!(clip1, clip_tiny, "--clip given on resume was ignored");
    assert_ne!(clip1, decayed, "--weight-decay given on resume was ignored");
    // Skipping asked for on resume skips: the run goes on, reports the skipped steps, and the
    // checkpoint it writes holds finite parameters.
    let good = std::fs::read(&path).unwrap();
    let reckless = TrainConfig {
        optimizer: Optimizer::adam(1e30),
        skip_nonfinite: true,
        max_grad_norm: 5.0,
        ..saved.clone()
    };
    match resume_with(reckless) {
        Ok((report, network)) => {
            assert!(report.train.skipped_steps > 0, "nothing was skipped: {report:?}");
            assert!(network.is_finite(), "a skipped step changed the parameters");
            assert!(Checkpoint::load(&path).unwrap().network.is_finite());
        }
        Err(e) => {
            // Parameters that went non-finite without a non-finite loss, or a loss that stayed
            // finite but huge (a GPU run under the validation layer reached 2.7e29 with no
            // non-finite step to skip): refused, not saved.
            assert!(
                matches!(e, Error::NonFiniteParameters { .. } | Error::Diverged { .. }),
                "{e}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                good,
                "the good checkpoint was overwritten"
            );
        }
    }
    // Without skipping, the run stops and the good checkpoint stays as it was. Which guard
    // stops it depends on the data: a loss that overflows (non-finite), parameters that do, or
    // a loss that stays finite but huge (SHADERGRAD_TEST_SEED=1796479060771961183 reached
    // 1.8e29 on lavapipe) — each is a refusal.
    std::fs::write(&path, &good).unwrap();
    let stopped = resume_with(TrainConfig {
        optimizer: Optimizer::adam(1e30),
        ..saved
    });
    assert!(
        matches!(
            stopped,
            Err(Error::NonFiniteLoss { .. } | Error::NonFiniteParameters { .. } | Error::Diverged { .. })
        ),
        "{stopped:?}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        good,
        "the good checkpoint was overwritten"
    );
}

#[test]
fn settings_given_on_resume_take_effect_on_cpu() {
    settings_given_on_resume_take_effect(Device::Cpu);
}

#[test]
fn settings_given_on_resume_take_effect_on_gpu() {
    if common::gpu().is_none() {
        return;
    }
    settings_given_on_resume_take_effect(Device::Gpu(Arc::new(GpuContext::new().unwrap())));
}

#[test]
fn checkpoints_of_the_first_format_still_load() {
    // Written by the previous release: sizes + hidden_activation, moment{j}, raw state bytes.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoint-format-1.safetensors");
    let c = Checkpoint::load(&path).unwrap();
    assert_eq!(c.network.spec.text(), "4,dense5,tanh,dense3");
    let opt = c.optimizer.expect("optimizer state");
    assert_eq!(opt.kind, "adam");
    assert_eq!(opt.moments.len(), 2);
    assert_eq!(opt.progress.step, 6);
    assert!(
        opt.progress.beta1_power > 0.5 && opt.progress.beta1_power < 0.6,
        "0.9^6: {:?}",
        opt.progress
    );
    // Saved again, it is written in the current format and reads back the same.
    let c = Checkpoint::load(&path).unwrap();
    let again = Checkpoint::from_bytes(&c.to_bytes().unwrap(), None).unwrap();
    assert_eq!(again, c);
    // And it resumes.
    let mut t = Trainer::resume(c, &Device::Cpu, config(Optimizer::adam(1e-2))).unwrap();
    let small = Dataset::classification(vec![0.5; 8], 4, vec![0, 2], 3).unwrap();
    t.train_epoch(&small, None, &mut |_, _| {}).unwrap();
}

/// A checkpoint whose counters are at their limits (corrupt or hand-edited) is refused before
/// an epoch wraps them, on both counters, with the counter named.
#[test]
fn counters_at_their_limits_are_refused_before_they_wrap() {
    let mut trainer = Trainer::new(Network::init(&spec(), 0), &Device::Cpu, config(Optimizer::adam(1e-3))).unwrap();
    trainer.train_epoch(&data(), None, &mut |_, _| {}).unwrap();
    let good = trainer.checkpoint().unwrap();
    let mut at_limit = good.clone();
    at_limit.progress.step = u64::MAX - 1;
    let mut resumed = Trainer::resume(at_limit, &Device::Cpu, config(Optimizer::adam(1e-3))).unwrap();
    let err = resumed
        .train_epoch(&data(), None, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the run's step counter is at 18446744073709551614"),
        "{err}"
    );
    let mut optimizer_at_limit = good;
    optimizer_at_limit.optimizer.as_mut().unwrap().progress.step = u32::MAX - 1;
    let mut resumed = Trainer::resume(optimizer_at_limit, &Device::Cpu, config(Optimizer::adam(1e-3))).unwrap();
    let err = resumed
        .train_epoch(&data(), None, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("the optimizer's step counter is at 4294967294"), "{err}");
}

/// One flipped bit in a stored tensor is caught on load, naming the tensor; checkpoints
/// written before checksums (the first-format file in tests/data) still load.
#[test]
fn a_flipped_bit_is_named_on_load() {
    let dir = temp("bitflip");
    let path = dir.join("c.safetensors");
    let trainer_checkpoint = Checkpoint {
        network: Network::init(&spec(), 0),
        optimizer: None,
        progress: Default::default(),
    };
    trainer_checkpoint.save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // The last tensor's last float: flip its top exponent bit.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("fails its CRC-32 check") && err.contains("tensor \"layers."),
        "{err}"
    );
    let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoint-format-1.safetensors");
    Checkpoint::load(&old).unwrap();
}

/// `Predictor` loads a checkpoint and predicts with no training configuration, on the CPU and
/// the GPU, as the trainer that wrote it does.
#[test]
fn a_predictor_predicts_what_the_trainer_did_on_both_backends() {
    let dir = temp("predictor");
    let path = dir.join("c.safetensors");
    let mut trainer = Trainer::new(Network::init(&spec(), 3), &Device::Cpu, config(Optimizer::adam(1e-2))).unwrap();
    trainer.train_epoch(&data(), None, &mut |_, _| {}).unwrap();
    trainer.checkpoint().unwrap().save(&path).unwrap();
    let features: Vec<f32> = (0..37 * 12).map(|i| ((i * 7) % 13) as f32 / 13.0).collect();
    let want = trainer.predict(&features, 37).unwrap();
    let _ = gpu_or_skip!();
    let gpu = Device::Gpu(Arc::new(GpuContext::new().unwrap()));
    for device in [Device::Cpu, gpu] {
        let mut predictor = shadergrad::train::Predictor::load(&path, &device).unwrap();
        assert_eq!(predictor.spec(), &spec());
        let got = predictor.predict(&features, 37).unwrap();
        common::assert_close(&predictor.backend_name(), &got, &want, 1e-5);
    }
}
