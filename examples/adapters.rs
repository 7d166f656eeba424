//! Lists every adapter wgpu sees, opens the one shadergrad would use, and shows which matmul
//! kernel it picks for each shape of a 784-512-256-10 training step, and the path each
//! convolution of the CNN preset takes, and why.
//!
//! `cargo run --release --example adapters` (honours SHADERGRAD_BACKEND, SHADERGRAD_ADAPTER,
//! SHADERGRAD_MATMUL and SHADERGRAD_CONV). Exits non-zero when no adapter can be opened.

use std::sync::Arc;

use shadergrad::gpu::{ChoiceSource, ConvPath, GpuContext, ShapeClass, list_adapters, tuning};
use shadergrad::model::{LossKind, Network, NetworkSpec, ParamKind};
use shadergrad::ops::{MatmulDims, MatmulForm};
use shadergrad::train::{Device, TrainConfig, Trainer};
use shadergrad::{Activation, data};

fn main() {
    println!("adapters on this machine: {}", list_adapters());
    let ctx = match GpuContext::new() {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let l = ctx.limits();
    println!("shadergrad uses: {}", ctx.describe());
    println!(
        "limits: max_buffer_size {} MiB, max_storage_buffer_binding_size {} MiB, \
         max_compute_workgroups_per_dimension {}, max_compute_invocations_per_workgroup {}, \
         max_storage_buffers_per_shader_stage {}",
        l.max_buffer_size >> 20,
        l.max_storage_buffer_binding_size >> 20,
        l.max_compute_workgroups_per_dimension,
        l.max_compute_invocations_per_workgroup,
        l.max_storage_buffers_per_shader_stage
    );
    println!("subgroups: {}", ctx.describe_subgroups());
    if let Err(e) = show_matmul_choices(&ctx) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One training step of the default MNIST network, then the kernel chosen per matmul class.
fn show_matmul_choices(ctx: &Arc<GpuContext>) -> shadergrad::Result<()> {
    let spec = NetworkSpec::new(&[784, 512, 256, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy)?;
    let config = TrainConfig::default();
    let start = std::time::Instant::now();
    let mut trainer = Trainer::new(Network::init(&spec, 0), &Device::Gpu(Arc::clone(ctx)), config.clone())?;
    trainer.train_epoch(&data::synthetic::mnist_like(config.batch_size, 0), None, &mut |_, _| {})?;
    println!(
        "\nmatmul kernels for a 784-512-256-10 step (first step, compilation and timing included: {:.2} s):",
        start.elapsed().as_secs_f64()
    );
    match ctx.forced_matmul_kernel() {
        Some(kernel) => println!("  all: {} (forced by SHADERGRAD_MATMUL)", kernel.name()),
        None => println!(
            "  timed once per shape class within {} s of kernel time, {}",
            tuning::TIMING_BUDGET_SECONDS,
            match ctx.kernel_cache() {
                Ok(file) => format!("then cached in {}", file.display()),
                Err(why) => format!("not cached: {why}"),
            }
        ),
    }
    for (class, choice) in ctx.matmul_choices() {
        let why = match choice.source {
            ChoiceSource::Forced => "forced".to_string(),
            ChoiceSource::Unmeasured => "timing budget spent: nearest measured class".to_string(),
            ChoiceSource::AdapterType => "adapter type".to_string(),
            ChoiceSource::DeviceLimits => "device limits".to_string(),
            ChoiceSource::Measured | ChoiceSource::Cached => {
                let times: Vec<String> = choice
                    .timings
                    .iter()
                    .map(|(k, s)| format!("{} {:.2} ms", k.name(), s * 1e3))
                    .collect();
                let when = if choice.source == ChoiceSource::Cached {
                    "cached"
                } else {
                    "measured now"
                };
                format!("{when}: {}", times.join(", "))
            }
        };
        println!(
            "  {:?}, work ≈ 2^{}, {}: {} ({why})",
            class.form,
            class.size_bucket * 3,
            if class.aligned { "vec4-aligned" } else { "unaligned" },
            choice.kernel.name()
        );
    }
    let pairings = ctx.pairing_choices();
    if !pairings.is_empty() {
        println!("\na dense layer's weight and input gradients, one launch or two (timed on first use, cached):");
    }
    for (class, pairing, source) in pairings {
        let g = class.weight_grad;
        println!(
            "  dW work ≈ 2^{} ({}), {}: {} ({})",
            g.size_bucket * 3,
            if g.aligned { "vec4-aligned" } else { "unaligned" },
            class.kernel.name(),
            pairing.name(),
            match source {
                ChoiceSource::Forced => "forced by SHADERGRAD_PAIRING".to_string(),
                ChoiceSource::Measured => "measured now".to_string(),
                ChoiceSource::Cached => "cached".to_string(),
                ChoiceSource::Unmeasured => "timing budget spent".to_string(),
                ChoiceSource::AdapterType => "CPU adapter: a launch saves nothing there, not timed".to_string(),
                ChoiceSource::DeviceLimits => format!(
                    "the pair binds {} storage buffers, the device {}",
                    class.kernel.pair_storage_buffers(),
                    ctx.limits().max_storage_buffers_per_shader_stage
                ),
            }
        );
    }
    show_conv_paths(ctx, config.batch_size)
}

/// The path each convolution of the CNN preset takes, and the matmul choice behind it.
fn show_conv_paths(ctx: &GpuContext, batch: usize) -> shadergrad::Result<()> {
    let lenet = NetworkSpec::preset("lenet", LossKind::SoftmaxCrossEntropy)?;
    println!(
        "
convolutions of --preset lenet at batch {batch}:"
    );
    for l in lenet.param_layers() {
        let ParamKind::Conv2d { geometry, out_channels } = l.kind else {
            continue;
        };
        let shape = shadergrad::gpu::ConvShape {
            geometry,
            out_channels,
            batch,
        };
        let path = ConvPath::choose(ctx, &shape)?;
        let why = match ctx.forced_conv_path() {
            Some(_) => "forced by SHADERGRAD_CONV".to_string(),
            None => {
                let class = ShapeClass::of(
                    MatmulForm::AB,
                    MatmulDims::new(out_channels, shape.patch(), shape.columns()),
                    true,
                );
                let kernel = ctx
                    .matmul_choices()
                    .into_iter()
                    .find(|(c, _)| *c == class)
                    .map_or("?", |(_, choice)| choice.kernel.name());
                format!("the matmul kernel chosen for its forward product is {kernel}")
            }
        };
        println!(
            "  layer {}: {} → {} channels, {}×{} kernel: {} ({why})",
            l.index,
            geometry.in_channels,
            out_channels,
            geometry.kernel,
            geometry.kernel,
            path.name()
        );
    }
    Ok(())
}
