//! The lecture's 2-3-2 network (issue #2), one forward/backward/SGD step on both backends
//! through the public API (the real step program), checked against the hand-computed values
//! to 1e-4. Hidden tensors (a1, z2) are not part of the API; their effect is checked through
//! every gradient and update.

mod common;

use std::sync::Arc;

use shadergrad::data::Dataset;
use shadergrad::gpu::GpuContext;
use shadergrad::model::{LayerTensors, Model, Network, NetworkSpec};
use shadergrad::train::{Backend, CpuBackend, CpuExecutor, GpuBackend};
use shadergrad::{Optimizer, Result};

const X: [f32; 2] = [1.0, 0.5];
const W1: [f32; 6] = [0.5, 0.2, -0.3, 0.8, 0.1, -0.4];
const B1: [f32; 3] = [0.1, -0.2, 0.3];
const W2: [f32; 6] = [0.4, -0.1, 0.6, 0.2, 0.7, -0.3];
const B2: [f32; 2] = [0.2, -0.1];
const Y: [f32; 2] = [1.0, 0.0];
const LR: f32 = 0.1;

/// What the example prints that the public API shows, in its order.
#[derive(Debug, Default)]
struct Trace {
    a2: Vec<f32>,
    loss: f32,
    dw2: Vec<f32>,
    db2: Vec<f32>,
    dw1: Vec<f32>,
    db1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    w1: Vec<f32>,
    b1: Vec<f32>,
}

fn check(path: &str, t: &Trace) {
    let expect: [(&str, &[f32], &[f32]); 10] = [
        ("a2", &t.a2, &[0.6457, 0.4950]),
        ("loss", &[t.loss], &[1.1207]),
        ("dW2", &t.dw2, &[-0.2480, 0.0, -0.0709, 0.3465, 0.0, 0.0990]),
        // With one sample, db2 is dZ2 = a2 − y.
        ("db2 = dZ2", &t.db2, &[-0.3543, 0.4950]),
        ("dW1", &t.dw1, &[-0.0427, -0.0214, 0.0, 0.0, -0.3611, -0.1806]),
        ("db1", &t.db1, &[-0.0427, 0.0, -0.3611]),
        ("W2'", &t.w2, &[0.4248, -0.1, 0.6071, 0.1653, 0.7, -0.3099]),
        ("b2'", &t.b2, &[0.2354, -0.1495]),
        ("W1'", &t.w1, &[0.5043, 0.2021, -0.3, 0.8, 0.1361, -0.3819]),
        ("b1'", &t.b1, &[0.1043, -0.2, 0.3361]),
    ];
    for (name, got, want) in expect {
        eprintln!("{path} {name}: {got:?}");
        assert_eq!(got.len(), want.len(), "{path} {name}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-4, "{path} {name}: got {got:?}, want {want:?}");
        }
    }
}

/// 2 → dense 3, ReLU → dense 2, sigmoid + binary cross-entropy.
fn spec() -> NetworkSpec {
    Model::input(2)
        .dense(3)
        .relu()
        .dense(2)
        .sigmoid_binary_cross_entropy()
        .unwrap()
}

fn network() -> Network {
    let layers = vec![
        LayerTensors::weight_and_bias(W1.to_vec(), B1.to_vec()),
        LayerTensors::weight_and_bias(W2.to_vec(), B2.to_vec()),
    ];
    Network::from_layers(&spec(), layers).unwrap()
}

fn config() -> shadergrad::train::TrainConfig {
    common::config(Optimizer::sgd(LR), 1, 0.0)
}

/// One step on `backend`, plus the gradients from the CPU executor of the same program.
fn run(backend: &mut dyn Backend) -> Trace {
    let data = Dataset::regression(X.to_vec(), 2, Y.to_vec(), 2).unwrap();
    let a2 = backend.predict(&X, 1).unwrap();
    backend.train_batches(&data, &[&[0]]).unwrap();
    let loss = backend.take_train_totals().unwrap().mean_loss() as f32;
    let after = backend.network().unwrap();
    // The gradients the step applied, from the same program run by the CPU executor.
    let mut exec = CpuExecutor::<f32>::new(&network(), Optimizer::sgd(LR), 0.0, false, 0);
    let fill = |b: shadergrad::train::BatchInputs<'_, f32>| -> Result<()> {
        b.x.copy_from_slice(&X);
        b.targets.copy_from_slice(&Y);
        Ok(())
    };
    let grad_loss = exec.loss_and_gradients(1, fill).unwrap() as f32;
    assert!(
        (grad_loss - loss).abs() < 1e-6,
        "the executor's loss {grad_loss} is the step's {loss}"
    );
    let grads = network_of(&exec);
    Trace {
        a2,
        loss,
        dw2: grads.layers[1].weight().to_vec(),
        db2: grads.layers[1].bias().to_vec(),
        dw1: grads.layers[0].weight().to_vec(),
        db1: grads.layers[0].bias().to_vec(),
        w2: after.layers[1].weight().to_vec(),
        b2: after.layers[1].bias().to_vec(),
        w1: after.layers[0].weight().to_vec(),
        b1: after.layers[0].bias().to_vec(),
    }
}

/// The executor's flat gradients cut into layers (same layout as its parameters).
fn network_of(exec: &CpuExecutor<f32>) -> Network {
    let mut probe = CpuExecutor::<f32>::new(&network(), Optimizer::sgd(LR), 0.0, false, 0);
    probe.parameters_mut().copy_from_slice(exec.gradients());
    probe.network().unwrap()
}

#[test]
fn worked_example_on_cpu() {
    let mut cpu = CpuBackend::new(network(), &config()).unwrap();
    check("cpu", &run(&mut cpu));
}

#[test]
fn worked_example_on_gpu() {
    let _ = gpu_or_skip!();
    let ctx = Arc::new(GpuContext::new().unwrap());
    let mut gpu = GpuBackend::new(ctx, &network(), &config()).unwrap();
    check("gpu", &run(&mut gpu));
}
