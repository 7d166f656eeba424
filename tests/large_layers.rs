//! Layers larger than one storage binding train by splitting across bindings; a network past
//! the device's buffer size is refused up front. Exercised on small layers against an
//! artificially lowered device limit, so CI stays fast.

mod common;

use std::sync::Arc;

use common::{assert_close, random_vec, rng};
use shadergrad::data::{Dataset, batches, epoch_order};
use shadergrad::gpu::{AdapterRequest, GpuContext, Operand};
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::ops::{Epilogue, MatmulDims, MatmulForm};
use shadergrad::train::{Backend, CpuBackend, GpuBackend};
use shadergrad::{Activation, Error, Optimizer, cpu, gpu};

const SMALL_BINDING: u64 = 256 * 1024;

fn small_device(binding: Option<u64>, buffer: Option<u64>) -> Option<Arc<GpuContext>> {
    common::gpu()?;
    let request = AdapterRequest {
        max_storage_binding_bytes: binding,
        max_buffer_bytes: buffer,
        ..AdapterRequest::from_env().unwrap()
    };
    Some(Arc::new(GpuContext::with_request(&request).unwrap()))
}

#[test]
fn strided_matmul_reads_and_writes_column_blocks() {
    let Some(ctx) = small_device(None, None) else { return };
    let mut r = rng("strided");
    // C[:, 5..5+n] (+)= A[:, 3..3+k] · B, inside wider row-major matrices.
    let (m, k, n, a_ld, c_ld) = (17, 9, 6, 20, 13);
    let a = random_vec(&mut r, m * a_ld, 1.0);
    let b = random_vec(&mut r, k * n, 1.0);
    let c0 = random_vec(&mut r, m * c_ld, 1.0);
    let a_block: Vec<f32> = (0..m)
        .flat_map(|i| a[i * a_ld + 3..i * a_ld + 3 + k].to_vec())
        .collect();
    let mut product = vec![0.0; m * n];
    cpu::matmul(
        MatmulForm::AB,
        MatmulDims::new(m, k, n),
        &a_block,
        &b,
        &mut product,
        Epilogue::None,
    )
    .unwrap();
    for accumulate in [false, true] {
        let mut want = c0.clone();
        for i in 0..m {
            for j in 0..n {
                let old = if accumulate { c0[i * c_ld + 5 + j] } else { 0.0 };
                want[i * c_ld + 5 + j] = old + product[i * n + j];
            }
        }
        let (ga, gb, gc) = (
            ctx.upload("a", &a).unwrap(),
            ctx.upload("b", &b).unwrap(),
            ctx.upload("c", &c0).unwrap(),
        );
        let d = gpu::matmul_strided(
            &ctx,
            MatmulForm::AB,
            MatmulDims::new(m, k, n),
            Operand {
                view: (&ga).into(),
                offset: 3,
                ld: a_ld,
            },
            Operand::dense(&gb, n),
            Operand {
                view: (&gc).into(),
                offset: 5,
                ld: c_ld,
            },
            Epilogue::None,
            accumulate,
        )
        .unwrap();
        ctx.run(&[&d]).unwrap();
        // Columns outside the block are untouched; inside, the product (plus the old value).
        assert_close(
            &format!("strided accumulate={accumulate}"),
            &ctx.read(&gc).unwrap(),
            &want,
            common::GPU_TOLERANCE,
        );
    }
    // An operand that would read past its view is an error, not an out-of-bounds read.
    let ga = ctx.upload("a", &a).unwrap();
    let gb = ctx.upload("b", &b).unwrap();
    let gc = ctx.zeros::<f32>("c", m * n).unwrap();
    let err = gpu::matmul_strided(
        &ctx,
        MatmulForm::AB,
        MatmulDims::new(m, k, n),
        Operand {
            view: (&ga).into(),
            offset: 12,
            ld: a_ld,
        },
        Operand::dense(&gb, n),
        Operand::dense(&gc, n),
        Epilogue::None,
        false,
    )
    .expect_err("out of range");
    assert!(matches!(err, Error::ShapeMismatch { what: "A", .. }), "{err}");
}

#[test]
fn layers_split_across_bindings_train_like_the_cpu() {
    let Some(ctx) = small_device(Some(SMALL_BINDING), None) else {
        return;
    };
    assert_eq!(ctx.limits().max_storage_buffer_binding_size, SMALL_BINDING);
    let mut r = rng("split layers");
    let (samples, dim, classes) = (300, 100, 10);
    let features = random_vec(&mut r, samples * dim, 1.0);
    let labels = common::random_labels(&mut r, samples, classes);
    let data = Dataset::classification(features, dim, labels, classes).unwrap();
    // Weights of 400 KB and 2.8 MB against a 256 KiB binding.
    let spec = NetworkSpec::new(&[100, 1000, 700, 10], Activation::Tanh, LossKind::SoftmaxCrossEntropy).unwrap();
    let network = Network::init(&spec, 3);
    // Adam's ε = 1e-6 rather than 1e-8: with 1e-8, a bias whose gradient sums to ~0 over the
    // batch moves by ±lr on the sign of rounding noise, which failed about 1 run in 20 on both
    // this engine and the one before it (same seed, same 1.68e-5) — Adam's conditioning, not
    // the splitting this test is about. Even so one draw drifted 1.04e-5 (seed
    // 1796461816830035687), hence `drift_tolerance`.
    let adam = Optimizer::Adam {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-6,
        weight_decay: 0.0,
    };
    for (optimizer, clip) in [(adam, 0.0), (Optimizer::momentum(0.02, 0.9), 1.0)] {
        let mut cpu = CpuBackend::new(network.clone(), &common::config(optimizer, 32, clip)).unwrap();
        let mut gpu = GpuBackend::new(Arc::clone(&ctx), &network, &common::config(optimizer, 32, clip)).unwrap();
        let splits: Vec<usize> = (0..3).map(|l| gpu.weight_bindings(l)).collect();
        eprintln!("weight bindings per layer: {splits:?}");
        assert!(splits[0] >= 2 && splits[1] >= 11 && splits[2] == 1, "{splits:?}");
        let order = epoch_order(samples, 0, 0, true);
        let all: Vec<&[u32]> = batches(&order, 32, false).take(6).collect();
        cpu.train_batches(&data, &all).unwrap();
        gpu.train_batches(&data, &all).unwrap();
        let (c, g) = (cpu.take_train_totals().unwrap(), gpu.take_train_totals().unwrap());
        assert!((c.loss_sum - g.loss_sum).abs() / c.loss_sum < 1e-5, "{c:?} vs {g:?}");
        let (cn, gn) = (cpu.network().unwrap(), gpu.network().unwrap());
        for (l, (a, b)) in cn.layers.iter().zip(&gn.layers).enumerate() {
            let tolerance = common::drift_tolerance(&optimizer, 1e-5);
            assert_close(
                &format!("{optimizer:?} layer {l} weight"),
                b.weight(),
                a.weight(),
                tolerance,
            );
            assert_close(&format!("{optimizer:?} layer {l} bias"), b.bias(), a.bias(), tolerance);
        }
        let (ce, ge) = (cpu.evaluate(&data).unwrap(), gpu.evaluate(&data).unwrap());
        assert!(
            (ce.loss_sum - ge.loss_sum).abs() / ce.loss_sum < 1e-5,
            "{ce:?} vs {ge:?}"
        );
    }
}

#[test]
fn a_network_past_the_buffer_size_is_refused_naming_layer_and_limit() {
    let Some(ctx) = small_device(Some(SMALL_BINDING), Some(1 << 20)) else {
        return;
    };
    let spec = NetworkSpec::new(&[100, 3000, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let err = GpuBackend::new(
        ctx,
        &Network::init(&spec, 0),
        &common::config(Optimizer::sgd(0.1), 16, 0.0),
    )
    .err()
    .expect("too large");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::LayerTooLarge {
                layer: 0,
                limit_name: "max_buffer_size",
                bytes: 1_200_000,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("layer 0") && text.contains("max_buffer_size of 1048576"),
        "{text}"
    );
}
