//! CPU against GPU, side by side: matmul in each transpose form, the CNN preset's convolution
//! forward and backward, and whole training steps (MLPs and the CNN preset).
//!
//! `cargo run --release --example bench [-- --json FILE] [--quick] [--only matmul|step] [--cpu-only]`
//!
//! Prints a markdown table. Figures are medians of repeats after a warm-up; warm-up (pipeline
//! compilation, first dispatch) is timed and reported on its own. GPU kernel time comes from
//! timestamp queries where the adapter has them, so wall − kernel shows the host's overhead.

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use shadergrad::data::synthetic::mnist_like;
use shadergrad::data::{batches, epoch_order};
use shadergrad::gpu::profiler::PassTimer;
use shadergrad::gpu::{self, GpuContext};
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::ops::{Epilogue, MatmulDims, MatmulForm};
use shadergrad::train::{Backend, BackendChoice, CpuBackend, Device, GpuBackend, TrainConfig, gpu_profile};
use shadergrad::{Activation, Optimizer, cpu};

#[derive(Parser, Debug)]
#[command(about = "Benchmark shadergrad's CPU and GPU backends side by side")]
struct Args {
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Fewer repeats and no 1024³ matmul (for a quick look).
    #[arg(long)]
    quick: bool,
    /// Only kernels (matmuls and the convolution), or only training steps.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// CPU figures only: no GPU adapter needed (GPU columns read n/a).
    #[arg(long)]
    cpu_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    /// Matmuls in each transpose form and the CNN preset's convolution.
    Matmul,
    /// Whole training steps.
    Step,
}

/// The GPU side of a run: the device and, where the adapter has timestamp queries, a timer.
#[derive(Clone, Copy)]
struct Gpu<'a> {
    ctx: &'a Arc<GpuContext>,
    timer: Option<&'a PassTimer>,
}

/// A workload's GPU figures, in seconds.
struct GpuFigures {
    wall: f64,
    /// From timestamp queries, where the adapter has them.
    kernel: Option<f64>,
    /// Pipeline compilation and the first dispatch.
    warmup: f64,
}

/// Median of the samples.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `f` until `budget` seconds or `max` repeats have passed (at least `min`); median seconds.
fn repeat(min: usize, max: usize, budget: f64, mut f: impl FnMut() -> f64) -> f64 {
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < min || (samples.len() < max && started.elapsed().as_secs_f64() < budget) {
        samples.push(f());
    }
    median(samples)
}

struct Row {
    workload: String,
    flops: f64,
    cpu_s: f64,
    /// None with `--cpu-only`.
    gpu: Option<GpuFigures>,
    extra: String,
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn bench_matmul(gpu: Option<Gpu<'_>>, form: MatmulForm, d: MatmulDims, quick: bool) -> Row {
    let a = random(d.m * d.k, 1);
    let b = random(d.k * d.n, 2);
    let mut c = vec![0.0f32; d.m * d.n];
    let budget = if quick { 0.3 } else { 1.0 };
    let cpu_s = repeat(3, 200, budget, || {
        let t = Instant::now();
        cpu::matmul(form, d, &a, &b, &mut c, Epilogue::None).unwrap();
        t.elapsed().as_secs_f64()
    });
    Row {
        workload: format!("matmul {:?} {}×{}·{}×{}", form, d.m, d.k, d.k, d.n),
        flops: d.flops(),
        cpu_s,
        gpu: gpu.map(|gpu| gpu_matmul(gpu, form, d, (&a, &b), budget)),
        extra: String::new(),
    }
}

fn gpu_matmul(
    Gpu { ctx, timer }: Gpu<'_>,
    form: MatmulForm,
    d: MatmulDims,
    (a, b): (&[f32], &[f32]),
    budget: f64,
) -> GpuFigures {
    let (ga, gb, gc) = (
        ctx.upload("a", a).unwrap(),
        ctx.upload("b", b).unwrap(),
        ctx.zeros::<f32>("c", d.m * d.n).unwrap(),
    );
    let warm = Instant::now();
    let dispatch = gpu::matmul(ctx, form, d, &ga, &gb, &gc, Epilogue::None).unwrap();
    ctx.run(&[&dispatch]).unwrap();
    ctx.wait().unwrap();
    let warmup_s = warm.elapsed().as_secs_f64();
    let gpu_s = repeat(3, 100, budget, || {
        let t = Instant::now();
        ctx.run(&[&dispatch]).unwrap();
        ctx.wait().unwrap();
        t.elapsed().as_secs_f64()
    });
    let kernel = timer.map(|t| repeat(3, 100, budget, || ctx.run_timed(&[&dispatch], t).unwrap()));
    GpuFigures {
        wall: gpu_s,
        kernel,
        warmup: warmup_s,
    }
}

/// Forward and backward (weight, bias and input gradients) of the preset's second convolution.
fn bench_conv(gpu: Option<Gpu<'_>>, quick: bool) -> Vec<Row> {
    use shadergrad::model::ConvGeometry;
    let (batch, c, size, o, k) = (128, 32, 14, 64, 3);
    let g = ConvGeometry {
        in_channels: c,
        height: size,
        width: size,
        kernel: k,
        stride: 1,
        padding: 1,
        out_height: size,
        out_width: size,
    };
    let patch = c * k * k;
    let (in_len, out_len) = (batch * c * size * size, batch * o * size * size);
    let (x, w, b, dz) = (
        random(in_len, 1),
        random(o * patch, 2),
        random(o, 3),
        random(out_len, 4),
    );
    let (mut y, mut dw, mut db, mut dx) = (
        vec![0.0; out_len],
        vec![0.0; o * patch],
        vec![0.0; o],
        vec![0.0; in_len],
    );
    let budget = if quick { 0.5 } else { 2.0 };
    let act = Activation::Relu;
    let cpu_fwd = repeat(2, 50, budget, || {
        let t = Instant::now();
        cpu::conv2d_forward(&x, &w, &b, &mut y, batch, g, o, act).unwrap();
        t.elapsed().as_secs_f64()
    });
    let cpu_bwd = repeat(2, 50, budget, || {
        let t = Instant::now();
        cpu::conv2d_backward(&dz, &x, &w, (&mut dw, &mut db), Some((&mut dx, act)), batch, g, o).unwrap();
        t.elapsed().as_secs_f64()
    });
    let macs = (o * patch * batch * size * size) as f64;
    let workload = |pass| format!("conv2d {pass} 128×32×14×14 → 64, 3×3 p1");
    let Some(Gpu { ctx, timer }) = gpu else {
        return vec![
            Row {
                workload: workload("forward"),
                flops: 2.0 * macs,
                cpu_s: cpu_fwd,
                gpu: None,
                extra: String::new(),
            },
            Row {
                workload: workload("backward"),
                flops: 4.0 * macs,
                cpu_s: cpu_bwd,
                gpu: None,
                extra: String::new(),
            },
        ];
    };
    let shape = gpu::ConvShape {
        geometry: g,
        out_channels: o,
        batch,
    };
    let up = |name, v: &[f32]| ctx.upload(name, v).unwrap();
    let (gx, gw, gb, gdz) = (up("x", &x), up("w", &w), up("b", &b), up("dz", &dz));
    let zeros = |name, n| ctx.zeros::<f32>(name, n).unwrap();
    let (cols, zrows) = (zeros("cols", shape.cols_len()), zeros("rows", shape.rows_len()));
    let (gy, gdw, gdb, gdx) = (
        zeros("y", out_len),
        zeros("dw", o * patch),
        zeros("db", o),
        zeros("dx", in_len),
    );
    let scratch = || gpu::ConvScratch {
        cols: &cols,
        rows: &zrows,
    };
    let warm = Instant::now();
    let fwd = gpu::conv2d_forward(ctx, shape, &gx, ((&gw).into(), (&gb).into()), scratch(), &gy, act).unwrap();
    let bwd = gpu::conv2d_backward(
        ctx,
        shape,
        &gdz,
        (&gx, (&gw).into()),
        ((&gdw).into(), (&gdb).into()),
        scratch(),
        Some((&gdx, act)),
    )
    .unwrap();
    let implicit_fwd =
        vec![gpu::conv2d_forward_implicit(ctx, shape, &gx, ((&gw).into(), (&gb).into()), &gy, act).unwrap()];
    let implicit_bwd = gpu::conv2d_backward_implicit(
        ctx,
        shape,
        &gdz,
        (&gx, (&gw).into()),
        ((&gdw).into(), (&gdb).into()),
        Some((&gdx, act)),
    )
    .unwrap();
    ctx.run(
        &fwd.iter()
            .chain(&bwd)
            .chain(&implicit_fwd)
            .chain(&implicit_bwd)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    ctx.wait().unwrap();
    let warmup_s = warm.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for (pass, dispatches, cpu_s, flops, path) in [
        ("forward", &fwd, cpu_fwd, 2.0 * macs, "im2col + tuned matmul"),
        ("forward", &implicit_fwd, cpu_fwd, 2.0 * macs, "implicit GEMM"),
        ("backward", &bwd, cpu_bwd, 4.0 * macs, "im2col + tuned matmul"),
        ("backward", &implicit_bwd, cpu_bwd, 4.0 * macs, "implicit GEMM"),
    ] {
        let list: Vec<_> = dispatches.iter().collect();
        let gpu_s = repeat(2, 30, budget, || {
            let t = Instant::now();
            ctx.run(&list).unwrap();
            ctx.wait().unwrap();
            t.elapsed().as_secs_f64()
        });
        rows.push(Row {
            workload: workload(pass),
            flops,
            cpu_s,
            gpu: Some(GpuFigures {
                wall: gpu_s,
                kernel: timer.map(|t| repeat(2, 30, budget, || ctx.run_timed(&list, t).unwrap())),
                warmup: warmup_s,
            }),
            extra: format!("GPU: {path}, {} dispatches", list.len()),
        });
    }
    rows
}

fn step_flops(spec: &NetworkSpec, batch: usize) -> f64 {
    // Forward X·Wᵀ, backward dZᵀ·X and dZ·W (not for the first layer): 2·B·MACs each.
    spec.param_layers()
        .map(|l| {
            let passes = if l.index == 0 { 2.0 } else { 3.0 };
            passes * 2.0 * (batch * l.kind.forward_macs()) as f64
        })
        .sum()
}

/// Median seconds per CPU training step of `spec` at batch 128 on MNIST-like data.
fn cpu_step_seconds(spec: &NetworkSpec, optimizer: Optimizer, steps: usize) -> f64 {
    const BATCH: usize = 128;
    let data = mnist_like(BATCH * 64, 0);
    let order = epoch_order(data.len(), 0, 0, true);
    let all: Vec<&[u32]> = batches(&order, BATCH, true).collect();
    let config = TrainConfig {
        optimizer,
        batch_size: BATCH,
        ..TrainConfig::default()
    };
    let mut cpu = CpuBackend::new(Network::init(spec, 0), &config).unwrap();
    let mut run = |k: usize| {
        let t = Instant::now();
        cpu.train_batches(&data, &all[..k]).unwrap();
        cpu.take_train_totals().unwrap();
        t.elapsed().as_secs_f64() / k as f64
    };
    run(2);
    median((0..3).map(|_| run(steps)).collect())
}

fn bench_step(gpu: Option<Gpu<'_>>, name: &str, spec: NetworkSpec, optimizer: Optimizer, quick: bool) -> Row {
    const BATCH: usize = 128;
    let big = step_flops(&spec, BATCH) > 2e9;
    let steps = if quick || big { 8 } else { 32 };
    let cpu_s = cpu_step_seconds(&spec, optimizer, steps);
    let (figures, extra) = match gpu {
        Some(gpu) => {
            let (figures, extra) = gpu_step(gpu, name, &spec, optimizer, steps);
            (Some(figures), extra)
        }
        None => (None, String::new()),
    };
    Row {
        workload: format!("train step {name}"),
        flops: step_flops(&spec, BATCH),
        cpu_s,
        gpu: figures,
        extra,
    }
}

/// The GPU's step figures and a note on its dispatches and traffic.
fn gpu_step(
    Gpu { ctx, .. }: Gpu<'_>,
    name: &str,
    spec: &NetworkSpec,
    optimizer: Optimizer,
    steps: usize,
) -> (GpuFigures, String) {
    const BATCH: usize = 128;
    let network = Network::init(spec, 0);
    let data = mnist_like(BATCH * 64, 0);
    let order = epoch_order(data.len(), 0, 0, true);
    let all: Vec<&[u32]> = batches(&order, BATCH, true).collect();
    let run = |backend: &mut dyn Backend, k: usize| {
        let t = Instant::now();
        backend.train_batches(&data, &all[..k]).unwrap();
        backend.take_train_totals().unwrap();
        t.elapsed().as_secs_f64() / k as f64
    };

    let warm = Instant::now();
    let mut gpu = GpuBackend::new(
        Arc::clone(ctx),
        &network,
        &TrainConfig {
            optimizer,
            batch_size: BATCH,
            ..TrainConfig::default()
        },
    )
    .unwrap();
    run(&mut gpu, 1);
    let warmup_s = warm.elapsed().as_secs_f64();
    let prepared = ctx.prepared_dispatches();
    let gpu_s = median((0..3).map(|_| run(&mut gpu, steps)).collect());
    assert_eq!(
        ctx.prepared_dispatches(),
        prepared,
        "the measured steps prepared new dispatches"
    );
    let kernel = gpu_profile::train_batches_timed(&mut gpu, &data, &all[..steps.min(8)])
        .unwrap()
        .map(|s| s / steps.min(8) as f64);
    gpu.take_train_totals().unwrap();
    if std::env::var_os("BENCH_PROFILE").is_some()
        && let Some(times) = gpu_profile::profile_step(&mut gpu, &data, all[0]).unwrap()
    {
        let total: f64 = times.iter().map(|t| t.1).sum();
        println!("{name}: per-dispatch GPU time (sum {:.2} ms)", total * 1e3);
        for (what, s) in times {
            println!("  {:>8.3} ms  {what}", s * 1e3);
        }
    }
    let dispatches = gpu.dispatches_per_step().unwrap_or(0);
    let per_submit = shadergrad::train::DEFAULT_STEPS_PER_SUBMIT;
    let figures = GpuFigures {
        wall: gpu_s,
        kernel,
        warmup: warmup_s,
    };
    let note = format!(
        "{dispatches} dispatches, 1/{per_submit} submit, {} B up, 0 B down per step",
        BATCH * 4
    );
    (figures, note)
}

fn main() {
    let args = Args::parse();
    // A results path that cannot be written (a folder, a FIFO, a missing or read-only folder)
    // fails now, not after minutes of measuring.
    if let Some(path) = &args.json
        && let Err(e) = shadergrad::files::check_destination(path)
    {
        eprintln!("error: cannot write the JSON results to {}: {e}", path.display());
        std::process::exit(1);
    }
    let ctx = if args.cpu_only {
        None
    } else {
        // As `--backend auto` decides: no adapter at all means CPU columns only, with a notice.
        match Device::open(BackendChoice::Auto) {
            Ok((Device::Gpu(ctx), _)) => Some(ctx),
            Ok((Device::Cpu, reason)) => {
                let reason = reason.map_or(String::new(), |r| format!("{r}; "));
                eprintln!("notice: {reason}the GPU columns read n/a (--cpu-only says so without looking)");
                None
            }
            Err(e) => {
                eprintln!("error: no GPU to benchmark: {e}\n(`--cpu-only` measures the CPU backend alone)");
                std::process::exit(1);
            }
        }
    };
    let timer = ctx.as_ref().and_then(|ctx| PassTimer::new(ctx));
    let gpu = ctx.as_ref().map(|ctx| Gpu {
        ctx,
        timer: timer.as_ref(),
    });
    match &ctx {
        Some(ctx) => println!("GPU: {}", ctx.describe()),
        None if args.cpu_only => println!("GPU: not measured (--cpu-only)"),
        None => println!("GPU: none found, not measured"),
    }
    println!("CPU: {} threads (gemm + rayon)", rayon::current_num_threads());
    if gpu.is_some() {
        let kernel_time = if timer.is_some() {
            "timestamp queries"
        } else {
            "unavailable (no timestamp queries)"
        };
        println!("kernel time: {kernel_time}");
    }
    println!();
    let total = Instant::now();
    let mut rows = Vec::new();
    if args.only != Some(Only::Step) {
        let mut shapes = vec![(128, 784, 512), (128, 512, 256), (512, 512, 512)];
        if !args.quick {
            shapes.push((1024, 1024, 1024));
        }
        for (m, k, n) in shapes {
            for form in MatmulForm::ALL {
                rows.push(bench_matmul(gpu, form, MatmulDims::new(m, k, n), args.quick));
            }
        }
    }
    if args.only != Some(Only::Matmul) {
        let mlp = |sizes: &[usize], act| NetworkSpec::new(sizes, act, LossKind::SoftmaxCrossEntropy).unwrap();
        let lenet = NetworkSpec::preset("lenet", LossKind::SoftmaxCrossEntropy).unwrap();
        let steps = [
            (
                "784-512-256-10 SGD",
                mlp(&[784, 512, 256, 10], Activation::Relu),
                Optimizer::sgd(0.1),
            ),
            (
                "784-512-256-10 Adam",
                mlp(&[784, 512, 256, 10], Activation::Relu),
                Optimizer::adam(1e-3),
            ),
            (
                "784-2352-784-10 sigmoid SGD",
                mlp(&[784, 2352, 784, 10], Activation::Sigmoid),
                Optimizer::sgd(0.1),
            ),
            ("lenet (CNN preset) SGD", lenet.clone(), Optimizer::sgd(0.1)),
            ("lenet (CNN preset) Adam", lenet, Optimizer::adam(1e-3)),
        ];
        for (name, spec, optimizer) in steps {
            rows.push(bench_step(gpu, name, spec, optimizer, args.quick));
        }
    }
    if args.only != Some(Only::Step) {
        // The preset's second convolution: 128 × 32 × 14 × 14 → 64 channels, 3×3, padding 1.
        rows.extend(bench_conv(gpu, args.quick));
    }

    println!(
        "| workload | CPU ms | GPU ms | GPU/CPU speedup | CPU GFLOP/s | GPU GFLOP/s | GPU kernel ms | host overhead ms | GPU warm-up ms | notes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let gflops = |flops: f64, s: f64| flops / s / 1e9;
    let na = || "n/a".to_string();
    for r in &rows {
        let g = r.gpu.as_ref();
        let ms = |s: f64| format!("{:.2}", s * 1e3);
        let kernel = g.and_then(|g| g.kernel);
        println!(
            "| {} | {:.2} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
            r.workload,
            r.cpu_s * 1e3,
            g.map_or_else(na, |g| ms(g.wall)),
            g.map_or_else(na, |g| format!("{:.2}×", r.cpu_s / g.wall)),
            gflops(r.flops, r.cpu_s),
            g.map_or_else(na, |g| format!("{:.1}", gflops(r.flops, g.wall))),
            kernel.map_or_else(na, ms),
            g.zip(kernel).map_or_else(na, |(g, k)| ms(g.wall - k)),
            g.map_or_else(na, |g| format!("{:.0}", g.warmup * 1e3)),
            r.extra
        );
    }
    for r in rows.iter().filter(|r| r.workload.starts_with("train step")) {
        let gpu = r
            .gpu
            .as_ref()
            .map_or(String::new(), |g| format!(", GPU {:.1} steps/s", 1.0 / g.wall));
        println!("{}: CPU {:.0} steps/s{gpu}", r.workload, 1.0 / r.cpu_s);
    }
    let pipelines = ctx.as_ref().map_or(String::new(), |ctx| {
        format!("pipelines compiled: {}; ", ctx.compiled_pipelines())
    });
    println!("\n{pipelines}total bench time {:.1} s", total.elapsed().as_secs_f64());

    if let Some(path) = args.json {
        let null = || "null".to_string();
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                let g = r.gpu.as_ref();
                format!(
                    "{{\"workload\":{:?},\"flops\":{},\"cpu_ms\":{},\"gpu_ms\":{},\"gpu_kernel_ms\":{},\"gpu_warmup_ms\":{},\"notes\":{:?}}}",
                    r.workload,
                    r.flops,
                    r.cpu_s * 1e3,
                    g.map_or_else(null, |g| (g.wall * 1e3).to_string()),
                    g.and_then(|g| g.kernel).map_or_else(null, |k| (k * 1e3).to_string()),
                    g.map_or_else(null, |g| (g.warmup * 1e3).to_string()),
                    r.extra
                )
            })
            .collect();
        let described = ctx.as_ref().map_or_else(null, |ctx| format!("{:?}", ctx.describe()));
        let json = format!("{{\"gpu\":{described},\"rows\":[{}]}}\n", items.join(","));
        if let Err(e) = shadergrad::files::write_atomically(&path, json.as_bytes()) {
            eprintln!("error: writing the JSON results to {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("wrote {}", path.display());
    }
}
