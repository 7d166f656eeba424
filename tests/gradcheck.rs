//! Finite-difference gradient checks in f64 (central differences): the activation and loss
//! kernels, then the real step program ([`CpuExecutor`] runs the program both backends run)
//! for every layer type, activation and loss head.

mod common;

use rand::RngExt;
use rand::rngs::StdRng;
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::train::{BatchInputs, CpuExecutor};
use shadergrad::{Activation, Optimizer, cpu};

const H: f64 = 1e-6;
const TOLERANCE: f64 = 1e-6;

fn random(rng: &mut StdRng, len: usize, scale: f64) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Central-difference gradient of `f` at `x`.
fn numeric_grad(x: &[f64], mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = x[i];
            x[i] = orig + H;
            let plus = f(&x);
            x[i] = orig - H;
            let minus = f(&x);
            x[i] = orig;
            (plus - minus) / (2.0 * H)
        })
        .collect()
}

fn assert_grad(what: &str, analytic: &[f64], numeric: &[f64]) {
    let diff: f64 = analytic
        .iter()
        .zip(numeric)
        .map(|(a, n)| (a - n).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = numeric.iter().map(|n| n * n).sum::<f64>().sqrt().max(1e-12);
    let err = diff / norm;
    eprintln!("{what}: relative error {err:.2e}");
    assert!(
        err < TOLERANCE,
        "{what}: analytic {analytic:?} vs numeric {numeric:?} (relative error {err:e})"
    );
}

#[test]
fn activation_gradients() {
    let mut rng = common::rng("activation_gradients");
    for act in Activation::ALL {
        // Keep away from the kink at 0 so the difference quotient does not straddle it.
        let z: Vec<f64> = random(&mut rng, 20, 3.0)
            .into_iter()
            .map(|v| if v.abs() < 0.1 { v + 0.2 } else { v })
            .collect();
        let weights = random(&mut rng, 20, 1.0);
        let f = |z: &[f64]| -> f64 {
            let mut a = vec![0.0; z.len()];
            cpu::activation_forward(z, &mut a, act).unwrap();
            a.iter().zip(&weights).map(|(a, w)| a * w).sum()
        };
        let mut a = vec![0.0; z.len()];
        cpu::activation_forward(&z, &mut a, act).unwrap();
        let mut dz = vec![0.0; z.len()];
        cpu::activation_backward(&weights, &a, &mut dz, act).unwrap();
        assert_grad(&format!("{act:?}"), &dz, &numeric_grad(&z, f));
    }
}

/// A loss head as used by the checks: (z, rows, cols) → (loss_rows, dz).
#[derive(Debug, Clone, Copy)]
enum Head {
    SoftmaxCe,
    SigmoidBce,
    Mse,
    Mae,
}

struct Targets {
    labels: Vec<u32>,
    values: Vec<f64>,
}

impl Head {
    const ALL: [Head; 4] = [Head::SoftmaxCe, Head::SigmoidBce, Head::Mse, Head::Mae];

    fn run(self, z: &[f64], t: &Targets, rows: usize, cols: usize) -> (f64, Vec<f64>) {
        let mut loss = vec![0.0; rows];
        let mut dz = vec![0.0; rows * cols];
        match self {
            Head::SoftmaxCe => cpu::softmax_cross_entropy(z, &t.labels, &mut loss, &mut dz, rows, cols),
            Head::SigmoidBce => cpu::sigmoid_binary_cross_entropy(z, &t.values, &mut loss, &mut dz, rows, cols),
            Head::Mse => cpu::mse(z, &t.values, &mut loss, &mut dz, rows, cols),
            Head::Mae => cpu::mae(z, &t.values, &mut loss, &mut dz, rows, cols),
        }
        .unwrap();
        (loss.iter().sum::<f64>() / rows as f64, dz)
    }
}

fn targets(rng: &mut StdRng, rows: usize, cols: usize) -> Targets {
    Targets {
        labels: (0..rows).map(|_| rng.random_range(0..cols as u32)).collect(),
        values: (0..rows * cols).map(|_| rng.random_range(0.0..1.0)).collect(),
    }
}

#[test]
fn loss_gradients() {
    let mut rng = common::rng("loss_gradients");
    for head in Head::ALL {
        for (rows, cols) in [(1, 1), (3, 4), (5, 10)] {
            let z = random(&mut rng, rows * cols, 4.0);
            let t = targets(&mut rng, rows, cols);
            let (_, dz) = head.run(&z, &t, rows, cols);
            let numeric = numeric_grad(&z, |z| head.run(z, &t, rows, cols).0);
            assert_grad(&format!("{head:?} {rows}x{cols}"), &dz, &numeric);
        }
    }
}

/// Central-difference check of the real step program (planned once, run by the CPU executor in
/// f64) on one model: every parameter's gradient, dropout masks fixed by the step counter.
///
/// The callers draw from [`common::fixed_rng`]: among the thousands of ReLU and max-pool inputs a
/// check makes, one within `H` of its kink (about one fresh draw in a thousand) puts half the
/// jump in slope into a difference quotient. That is the check's limit, not a wrong gradient.
fn check_program(spec: &NetworkSpec, rng: &mut StdRng) {
    let rows = 3;
    let network = Network::init(spec, 7);
    let mut exec = CpuExecutor::<f64>::new(&network, Optimizer::sgd(0.1), 0.0, false, 11);
    // Parameters away from init's zeros (biases), so ReLU kinks are not sat on.
    let layout_params: Vec<f64> = exec.parameters().to_vec();
    let noise = random(rng, layout_params.len(), 0.8);
    for ((p, n), orig) in exec.parameters_mut().iter_mut().zip(noise).zip(layout_params) {
        // Padding between tensors stays zero; it has no effect on the loss either way.
        *p = if orig == 0.0 { n * 0.1 } else { orig + n * 0.3 };
    }
    exec.set_step(5);
    let x = random(rng, rows * spec.inputs(), 1.0);
    let t = targets(rng, rows, spec.outputs());
    let fill = |b: BatchInputs<'_, f64>| -> shadergrad::Result<()> {
        b.x.copy_from_slice(&x);
        b.labels.copy_from_slice(&t.labels);
        b.targets.copy_from_slice(&t.values);
        Ok(())
    };
    let loss = exec.loss_and_gradients(rows, fill).unwrap();
    assert!(loss.is_finite(), "{}: loss {loss}", spec.text());
    let analytic = exec.gradients().to_vec();
    let params = exec.parameters().to_vec();
    let numeric = numeric_grad(&params, |p| {
        exec.parameters_mut().copy_from_slice(p);
        exec.loss(rows, fill).unwrap()
    });
    assert_grad(
        &format!("{} ({} loss)", spec.text(), spec.loss.name()),
        &analytic,
        &numeric,
    );
}

#[test]
fn the_step_program_gradients_for_every_activation_and_head() {
    let mut rng = common::fixed_rng("program_gradients");
    for loss in LossKind::ALL {
        for act in Activation::ALL {
            let spec = NetworkSpec::new(&[5, 7, 6, 4], act, loss).unwrap();
            check_program(&spec, &mut rng);
        }
    }
}

#[test]
fn the_step_program_gradients_for_every_layer_arrangement() {
    let mut rng = common::fixed_rng("layer_gradients");
    for (text, loss) in [
        // Dropout after a fused dense+activation (its backward applies relu') and elsewhere.
        (
            "5,dense7,relu,dropout0.3,dense6,tanh,dropout0.5,dense4",
            LossKind::SoftmaxCrossEntropy,
        ),
        // Dropout on the input and on the outputs.
        (
            "5,dropout0.4,dense6,leaky_relu,dense4,dropout0.25",
            LossKind::MeanSquaredError,
        ),
        // A sigmoid output layer under MSE (the lecture's binary classifier), and under MAE.
        ("5,dense7,sigmoid,dense4,sigmoid", LossKind::MeanSquaredError),
        ("5,dense7,tanh,dense4,sigmoid", LossKind::MeanAbsoluteError),
        // Two activations in a row, an activation on the input, mixed activations.
        ("5,dense7,tanh,sigmoid,dense4", LossKind::SigmoidBinaryCrossEntropy),
        ("5,tanh,dense6,relu,dense4", LossKind::SoftmaxCrossEntropy),
        (
            "5,dense8,relu,dense6,tanh,dense5,sigmoid,dense4",
            LossKind::SoftmaxCrossEntropy,
        ),
        // One dense layer.
        ("5,dense4", LossKind::MeanAbsoluteError),
    ] {
        check_program(&NetworkSpec::parse(text, loss).unwrap(), &mut rng);
    }
}

#[test]
fn the_step_program_gradients_for_conv_and_pool_layers() {
    let mut rng = common::fixed_rng("conv_gradients");
    for (text, loss) in [
        // The LeNet shape in small: conv + relu fused, then pooling (its backward applies relu').
        (
            "1x7x7,conv3k3p1,relu,maxpool2,flatten,dense4",
            LossKind::SoftmaxCrossEntropy,
        ),
        // Three channels, stride 2 with padding, a 1×1 conv, sigmoid fused into a conv.
        (
            "3x6x5,conv2k3s2p1,tanh,conv4k1,sigmoid,flatten,dense3",
            LossKind::MeanSquaredError,
        ),
        // A 5×5 kernel with padding 2, overlapping pooling windows, a conv after pooling.
        (
            "2x9x9,conv3k5p2,leaky_relu,maxpool3s2,conv2k3,flatten,dense4",
            LossKind::SoftmaxCrossEntropy,
        ),
        // Pooling on the input, dropout after a conv, an image flattened straight into the loss.
        (
            "1x5x5,maxpool2s1,conv2k2,relu,dropout0.3,flatten,dense3",
            LossKind::SigmoidBinaryCrossEntropy,
        ),
        ("1x4x4,conv2k3p1,flatten", LossKind::MeanAbsoluteError),
    ] {
        check_program(&NetworkSpec::parse(text, loss).unwrap(), &mut rng);
    }
}

/// Batch norm after dense layers (BatchNorm1d) and convs (BatchNorm2d), with its activation
/// fused after it or before it (then its backward differentiates the activation at its input),
/// on the input (no input gradient) and as the last layer.
#[test]
fn the_step_program_gradients_through_batch_norm() {
    let mut rng = common::fixed_rng("gradcheck_batch_norm");
    for (text, loss) in [
        ("5,dense7,batchnorm,relu,dense4", LossKind::SoftmaxCrossEntropy),
        (
            "5,batchnorm,dense6,tanh,batchnorm,dense4",
            LossKind::SoftmaxCrossEntropy,
        ),
        ("5,dense6,sigmoid,batchnorm,dense4", LossKind::SigmoidBinaryCrossEntropy),
        ("5,dense4,batchnorm", LossKind::MeanSquaredError),
        (
            "1x5x5,conv3k3p1,batchnorm,tanh,maxpool2,flatten,dense3",
            LossKind::SoftmaxCrossEntropy,
        ),
        (
            "2x4x4,conv3k3p1,leaky_relu,batchnorm,flatten,dense6,batchnorm,sigmoid,dense3",
            LossKind::MeanAbsoluteError,
        ),
    ] {
        check_program(&NetworkSpec::parse(text, loss).unwrap(), &mut rng);
    }
}
