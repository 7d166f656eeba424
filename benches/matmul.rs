//! `cargo bench --bench matmul`: matmul in every transpose form, CPU backend and GPU kernel.
//! The GPU figure includes submit + wait (wall time); `examples/bench.rs` also reports kernel
//! time from timestamp queries.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shadergrad::cpu;
use shadergrad::gpu::{self, GpuContext};
use shadergrad::ops::{Epilogue, MatmulDims, MatmulForm};

const SHAPES: [(usize, usize, usize); 4] = [(128, 784, 512), (128, 512, 256), (512, 512, 512), (1024, 1024, 1024)];

fn values(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32 - 0.5)
        .collect()
}

fn matmul(c: &mut Criterion) {
    let ctx = GpuContext::new().ok();
    if ctx.is_none() {
        eprintln!("no GPU adapter: GPU matmul benches skipped");
    }
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (m, k, n) in SHAPES {
        let d = MatmulDims::new(m, k, n);
        group.throughput(Throughput::Elements(d.flops() as u64));
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        for form in MatmulForm::ALL {
            let id = format!("{form:?} {m}x{k}x{n}");
            let mut out = vec![0.0; m * n];
            group.bench_function(BenchmarkId::new("cpu", &id), |bench| {
                bench.iter(|| cpu::matmul(form, d, &a, &b, &mut out, Epilogue::None).unwrap())
            });
            if let Some(ctx) = &ctx {
                let (ga, gb) = (ctx.upload("a", &a).unwrap(), ctx.upload("b", &b).unwrap());
                let gc = ctx.zeros::<f32>("c", m * n).unwrap();
                let dispatch = gpu::matmul(ctx, form, d, &ga, &gb, &gc, Epilogue::None).unwrap();
                group.bench_function(BenchmarkId::new("gpu", &id), |bench| {
                    bench.iter(|| {
                        ctx.run(&[&dispatch]).unwrap();
                        ctx.wait().unwrap();
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, matmul);
criterion_main!(benches);
