//! `cargo bench --bench train_step`: one training step (batch 128) on each backend.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use shadergrad::data::synthetic::mnist_like;
use shadergrad::gpu::GpuContext;
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::train::{Backend, CpuBackend, GpuBackend, TrainConfig};
use shadergrad::{Activation, Optimizer};

const BATCH: usize = 128;

fn train_step(c: &mut Criterion) {
    let ctx = GpuContext::new().ok().map(Arc::new);
    let data = mnist_like(BATCH * 8, 0);
    let batches: Vec<Vec<u32>> = (0..8)
        .map(|b| ((b * BATCH) as u32..((b + 1) * BATCH) as u32).collect())
        .collect();
    let workloads: [(&str, &[usize], Activation, Optimizer); 3] = [
        (
            "784-512-256-10 sgd",
            &[784, 512, 256, 10],
            Activation::Relu,
            Optimizer::sgd(0.01),
        ),
        (
            "784-512-256-10 adam",
            &[784, 512, 256, 10],
            Activation::Relu,
            Optimizer::adam(1e-3),
        ),
        (
            "784-2352-784-10 sigmoid sgd",
            &[784, 2352, 784, 10],
            Activation::Sigmoid,
            Optimizer::sgd(0.01),
        ),
    ];
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, sizes, act, optimizer) in workloads {
        let spec = NetworkSpec::new(sizes, act, LossKind::SoftmaxCrossEntropy).unwrap();
        let network = Network::init(&spec, 0);
        let mut backends: Vec<(String, Box<dyn Backend>)> = vec![(
            "cpu".into(),
            Box::new(
                CpuBackend::new(
                    network.clone(),
                    &TrainConfig {
                        optimizer,
                        batch_size: BATCH,
                        ..TrainConfig::default()
                    },
                )
                .unwrap(),
            ),
        )];
        if let Some(ctx) = &ctx {
            backends.push((
                "gpu".into(),
                Box::new(
                    GpuBackend::new(
                        Arc::clone(ctx),
                        &network,
                        &TrainConfig {
                            optimizer,
                            batch_size: BATCH,
                            ..TrainConfig::default()
                        },
                    )
                    .unwrap(),
                ),
            ));
        }
        for (device, mut backend) in backends {
            let mut next = 0;
            group.bench_function(format!("{device} {name}"), |bench| {
                bench.iter(|| {
                    let batch = &batches[next % batches.len()][..];
                    next += 1;
                    backend.train_batches(&data, &[batch]).unwrap();
                    // Reading the totals waits for the GPU, so the step is timed to completion.
                    backend.take_train_totals().unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
