//! Finite-difference gradient checks of the CPU path, run in f64 (central differences).
//! The CPU path is generic over f32/f64, so this checks the very code the backend runs.

mod common;

use rand::RngExt;
use rand::rngs::StdRng;
use shadergrad::{Activation, Epilogue, MatmulDims, MatmulForm, cpu};

const H: f64 = 1e-6;
const TOLERANCE: f64 = 1e-6;

fn random(rng: &mut StdRng, len: usize, scale: f64) -> Vec<f64> {
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Central-difference gradient of `f` at `x`.
fn numeric_grad(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
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
}

struct Targets {
    labels: Vec<u32>,
    values: Vec<f64>,
}

impl Head {
    const ALL: [Head; 3] = [Head::SoftmaxCe, Head::SigmoidBce, Head::Mse];

    fn run(self, z: &[f64], t: &Targets, rows: usize, cols: usize) -> (f64, Vec<f64>) {
        let mut loss = vec![0.0; rows];
        let mut dz = vec![0.0; rows * cols];
        match self {
            Head::SoftmaxCe => cpu::softmax_cross_entropy(z, &t.labels, &mut loss, &mut dz, rows, cols),
            Head::SigmoidBce => cpu::sigmoid_binary_cross_entropy(z, &t.values, &mut loss, &mut dz, rows, cols),
            Head::Mse => cpu::mse(z, &t.values, &mut loss, &mut dz, rows, cols),
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

/// A dense network evaluated with the CPU ops, exactly as a training step composes them.
struct Net {
    sizes: Vec<usize>,
    hidden: Activation,
    head: Head,
}

impl Net {
    /// Offsets of each layer's weight and bias inside one flat parameter vector.
    fn layout(&self) -> Vec<(usize, usize, usize, usize)> {
        let mut offset = 0;
        self.sizes
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let entry = (offset, offset + fan_out * fan_in, fan_in, fan_out);
                offset += fan_out * fan_in + fan_out;
                entry
            })
            .collect()
    }

    fn parameter_count(&self) -> usize {
        self.layout().last().map(|&(_, b, _, out)| b + out).unwrap()
    }

    /// Loss and the gradient with respect to every parameter (flat, same layout).
    fn loss_and_grad(&self, params: &[f64], x: &[f64], t: &Targets, batch: usize) -> (f64, Vec<f64>) {
        let layout = self.layout();
        let last = layout.len() - 1;
        let mut acts = vec![x.to_vec()];
        for (l, &(w, b, fan_in, fan_out)) in layout.iter().enumerate() {
            let act = if l == last { Activation::Identity } else { self.hidden };
            let mut out = vec![0.0; batch * fan_out];
            let epilogue = Epilogue::BiasAct {
                bias: &params[b..b + fan_out],
                act,
            };
            let dims = MatmulDims::new(batch, fan_in, fan_out);
            cpu::matmul(MatmulForm::ABt, dims, &acts[l], &params[w..b], &mut out, epilogue).unwrap();
            acts.push(out);
        }
        let classes = *self.sizes.last().unwrap();
        let (loss, mut dz) = self.head.run(&acts[last + 1], t, batch, classes);

        let mut grad = vec![0.0; params.len()];
        for (l, &(w, b, fan_in, fan_out)) in layout.iter().enumerate().rev() {
            let dw_dims = MatmulDims::new(fan_out, batch, fan_in);
            cpu::matmul(MatmulForm::AtB, dw_dims, &dz, &acts[l], &mut grad[w..b], Epilogue::None).unwrap();
            cpu::bias_grad(&dz, &mut grad[b..b + fan_out], batch, fan_out).unwrap();
            if l > 0 {
                let mut prev = vec![0.0; batch * fan_in];
                let epilogue = Epilogue::ActGrad {
                    act_output: &acts[l][..],
                    act: self.hidden,
                };
                let dims = MatmulDims::new(batch, fan_out, fan_in);
                cpu::matmul(MatmulForm::AB, dims, &dz, &params[w..b], &mut prev, epilogue).unwrap();
                dz = prev;
            }
        }
        (loss, grad)
    }
}

#[test]
fn three_layer_network_gradients() {
    let mut rng = common::rng("three_layer_network_gradients");
    let batch = 3;
    for head in Head::ALL {
        for hidden in Activation::ALL {
            let net = Net {
                sizes: vec![5, 7, 6, 4],
                hidden,
                head,
            };
            let params = random(&mut rng, net.parameter_count(), 0.8);
            let x = random(&mut rng, batch * 5, 1.0);
            let t = targets(&mut rng, batch, 4);
            let (_, analytic) = net.loss_and_grad(&params, &x, &t, batch);
            let numeric = numeric_grad(&params, |p| net.loss_and_grad(p, &x, &t, batch).0);
            assert_grad(
                &format!("3-layer {hidden:?} hidden, {head:?} head"),
                &analytic,
                &numeric,
            );
        }
    }
}
