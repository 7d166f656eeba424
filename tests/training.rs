//! The training engine: GPU steps equal CPU steps, batches, evaluation, prediction, errors.

mod common;

use std::sync::Arc;

use rand::RngExt;
use shadergrad::data::{Dataset, batches, epoch_order};
use shadergrad::gpu::{AdapterRequest, GpuContext, Pairing, PairingRequest};
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::train::agreement::training_drift;
use shadergrad::train::{Backend, CpuBackend, Device, GpuBackend, LrSchedule, TrainConfig, Trainer};
use shadergrad::{Activation, Error, Optimizer};

/// A learnable synthetic problem: class = argmax of a fixed random projection of the input.
/// The data is fixed by `name` ([`common::fixed_rng`]): these tests train for many steps.
fn synthetic(samples: usize, dim: usize, classes: usize, name: &str) -> Dataset {
    let r = &mut common::fixed_rng(name);
    let projection = common::random_vec(r, dim * classes, 1.0);
    let features = common::random_vec(r, samples * dim, 1.0);
    let labels = features
        .chunks(dim)
        .map(|x| {
            let scores: Vec<f32> = projection
                .chunks(dim)
                .map(|p| p.iter().zip(x).map(|(a, b)| a * b).sum())
                .collect();
            shadergrad::cpu::metrics::argmax(&scores) as u32
        })
        .collect();
    Dataset::classification(features, dim, labels, classes).unwrap()
}

/// Regression targets in `[0, 1)` for random inputs, fixed by `name` as [`synthetic`]'s.
fn synthetic_values(samples: usize, dim: usize, width: usize, name: &str) -> Dataset {
    let mut r = common::fixed_rng(name);
    let features = common::random_vec(&mut r, samples * dim, 1.0);
    let targets = (0..samples * width).map(|_| r.random_range(0.0..1.0)).collect();
    Dataset::regression(features, dim, targets, width).unwrap()
}

fn ctx() -> Option<Arc<GpuContext>> {
    static SHARED: std::sync::OnceLock<Option<Arc<GpuContext>>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| common::gpu().map(|_| Arc::new(GpuContext::new().unwrap())))
        .clone()
}

fn relative(a: &[f32], b: &[f32]) -> f64 {
    common::relative_error(a, b)
}

/// Trains the same network on both backends for `steps` steps; returns the largest relative
/// drift of per-step losses and of the final parameters.
fn compare_backends(
    spec: &NetworkSpec,
    optimizer: Optimizer,
    data: &Dataset,
    batch: usize,
    steps: usize,
    clip: f32,
) -> (f64, f64) {
    compare_backends_on(ctx().expect("gpu"), spec, optimizer, data, batch, steps, clip)
}

/// [`compare_backends`] on a given device.
fn compare_backends_on(
    ctx: Arc<GpuContext>,
    spec: &NetworkSpec,
    optimizer: Optimizer,
    data: &Dataset,
    batch: usize,
    steps: usize,
    clip: f32,
) -> (f64, f64) {
    let network = Network::init(spec, 7);
    let mut cpu = CpuBackend::new(network.clone(), &common::config(optimizer, batch, clip)).unwrap();
    let mut gpu = GpuBackend::new(ctx, &network, &common::config(optimizer, batch, clip)).unwrap();
    let order = epoch_order(data.len(), 3, 0, true);
    let all: Vec<&[u32]> = batches(&order, batch, false).cycle().take(steps).collect();
    let drift = pollster::block_on(training_drift(&mut cpu, &mut gpu, data, &all)).unwrap();
    (drift.loss, drift.tensors)
}

#[test]
fn gpu_steps_equal_cpu_steps_for_every_loss_optimizer_and_architecture() {
    let _ = gpu_or_skip!();
    let class_data = synthetic(300, 17, 5, "class data");
    let value_data = synthetic_values(300, 17, 5, "value data");
    let optimizers = [
        Optimizer::sgd(0.1),
        Optimizer::momentum(0.05, 0.9),
        Optimizer::adam(3e-3),
        Optimizer::adamw(3e-3, 0.01),
        Optimizer::rmsprop(3e-3),
    ];
    let architectures: [(&[usize], Activation); 4] = [
        (&[17, 5], Activation::Identity),
        (&[17, 33, 5], Activation::Relu),
        (&[17, 31, 9, 5], Activation::Sigmoid),
        (&[17, 64, 3, 5], Activation::Tanh),
    ];
    for loss in LossKind::ALL {
        for optimizer in optimizers {
            for (sizes, act) in architectures {
                let spec = NetworkSpec::new(sizes, act, loss).unwrap();
                // Class labels for softmax (and one-hot for the others half the time), values otherwise.
                let data = if loss == LossKind::SoftmaxCrossEntropy || sizes.len() == 3 {
                    &class_data
                } else {
                    &value_data
                };
                let (loss_drift, param_drift) = compare_backends(&spec, optimizer, data, 32, 12, 0.0);
                eprintln!(
                    "{loss:?} {optimizer:?} {sizes:?} {act:?}: loss drift {loss_drift:.2e}, params {param_drift:.2e}"
                );
                assert!(
                    loss_drift <= 1e-4,
                    "{loss:?} {optimizer:?} {sizes:?}: loss drift {loss_drift:e}"
                );
                let tolerance = common::drift_tolerance(&optimizer, 1e-4);
                assert!(
                    param_drift <= tolerance,
                    "{loss:?} {optimizer:?} {sizes:?}: parameter drift {param_drift:e}"
                );
            }
        }
    }
}

#[test]
fn dropout_and_mixed_activations_agree_between_backends_over_50_steps() {
    let _ = gpu_or_skip!();
    let data = synthetic(800, 20, 4, "dropout data");
    for (text, optimizer) in [
        (
            "20,dense32,relu,dropout0.2,dense16,tanh,dropout0.5,dense4",
            Optimizer::sgd(0.1),
        ),
        (
            "20,dense32,relu,dropout0.2,dense16,tanh,dropout0.5,dense4",
            Optimizer::adam(1e-3),
        ),
        (
            "20,dropout0.1,dense24,leaky_relu,dense12,sigmoid,dense4",
            Optimizer::rmsprop(1e-3),
        ),
    ] {
        assert_model_agrees(ctx().expect("gpu"), "", text, optimizer, &data, 50);
    }
}

/// Trains the model `text` for `steps` batches of 32 on both backends and asserts the losses
/// (1e-4) and final parameters (1e-5, or [`common::drift_tolerance`]'s for Adam) agree; `label` names the run in the messages.
fn assert_model_agrees(
    ctx: Arc<GpuContext>,
    label: &str,
    text: &str,
    optimizer: Optimizer,
    data: &Dataset,
    steps: usize,
) {
    let spec = NetworkSpec::parse(text, LossKind::SoftmaxCrossEntropy).unwrap();
    let (loss_drift, param_drift) = compare_backends_on(ctx, &spec, optimizer, data, 32, steps, 0.0);
    eprintln!(
        "{label}{text} {optimizer:?}: {steps} steps, loss drift {loss_drift:.2e}, parameter drift {param_drift:.2e}"
    );
    assert!(loss_drift <= 1e-4, "{label}{text}: loss drift {loss_drift:e}");
    let tolerance = common::drift_tolerance(&optimizer, 1e-5);
    assert!(
        param_drift <= tolerance,
        "{label}{text}: parameter drift {param_drift:e}"
    );
}

/// Both GPU convolution paths (im2col + matmul, implicit GEMM), forced in turn, train three CNNs
/// as the CPU does. The matmul kernel is pinned too: a max-pool window whose two largest values
/// differ by less than rounding routes its gradient by the last bit, so the GPU's rounding must
/// not depend on which kernel timing picked on the day.
#[test]
fn cnns_agree_between_backends_over_30_steps() {
    let _ = gpu_or_skip!();
    for path in shadergrad::gpu::ConvPath::ALL {
        let request = shadergrad::gpu::AdapterRequest {
            conv_path: Some(path),
            matmul_kernel: Some(shadergrad::gpu::MatmulKernel::Tiled),
            ..shadergrad::gpu::AdapterRequest::from_env().unwrap()
        };
        cnns_agree_on(Arc::new(GpuContext::with_request(&request).unwrap()), path);
    }
}

fn cnns_agree_on(ctx: Arc<GpuContext>, path: shadergrad::gpu::ConvPath) {
    // On fresh random data about one run in six met a max-pool window whose two largest values
    // the backends order differently by rounding, which moves a parameter by ~1e-3 (a tie
    // broken differently, not an error): hence fixed data, as every test here.
    let data = synthetic(600, 64, 4, "cnn data");
    for (text, optimizer) in [
        (
            "1x8x8,conv4k3p1,relu,maxpool2,conv6k3,tanh,flatten,dense4",
            Optimizer::sgd(0.05),
        ),
        (
            "1x8x8,conv5k5p2,relu,maxpool3s2,flatten,dense8,relu,dropout0.2,dense4",
            Optimizer::adam(1e-3),
        ),
        (
            "4x4x4,conv3k2s2,sigmoid,conv2k1,flatten,dense4",
            Optimizer::momentum(0.05, 0.9),
        ),
        // Not Adam: a bias right before a batch norm has a zero gradient in exact arithmetic,
        // and Adam turns each backend's rounding noise there into full-size steps of its own
        // sign (harmless: the norm removes any bias; 2.5e-3 drift after 30 steps).
        (
            "1x8x8,conv4k3p1,batchnorm,relu,maxpool2,flatten,dense6,batchnorm,tanh,dense4",
            Optimizer::momentum(0.05, 0.9),
        ),
    ] {
        assert_model_agrees(Arc::clone(&ctx), &format!("{path:?} "), text, optimizer, &data, 30);
    }
}

/// Batch norm trains the same on both backends, running statistics included (the networks
/// compared hold them), after dense layers and on the input; its evaluation (running
/// statistics) agrees too.
#[test]
fn batch_norm_agrees_between_backends_over_30_steps() {
    let ctx = ctx().expect("gpu");
    let data = synthetic(600, 20, 4, "batch_norm_backends");
    for (text, optimizer) in [
        (
            "20,dense32,batchnorm,relu,dense16,relu,batchnorm,dense4",
            Optimizer::sgd(0.05),
        ),
        ("20,batchnorm,dense24,tanh,dropout0.2,dense4", Optimizer::adam(1e-3)),
    ] {
        assert_model_agrees(Arc::clone(&ctx), "", text, optimizer, &data, 30);
    }
    // Evaluation uses the running statistics: after training, both backends evaluate alike, and
    // differently from a batch-statistics forward.
    let spec = NetworkSpec::parse("20,dense16,batchnorm,relu,dense4", LossKind::SoftmaxCrossEntropy).unwrap();
    let config = common::config(Optimizer::sgd(0.1), 32, 0.0);
    let mut results = Vec::new();
    for device in [Device::Cpu, Device::Gpu(Arc::clone(&ctx))] {
        let mut trainer = Trainer::new(Network::init(&spec, 3), &device, config.clone()).unwrap();
        let report = trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
        let network = trainer.network().unwrap();
        let running_var = network.layers[1].get("running_var").unwrap().to_vec();
        assert!(running_var.iter().all(|&v| v > 0.0 && v != 1.0), "{running_var:?}");
        let tracked = network.layers[1].get("num_batches_tracked").unwrap()[0];
        assert_eq!(tracked, report.steps as f32, "one count per training batch");
        results.push((trainer.evaluate(&data).unwrap(), running_var));
    }
    let ((cpu_eval, cpu_var), (gpu_eval, gpu_var)) = (&results[0], &results[1]);
    assert!(
        relative(gpu_var, cpu_var) < 1e-4,
        "running variance drift {}",
        relative(gpu_var, cpu_var)
    );
    assert!(
        (cpu_eval.loss_sum - gpu_eval.loss_sum).abs() < 1e-4 * cpu_eval.loss_sum.abs().max(1.0),
        "{cpu_eval:?} vs {gpu_eval:?}"
    );
}

#[test]
fn a_mixed_activation_network_with_dropout_learns_on_both_backends() {
    let ctx = match ctx() {
        Some(c) => c,
        None => return,
    };
    let train = synthetic(3000, 32, 4, "mixed train");
    let spec = NetworkSpec::parse(
        "32,dense64,relu,dropout0.2,dense32,tanh,dense16,sigmoid,dense4",
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap();
    for device in [Device::Cpu, Device::Gpu(ctx)] {
        let config = TrainConfig {
            optimizer: Optimizer::adam(3e-3),
            epochs: 6,
            batch_size: 64,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(Network::init(&spec, 2), &device, config).unwrap();
        let reports = trainer.fit(&train, Some(&train), |_| {}).unwrap();
        let (first, last) = (&reports[0], reports.last().unwrap());
        let accuracy = last.test.unwrap().accuracy().unwrap();
        eprintln!(
            "{}: train loss {:.3} → {:.3}, accuracy {accuracy:.3}",
            trainer.backend_name(),
            first.train.mean_loss(),
            last.train.mean_loss()
        );
        assert!(last.train.mean_loss() < 0.6 * first.train.mean_loss());
        assert!(accuracy > 0.8, "{}: accuracy {accuracy}", trainer.backend_name());
    }
}

#[test]
fn gradient_clipping_agrees_between_backends() {
    let _ = gpu_or_skip!();
    let data = synthetic(200, 10, 4, "clip data");
    let spec = NetworkSpec::new(&[10, 20, 4], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let (loss_drift, param_drift) = compare_backends(&spec, Optimizer::sgd(0.5), &data, 50, 8, 0.1);
    eprintln!("clipped: loss drift {loss_drift:.2e}, params {param_drift:.2e}");
    assert!(loss_drift <= 1e-4 && param_drift <= 1e-4);
}

#[test]
fn losses_agree_over_100_steps() {
    let _ = gpu_or_skip!();
    let data = synthetic(1000, 64, 10, "100 steps");
    let spec = NetworkSpec::new(&[64, 128, 64, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let (loss_drift, param_drift) = compare_backends(&spec, Optimizer::adam(1e-3), &data, 64, 100, 0.0);
    eprintln!("100 steps: worst per-step loss drift {loss_drift:.2e}, final parameter drift {param_drift:.2e}");
    assert!(loss_drift <= 1e-3, "loss drift {loss_drift:e}");
}

#[test]
fn steps_per_submit_does_not_change_results() {
    let ctx = match ctx() {
        Some(c) => c,
        None => return,
    };
    let data = synthetic(200, 12, 3, "submit grouping");
    let spec = NetworkSpec::new(&[12, 16, 3], Activation::Tanh, LossKind::SoftmaxCrossEntropy).unwrap();
    let network = Network::init(&spec, 1);
    let order = epoch_order(data.len(), 1, 0, true);
    let all: Vec<&[u32]> = batches(&order, 16, false).collect();
    let run = |steps_per_submit: usize| {
        let mut gpu = GpuBackend::new(
            Arc::clone(&ctx),
            &network,
            &common::config(Optimizer::momentum(0.1, 0.9), 16, 0.0),
        )
        .unwrap();
        gpu.set_steps_per_submit(steps_per_submit);
        gpu.train_batches(&data, &all).unwrap();
        (gpu.take_train_totals().unwrap(), gpu.network().unwrap())
    };
    let (t1, n1) = run(1);
    let (t5, n5) = run(5);
    assert_eq!(t1.samples, 200);
    assert_eq!(t1, t5, "totals differ between 1 and 5 steps per submit");
    assert_eq!(n1, n5, "parameters differ between 1 and 5 steps per submit");
}

#[test]
fn last_partial_batch_is_trained_unless_dropped() {
    let data = synthetic(130, 6, 3, "partial");
    let spec = NetworkSpec::new(&[6, 3], Activation::Identity, LossKind::SoftmaxCrossEntropy).unwrap();
    let mut devices = vec![Device::Cpu];
    if let Some(ctx) = ctx() {
        devices.push(Device::Gpu(ctx));
    }
    for device in devices {
        for (drop_last, steps, samples) in [(false, 3, 130), (true, 2, 128)] {
            let config = TrainConfig {
                batch_size: 64,
                epochs: 1,
                drop_last,
                ..TrainConfig::default()
            };
            let mut trainer = Trainer::new(Network::init(&spec, 0), &device, config).unwrap();
            let report = trainer.train_epoch(&data, None, &mut |_, _| {}).unwrap();
            assert_eq!(report.steps, steps, "{}", trainer.backend_name());
            assert_eq!(report.train.samples, samples, "{}", trainer.backend_name());
        }
    }
}

#[test]
fn evaluate_and_predict_agree_between_backends() {
    let ctx = match ctx() {
        Some(c) => c,
        None => return,
    };
    let data = synthetic(2500, 20, 7, "evaluate");
    for loss in LossKind::ALL {
        let spec = NetworkSpec::new(&[20, 30, 7], Activation::LeakyRelu, loss).unwrap();
        let network = Network::init(&spec, 11);
        let mut cpu = CpuBackend::new(network.clone(), &common::config(Optimizer::sgd(0.1), 32, 0.0)).unwrap();
        let mut gpu = GpuBackend::new(
            Arc::clone(&ctx),
            &network,
            &common::config(Optimizer::sgd(0.1), 32, 0.0),
        )
        .unwrap();
        let (c, g) = (cpu.evaluate(&data).unwrap(), gpu.evaluate(&data).unwrap());
        assert_eq!((c.samples, g.samples), (2500, 2500));
        assert!(
            (c.loss_sum - g.loss_sum).abs() / c.loss_sum <= 1e-5,
            "{loss:?}: {c:?} vs {g:?}"
        );
        assert!(c.correct.abs_diff(g.correct) <= 1, "{loss:?}: {c:?} vs {g:?}");
        // Evaluating twice gives the same totals (accumulators are reset).
        assert_eq!(gpu.evaluate(&data).unwrap(), g);

        let x = common::random_vec(&mut common::rng("predict"), 3 * 20, 1.0);
        let (pc, pg) = (cpu.predict(&x, 3).unwrap(), gpu.predict(&x, 3).unwrap());
        assert!(relative(&pg, &pc) <= 1e-5, "{loss:?}");
        // More rows than one evaluation chunk: the GPU predicts chunk by chunk.
        let many = common::random_vec(&mut common::rng("predict many"), 2345 * 20, 1.0);
        let (mc, mg) = (cpu.predict(&many, 2345).unwrap(), gpu.predict(&many, 2345).unwrap());
        assert_eq!(mg.len(), 2345 * 7);
        assert!(relative(&mg, &mc) <= 1e-5, "{loss:?}: {}", relative(&mg, &mc));
        if loss == LossKind::SoftmaxCrossEntropy {
            for row in pc.chunks(7) {
                assert!(
                    (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                    "probabilities sum to 1: {row:?}"
                );
            }
        }
    }
}

#[test]
fn training_reduces_loss_and_learns_on_both_backends() {
    let train = synthetic(2000, 16, 4, "learn");
    let spec = NetworkSpec::new(&[16, 64, 4], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let mut devices = vec![Device::Cpu];
    if let Some(ctx) = ctx() {
        devices.push(Device::Gpu(ctx));
    }
    for device in devices {
        let config = TrainConfig {
            epochs: 8,
            batch_size: 50,
            optimizer: Optimizer::adam(3e-3),
            schedule: LrSchedule::Cosine { min_lr: 0.0 },
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(Network::init(&spec, 0), &device, config).unwrap();
        let reports = trainer.fit(&train, Some(&train), |_| {}).unwrap();
        let (first, last) = (&reports[0], reports.last().unwrap());
        let acc = last.test.unwrap().accuracy().unwrap();
        eprintln!(
            "{}: loss {:.3} → {:.3}, accuracy {:.1}%",
            trainer.backend_name(),
            first.train.mean_loss(),
            last.train.mean_loss(),
            100.0 * acc
        );
        assert!(last.train.mean_loss() < 0.5 * first.train.mean_loss());
        assert!(acc > 0.9, "accuracy {acc}");
    }
}

#[test]
fn data_that_does_not_fit_the_network_is_rejected() {
    let data = synthetic(10, 6, 3, "mismatch");
    let values = synthetic_values(10, 6, 3, "mismatch values");
    let cases: [(&[usize], LossKind, &Dataset, &str); 4] = [
        (
            &[5, 3],
            LossKind::SoftmaxCrossEntropy,
            &data,
            "6 features but the network takes 5 inputs",
        ),
        (
            &[6, 4],
            LossKind::SoftmaxCrossEntropy,
            &data,
            "3 classes but the network has 4 outputs",
        ),
        (&[6, 3], LossKind::SoftmaxCrossEntropy, &values, "needs class labels"),
        (
            &[6, 2],
            LossKind::MeanSquaredError,
            &values,
            "3 target values per sample",
        ),
    ];
    let mut devices = vec![Device::Cpu];
    if let Some(ctx) = ctx() {
        devices.push(Device::Gpu(ctx));
    }
    for device in &devices {
        for (sizes, loss, d, message) in cases {
            let spec = NetworkSpec::new(sizes, Activation::Relu, loss).unwrap();
            let mut trainer = Trainer::new(Network::init(&spec, 0), device, TrainConfig::default()).unwrap();
            let err = trainer.train_epoch(d, None, &mut |_, _| {}).unwrap_err();
            assert!(
                matches!(err, Error::DatasetMismatch(_)) && err.to_string().contains(message),
                "{err}"
            );
            let err = trainer.evaluate(d).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
        let spec = NetworkSpec::new(&[6, 3], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
        let mut trainer = Trainer::new(
            Network::init(&spec, 0),
            device,
            TrainConfig {
                batch_size: 4,
                ..TrainConfig::default()
            },
        )
        .unwrap();
        let err = trainer
            .backend_mut()
            .train_batches(&data, &[&[0, 1, 2, 3, 4]])
            .unwrap_err();
        assert!(err.to_string().contains("batches hold 1 to 4"), "{err}");
        let err = trainer.backend_mut().train_batches(&data, &[&[0, 10]]).unwrap_err();
        assert!(
            err.to_string().contains("names sample 10 of a 10-sample dataset"),
            "{err}"
        );
        let err = trainer.predict(&[0.0; 5], 1).unwrap_err();
        assert!(err.to_string().contains("features has 5 elements, expected 6"), "{err}");
        let bad = Trainer::new(
            Network::init(&spec, 0),
            device,
            TrainConfig {
                batch_size: 0,
                ..TrainConfig::default()
            },
        );
        assert!(matches!(bad.err(), Some(Error::InvalidBatchSize { got: 0, .. })));
    }
}

#[test]
fn steady_training_creates_no_pipelines_or_bind_groups() {
    let Some(_) = common::gpu() else { return };
    // A context of its own, so other tests' work does not move the counters.
    let ctx = Arc::new(GpuContext::new().unwrap());
    let data = synthetic(1000, 30, 4, "steady");
    let spec = NetworkSpec::new(&[30, 40, 4], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 64,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(Network::init(&spec, 0), &Device::Gpu(Arc::clone(&ctx)), config).unwrap();
    // Epoch 1 warms up: programs for the full batch, the 40-sample tail and evaluation.
    trainer.train_epoch(&data, Some(&data), &mut |_, _| {}).unwrap();
    let (pipelines, dispatches) = (ctx.compiled_pipelines(), ctx.prepared_dispatches());
    trainer.train_epoch(&data, Some(&data), &mut |_, _| {}).unwrap();
    trainer.train_epoch(&data, Some(&data), &mut |_, _| {}).unwrap();
    assert_eq!(ctx.compiled_pipelines(), pipelines, "pipelines compiled after warm-up");
    assert_eq!(
        ctx.prepared_dispatches(),
        dispatches,
        "bind groups created after warm-up"
    );
}

/// The step's launch budget: paired, one forward and one backward dispatch per dense layer (a
/// layer's weight and input gradients share one launch), plus the gather, the loss and the
/// update; separate, one more per layer that has an input gradient. The matmul kernel is pinned
/// (tiled: every shape class can run it): whether a pair binds depends on the kernel, and which
/// kernel timing picks for each layer varies from run to run (a cold cache on SwiftShader once
/// gave one layer the tiled pair and another the row-block one, which it cannot bind).
#[test]
fn a_paired_training_step_takes_two_dispatches_per_dense_layer_and_three_more() {
    let _ = gpu_or_skip!();
    let data = synthetic(100, 30, 4, "dispatch_budget");
    let kernel = shadergrad::gpu::MatmulKernel::Tiled;
    for pairing in Pairing::ALL {
        let request = AdapterRequest {
            pairing: PairingRequest::Forced(pairing),
            matmul_kernel: Some(kernel),
            ..AdapterRequest::from_env().unwrap()
        };
        let ctx = Arc::new(GpuContext::with_request(&request).unwrap());
        // A device that cannot bind the pair's storage buffers runs every layer's gradients as
        // two launches, whatever is forced.
        let binds_pair = ctx.limits().max_storage_buffers_per_shader_stage >= kernel.pair_storage_buffers();
        for widths in [&[30, 4][..], &[30, 40, 4], &[30, 64, 40, 4], &[30, 64, 64, 40, 4]] {
            let spec = NetworkSpec::new(widths, Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
            for optimizer in [Optimizer::sgd(0.1), Optimizer::adam(1e-3)] {
                let config = common::config(optimizer, 32, 0.0);
                let mut gpu = GpuBackend::new(Arc::clone(&ctx), &Network::init(&spec, 0), &config).unwrap();
                let order: Vec<u32> = (0..32).collect();
                gpu.train_batches(&data, &[&order]).unwrap();
                let layers = widths.len() - 1;
                let expected = match if binds_pair { pairing } else { Pairing::Separate } {
                    Pairing::Paired => 2 * layers + 3,
                    Pairing::Separate => 3 * layers + 2,
                };
                assert_eq!(
                    gpu.dispatches_per_step(),
                    Some(expected),
                    "{pairing:?} {widths:?} {optimizer:?}: {:?}",
                    gpu.kernel_plan()
                );
            }
        }
    }
}

/// Each dense layer's gradients paired in one launch or run as two, forced in turn: training
/// follows the CPU either way (the default on a CPU adapter is separate, so the paired form is
/// exercised here).
#[test]
fn paired_and_separate_layer_gradients_agree_with_the_cpu() {
    let _ = gpu_or_skip!();
    // On fresh random data (SHADERGRAD_TEST_SEED=1796475524620586512, fewer than 1 draw in 30)
    // a ReLU input within rounding of zero fell on different sides on the two backends under SGD
    // at 0.1, moving a bias by 3e-3: a tie, not an error of either kernel. Hence fixed data.
    let data = synthetic(300, 17, 5, "pairing data");
    for pairing in Pairing::ALL {
        let request = AdapterRequest {
            pairing: PairingRequest::Forced(pairing),
            ..AdapterRequest::from_env().unwrap()
        };
        let ctx = Arc::new(GpuContext::with_request(&request).unwrap());
        for (sizes, act, optimizer) in [
            (&[17, 33, 5][..], Activation::Relu, Optimizer::sgd(0.1)),
            (&[17, 31, 9, 5], Activation::Sigmoid, Optimizer::adam(3e-3)),
            (&[17, 64, 3, 5], Activation::Tanh, Optimizer::momentum(0.05, 0.9)),
        ] {
            let spec = NetworkSpec::new(sizes, act, LossKind::SoftmaxCrossEntropy).unwrap();
            let (loss_drift, param_drift) = compare_backends_on(Arc::clone(&ctx), &spec, optimizer, &data, 32, 12, 0.0);
            eprintln!("{pairing:?} {sizes:?}: loss drift {loss_drift:.2e}, params {param_drift:.2e}");
            assert!(loss_drift <= 1e-4, "{pairing:?} {sizes:?}: loss drift {loss_drift:e}");
            assert!(
                param_drift <= 1e-4,
                "{pairing:?} {sizes:?}: parameter drift {param_drift:e}"
            );
        }
    }
}

#[test]
fn learning_rate_schedules() {
    assert_eq!(LrSchedule::Constant.lr(0.1, 7, 10), 0.1);
    let step = LrSchedule::Step { every: 2, gamma: 0.5 };
    let lrs: Vec<f32> = (0..5).map(|e| step.lr(1.0, e, 5)).collect();
    assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.25]);
    let cosine = LrSchedule::Cosine { min_lr: 0.0 };
    assert_eq!(cosine.lr(1.0, 0, 4), 1.0);
    assert!((cosine.lr(1.0, 2, 4) - 0.5).abs() < 1e-6);
    assert!((cosine.lr(1.0, 3, 4) - 0.146_446_6).abs() < 1e-6);
    assert_eq!(
        "step:3:0.1".parse::<LrSchedule>().unwrap(),
        LrSchedule::Step { every: 3, gamma: 0.1 }
    );
    assert_eq!(
        "cosine:0.001".parse::<LrSchedule>().unwrap(),
        LrSchedule::Cosine { min_lr: 0.001 }
    );
    assert!("linear".parse::<LrSchedule>().is_err());
}

#[test]
fn conv_grids_past_the_device_limit_are_refused_at_planning() {
    let Some(ctx) = ctx() else { return };
    let limit = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let text = format!("1x4x4,conv{}k1,flatten,dense2", limit + 1);
    let spec = NetworkSpec::parse(&text, LossKind::SoftmaxCrossEntropy).unwrap();
    let config = TrainConfig {
        batch_size: 1,
        ..TrainConfig::default()
    };
    let err = Device::Gpu(ctx).check_model(&spec, &config).unwrap_err();
    assert!(matches!(err, shadergrad::Error::DispatchTooLarge { .. }), "{err}");
}

/// Training is reproducible bit for bit on each backend: the same CNN trained twice gives the
/// same parameters, whatever the threads (CPU) did. (Between backends only closeness holds.)
#[test]
fn cnn_training_is_bitwise_reproducible_on_each_backend() {
    let data = synthetic(600, 64, 4, "cnn data");
    let spec = NetworkSpec::parse(
        "1x8x8,conv4k3p1,relu,maxpool2,conv6k3,tanh,flatten,dense8,relu,dropout0.2,dense4",
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap();
    let network = Network::init(&spec, 7);
    let config = common::config(Optimizer::adam(1e-3), 32, 0.0);
    let order = epoch_order(data.len(), 3, 0, true);
    let all: Vec<&[u32]> = batches(&order, 32, false).take(15).collect();
    let train = |backend: &mut dyn Backend| {
        for b in &all {
            backend.train_batches(&data, &[b]).unwrap();
        }
        backend.network().unwrap()
    };
    let cpu = || train(&mut CpuBackend::new(network.clone(), &config).unwrap());
    assert_eq!(cpu(), cpu(), "CPU");
    if let Some(ctx) = ctx() {
        let gpu = || train(&mut GpuBackend::new(Arc::clone(&ctx), &network, &config).unwrap());
        assert_eq!(gpu(), gpu(), "GPU");
    }
}
