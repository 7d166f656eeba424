//! Every GPU kernel against its CPU twin on fresh random inputs, over awkward shapes.
//! Outputs are poisoned with NaN first, so an element a kernel does not write fails the test.

mod common;

use common::{GPU_TOLERANCE, assert_close, assert_close_to, poisoned, random_labels, random_vec, rng};
use rand::RngExt;
use shadergrad::gpu::{GpuBuffer, Operand};
use shadergrad::model::LossKind;
use shadergrad::ops::{Epilogue, MatmulDims, MatmulForm};
use shadergrad::optimizer::OptimState;
use shadergrad::{Activation, Optimizer, cpu, gpu};

/// (m, k, n): edge sizes 1, 3, 17, 127, 785, K never a multiple of a tile, plus the MNIST layer.
const MATMUL_SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 785, 10),
    (3, 17, 127),
    (17, 3, 1),
    (127, 785, 17),
    (785, 127, 3),
    (33, 65, 31),
    (64, 64, 64),
    (128, 784, 512),
];

/// (rows, cols) for elementwise kernels and losses.
const ROW_SHAPES: &[(usize, usize)] = &[
    (1, 1),
    (1, 10),
    (3, 17),
    (17, 3),
    (127, 10),
    (785, 3),
    (17, 127),
    (128, 785),
];

fn run_matmul(form: MatmulForm, d: MatmulDims, epilogue_kind: u8, act: Activation, seed_name: &str) -> f64 {
    let ctx = match common::gpu() {
        Some(c) => c,
        None => return 0.0,
    };
    let mut r = rng(seed_name);
    let a = random_vec(&mut r, d.m * d.k, 1.0);
    let b = random_vec(&mut r, d.k * d.n, 1.0);
    let bias = random_vec(&mut r, d.n, 1.0);
    // A stored activation output in the range each activation produces.
    let act_out: Vec<f32> = random_vec(&mut r, d.m * d.n, 1.0)
        .into_iter()
        .map(|v| act.forward(v))
        .collect();

    let mut want = vec![0.0f32; d.m * d.n];
    let cpu_epilogue = match epilogue_kind {
        0 => Epilogue::None,
        1 => Epilogue::BiasAct { bias: &bias[..], act },
        _ => Epilogue::ActGrad {
            act_output: &act_out[..],
            act,
        },
    };
    cpu::matmul(form, d, &a, &b, &mut want, cpu_epilogue).unwrap();
    // The same product of absolute values (the activation's slope is at most 1, so the
    // pre-activation's size bounds the output's rounding).
    let mut scale = vec![0.0f32; d.m * d.n];
    let abs_bias = abs(&bias);
    let scale_epilogue = match cpu_epilogue {
        Epilogue::BiasAct { .. } => Epilogue::BiasAct {
            bias: &abs_bias[..],
            act: Activation::Identity,
        },
        other => other,
    };
    cpu::matmul(form, d, &abs(&a), &abs(&b), &mut scale, scale_epilogue).unwrap();

    let ga = ctx.upload("a", &a).unwrap();
    let gb = ctx.upload("b", &b).unwrap();
    let gbias = ctx.upload("bias", &bias).unwrap();
    let gact = ctx.upload("act_out", &act_out).unwrap();
    let gc = poisoned(ctx, "c", d.m * d.n);
    let gpu_epilogue = match epilogue_kind {
        0 => Epilogue::None,
        1 => Epilogue::BiasAct { bias: &gbias, act },
        _ => Epilogue::ActGrad { act_output: &gact, act },
    };
    // Every kernel variant, not only the one this adapter would pick.
    let mut worst: f64 = 0.0;
    for kernel in ctx.matmul_kernels() {
        let epilogue = match gpu_epilogue {
            Epilogue::None => Epilogue::None,
            Epilogue::BiasAct { bias, act } => Epilogue::BiasAct {
                bias: Operand::dense(bias, d.n),
                act,
            },
            Epilogue::ActGrad { act_output, act } => Epilogue::ActGrad {
                act_output: Operand::dense(act_output, d.n),
                act,
            },
        };
        let a_cols = if form.transposes_a() { d.m } else { d.k };
        let b_cols = if form.transposes_b() { d.k } else { d.n };
        let (a, b, c) = (
            Operand::dense(&ga, a_cols),
            Operand::dense(&gb, b_cols),
            Operand::dense(&gc, d.n),
        );
        ctx.write(&gc, &vec![f32::NAN; d.m * d.n]).unwrap();
        let dispatch = gpu::matmul_with_kernel(ctx, kernel, form, d, a, b, c, epilogue, false).unwrap();
        ctx.run(&[&dispatch]).unwrap();
        let got = ctx.read(&gc).unwrap();
        let what = format!("matmul {kernel:?} {form:?} {d:?} epilogue {epilogue_kind} {act:?}");
        worst = worst.max(assert_close_to(&what, &got, &want, &scale));
    }
    worst
}

#[test]
fn matmul_all_forms_match_cpu() {
    let mut worst: f64 = 0.0;
    for &(m, k, n) in MATMUL_SHAPES {
        for form in MatmulForm::ALL {
            worst = worst.max(run_matmul(
                form,
                MatmulDims::new(m, k, n),
                0,
                Activation::Identity,
                "matmul",
            ));
        }
    }
    eprintln!("matmul worst relative error: {worst:.3e}");
}

#[test]
fn matmul_bias_activation_epilogue_matches_cpu() {
    let mut worst: f64 = 0.0;
    for act in Activation::ALL {
        for &(m, k, n) in &[(1, 1, 1), (3, 785, 17), (127, 17, 3), (128, 784, 512)] {
            worst = worst.max(run_matmul(
                MatmulForm::ABt,
                MatmulDims::new(m, k, n),
                1,
                act,
                "bias_act",
            ));
        }
    }
    eprintln!("matmul+bias+act worst relative error: {worst:.3e}");
}

#[test]
fn matmul_activation_grad_epilogue_matches_cpu() {
    let mut worst: f64 = 0.0;
    for act in Activation::ALL {
        for &(m, k, n) in &[(1, 1, 1), (17, 10, 127), (128, 256, 512), (785, 3, 17)] {
            worst = worst.max(run_matmul(MatmulForm::AB, MatmulDims::new(m, k, n), 2, act, "act_grad"));
        }
    }
    eprintln!("matmul+act' worst relative error: {worst:.3e}");
}

/// Where the fused bias gradient is written in its NaN-poisoned buffer.
const DB_OFFSET: usize = 3;

/// Checks a bias gradient written at `DB_OFFSET` of a NaN-poisoned buffer: `want` there (to the
/// tolerance of the same sum over `|dZ|`), nothing written before or after. Returns the error.
fn assert_bias_grad(what: &str, got: &[f32], dz: &[f32], want: &[f32]) -> f64 {
    let range = DB_OFFSET..DB_OFFSET + want.len();
    let mut scale = vec![0.0f32; want.len()];
    cpu::bias_grad(&abs(dz), &mut scale, dz.len() / want.len(), want.len()).unwrap();
    let error = assert_close_to(&format!("{what} db"), &got[range.clone()], want, &scale);
    let outside = got[..range.start].iter().chain(&got[range.end..]);
    assert!(
        outside.copied().all(f32::is_nan),
        "{what}: db written outside its range"
    );
    error
}

/// The fused weight-and-bias gradient (`dW = dZᵀ·X`, `db = Σ_rows dZ` in one dispatch) for every
/// kernel, with `db` written at an offset into a NaN-poisoned buffer: the elements before and
/// after its range must stay untouched.
#[test]
fn weight_grad_with_fused_bias_grad_matches_cpu() {
    let ctx = gpu_or_skip!();
    let mut r = rng("weight_grad");
    let mut worst: f64 = 0.0;
    for &(units, rows, inputs) in MATMUL_SHAPES {
        let d = MatmulDims::new(units, rows, inputs);
        let dz = random_vec(&mut r, rows * units, 1.0);
        let x = random_vec(&mut r, rows * inputs, 1.0);
        let mut dw = vec![0.0f32; units * inputs];
        cpu::matmul(MatmulForm::AtB, d, &dz, &x, &mut dw, Epilogue::None).unwrap();
        let mut dw_scale = vec![0.0f32; units * inputs];
        cpu::matmul(MatmulForm::AtB, d, &abs(&dz), &abs(&x), &mut dw_scale, Epilogue::None).unwrap();
        let mut db = vec![0.0f32; units];
        cpu::bias_grad(&dz, &mut db, rows, units).unwrap();

        let (gdz, gx) = (ctx.upload("dz", &dz).unwrap(), ctx.upload("x", &x).unwrap());
        for kernel in ctx.matmul_kernels() {
            let gdw = poisoned(ctx, "dw", units * inputs);
            let gdb = poisoned(ctx, "db", DB_OFFSET + units + 2);
            let dispatch = gpu::weight_grad_with_kernel(
                ctx,
                kernel,
                d,
                Operand::dense(&gdz, units),
                Operand::dense(&gx, inputs),
                Operand::dense(&gdw, inputs),
                Operand {
                    view: (&gdb).into(),
                    offset: DB_OFFSET,
                    ld: 1,
                },
            )
            .unwrap();
            ctx.run(&[&dispatch]).unwrap();
            let what = format!("weight_grad {kernel:?} {d:?}");
            worst = worst.max(assert_close_to(
                &format!("{what} dW"),
                &ctx.read(&gdw).unwrap(),
                &dw,
                &dw_scale,
            ));
            worst = worst.max(assert_bias_grad(&what, &ctx.read(&gdb).unwrap(), &dz, &db));
        }
    }
    eprintln!("weight_grad worst relative error: {worst:.3e}");
}

/// A dense layer's three gradients in one launch of each kernel's paired form (`dW`, `db` and
/// `dX = (dZ·W) ⊙ act'(X)`), against the CPU twin's separate products, NaN-poisoned, with `db`
/// at an offset.
#[test]
fn dense_grads_in_one_launch_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut r = rng("dense_grads");
    let mut worst: f64 = 0.0;
    for (i, &(units, rows, inputs)) in MATMUL_SHAPES.iter().enumerate() {
        let act = [Activation::Relu, Activation::Tanh, Activation::Sigmoid][i % 3];
        let d = MatmulDims::new(units, rows, inputs);
        let dz = random_vec(&mut r, rows * units, 1.0);
        let x: Vec<f32> = random_vec(&mut r, rows * inputs, 1.0)
            .into_iter()
            .map(|v| act.forward(v))
            .collect();
        let w = random_vec(&mut r, units * inputs, 1.0);
        let mut dw = vec![0.0f32; units * inputs];
        cpu::matmul(MatmulForm::AtB, d, &dz, &x, &mut dw, Epilogue::None).unwrap();
        let mut db = vec![0.0f32; units];
        cpu::bias_grad(&dz, &mut db, rows, units).unwrap();
        let mut dx = vec![0.0f32; rows * inputs];
        let input_dims = MatmulDims::new(rows, units, inputs);
        let act_grad = Epilogue::ActGrad {
            act_output: &x[..],
            act,
        };
        cpu::matmul(MatmulForm::AB, input_dims, &dz, &w, &mut dx, act_grad).unwrap();
        let (mut dw_scale, mut dx_scale) = (vec![0.0f32; units * inputs], vec![0.0f32; rows * inputs]);
        cpu::matmul(MatmulForm::AtB, d, &abs(&dz), &abs(&x), &mut dw_scale, Epilogue::None).unwrap();
        cpu::matmul(MatmulForm::AB, input_dims, &abs(&dz), &abs(&w), &mut dx_scale, act_grad).unwrap();

        let (gdz, gx, gw) = (
            ctx.upload("dz", &dz).unwrap(),
            ctx.upload("x", &x).unwrap(),
            ctx.upload("w", &w).unwrap(),
        );
        for kernel in ctx.matmul_kernels() {
            let gdw = poisoned(ctx, "dw", units * inputs);
            let gdb = poisoned(ctx, "db", DB_OFFSET + units + 2);
            let gdx = poisoned(ctx, "dx", rows * inputs);
            let grads = gpu::DenseGrads {
                dims: d,
                dz: Operand::dense(&gdz, units),
                input: Operand::dense(&gx, inputs),
                weights: Operand::dense(&gw, inputs),
                weight_grad: Operand::dense(&gdw, inputs),
                bias_grad: Operand {
                    view: (&gdb).into(),
                    offset: DB_OFFSET,
                    ld: 1,
                },
                input_grad: Operand::dense(&gdx, inputs),
                act,
            };
            let dispatch = gpu::dense_grads_with_kernel(ctx, kernel, &grads).unwrap();
            // One launch where the device binds the pair's storage buffers (lavapipe: 32), two
            // where it does not (wgpu on SwiftShader: 10 against 14); the numbers agree either way.
            let binds_pair = ctx.limits().max_storage_buffers_per_shader_stage >= kernel.pair_storage_buffers();
            assert_eq!(
                dispatch.parts(),
                if binds_pair { 1 } else { 2 },
                "{kernel:?} {d:?}: launches"
            );
            ctx.run(&[&dispatch]).unwrap();
            let what = format!("dense_grads {kernel:?} {d:?} {act:?}");
            worst = worst.max(assert_close_to(
                &format!("{what} dW"),
                &ctx.read(&gdw).unwrap(),
                &dw,
                &dw_scale,
            ));
            worst = worst.max(assert_close_to(
                &format!("{what} dX"),
                &ctx.read(&gdx).unwrap(),
                &dx,
                &dx_scale,
            ));
            worst = worst.max(assert_bias_grad(&what, &ctx.read(&gdb).unwrap(), &dz, &db));
        }
    }
    eprintln!("dense_grads worst relative error: {worst:.3e}");
}

#[test]
fn elementwise_kernels_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut r = rng("elementwise");
    let mut worst: f64 = 0.0;
    for &(rows, cols) in ROW_SHAPES {
        let len = rows * cols;
        let x = random_vec(&mut r, len, 3.0);
        let gx = ctx.upload("x", &x).unwrap();
        for act in Activation::ALL {
            // activation forward
            let mut a = vec![0.0; len];
            cpu::activation_forward(&x, &mut a, act).unwrap();
            let ga = poisoned(ctx, "a", len);
            let d = gpu::activation_forward(ctx, &gx, &ga, act).unwrap();
            ctx.run(&[&d]).unwrap();
            // A one-element tanh output of 1e-3 is off by one rounding of `exp` near 0 (3e-8):
            // 3e-5 of itself, but nothing wrong with the kernel. Outputs are of order one.
            let floor: Vec<f32> = a.iter().map(|v| v.abs().max(0.01)).collect();
            worst = worst.max(assert_close_to(
                &format!("activation_forward {act:?} {rows}x{cols}"),
                &ctx.read(&ga).unwrap(),
                &a,
                &floor,
            ));

            // activation backward from the stored output
            let da = random_vec(&mut r, len, 1.0);
            let mut dz = vec![0.0; len];
            cpu::activation_backward(&da, &a, &mut dz, act).unwrap();
            let gda = ctx.upload("da", &da).unwrap();
            let ga_exact = ctx.upload("a", &a).unwrap();
            let gdz = poisoned(ctx, "dz", len);
            let d = gpu::activation_backward(ctx, &gda, &ga_exact, &gdz, act).unwrap();
            ctx.run(&[&d]).unwrap();
            worst = worst.max(assert_close(
                &format!("activation_backward {act:?} {rows}x{cols}"),
                &ctx.read(&gdz).unwrap(),
                &dz,
                GPU_TOLERANCE,
            ));
        }
    }
    eprintln!("elementwise worst relative error: {worst:.3e}");
}

/// Which loss head a test drives.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Head {
    SoftmaxCe,
    SigmoidBce,
    Mse,
    Mae,
}

impl Head {
    fn kind(self) -> LossKind {
        match self {
            Head::SoftmaxCe => LossKind::SoftmaxCrossEntropy,
            Head::SigmoidBce => LossKind::SigmoidBinaryCrossEntropy,
            Head::Mse => LossKind::MeanSquaredError,
            Head::Mae => LossKind::MeanAbsoluteError,
        }
    }
}

/// Runs a loss head on both paths; returns (gpu loss_rows, gpu dz, cpu loss_rows, cpu dz).
fn run_loss(
    ctx: &shadergrad::gpu::GpuContext,
    head: Head,
    z: &[f32],
    labels: &[u32],
    targets: &[f32],
    rows: usize,
    cols: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut loss = vec![0.0; rows];
    let mut dz = vec![0.0; rows * cols];
    match head {
        Head::SoftmaxCe => cpu::softmax_cross_entropy(z, labels, &mut loss, &mut dz, rows, cols),
        Head::SigmoidBce => cpu::sigmoid_binary_cross_entropy(z, targets, &mut loss, &mut dz, rows, cols),
        Head::Mse => cpu::mse(z, targets, &mut loss, &mut dz, rows, cols),
        Head::Mae => cpu::mae(z, targets, &mut loss, &mut dz, rows, cols),
    }
    .unwrap();
    let gz = ctx.upload("z", z).unwrap();
    let glabels = ctx.upload("labels", labels).unwrap();
    let gtargets = ctx.upload("targets", targets).unwrap();
    let gloss = poisoned(ctx, "loss_rows", rows);
    let gdz = poisoned(ctx, "dz", rows * cols);
    let (total, correct) = (ctx.zeros("total", 1).unwrap(), ctx.zeros("correct", 1).unwrap());
    let state = ctx.upload("state", &[Optimizer::sgd(0.1).initial_state()]).unwrap();
    let d = gpu::loss_and_metrics(
        ctx,
        head.kind(),
        gpu::LossInputs {
            z: &gz,
            labels: &glabels,
            targets: &gtargets,
        },
        gpu::LossOutputs {
            loss_rows: &gloss,
            dz: &gdz,
        },
        gpu::MetricsTotals {
            loss: &total,
            correct: &correct,
        },
        &state,
        (rows, cols),
        gpu::MetricsFlags::default(),
    )
    .unwrap();
    ctx.run(&[&d]).unwrap();
    (ctx.read(&gloss).unwrap(), ctx.read(&gdz).unwrap(), loss, dz)
}

#[test]
fn loss_heads_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut r = rng("loss");
    let mut worst: f64 = 0.0;
    for head in [Head::SoftmaxCe, Head::SigmoidBce, Head::Mse, Head::Mae] {
        for &(rows, cols) in ROW_SHAPES {
            let z = random_vec(&mut r, rows * cols, 5.0);
            let labels = random_labels(&mut r, rows, cols);
            let mut targets: Vec<f32> = (0..rows * cols).map(|_| r.random_range(0.0..1.0)).collect();
            // Some outputs hit their target exactly: MAE's gradient is 0 there.
            for i in (0..targets.len()).step_by(3) {
                if head == Head::Mae {
                    targets[i] = z[i];
                }
            }
            let (gl, gdz, cl, cdz) = run_loss(ctx, head, &z, &labels, &targets, rows, cols);
            worst = worst.max(assert_close(
                &format!("{head:?} loss {rows}x{cols}"),
                &gl,
                &cl,
                GPU_TOLERANCE,
            ));
            let what = format!("{head:?} dz {rows}x{cols}");
            worst = worst.max(assert_dz_close(&what, head, &gdz, &cdz, &z, &targets, rows));
        }
    }
    eprintln!("loss worst relative error: {worst:.3e}");
}

/// Asserts a loss head's dZ agrees with the CPU's and returns the error. dZ is a difference of
/// nearly equal terms where the model fits (σ(z) ≈ y, softmax p ≈ 1 at the label), so its error
/// is measured against the size of those terms, not of the difference: one 1×1 sigmoid-BCE case,
/// σ − y = −0.0025, differed by 2.4e-5 of itself on lavapipe at 16 lanes, whose exp rounds
/// differently (seed 1796466480729106633).
fn assert_dz_close(what: &str, head: Head, got: &[f32], want: &[f32], z: &[f32], targets: &[f32], rows: usize) -> f64 {
    let inv_b = 1.0 / rows as f32;
    let terms: Vec<f32> = (0..z.len())
        .map(|i| match head {
            Head::SoftmaxCe | Head::SigmoidBce => (1.0 + targets[i].abs()) * inv_b,
            Head::Mse => 2.0 * (z[i].abs() + targets[i].abs()) * inv_b,
            Head::Mae => inv_b,
        })
        .zip(want)
        .map(|(t, w)| t.max(w.abs()))
        .collect();
    assert_close_to(&format!("{what} dZ"), got, want, &terms)
}

#[test]
fn extreme_logits_stay_finite_on_both_paths() {
    let ctx = gpu_or_skip!();
    let (rows, cols) = (4, 3);
    let z = vec![1e4, -1e4, 0.0, -1e4, 1e4, 1e4, 1e4, 1e4, 1e4, -1e4, -1e4, -1e4];
    let labels = vec![1, 0, 2, 0];
    let targets = vec![0.0, 1.0, 0.5, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5];
    for head in [Head::SoftmaxCe, Head::SigmoidBce] {
        let (gl, gdz, cl, cdz) = run_loss(ctx, head, &z, &labels, &targets, rows, cols);
        for (name, v) in [("gpu loss", &gl), ("gpu dz", &gdz), ("cpu loss", &cl), ("cpu dz", &cdz)] {
            assert!(v.iter().all(|x| x.is_finite()), "{head:?} {name} not finite: {v:?}");
        }
        assert_close(&format!("{head:?} extreme loss"), &gl, &cl, GPU_TOLERANCE);
        assert_close(&format!("{head:?} extreme dz"), &gdz, &cdz, GPU_TOLERANCE);
    }
    // Softmax row 0 puts all mass on class 0 with logit gap 2e4: loss of label 1 is exactly 2e4.
    let (gl, _, cl, _) = run_loss(ctx, Head::SoftmaxCe, &z, &labels, &targets, rows, cols);
    assert!(
        (cl[0] - 2e4).abs() < 1.0 && (gl[0] - 2e4).abs() < 1.0,
        "cpu {} gpu {}",
        cl[0],
        gl[0]
    );
    // Activations saturate instead of overflowing.
    let big = ctx.upload("big", &[1e4f32, -1e4, 88.0, -88.0]).unwrap();
    for act in Activation::ALL {
        let out = poisoned(ctx, "out", 4);
        let d = gpu::activation_forward(ctx, &big, &out, act).unwrap();
        ctx.run(&[&d]).unwrap();
        let got = ctx.read(&out).unwrap();
        assert!(got.iter().all(|x| x.is_finite()), "{act:?}: {got:?}");
        let mut want = vec![0.0; 4];
        cpu::activation_forward(&[1e4f32, -1e4, 88.0, -88.0], &mut want, act).unwrap();
        assert_close(&format!("{act:?} saturated"), &got, &want, GPU_TOLERANCE);
    }
}

/// The fused head's bookkeeping: loss sum, correct count, tick and guard against the CPU twins
/// (loss head, then `cpu::batch_metrics`), run twice so the totals accumulate, with and without a
/// non-finite row, for every head.
#[test]
fn loss_metrics_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut r = rng("metrics");
    let all = gpu::MetricsFlags {
        count_correct: true,
        guard: true,
        tick: true,
    };
    let cases = [
        (all, false),
        (all, true),
        (gpu::MetricsFlags { tick: false, ..all }, true),
        (gpu::MetricsFlags::default(), false),
        (gpu::MetricsFlags { guard: false, ..all }, true),
    ];
    for head in [Head::SoftmaxCe, Head::SigmoidBce, Head::Mse, Head::Mae] {
        for &(rows, cols) in ROW_SHAPES {
            for (flags, with_nan) in cases {
                let mut z = random_vec(&mut r, rows * cols, 1.0);
                let labels = random_labels(&mut r, rows, cols);
                let targets: Vec<f32> = (0..rows * cols).map(|_| r.random_range(0.0..1.0)).collect();
                // One row with a NaN output when asked: its loss is NaN on both paths.
                if with_nan {
                    z[rows / 2 * cols] = f32::NAN;
                }
                let mut state = OptimState {
                    step: 4,
                    skip_nonfinite: 1,
                    ..Optimizer::adam(1e-3).initial_state()
                };
                let gz = ctx.upload("z", &z).unwrap();
                let gl = ctx.upload("labels", &labels).unwrap();
                let gt = ctx.upload("targets", &targets).unwrap();
                let (gloss, gdz) = (poisoned(ctx, "loss rows", rows), poisoned(ctx, "dz", rows * cols));
                let (total, correct) = (
                    ctx.upload("total", &[0.5f32]).unwrap(),
                    ctx.upload("correct", &[7u32]).unwrap(),
                );
                let gstate = ctx.upload("state", &[state]).unwrap();
                let d = gpu::loss_and_metrics(
                    ctx,
                    head.kind(),
                    gpu::LossInputs {
                        z: &gz,
                        labels: &gl,
                        targets: &gt,
                    },
                    gpu::LossOutputs {
                        loss_rows: &gloss,
                        dz: &gdz,
                    },
                    gpu::MetricsTotals {
                        loss: &total,
                        correct: &correct,
                    },
                    &gstate,
                    (rows, cols),
                    flags,
                )
                .unwrap();
                ctx.run(&[&d, &d]).unwrap();
                // The CPU twins, twice.
                let mut want_correct = 7;
                let mut want_total = 0.5f64;
                let (mut loss_rows, mut dz) = (vec![0.0; rows], vec![0.0; rows * cols]);
                for _ in 0..2 {
                    match head {
                        Head::SoftmaxCe => cpu::softmax_cross_entropy(&z, &labels, &mut loss_rows, &mut dz, rows, cols),
                        Head::SigmoidBce => {
                            cpu::sigmoid_binary_cross_entropy(&z, &targets, &mut loss_rows, &mut dz, rows, cols)
                        }
                        Head::Mse => cpu::mse(&z, &targets, &mut loss_rows, &mut dz, rows, cols),
                        Head::Mae => cpu::mae(&z, &targets, &mut loss_rows, &mut dz, rows, cols),
                    }
                    .unwrap();
                    let labels = flags.count_correct.then_some(&labels[..]);
                    let what_to_do = (flags.tick, flags.guard);
                    let m = cpu::batch_metrics(&z, labels, &loss_rows, (rows, cols), &mut state, what_to_do).unwrap();
                    want_correct += m.correct as u32;
                    want_total += m.loss_sum;
                }
                let what = format!("loss_metrics {head:?} {rows}x{cols} {flags:?} nan {with_nan}");
                assert_eq!(ctx.read(&correct).unwrap()[0], want_correct, "{what}");
                let got_total = ctx.read(&total).unwrap();
                if with_nan {
                    assert!(got_total[0].is_nan() && want_total.is_nan(), "{what}");
                } else {
                    assert_close(&what, &got_total, &[want_total as f32], GPU_TOLERANCE);
                    assert_close(&what, &ctx.read(&gloss).unwrap(), &loss_rows, GPU_TOLERANCE);
                    assert_dz_close(&what, head, &ctx.read(&gdz).unwrap(), &dz, &z, &targets, rows);
                }
                assert_eq!(ctx.read(&gstate).unwrap()[0], state, "{what}: state");
            }
        }
    }
}

#[test]
fn optimizers_match_cpu_over_several_steps() {
    let ctx = gpu_or_skip!();
    let mut r = rng("optim");
    let configs = [
        Optimizer::sgd(0.1),
        Optimizer::Sgd {
            lr: 0.05,
            weight_decay: 0.01,
        },
        Optimizer::momentum(0.05, 0.9),
        Optimizer::Momentum {
            lr: 0.05,
            momentum: 0.8,
            weight_decay: 0.1,
        },
        Optimizer::adam(1e-2),
        Optimizer::adamw(1e-2, 0.05),
        Optimizer::rmsprop(1e-2),
        Optimizer::RmsProp {
            lr: 1e-2,
            alpha: 0.9,
            eps: 1e-6,
            weight_decay: 0.01,
        },
    ];
    for opt in configs {
        for (len, max_grad_norm) in [
            (1usize, 0.0),
            (3, 0.5),
            (17, 0.0),
            (785, 2.0),
            (100_003, 0.0),
            (100_003, 10.0),
            // Multiples of four take the vec4 kernels.
            (4, 0.0),
            (1024, 0.5),
            (100_000, 0.0),
        ] {
            let mut w = random_vec(&mut r, len, 1.0);
            let mut m = vec![0.0f32; len];
            let mut v = vec![0.0f32; len];
            let mut state = OptimState {
                max_grad_norm,
                ..opt.initial_state()
            };
            let gw = ctx.upload("w", &w).unwrap();
            let gg: GpuBuffer<f32> = ctx.zeros("g", len).unwrap();
            let gm = ctx.zeros("m", len).unwrap();
            let gv = ctx.zeros("v", len).unwrap();
            let gstate = ctx.upload("state", &[state]).unwrap();
            let mut step = vec![gpu::tick(ctx, &gstate).unwrap()];
            if max_grad_norm > 0.0 {
                step.push(gpu::accumulate_grad_norm(ctx, &gg, &gstate).unwrap());
            }
            step.push(
                match opt {
                    Optimizer::Sgd { .. } => gpu::sgd_update(ctx, &gw, &gg, &gstate),
                    Optimizer::Momentum { .. } => gpu::momentum_update(ctx, &gw, &gg, &gm, &gstate),
                    Optimizer::Adam { .. } => gpu::adam_update(ctx, &gw, &gg, &gm, &gv, &gstate),
                    Optimizer::RmsProp { .. } => gpu::rmsprop_update(ctx, &gw, &gg, &gm, &gstate),
                }
                .unwrap(),
            );
            for _ in 0..3 {
                let g = random_vec(&mut r, len, 1.0);
                ctx.write(&gg, &g).unwrap();
                ctx.run(&step.iter().collect::<Vec<_>>()).unwrap();
                state.tick();
                if max_grad_norm > 0.0 {
                    cpu::accumulate_grad_norm(&g, &mut state);
                }
                match opt {
                    Optimizer::Sgd { .. } => cpu::sgd_update(&mut w, &g, &state),
                    Optimizer::Momentum { .. } => cpu::momentum_update(&mut w, &g, &mut m, &state),
                    Optimizer::Adam { .. } => cpu::adam_update(&mut w, &g, &mut m, &mut v, &state),
                    Optimizer::RmsProp { .. } => cpu::rmsprop_update(&mut w, &g, &mut m, &state),
                }
                .unwrap();
            }
            let what = format!("{opt:?} len {len} clip {max_grad_norm}");
            assert_close(&format!("{what} weights"), &ctx.read(&gw).unwrap(), &w, GPU_TOLERANCE);
            if opt.state_tensors() >= 1 {
                assert_close(&format!("{what} m"), &ctx.read(&gm).unwrap(), &m, GPU_TOLERANCE);
            }
            if opt.state_tensors() == 2 {
                assert_close(&format!("{what} v"), &ctx.read(&gv).unwrap(), &v, GPU_TOLERANCE);
            }
            let gpu_state = ctx.read(&gstate).unwrap()[0];
            assert_eq!(gpu_state.step, 3);
            let got = [
                gpu_state.bias_correction1,
                gpu_state.bias_correction2,
                gpu_state.grad_sq_sum,
            ];
            let want = [state.bias_correction1, state.bias_correction2, state.grad_sq_sum];
            assert_close(&format!("{what} state"), &got, &want, GPU_TOLERANCE);
            if max_grad_norm > 0.0 && state.grad_sq_sum.sqrt() > max_grad_norm {
                assert!(state.clip_scale() < 1.0, "{what}: clipping should engage");
            }
        }
    }
}

#[test]
fn gpu_ops_reject_mismatched_shapes() {
    let ctx = gpu_or_skip!();
    let a = ctx.zeros::<f32>("a", 6).unwrap();
    let b = ctx.zeros::<f32>("b", 6).unwrap();
    let c = ctx.zeros::<f32>("c", 5).unwrap();
    let err = gpu::matmul(
        ctx,
        MatmulForm::AB,
        MatmulDims::new(2, 3, 2),
        &a,
        &b,
        &c,
        Epilogue::None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("C has 5 elements, expected 4"), "{err}");
    let err = gpu::matmul(
        ctx,
        MatmulForm::AB,
        MatmulDims::new(0, 3, 2),
        &a,
        &b,
        &c,
        Epilogue::None,
    )
    .unwrap_err();
    assert!(
        matches!(err, shadergrad::Error::EmptyDimension { dim: "m", .. }),
        "{err}"
    );
    assert!(ctx.zeros::<f32>("none", 0).is_err());
    let too_big = ctx.limits().max_buffer_size as usize / 4 + 1;
    let err = ctx.zeros::<f32>("huge", too_big).unwrap_err();
    assert!(
        matches!(
            err,
            shadergrad::Error::BufferTooLarge {
                limit_name: "max_buffer_size",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn pipelines_are_compiled_once() {
    let ctx = gpu_or_skip!();
    let a = ctx.upload("a", &[1.0f32; 12]).unwrap();
    let c = ctx.zeros::<f32>("c", 16).unwrap();
    let out = ctx.zeros::<f32>("out", 16).unwrap();
    let d = MatmulDims::new(4, 3, 4);
    // A specialisation no other test uses, so parallel tests cannot change the count between reads.
    let make = || {
        gpu::matmul(
            ctx,
            MatmulForm::AtB,
            d,
            &a,
            &a,
            &out,
            Epilogue::ActGrad {
                act_output: &c,
                act: Activation::Tanh,
            },
        )
    };
    make().unwrap();
    let before = ctx.compiled_pipelines();
    make().unwrap();
    assert_eq!(ctx.compiled_pipelines(), before, "the second prepare compiled again");
}

#[test]
fn wgpu_validation_errors_become_results() {
    let ctx = gpu_or_skip!();
    let a = ctx.upload("a", &[1.0f32; 12]).unwrap();
    let c = ctx.zeros::<f32>("c", 16).unwrap();
    // The epilogue reads c while the kernel writes c: wgpu rejects the aliasing.
    let aliasing = gpu::matmul(
        ctx,
        MatmulForm::AtB,
        MatmulDims::new(4, 3, 4),
        &a,
        &a,
        &c,
        Epilogue::ActGrad {
            act_output: &c,
            act: Activation::Relu,
        },
    );
    let result = aliasing.and_then(|d| ctx.run(&[&d]));
    let err = result.expect_err("aliased read and write must be an error");
    assert!(matches!(err, shadergrad::Error::Gpu { .. }), "{err}");
    // The device stays usable afterwards.
    assert_eq!(ctx.read(&a).unwrap(), vec![1.0f32; 12]);
}

#[test]
fn gather_matches_cpu() {
    use shadergrad::data::{Dataset, Features, Targets};
    use shadergrad::gpu::data::{BatchTargets, DeviceDataset, gather};
    use std::sync::Arc;
    let ctx = gpu_or_skip!();
    let mut r = rng("gather");
    for (samples, dim, width) in [(1usize, 1usize, 1usize), (5, 3, 2), (40, 17, 10), (9, 785, 3)] {
        let bytes: Vec<u8> = (0..samples * dim).map(|_| r.random_range(0..=255u8)).collect();
        let floats = random_vec(&mut r, samples * dim, 2.0);
        let labels = random_labels(&mut r, samples, width);
        let values: Vec<f32> = (0..samples * width).map(|_| r.random_range(0.0..1.0)).collect();
        let feature_kinds = [
            Features::U8 {
                data: Arc::new(bytes),
                scale: 1.0 / 255.0,
            },
            Features::F32(Arc::new(floats)),
        ];
        for features in feature_kinds {
            let target_kinds = [
                Targets::Classes {
                    labels: Arc::new(labels.clone()),
                    classes: width,
                },
                Targets::Values {
                    values: Arc::new(values.clone()),
                    width,
                },
            ];
            for targets in target_kinds {
                let data = Dataset::new(features.clone(), dim, targets).unwrap();
                let rows = 2 * samples + 1;
                let indices: Vec<u32> = (0..rows + 3).map(|_| r.random_range(0..samples as u32)).collect();
                let offset = 3;
                let batch = &indices[offset..offset + rows];
                let (mut x, mut l, mut t) = (vec![0.0; rows * dim], vec![0u32; rows], vec![0.0; rows * width]);
                cpu::gather_batch(&data, batch, &mut x, &mut l, Some(&mut t)).unwrap();

                let device = DeviceDataset::upload(ctx, &data).unwrap();
                let gi = ctx.upload("indices", &indices).unwrap();
                let (gx, gt) = (poisoned(ctx, "x", rows * dim), poisoned(ctx, "targets", rows * width));
                let gl = ctx.upload("labels", &vec![u32::MAX; rows]).unwrap();
                let classes = data.classes().is_some();
                let out = BatchTargets {
                    x: &gx,
                    labels: classes.then_some(&gl),
                    targets: Some(&gt),
                };
                let dispatches = gather(ctx, &device, &gi, offset, rows, out).unwrap();
                ctx.run(&dispatches.iter().collect::<Vec<_>>()).unwrap();
                assert_eq!(ctx.read(&gx).unwrap(), x, "features {samples}x{dim}");
                assert_eq!(ctx.read(&gt).unwrap(), t, "targets {samples}x{width}");
                if classes {
                    assert_eq!(ctx.read(&gl).unwrap(), l, "labels {samples}");
                }
            }
        }
    }
}

#[test]
fn matmuls_over_the_work_budget_are_split_and_still_correct() {
    let ctx = gpu_or_skip!();
    let mut r = rng("split");
    // 600×1100·1100×500 = 330 M multiply-adds, over the 268 M budget; every form, both kernels,
    // with the epilogues whose operands move with each part.
    let d = MatmulDims::new(600, 1100, 500);
    assert!(d.m * d.k * d.n > gpu::matmul::MAX_MACS_PER_DISPATCH as usize);
    let a = random_vec(&mut r, d.m * d.k, 1.0);
    let b = random_vec(&mut r, d.k * d.n, 1.0);
    let bias = random_vec(&mut r, d.n, 1.0);
    let act_out: Vec<f32> = random_vec(&mut r, d.m * d.n, 1.0)
        .into_iter()
        .map(|v| v.tanh())
        .collect();
    let (ga, gb, gbias, gact) = (
        ctx.upload("a", &a).unwrap(),
        ctx.upload("b", &b).unwrap(),
        ctx.upload("bias", &bias).unwrap(),
        ctx.upload("act", &act_out).unwrap(),
    );
    let gc = poisoned(ctx, "c", d.m * d.n);
    for form in MatmulForm::ALL {
        for epilogue_kind in 0..3 {
            let mut want = vec![0.0; d.m * d.n];
            let cpu_epilogue = match epilogue_kind {
                0 => Epilogue::None,
                1 => Epilogue::BiasAct {
                    bias: &bias[..],
                    act: Activation::Relu,
                },
                _ => Epilogue::ActGrad {
                    act_output: &act_out[..],
                    act: Activation::Tanh,
                },
            };
            cpu::matmul(form, d, &a, &b, &mut want, cpu_epilogue).unwrap();
            for kernel in ctx.matmul_kernels() {
                let epilogue = match epilogue_kind {
                    0 => Epilogue::None,
                    1 => Epilogue::BiasAct {
                        bias: Operand::dense(&gbias, d.n),
                        act: Activation::Relu,
                    },
                    _ => Epilogue::ActGrad {
                        act_output: Operand::dense(&gact, d.n),
                        act: Activation::Tanh,
                    },
                };
                let a_cols = if form.transposes_a() { d.m } else { d.k };
                let b_cols = if form.transposes_b() { d.k } else { d.n };
                ctx.write(&gc, &vec![f32::NAN; d.m * d.n]).unwrap();
                let dispatch = gpu::matmul_with_kernel(
                    ctx,
                    kernel,
                    form,
                    d,
                    Operand::dense(&ga, a_cols),
                    Operand::dense(&gb, b_cols),
                    Operand::dense(&gc, d.n),
                    epilogue,
                    false,
                )
                .unwrap();
                assert!(
                    dispatch.parts() >= 2,
                    "{kernel:?} {form:?}: {} part(s)",
                    dispatch.parts()
                );
                ctx.run(&[&dispatch]).unwrap();
                let what = format!(
                    "split {kernel:?} {form:?} epilogue {epilogue_kind} ({} parts)",
                    dispatch.parts()
                );
                assert_close(&what, &ctx.read(&gc).unwrap(), &want, GPU_TOLERANCE);
            }
        }
    }
}

#[test]
fn dropout_masks_and_values_match_cpu_bit_for_bit() {
    use shadergrad::cpu::DropoutMask;
    let ctx = gpu_or_skip!();
    let mut r = rng("dropout");
    for &(rows, cols) in ROW_SHAPES {
        let len = rows * cols;
        for (rate, seed, step, input_act) in [
            (0.5, 7u32, 1u32, Activation::Relu),
            (0.2, 0xdead_beef, 123_456, Activation::Tanh),
            (0.9, 0, u32::MAX, Activation::Sigmoid),
            (0.0, 3, 2, Activation::Identity),
        ] {
            let mask = DropoutMask::new(seed, rate);
            let x = random_vec(&mut r, len, 2.0);
            let dy = random_vec(&mut r, len, 1.0);
            let state = OptimState {
                step,
                ..Optimizer::sgd(0.1).initial_state()
            };
            let gstate = ctx.upload("state", &[state]).unwrap();
            let (gx, gdy) = (ctx.upload("x", &x).unwrap(), ctx.upload("dy", &dy).unwrap());
            let (gout, gdx) = (poisoned(ctx, "out", len), poisoned(ctx, "dx", len));
            let fwd = gpu::dropout_forward(ctx, &gx, &gout, mask, &gstate).unwrap();
            let bwd = gpu::dropout_backward(ctx, &gdy, &gx, &gdx, mask, input_act, &gstate).unwrap();
            ctx.run(&[&fwd, &bwd]).unwrap();
            let mut out = vec![f32::NAN; len];
            let mut dx = vec![f32::NAN; len];
            cpu::dropout_forward(&x, &mut out, mask, step).unwrap();
            cpu::dropout_backward(&dy, &x, &mut dx, mask, step, input_act).unwrap();
            let what = format!("dropout p={rate} {rows}x{cols} step {step}");
            let (gpu_out, gpu_dx) = (ctx.read(&gout).unwrap(), ctx.read(&gdx).unwrap());
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&gpu_out), bits(&out), "{what}: forward differs");
            assert_eq!(bits(&gpu_dx), bits(&dx), "{what}: backward differs");
            // Dropped elements are zero in both passes; about `rate` of them are dropped.
            let dropped: Vec<usize> = (0..len).filter(|&i| !mask.keeps(step, i as u32)).collect();
            assert!(dropped.iter().all(|&i| out[i] == 0.0 && dx[i] == 0.0), "{what}");
            let kept_nonzero = (0..len).filter(|&i| mask.keeps(step, i as u32) && x[i] != 0.0).count();
            assert!(out.iter().filter(|v| **v != 0.0).count() == kept_nonzero, "{what}");
            if len >= 10_000 {
                let dropped = dropped.len();
                let frac = dropped as f64 / len as f64;
                assert!((frac - f64::from(rate)).abs() < 0.02, "{what}: dropped {frac}");
            }
        }
    }
}

#[test]
fn dropout_masks_change_with_step_and_seed() {
    use shadergrad::cpu::DropoutMask;
    let mask = DropoutMask::new(1, 0.5);
    let pattern = |m: DropoutMask, step| (0..256u32).map(|i| m.keeps(step, i)).collect::<Vec<_>>();
    assert_ne!(pattern(mask, 1), pattern(mask, 2));
    assert_ne!(pattern(mask, 1), pattern(DropoutMask::new(2, 0.5), 1));
    assert_eq!(pattern(mask, 5), pattern(mask, 5));
    assert!(
        (0..1000u32).all(|i| DropoutMask::new(9, 0.0).keeps(3, i)),
        "rate 0 keeps all"
    );
}

/// (batch, channels, height, width, out channels, kernel, stride, padding): channels 1 and 3,
/// kernels 1/3/5, strides 1/2, paddings 0/1/2, odd and non-square sizes.
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);
const CONV_SHAPES: &[ConvCase] = &[
    (1, 1, 1, 1, 1, 1, 1, 0),
    (3, 1, 7, 5, 2, 3, 1, 1),
    (2, 3, 9, 9, 4, 5, 2, 2),
    (1, 3, 17, 3, 3, 3, 2, 0),
    (4, 2, 6, 6, 5, 1, 1, 0),
    (2, 4, 14, 14, 8, 3, 1, 1),
    (5, 1, 28, 28, 4, 3, 1, 1),
    // More rows than one workgroup's 16 (channels and out channels) and a patch past 64 columns.
    (2, 17, 5, 7, 19, 3, 1, 1),
];

fn conv_geometry(c: usize, h: usize, w: usize, k: usize, s: usize, p: usize) -> shadergrad::model::ConvGeometry {
    shadergrad::model::ConvGeometry {
        in_channels: c,
        height: h,
        width: w,
        kernel: k,
        stride: s,
        padding: p,
        out_height: (h + 2 * p - k) / s + 1,
        out_width: (w + 2 * p - k) / s + 1,
    }
}

/// The GPU convolution on both paths (im2col, matmul, bias + activation into NCHW, backward with
/// the fused row sums and col2im; and the implicit GEMMs) against the CPU twin, every output
/// NaN-poisoned, the scratch too.
#[test]
fn conv2d_forward_and_backward_match_cpu() {
    let ctx = gpu_or_skip!();
    for path in [gpu::ConvPath::Im2col, gpu::ConvPath::Implicit] {
        conv2d_path_matches_cpu(ctx, path);
    }
}

fn conv2d_path_matches_cpu(ctx: &gpu::GpuContext, path: gpu::ConvPath) {
    let mut r = rng("conv2d");
    let mut worst: f64 = 0.0;
    let acts = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Identity,
        Activation::Sigmoid,
    ];
    for (case, &(batch, c, h, w, o, k, s, p)) in CONV_SHAPES.iter().enumerate() {
        let g = conv_geometry(c, h, w, k, s, p);
        let (act, input_act) = (acts[case % acts.len()], acts[(case + 1) % acts.len()]);
        let (in_len, out_len, patch) = (batch * c * h * w, batch * o * g.out_height * g.out_width, c * k * k);
        // The input as the stored output of `input_act` (its derivative is taken from it).
        let x: Vec<f32> = random_vec(&mut r, in_len, 2.0)
            .into_iter()
            .map(|v| input_act.forward(v))
            .collect();
        let weight = random_vec(&mut r, o * patch, 1.0);
        let bias = random_vec(&mut r, o, 1.0);
        let dz = random_vec(&mut r, out_len, 1.0);
        let mut y = vec![0.0f32; out_len];
        cpu::conv2d_forward(&x, &weight, &bias, &mut y, batch, g, o, act).unwrap();
        let (mut dw, mut db, mut dx) = (vec![0.0f32; o * patch], vec![0.0f32; o], vec![0.0f32; in_len]);
        cpu::conv2d_backward(
            &dz,
            &x,
            &weight,
            (&mut dw, &mut db),
            Some((&mut dx, input_act)),
            batch,
            g,
            o,
        )
        .unwrap();
        // The same sums over absolute values: what each output's rounding is relative to (an
        // activation's slope is at most 1, and its derivative from |x| is the one from x).
        let (ax, aw, adz) = (abs(&x), abs(&weight), abs(&dz));
        let mut y_scale = vec![0.0f32; out_len];
        cpu::conv2d_forward(&ax, &aw, &abs(&bias), &mut y_scale, batch, g, o, Activation::Identity).unwrap();
        let mut scales = (vec![0.0f32; o * patch], vec![0.0f32; o], vec![0.0f32; in_len]);
        cpu::conv2d_backward(
            &adz,
            &ax,
            &aw,
            (&mut scales.0, &mut scales.1),
            Some((&mut scales.2, input_act)),
            batch,
            g,
            o,
        )
        .unwrap();

        let shape = gpu::ConvShape {
            geometry: g,
            out_channels: o,
            batch,
        };
        let (gx, gw, gb, gdz) = (
            ctx.upload("x", &x).unwrap(),
            ctx.upload("w", &weight).unwrap(),
            ctx.upload("b", &bias).unwrap(),
            ctx.upload("dz", &dz).unwrap(),
        );
        let (cols, rows) = (
            poisoned(ctx, "cols", shape.cols_len()),
            poisoned(ctx, "rows", shape.rows_len()),
        );
        let (gy, gdw, gdb, gdx) = (
            poisoned(ctx, "y", out_len),
            poisoned(ctx, "dw", o * patch),
            poisoned(ctx, "db", o),
            poisoned(ctx, "dx", in_len),
        );
        let scratch = || gpu::ConvScratch {
            cols: &cols,
            rows: &rows,
        };
        let (params, grads) = (((&gw).into(), (&gb).into()), ((&gdw).into(), (&gdb).into()));
        let dispatches = match path {
            gpu::ConvPath::Im2col => {
                let mut d = gpu::conv2d_forward(ctx, shape, &gx, params, scratch(), &gy, act).unwrap();
                d.extend(
                    gpu::conv2d_backward(
                        ctx,
                        shape,
                        &gdz,
                        (&gx, (&gw).into()),
                        grads,
                        scratch(),
                        Some((&gdx, input_act)),
                    )
                    .unwrap(),
                );
                d
            }
            gpu::ConvPath::Implicit => {
                let mut d = vec![gpu::conv2d_forward_implicit(ctx, shape, &gx, params, &gy, act).unwrap()];
                d.extend(
                    gpu::conv2d_backward_implicit(
                        ctx,
                        shape,
                        &gdz,
                        (&gx, (&gw).into()),
                        grads,
                        Some((&gdx, input_act)),
                    )
                    .unwrap(),
                );
                d
            }
        };
        ctx.run(&dispatches.iter().collect::<Vec<_>>()).unwrap();
        let what = format!("{path:?} conv {batch}x{c}x{h}x{w} → {o} k{k} s{s} p{p} {act:?}/{input_act:?}");
        for (name, got, want, scale) in [
            ("y", &gy, &y, &y_scale),
            ("dweight", &gdw, &dw, &scales.0),
            ("dbias", &gdb, &db, &scales.1),
            ("dx", &gdx, &dx, &scales.2),
        ] {
            worst = worst.max(assert_close_to(
                &format!("{what} {name}"),
                &ctx.read(got).unwrap(),
                want,
                scale,
            ));
        }
    }
    eprintln!("conv2d {path:?} worst relative error: {worst:.3e}");
}

/// Max pooling forward and backward (overlapping windows included) against the CPU twin.
#[test]
fn max_pool2d_matches_cpu() {
    let ctx = gpu_or_skip!();
    let mut r = rng("max_pool2d");
    let mut worst: f64 = 0.0;
    // (batch, channels, height, width, kernel, stride)
    for &(batch, c, h, w, k, s) in &[
        (1, 1, 1, 1, 1, 1),
        (3, 2, 7, 5, 2, 2),
        (2, 3, 9, 9, 3, 2),
        (1, 1, 17, 3, 3, 1),
        (4, 5, 28, 28, 2, 2),
    ] {
        let g = cpu::PoolGeometry {
            channels: c,
            height: h,
            width: w,
            kernel: k,
            stride: s,
        };
        let out_len = batch * c * ((h - k) / s + 1) * ((w - k) / s + 1);
        let input_act = Activation::Relu;
        let x: Vec<f32> = random_vec(&mut r, batch * c * h * w, 1.0)
            .into_iter()
            .map(|v| input_act.forward(v))
            .collect();
        let dy = random_vec(&mut r, out_len, 1.0);
        let (mut y, mut dx) = (vec![0.0f32; out_len], vec![0.0f32; x.len()]);
        cpu::max_pool2d_forward(&x, &mut y, g).unwrap();
        cpu::max_pool2d_backward(&dy, &x, &mut dx, g, input_act).unwrap();
        let (gx, gdy) = (ctx.upload("x", &x).unwrap(), ctx.upload("dy", &dy).unwrap());
        let (gy, gdx) = (poisoned(ctx, "y", out_len), poisoned(ctx, "dx", x.len()));
        let fwd = gpu::max_pool2d_forward(ctx, &gx, &gy, g).unwrap();
        let bwd = gpu::max_pool2d_backward(ctx, (&gdy, &gx), &gdx, g, input_act).unwrap();
        ctx.run(&[&fwd, &bwd]).unwrap();
        let what = format!("max_pool {batch}x{c}x{h}x{w} k{k} s{s}");
        worst = worst.max(assert_close(
            &format!("{what} y"),
            &ctx.read(&gy).unwrap(),
            &y,
            GPU_TOLERANCE,
        ));
        worst = worst.max(assert_close(
            &format!("{what} dx"),
            &ctx.read(&gdx).unwrap(),
            &dx,
            GPU_TOLERANCE,
        ));
    }
    eprintln!("max_pool2d worst relative error: {worst:.3e}");
}

/// The Euclidean norm.
/// Element-wise absolute values: operands for a product's scale.
fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

#[test]
fn batch_norm_matches_cpu() {
    use cpu::NormBatch;
    use gpu::batchnorm::{self, NormGrads, NormTensors};
    use shadergrad::model::{BATCH_NORM_EPS, BATCH_NORM_MOMENTUM, NormShape};
    let ctx = gpu_or_skip!();
    let mut r = rng("batch_norm");
    let mut worst: f64 = 0.0;
    // (rows, channels, spatial): BatchNorm1d shapes (spatial 1) and BatchNorm2d ones.
    for &(rows, channels, spatial) in &[
        (1, 1, 1),
        (3, 17, 1),
        (17, 3, 1),
        (127, 10, 1),
        (2, 785, 1),
        (1, 3, 17),
        (4, 5, 127),
        (3, 1, 785),
    ] {
        let batch = NormBatch {
            rows,
            shape: NormShape { channels, spatial },
        };
        let (c, len) = (channels, rows * channels * spatial);
        let (act, input_act) = (Activation::Relu, Activation::Tanh);
        // Off-centre inputs, as a layer's outputs are; the input is a tanh output (input_act).
        let x: Vec<f32> = random_vec(&mut r, len, 2.0).iter().map(|v| (v + 0.5).tanh()).collect();
        let dy = random_vec(&mut r, len, 1.0);
        let gamma: Vec<f32> = random_vec(&mut r, c, 0.5).iter().map(|v| 1.0 + v).collect();
        let beta = random_vec(&mut r, c, 0.5);
        let running_mean = random_vec(&mut r, c, 0.5);
        let running_var: Vec<f32> = random_vec(&mut r, c, 0.5).iter().map(|v| 1.0 + v.abs()).collect();
        let count = 7.0f32;

        // CPU: train forward, backward with dx, tracking; evaluation forward.
        let (mut y, mut stats) = (vec![0.0f32; len], vec![0.0f32; 3 * c]);
        cpu::batch_norm_train_forward(&x, (&gamma, &beta), &mut y, &mut stats, batch, act, BATCH_NORM_EPS).unwrap();
        let (mut dgamma, mut dbeta, mut dx) = (vec![0.0f32; c], vec![0.0f32; c], vec![0.0f32; len]);
        let dx_arg = Some((&mut dx[..], input_act));
        cpu::batch_norm_backward(&dy, &x, &gamma, &stats, (&mut dgamma, &mut dbeta), dx_arg, batch).unwrap();
        let (mut mean_after, mut var_after, mut count_after) = (running_mean.clone(), running_var.clone(), count);
        let running = (&mut mean_after[..], &mut var_after[..], &mut count_after);
        cpu::batch_norm_track(&stats, running, batch, BATCH_NORM_MOMENTUM).unwrap();
        let mut y_eval = vec![0.0f32; len];
        let running = (&running_mean[..], &running_var[..]);
        cpu::batch_norm_eval_forward(&x, (&gamma, &beta), running, &mut y_eval, batch, act, BATCH_NORM_EPS).unwrap();

        // GPU: weight and bias in one buffer, the running statistics and the count in another.
        let affine = ctx.upload("affine", &[&gamma[..], &beta[..]].concat()).unwrap();
        let running = ctx
            .upload("running", &[&running_mean[..], &running_var[..], &[count]].concat())
            .unwrap();
        let tensors = || NormTensors {
            affine: (&affine).into(),
            bias_at: c,
            running: (&running).into(),
            var_at: c,
            count_at: 2 * c,
        };
        let (gx, gdy) = (ctx.upload("x", &x).unwrap(), ctx.upload("dy", &dy).unwrap());
        let (gy, gy_eval, gdx) = (
            poisoned(ctx, "y", len),
            poisoned(ctx, "y eval", len),
            poisoned(ctx, "dx", len),
        );
        let (gstats, ggrads) = (poisoned(ctx, "stats", 3 * c), poisoned(ctx, "grads", 2 * c));
        let state = ctx.upload("state", &[Optimizer::sgd(0.1).initial_state()]).unwrap();
        let eval = batchnorm::batch_norm_eval_forward(ctx, &gx, tensors(), &gy_eval, batch, act).unwrap();
        let train = batchnorm::batch_norm_train_forward(ctx, &gx, tensors(), (&gy, &gstats), batch, act).unwrap();
        let grads = NormGrads {
            affine: (&ggrads).into(),
            dx: Some((&gdx, input_act)),
        };
        let backward =
            batchnorm::batch_norm_backward(ctx, (&gdy, &gx), tensors(), &gstats, grads, &state, batch, true).unwrap();
        ctx.run(&[&eval, &train, &backward]).unwrap();

        let what = format!("batch_norm {rows}x{channels}x{spatial}");
        let mut check = |name: &str, got: &[f32], want: &[f32]| {
            worst = worst.max(assert_close(&format!("{what} {name}"), got, want, GPU_TOLERANCE));
        };
        check("y (training)", &ctx.read(&gy).unwrap(), &y);
        check("y (evaluation)", &ctx.read(&gy_eval).unwrap(), &y_eval);
        check("batch statistics", &ctx.read(&gstats).unwrap(), &stats);
        check("dx", &ctx.read(&gdx).unwrap(), &dx);
        check(
            "dγ, dβ",
            &ctx.read(&ggrads).unwrap(),
            &[&dgamma[..], &dbeta[..]].concat(),
        );
        let tracked = ctx.read(&running).unwrap();
        check(
            "running statistics",
            &tracked,
            &[&mean_after[..], &var_after[..], &[count_after]].concat(),
        );
        assert_eq!(tracked[2 * c], count + 1.0, "{what}: the batch is counted");

        // A step the guard skips leaves the running statistics as they were.
        let skipped = OptimState {
            step_nonfinite: 1,
            skip_nonfinite: 1,
            ..Optimizer::sgd(0.1).initial_state()
        };
        ctx.write(&state, &[skipped]).unwrap();
        ctx.run(&[&backward]).unwrap();
        assert_eq!(
            ctx.read(&running).unwrap(),
            tracked,
            "{what}: a skipped step must not move the running statistics"
        );
    }
    eprintln!("batch_norm worst relative error: {worst:.3e}");
}
