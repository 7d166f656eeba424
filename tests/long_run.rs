//! 10,000 training steps with flat memory. In a test binary of its own, so no other test's
//! allocations move the process's resident set size while it is measured.

mod common;

use std::sync::Arc;

use shadergrad::data::Dataset;
use shadergrad::gpu::GpuContext;
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::train::{Backend, GpuBackend};
use shadergrad::{Activation, Optimizer};

fn data(samples: usize) -> Dataset {
    common::four_class_data(samples, "long run data")
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

#[test]
fn ten_thousand_steps_keep_memory_flat() {
    let Some(_) = common::gpu() else { return };
    let ctx = Arc::new(GpuContext::new().unwrap());
    let data = data(640);
    let spec = NetworkSpec::new(&[10, 16, 4], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let mut gpu = GpuBackend::new(
        Arc::clone(&ctx),
        &Network::init(&spec, 0),
        &common::config(Optimizer::adam(1e-3), 64, 0.0),
    )
    .unwrap();
    let order: Vec<u32> = (0..640).collect();
    let batches: Vec<&[u32]> = order.chunks(64).collect();
    let mut run = |steps: usize| {
        for _ in 0..steps / batches.len() {
            gpu.train_batches(&data, &batches).unwrap();
        }
        gpu.take_train_totals().unwrap();
    };
    run(2_000); // warm-up: programs, pipelines, the driver's and allocator's pools
    let (rss0, buffers0) = (rss_bytes(), ctx.live_buffers());
    run(10_000);
    let (rss1, buffers1) = (rss_bytes(), ctx.live_buffers());
    eprintln!(
        "10,000 steps: RSS {:.1} → {:.1} MiB, live GPU buffers {:?} → {:?} (count, bytes)",
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        buffers0,
        buffers1
    );
    assert_eq!(buffers0, buffers1, "GPU buffers grew");
    assert!(rss1 <= rss0 + 8 * 1048576, "host memory grew by {} bytes", rss1 - rss0);
}
