//! The lecture's 2-3-2 network (issue #2), one forward/backward/SGD step on both backends,
//! checked against the hand-computed values to 1e-4.

mod common;

use shadergrad::gpu::GpuBuffer;
use shadergrad::{Activation, Epilogue, MatmulDims, MatmulForm, Optimizer, cpu, gpu};

const X: [f32; 2] = [1.0, 0.5];
const W1: [f32; 6] = [0.5, 0.2, -0.3, 0.8, 0.1, -0.4];
const B1: [f32; 3] = [0.1, -0.2, 0.3];
const W2: [f32; 6] = [0.4, -0.1, 0.6, 0.2, 0.7, -0.3];
const B2: [f32; 2] = [0.2, -0.1];
const Y: [f32; 2] = [1.0, 0.0];
const LR: f32 = 0.1;

/// Everything the example prints, in its order.
#[derive(Debug, Default)]
struct Trace {
    a1: Vec<f32>,
    z2: Vec<f32>,
    a2: Vec<f32>,
    loss: f32,
    dz2: Vec<f32>,
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
    let expect: [(&str, &[f32], &[f32]); 13] = [
        ("a1", &t.a1, &[0.7, 0.0, 0.2]),
        ("z2", &t.z2, &[0.6, -0.02]),
        ("a2", &t.a2, &[0.6457, 0.4950]),
        ("loss", &[t.loss], &[1.1207]),
        ("dZ2", &t.dz2, &[-0.3543, 0.4950]),
        ("dW2", &t.dw2, &[-0.2480, 0.0, -0.0709, 0.3465, 0.0, 0.0990]),
        ("db2", &t.db2, &[-0.3543, 0.4950]),
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

#[test]
fn worked_example_on_cpu() {
    let mut t = Trace {
        a1: vec![0.0; 3],
        z2: vec![0.0; 2],
        a2: vec![0.0; 2],
        ..Default::default()
    };
    let relu = Activation::Relu;
    cpu::matmul(
        MatmulForm::ABt,
        MatmulDims::new(1, 2, 3),
        &X,
        &W1,
        &mut t.a1,
        Epilogue::BiasAct { bias: &B1, act: relu },
    )
    .unwrap();
    let out = Epilogue::BiasAct {
        bias: &B2[..],
        act: Activation::Identity,
    };
    cpu::matmul(MatmulForm::ABt, MatmulDims::new(1, 3, 2), &t.a1, &W2, &mut t.z2, out).unwrap();
    cpu::activation_forward(&t.z2, &mut t.a2, Activation::Sigmoid).unwrap();
    let mut loss = [0.0];
    t.dz2 = vec![0.0; 2];
    cpu::sigmoid_binary_cross_entropy(&t.z2, &Y, &mut loss, &mut t.dz2, 1, 2).unwrap();
    t.loss = loss[0];

    t.dw2 = vec![0.0; 6];
    cpu::matmul(
        MatmulForm::AtB,
        MatmulDims::new(2, 1, 3),
        &t.dz2,
        &t.a1,
        &mut t.dw2,
        Epilogue::None,
    )
    .unwrap();
    t.db2 = vec![0.0; 2];
    cpu::bias_grad(&t.dz2, &mut t.db2, 1, 2).unwrap();
    let mut dz1 = vec![0.0; 3];
    let grad = Epilogue::ActGrad {
        act_output: &t.a1[..],
        act: relu,
    };
    cpu::matmul(MatmulForm::AB, MatmulDims::new(1, 2, 3), &t.dz2, &W2, &mut dz1, grad).unwrap();
    t.dw1 = vec![0.0; 6];
    cpu::matmul(
        MatmulForm::AtB,
        MatmulDims::new(3, 1, 2),
        &dz1,
        &X,
        &mut t.dw1,
        Epilogue::None,
    )
    .unwrap();
    t.db1 = vec![0.0; 3];
    cpu::bias_grad(&dz1, &mut t.db1, 1, 3).unwrap();

    let mut state = Optimizer::sgd(LR).initial_state();
    state.tick();
    let (mut w1, mut b1, mut w2, mut b2) = (W1.to_vec(), B1.to_vec(), W2.to_vec(), B2.to_vec());
    cpu::sgd_update(&mut w2, &t.dw2, &state).unwrap();
    cpu::sgd_update(&mut b2, &t.db2, &state).unwrap();
    cpu::sgd_update(&mut w1, &t.dw1, &state).unwrap();
    cpu::sgd_update(&mut b1, &t.db1, &state).unwrap();
    (t.w1, t.b1, t.w2, t.b2) = (w1, b1, w2, b2);
    check("cpu", &t);
}

#[test]
fn worked_example_on_gpu() {
    let ctx = gpu_or_skip!();
    let up = |name: &str, v: &[f32]| ctx.upload(name, v).unwrap();
    let zeros = |name: &str, n: usize| -> GpuBuffer<f32> { common::poisoned(ctx, name, n) };
    let (x, w1, b1, w2, b2, y) = (
        up("x", &X),
        up("w1", &W1),
        up("b1", &B1),
        up("w2", &W2),
        up("b2", &B2),
        up("y", &Y),
    );
    let (a1, z2, a2, loss, dz2) = (
        zeros("a1", 3),
        zeros("z2", 2),
        zeros("a2", 2),
        zeros("loss", 1),
        zeros("dz2", 2),
    );
    let (dw2, db2, dz1, dw1, db1) = (
        zeros("dw2", 6),
        zeros("db2", 2),
        zeros("dz1", 3),
        zeros("dw1", 6),
        zeros("db1", 3),
    );
    let state = ctx.upload("optim", &[Optimizer::sgd(LR).initial_state()]).unwrap();
    let relu = Activation::Relu;

    // The whole step as one list of dispatches, submitted once — as a training step will be.
    let step = [
        gpu::matmul(
            ctx,
            MatmulForm::ABt,
            MatmulDims::new(1, 2, 3),
            &x,
            &w1,
            &a1,
            Epilogue::BiasAct { bias: &b1, act: relu },
        ),
        gpu::matmul(
            ctx,
            MatmulForm::ABt,
            MatmulDims::new(1, 3, 2),
            &a1,
            &w2,
            &z2,
            Epilogue::BiasAct {
                bias: &b2,
                act: Activation::Identity,
            },
        ),
        gpu::activation_forward(ctx, &z2, &a2, Activation::Sigmoid),
        gpu::sigmoid_binary_cross_entropy(ctx, &z2, &y, &loss, &dz2, 1, 2),
        gpu::matmul(
            ctx,
            MatmulForm::AtB,
            MatmulDims::new(2, 1, 3),
            &dz2,
            &a1,
            &dw2,
            Epilogue::None,
        ),
        gpu::bias_grad(ctx, &dz2, &db2, 1, 2),
        gpu::matmul(
            ctx,
            MatmulForm::AB,
            MatmulDims::new(1, 2, 3),
            &dz2,
            &w2,
            &dz1,
            Epilogue::ActGrad {
                act_output: &a1,
                act: relu,
            },
        ),
        gpu::matmul(
            ctx,
            MatmulForm::AtB,
            MatmulDims::new(3, 1, 2),
            &dz1,
            &x,
            &dw1,
            Epilogue::None,
        ),
        gpu::bias_grad(ctx, &dz1, &db1, 1, 3),
        gpu::tick(ctx, &state),
        gpu::sgd_update(ctx, &w2, &dw2, &state),
        gpu::sgd_update(ctx, &b2, &db2, &state),
        gpu::sgd_update(ctx, &w1, &dw1, &state),
        gpu::sgd_update(ctx, &b1, &db1, &state),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .unwrap();
    ctx.run(&step.iter().collect::<Vec<_>>()).unwrap();

    let read = |b: &GpuBuffer<f32>| ctx.read(b).unwrap();
    let t = Trace {
        a1: read(&a1),
        z2: read(&z2),
        a2: read(&a2),
        loss: read(&loss)[0],
        dz2: read(&dz2),
        dw2: read(&dw2),
        db2: read(&db2),
        dw1: read(&dw1),
        db1: read(&db1),
        w2: read(&w2),
        b2: read(&b2),
        w1: read(&w1),
        b1: read(&b1),
    };
    check("gpu", &t);
}
