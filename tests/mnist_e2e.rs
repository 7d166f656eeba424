//! End to end on real MNIST: a slice of the training set, the full test set, both backends.
//!
//! Data comes from `$MNIST_DIR` (CI exports it), else `../shared/data/mnist`, else
//! `./data/mnist`. Under `CI` missing data fails the test; elsewhere it trains on the bundled
//! sample (10,000 training, 2,000 test images) against a lower bar.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use shadergrad::data::Mnist;
use shadergrad::gpu::GpuContext;
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::train::{Device, LrSchedule, TrainConfig, Trainer};
use shadergrad::{Activation, Optimizer};

const TRAIN_SAMPLES: usize = 20_000;
const MIN_ACCURACY: f64 = 0.95;
/// On the bundled sample: 10,000 training images, 2,000 test images.
const MIN_SAMPLE_ACCURACY: f64 = 0.90;

fn mnist_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("MNIST_DIR").map(PathBuf::from),
        Some(manifest.join("../shared/data/mnist")),
        Some(manifest.join("data/mnist")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| d.join("t10k-labels-idx1-ubyte.gz").is_file() || d.join("t10k-labels-idx1-ubyte").is_file())
}

#[test]
fn mnist_slice_trains_to_stated_accuracy_on_both_backends() {
    let (dir, min_accuracy) = match mnist_dir() {
        Some(dir) => (dir, MIN_ACCURACY),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide MNIST (set MNIST_DIR)"
            );
            let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(shadergrad::data::BUNDLED_SAMPLE);
            eprintln!(
                "no full MNIST (set MNIST_DIR): using the bundled sample {}",
                sample.display()
            );
            (sample, MIN_SAMPLE_ACCURACY)
        }
    };
    let mnist = Mnist::load(&dir).unwrap();
    let train = mnist.train.take(TRAIN_SAMPLES).unwrap();
    let spec = NetworkSpec::new(&[784, 128, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let config = TrainConfig {
        optimizer: Optimizer::adam(2e-3),
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        epochs: 3,
        batch_size: 64,
        seed: 1,
        ..TrainConfig::default()
    };
    let mut devices = vec![Device::Cpu];
    if common::gpu().is_some() {
        devices.push(Device::Gpu(Arc::new(GpuContext::new().unwrap())));
    }
    for device in devices {
        let started = Instant::now();
        let mut trainer = Trainer::new(Network::init(&spec, 1), &device, config.clone()).unwrap();
        let reports = trainer.fit(&train, Some(&mnist.test), |_| {}).unwrap();
        let test = reports.last().unwrap().test.unwrap();
        let accuracy = test.accuracy().unwrap();
        eprintln!(
            "{}: {} train images x {} epochs → test accuracy {:.2}% (loss {:.4}) in {:.1} s",
            trainer.backend_name(),
            train.len(),
            config.epochs,
            100.0 * accuracy,
            test.mean_loss(),
            started.elapsed().as_secs_f64()
        );
        assert_eq!(test.samples, mnist.test.len() as u64);
        assert!(
            accuracy >= min_accuracy,
            "{}: test accuracy {accuracy} < {min_accuracy}",
            trainer.backend_name()
        );
    }
}

/// The CNN preset on a slice of real MNIST, both backends: they must learn and agree (the GPU's
/// kernels are the CPU's math, so the accuracies match to a few test images).
#[test]
fn lenet_preset_on_an_mnist_slice_agrees_between_backends() {
    const TRAIN: usize = 3_072;
    const TEST: usize = 1_000;
    let Some(dir) = mnist_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide MNIST (set MNIST_DIR)"
        );
        eprintln!("skipped: no full MNIST (set MNIST_DIR)");
        return;
    };
    let mnist = Mnist::load(&dir).unwrap();
    let (train, test) = (mnist.train.take(TRAIN).unwrap(), mnist.test.take(TEST).unwrap());
    let spec = NetworkSpec::preset("lenet", LossKind::SoftmaxCrossEntropy).unwrap();
    let config = TrainConfig {
        optimizer: Optimizer::adam(2e-3),
        epochs: 1,
        seed: 3,
        ..TrainConfig::default()
    };
    let mut devices = vec![Device::Cpu];
    if common::gpu().is_some() {
        devices.push(Device::Gpu(Arc::new(GpuContext::new().unwrap())));
    }
    let mut accuracies = Vec::new();
    for device in devices {
        let started = Instant::now();
        let mut trainer = Trainer::new(Network::init(&spec, 1), &device, config.clone()).unwrap();
        let reports = trainer.fit(&train, Some(&test), |_| {}).unwrap();
        let accuracy = reports.last().unwrap().test.unwrap().accuracy().unwrap();
        eprintln!(
            "lenet, {}: {TRAIN} train images → {:.2}% on {TEST} test images in {:.1} s",
            trainer.backend_name(),
            100.0 * accuracy,
            started.elapsed().as_secs_f64()
        );
        assert!(accuracy >= 0.85, "{}: accuracy {accuracy}", trainer.backend_name());
        accuracies.push(accuracy);
    }
    if let [cpu, gpu] = accuracies[..] {
        assert!((cpu - gpu).abs() <= 0.003, "CPU {cpu} and GPU {gpu} disagree");
    }
}
