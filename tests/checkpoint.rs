//! Checkpoints: round trip, resume equals an uninterrupted run, precise errors on mismatch.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use safetensors::tensor::{Dtype, TensorView};
use shadergrad::data::Dataset;
use shadergrad::gpu::GpuContext;
use shadergrad::model::{Checkpoint, LossKind, Network, NetworkSpec};
use shadergrad::train::{Device, LrSchedule, TrainConfig, Trainer};
use shadergrad::{Activation, Error, Optimizer};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shadergrad-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
    assert_eq!(loaded.optimizer.as_ref().unwrap().state.step, 13);

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

fn resume_matches_uninterrupted(device: Device, tolerance: f64) {
    let data = data();
    for optimizer in [
        Optimizer::sgd(0.1),
        Optimizer::momentum(0.05, 0.9),
        Optimizer::adamw(1e-2, 0.01),
    ] {
        let dir = temp("resume");
        let path = dir.join("checkpoint.safetensors");
        let mut straight = Trainer::new(Network::init(&spec(), 3), &device, config(optimizer)).unwrap();
        let straight_reports = straight.fit(&data, Some(&data), |_| {}).unwrap();

        let mut first = Trainer::new(Network::init(&spec(), 3), &device, config(optimizer)).unwrap();
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
            Trainer::resume(Checkpoint::load_for(&path, &spec()).unwrap(), &device, resumed_config).unwrap();
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
                let err = common::relative_error(&lb.weight, &la.weight);
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
            "holds a 12-20-16-3 network (tanh hidden, softmax_ce loss) but 2-3 (relu hidden, mse loss) was expected"
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
