//! The empirical matmul kernel choice: timed on first use of a shape class, cached on disk per
//! adapter so a later run does not time again, rebuilt from a corrupt cache, and forced by the
//! request (`SHADERGRAD_MATMUL`). Whatever kernel is chosen, the result is the CPU's.

mod common;

use std::path::{Path, PathBuf};

use common::{GPU_TOLERANCE, assert_close, random_vec, rng};
use shadergrad::gpu::{AdapterRequest, ChoiceSource, GpuContext, MatmulChoice, MatmulKernel, ShapeClass};
use shadergrad::ops::{Epilogue, MatmulDims, MatmulForm};
use shadergrad::{cpu, gpu};

fn open(cache: &Path, forced: Option<MatmulKernel>) -> GpuContext {
    GpuContext::with_request(&AdapterRequest {
        matmul_kernel: forced,
        kernel_cache_dir: Some(cache.to_path_buf()),
        ..AdapterRequest::from_env().unwrap()
    })
    .unwrap()
}

/// Runs the MNIST first layer's forward matmul through the public API (the device picks the
/// kernel), checks it against the CPU, and returns the device's choices.
fn forward_layer(ctx: &GpuContext) -> Vec<(ShapeClass, MatmulChoice)> {
    let d = MatmulDims::new(128, 784, 512);
    let mut r = rng("tuning");
    let (a, b) = (random_vec(&mut r, d.m * d.k, 1.0), random_vec(&mut r, d.n * d.k, 1.0));
    let mut want = vec![0.0f32; d.m * d.n];
    cpu::matmul(MatmulForm::ABt, d, &a, &b, &mut want, Epilogue::None).unwrap();
    let (ga, gb) = (ctx.upload("a", &a).unwrap(), ctx.upload("b", &b).unwrap());
    let gc = common::poisoned(ctx, "c", d.m * d.n);
    let dispatch = gpu::matmul(ctx, MatmulForm::ABt, d, &ga, &gb, &gc, Epilogue::None).unwrap();
    ctx.run(&[&dispatch]).unwrap();
    assert_close("tuned matmul", &ctx.read(&gc).unwrap(), &want, GPU_TOLERANCE);
    ctx.matmul_choices()
}

fn cache_file(dir: &Path) -> PathBuf {
    dir.join("matmul-kernels.json")
}

#[test]
fn kernel_choice_is_timed_then_cached_and_can_be_forced() {
    let shared = gpu_or_skip!();
    let dir = common::TempDir::unmade("tuning");

    // First run: every candidate is timed and the fastest kept.
    let choices = forward_layer(&open(&dir, None));
    assert_eq!(choices.len(), 1, "{choices:?}");
    let (class, first) = &choices[0];
    assert_eq!(class.form, MatmulForm::ABt);
    assert!(class.aligned);
    assert_eq!(first.source, ChoiceSource::Measured);
    let candidates = class.candidates(shared.runs(MatmulKernel::RowBlockSubgroup));
    assert_eq!(first.timings.len(), candidates.len(), "{first:?}");
    assert_eq!(first.kernel, first.timings[0].0, "the fastest wins: {first:?}");
    assert!(first.timings.windows(2).all(|w| w[0].1 <= w[1].1), "{first:?}");
    if shared.adapter_info().name.contains("llvmpipe") {
        // The row-block kernels are 2× faster than the others on lavapipe (and with subgroups,
        // the subgroup one 1.8× the plain one): measurement must see it.
        let want = if shared.runs(MatmulKernel::RowBlockSubgroup) {
            MatmulKernel::RowBlockSubgroup
        } else {
            MatmulKernel::RowBlock
        };
        assert_eq!(first.kernel, want, "{first:?}");
    }
    let text = std::fs::read_to_string(cache_file(&dir)).expect("the choice is written to the cache");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let devices = json["devices"].as_object().unwrap();
    assert_eq!(devices.len(), 1, "{text}");
    let entry = devices
        .values()
        .next()
        .unwrap()
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(entry["kernel"], first.kernel.name(), "{text}");

    // Second run: read from the cache, nothing timed, the same kernel.
    let choices = forward_layer(&open(&dir, None));
    assert_eq!(choices[0].1.source, ChoiceSource::Cached, "{choices:?}");
    assert_eq!(choices[0].1.kernel, first.kernel);

    // A cached choice that did not time every kernel the device has now is timed again.
    let text = std::fs::read_to_string(cache_file(&dir)).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for device in json["devices"].as_object_mut().unwrap().values_mut() {
        for choice in device.as_object_mut().unwrap().values_mut() {
            choice["seconds"].as_object_mut().unwrap().remove(first.kernel.name());
            choice["kernel"] = MatmulKernel::Tiled.name().into();
        }
    }
    std::fs::write(cache_file(&dir), serde_json::to_vec(&json).unwrap()).unwrap();
    let choices = forward_layer(&open(&dir, None));
    assert_eq!(choices[0].1.source, ChoiceSource::Measured, "{choices:?}");
    assert_eq!(choices[0].1.timings.len(), candidates.len());

    // A corrupt cache is ignored, then rewritten whole.
    std::fs::write(cache_file(&dir), b"{\"devices\": [garbage").unwrap();
    let choices = forward_layer(&open(&dir, None));
    assert_eq!(choices[0].1.source, ChoiceSource::Measured, "{choices:?}");
    let text = std::fs::read_to_string(cache_file(&dir)).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{text}");

    // Forced: that kernel everywhere, nothing timed or written.
    for kernel in shared.matmul_kernels() {
        let before = std::fs::read(cache_file(&dir)).unwrap();
        let choices = forward_layer(&open(&dir, Some(kernel)));
        assert_eq!(choices[0].1.kernel, kernel);
        assert_eq!(choices[0].1.source, ChoiceSource::Forced);
        assert_eq!(std::fs::read(cache_file(&dir)).unwrap(), before);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A device without subgroups of 8+ lanes does not offer the subgroup kernel, and refuses a
/// request that forces it with an error naming what is missing.
#[test]
fn the_subgroup_kernel_is_offered_only_where_it_runs() {
    let shared = gpu_or_skip!();
    let subgroups = shared.runs(MatmulKernel::RowBlockSubgroup);
    assert_eq!(
        shared.matmul_kernels().contains(&MatmulKernel::RowBlockSubgroup),
        subgroups
    );
    let forced = GpuContext::with_request(&AdapterRequest {
        matmul_kernel: Some(MatmulKernel::RowBlockSubgroup),
        kernel_cache_dir: None,
        ..AdapterRequest::from_env().unwrap()
    });
    match forced {
        Ok(ctx) => {
            assert!(subgroups);
            assert_eq!(ctx.forced_matmul_kernel(), Some(MatmulKernel::RowBlockSubgroup));
        }
        Err(e) => {
            assert!(!subgroups, "{e}");
            assert!(e.to_string().contains("needs subgroups of at least 8 lanes"), "{e}");
        }
    }
    // The rule, from what the adapter reports: subgroups whose smallest size holds a workgroup.
    let info = shared.adapter_info();
    let has_subgroups = shared.device().features().contains(wgpu::Features::SUBGROUP);
    let sizes = shared.describe_subgroups();
    assert_eq!(
        subgroups,
        has_subgroups && info.subgroup_min_size >= gpu::SUBGROUP_KERNEL_LANES,
        "{sizes}"
    );
    if info.name.contains("llvmpipe") && info.backend == wgpu::Backend::Vulkan {
        // lavapipe's subgroup is its SIMD width in f32 lanes: 8 at its default 256 bits, 16 with
        // LP_NATIVE_VECTOR_WIDTH=512 (CI runs the kernel tests at both).
        let bits: u32 = std::env::var("LP_NATIVE_VECTOR_WIDTH").map_or(256, |w| w.parse().unwrap());
        assert_eq!(info.subgroup_min_size, bits / 32, "{sizes}");
        assert!(subgroups, "lavapipe: {sizes}");
    }
    if info.name.contains("SwiftShader") {
        // Subgroups of 4: a workgroup of 8 would span two, so the subgroup kernels are not offered.
        assert_eq!((info.subgroup_min_size, info.subgroup_max_size), (4, 4), "{sizes}");
        assert!(!subgroups, "SwiftShader: {sizes}");
    }
}

#[test]
fn kernel_names_round_trip() {
    for kernel in MatmulKernel::ALL {
        assert_eq!(MatmulKernel::from_name(kernel.name()), Some(kernel));
    }
    assert_eq!(MatmulKernel::from_name("fastest"), None);
}

/// A convolution's path follows the device's timed matmul choice for its forward product: the
/// implicit GEMMs where the row-block kernel wins (measured so on lavapipe), im2col otherwise;
/// the request forces either.
#[test]
fn conv_path_follows_the_measured_matmul_choice() {
    let shared = gpu_or_skip!();
    let dir = common::TempDir::unmade("conv-path");
    // The preset's second convolution at batch 128.
    let shape = gpu::ConvShape {
        geometry: shadergrad::model::ConvGeometry {
            in_channels: 32,
            height: 14,
            width: 14,
            kernel: 3,
            stride: 1,
            padding: 1,
            out_height: 14,
            out_width: 14,
        },
        out_channels: 64,
        batch: 128,
    };
    let ctx = GpuContext::with_request(&AdapterRequest {
        matmul_kernel: None,
        conv_path: None,
        kernel_cache_dir: Some(dir.to_path_buf()),
        ..AdapterRequest::from_env().unwrap()
    })
    .unwrap();
    let path = gpu::ConvPath::choose(&ctx, &shape).unwrap();
    let choices = ctx.matmul_choices();
    let (class, choice) = choices
        .iter()
        .find(|(c, _)| c.form == MatmulForm::AB)
        .expect("the forward product's class was chosen");
    assert!(class.aligned);
    assert_eq!(choice.source, ChoiceSource::Measured, "{choice:?}");
    let want = if choice.kernel.is_row_block() {
        gpu::ConvPath::Implicit
    } else {
        gpu::ConvPath::Im2col
    };
    assert_eq!(path, want, "{choice:?}");
    if shared.adapter_info().name.contains("llvmpipe") {
        assert_eq!(path, gpu::ConvPath::Implicit, "{choice:?}");
    }
    for forced in gpu::ConvPath::ALL {
        let ctx = GpuContext::with_request(&AdapterRequest {
            conv_path: Some(forced),
            kernel_cache_dir: None,
            ..AdapterRequest::from_env().unwrap()
        })
        .unwrap();
        assert_eq!(gpu::ConvPath::choose(&ctx, &shape).unwrap(), forced);
        assert!(ctx.matmul_choices().is_empty(), "a forced path times nothing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a 256-unit layer's backward products through `gpu::dense_grads` (the device decides
/// whether they share a launch) and returns the device's pairing decisions.
fn layer_grads(ctx: &GpuContext) -> Vec<(gpu::PairClass, gpu::Pairing, ChoiceSource)> {
    let (units, rows, inputs) = (256, 128, 512);
    let z = |n: usize| ctx.zeros::<f32>("grads", n).unwrap();
    let (dz, x, w, dw, db, dx) = (
        z(rows * units),
        z(rows * inputs),
        z(units * inputs),
        z(units * inputs),
        z(units),
        z(rows * inputs),
    );
    let grads = gpu::DenseGrads {
        dims: MatmulDims::new(units, rows, inputs),
        dz: gpu::Operand::dense(&dz, units),
        input: gpu::Operand::dense(&x, inputs),
        weights: gpu::Operand::dense(&w, inputs),
        weight_grad: gpu::Operand::dense(&dw, inputs),
        bias_grad: gpu::Operand::dense(&db, 1),
        input_grad: gpu::Operand::dense(&dx, inputs),
        act: shadergrad::Activation::Relu,
    };
    let dispatch = gpu::dense_grads(ctx, &grads).unwrap();
    ctx.run(&[&dispatch]).unwrap();
    ctx.pairing_choices()
}

#[test]
fn pairing_is_timed_then_cached_except_on_cpu_adapters_and_can_be_forced() {
    let shared = gpu_or_skip!();
    let dir = common::TempDir::unmade("pairing");
    // The matmul kernel is forced: which kernel timing picks varies from run to run, and whether
    // the device binds a pair depends on the kernel (the tiled pair binds 10 storage buffers,
    // the others 14).
    let with = |pairing, kernel| {
        GpuContext::with_request(&AdapterRequest {
            pairing,
            matmul_kernel: Some(kernel),
            kernel_cache_dir: Some(dir.to_path_buf()),
            ..AdapterRequest::from_env().unwrap()
        })
        .unwrap()
    };
    let limit = shared.limits().max_storage_buffers_per_shader_stage;
    let (fits, too_wide): (Vec<MatmulKernel>, Vec<MatmulKernel>) = shared
        .matmul_kernels()
        .into_iter()
        .partition(|k| limit >= k.pair_storage_buffers());
    // A kernel whose pair the device cannot bind (wgpu on SwiftShader: 10 storage buffers per
    // stage against 14): two launches whatever is asked, said so, never timed or cached.
    for &kernel in &too_wide {
        for request in [
            gpu::PairingRequest::Auto,
            gpu::PairingRequest::Timed,
            gpu::PairingRequest::Forced(gpu::Pairing::Paired),
        ] {
            let choice = layer_grads(&with(request, kernel));
            assert_eq!(choice.len(), 1, "{kernel:?} {request:?}: {choice:?}");
            assert_eq!(choice[0].1, gpu::Pairing::Separate, "{kernel:?} {request:?}");
            assert_eq!(choice[0].2, ChoiceSource::DeviceLimits, "{kernel:?} {request:?}");
        }
        let cache = std::fs::read_to_string(cache_file(&dir)).unwrap_or_default();
        assert!(!cache.contains("\"pair "), "{kernel:?}: {cache}");
    }
    assert!(
        !fits.is_empty(),
        "every device here binds the tiled pair's 10 storage buffers"
    );
    for kernel in fits {
        let _ = std::fs::remove_dir_all(&dir);
        let auto = layer_grads(&with(gpu::PairingRequest::Auto, kernel));
        assert_eq!(auto.len(), 1, "{auto:?}");
        if shared.adapter_info().device_type == wgpu::DeviceType::Cpu {
            assert_eq!(auto[0].1, gpu::Pairing::Separate);
            assert_eq!(auto[0].2, ChoiceSource::AdapterType);
        } else {
            assert_eq!(auto[0].2, ChoiceSource::Measured);
        }
        // Timed on any adapter; the next device reads the decision from the cache file.
        let _ = std::fs::remove_dir_all(&dir);
        let timed = layer_grads(&with(gpu::PairingRequest::Timed, kernel));
        assert_eq!(timed[0].2, ChoiceSource::Measured, "{timed:?}");
        let cached = layer_grads(&with(gpu::PairingRequest::Timed, kernel));
        assert_eq!(cached[0].2, ChoiceSource::Cached, "{cached:?}");
        assert_eq!(cached[0].1, timed[0].1);
        let text = std::fs::read_to_string(cache_file(&dir)).unwrap();
        assert!(text.contains("\"pair "), "{text}");
        for pairing in gpu::Pairing::ALL {
            let forced = layer_grads(&with(gpu::PairingRequest::Forced(pairing), kernel));
            assert_eq!(forced[0].1, pairing);
            assert_eq!(forced[0].2, ChoiceSource::Forced);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A kernel cache that is a FIFO, a link to a device, or under something that is not a folder
/// never blocks or exhausts memory: the run times the kernels and says why nothing is cached.
#[test]
fn a_cache_that_cannot_be_used_is_reported_and_never_blocks() {
    let _ = gpu_or_skip!();
    let base = common::TempDir::unmade("bad-cache");
    let (fifo, device, under_a_file) = (base.join("fifo"), base.join("device"), base.join("file/sub"));
    for dir in [&fifo, &device] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let status = std::process::Command::new("mkfifo")
        .arg(cache_file(&fifo))
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink("/dev/zero", cache_file(&device)).unwrap();
    std::fs::write(base.join("file"), b"a file, not a folder").unwrap();
    for (dir, expected) in [
        (&fifo, "it is a FIFO, not a regular file"),
        (&device, "it is a device, not a regular file"),
        (&under_a_file, "Not a directory"),
    ] {
        let ctx = GpuContext::with_request(&AdapterRequest {
            kernel_cache_dir: Some(dir.to_path_buf()),
            ..AdapterRequest::from_env().unwrap()
        })
        .unwrap();
        assert!(ctx.kernel_cache().is_ok(), "nothing tried yet");
        let choices = layer_grads(&ctx);
        assert_eq!(choices.len(), 1);
        let problem = ctx.kernel_cache().unwrap_err();
        assert!(problem.contains(expected), "{}: {problem}", dir.display());
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// Kernel choice is a planning step: in a program's recording the tuner answers only from
/// choices already made (a new shape class is an error, and nothing is timed or written), while
/// planning times the class and lists it in the plan. A trained program's plan covers the
/// classes the device chose, and the step's recording did not add any.
#[test]
fn recording_never_times_and_planning_lists_the_choices() {
    let _ = gpu_or_skip!();
    let dir = common::TempDir::unmade("planning");
    let ctx = open(&dir, None);
    let d = MatmulDims::new(37, 53, 29);
    let (a, b) = (
        ctx.zeros::<f32>("a", d.m * d.k).unwrap(),
        ctx.zeros::<f32>("b", d.k * d.n).unwrap(),
    );
    let c = ctx.zeros::<f32>("c", d.m * d.n).unwrap();
    let prepare = || gpu::matmul(&ctx, MatmulForm::AB, d, &a, &b, &c, Epilogue::None);

    let err = gpu::tuning::recording(prepare).unwrap_err();
    assert!(matches!(err, shadergrad::Error::Unplanned { .. }), "{err}");
    assert!(ctx.matmul_choices().is_empty(), "recording timed nothing");
    assert!(!cache_file(&dir).exists(), "recording wrote nothing");

    let (_, plan) = gpu::tuning::planning(prepare).unwrap();
    let choices = ctx.matmul_choices();
    assert_eq!(choices.len(), 1, "{choices:?}");
    assert_eq!(plan.matmuls, [(choices[0].0, choices[0].1.kernel)]);
    assert_eq!(choices[0].1.source, ChoiceSource::Measured, "planning timed the class");
    gpu::tuning::recording(prepare).expect("the planned class records");

    // A training program: planned before it is recorded, its plan lists the classes it runs.
    let ctx = std::sync::Arc::new(open(&dir.join("train"), None));
    let spec = shadergrad::model::NetworkSpec::parse(
        "10,dense32,batchnorm,relu,dense4",
        shadergrad::model::LossKind::SoftmaxCrossEntropy,
    )
    .unwrap();
    let network = shadergrad::model::Network::init(&spec, 1);
    let data = common::four_class_data(64, "planning");
    let config = common::config(shadergrad::Optimizer::sgd(0.1), 16, 0.0);
    let mut backend = shadergrad::train::GpuBackend::new(std::sync::Arc::clone(&ctx), &network, &config).unwrap();
    use shadergrad::train::Backend;
    let order: Vec<u32> = (0..64).collect();
    backend.train_batches(&data, &[&order[..16]]).unwrap();
    let plan = backend.kernel_plan();
    let chosen: Vec<ShapeClass> = ctx.matmul_choices().into_iter().map(|(class, _)| class).collect();
    assert!(!plan.matmuls.is_empty());
    assert_eq!(plan.matmuls.len(), chosen.len(), "{plan:?} vs {chosen:?}");
    assert!(plan.matmuls.iter().all(|(class, _)| chosen.contains(class)), "{plan:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
