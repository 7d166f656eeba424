//! shadergrad in the browser: the page's handle on the library (`web/index.html`, `web/app.js`).
//!
//! A [`Session`] trains a model on the page's WebGPU device through the very kernels the native
//! tests check against their CPU twins, or on the CPU backend (one thread) where the browser has
//! no WebGPU; it classifies a drawn digit with `classify`'s preprocessing and saves and loads
//! the native checkpoints. Every GPU readback is awaited (the page never blocks), so each method
//! that reads the device returns a `Promise`; the page calls one method at a time.

// A session's state is borrowed for the whole of a call, awaits included: the page is one
// thread and calls one method at a time, and a call made while another runs gets an error
// ("busy"), not a panic.
#![allow(clippy::await_holding_refcell_ref)]

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use shadergrad::data::{Dataset, Mnist, batches, epoch_order};
use shadergrad::gpu::{AdapterRequest, ConvPath, GpuContext, MatmulKernel};
use shadergrad::model::{Checkpoint, LossKind, Network, NetworkSpec, Progress};
use shadergrad::train::agreement::training_drift;
use shadergrad::train::{Backend, CpuBackend, GpuBackend, LrSchedule, Totals, TrainConfig};
use shadergrad::{Optimizer, Result};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

fn js_error(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// Training steps recorded into one GPU submit (the native default).
const STEPS_PER_SUBMIT: usize = 8;

/// The device a run trains on.
enum Engine {
    Cpu(Box<CpuBackend>),
    Gpu(Box<GpuBackend>),
}

impl Engine {
    fn new(ctx: Option<&Arc<GpuContext>>, network: Network, config: &TrainConfig) -> Result<Self> {
        Ok(match ctx {
            Some(ctx) => Engine::Gpu(Box::new(GpuBackend::new(Arc::clone(ctx), &network, config)?)),
            None => Engine::Cpu(Box::new(CpuBackend::new(network, config)?)),
        })
    }

    fn backend(&mut self) -> &mut dyn Backend {
        match self {
            Engine::Cpu(b) => b.as_mut(),
            Engine::Gpu(b) => b.as_mut(),
        }
    }

    async fn take_train_totals(&mut self) -> Result<Totals> {
        match self {
            Engine::Cpu(b) => b.take_train_totals(),
            Engine::Gpu(b) => b.take_train_totals_async().await,
        }
    }

    async fn evaluate(&mut self, data: &Dataset) -> Result<Totals> {
        match self {
            Engine::Cpu(b) => b.evaluate(data),
            Engine::Gpu(b) => b.evaluate_async(data).await,
        }
    }

    async fn predict(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        match self {
            Engine::Cpu(b) => b.predict(features, rows),
            Engine::Gpu(b) => b.predict_async(features, rows).await,
        }
    }

    async fn network(&mut self) -> Result<Network> {
        match self {
            Engine::Cpu(b) => b.network(),
            Engine::Gpu(b) => b.network_async().await,
        }
    }
}

/// One model being trained (or loaded): where its epoch stands.
struct Run {
    engine: Engine,
    config: TrainConfig,
    epoch: usize,
    order: Vec<u32>,
    /// Batches of this epoch already trained.
    done: usize,
    steps: u64,
    /// This epoch's training totals read so far (`progress` reads them in parts).
    epoch_totals: Totals,
}

impl Run {
    fn batch_count(&self) -> usize {
        batches(&self.order, self.config.batch_size, self.config.drop_last).count()
    }
}

struct State {
    ctx: Option<Arc<GpuContext>>,
    data: Option<Mnist>,
    run: Option<Run>,
}

/// The learning rate of `epoch` under the run's schedule (past the last epoch: its floor).
fn epoch_lr(config: &TrainConfig, epoch: usize) -> f32 {
    config
        .schedule
        .lr(config.optimizer.lr(), epoch.min(config.epochs - 1), config.epochs)
}

/// Adds a part's totals to the epoch's.
fn add_totals(epoch: &mut Totals, part: &Totals) {
    epoch.loss_sum += part.loss_sum;
    epoch.correct += part.correct;
    epoch.samples += part.samples;
    epoch.has_accuracy = part.has_accuracy;
}

/// The page's training session.
#[wasm_bindgen]
pub struct Session {
    state: Rc<RefCell<State>>,
    device: String,
}

/// The session's state for one call, or an error while another call holds it.
fn borrow(state: &Rc<RefCell<State>>) -> std::result::Result<std::cell::RefMut<'_, State>, JsValue> {
    state
        .try_borrow_mut()
        .map_err(|_| js_error("busy: the session runs one call at a time (await the previous one)"))
}

/// The model text for a preset name or a model in the text form.
fn model_spec(model: &str) -> Result<NetworkSpec> {
    match NetworkSpec::find_preset(model) {
        Ok(preset) => NetworkSpec::parse(preset.text, LossKind::SoftmaxCrossEntropy),
        Err(_) => NetworkSpec::parse(model, LossKind::SoftmaxCrossEntropy),
    }
}

#[wasm_bindgen]
impl Session {
    /// Opens a session on the browser's WebGPU device (`gpu`), or on the CPU backend.
    pub async fn open(gpu: bool) -> std::result::Result<Session, JsValue> {
        let ctx = if gpu {
            let ctx = GpuContext::with_request_async(&AdapterRequest::default())
                .await
                .map_err(|e| match e {
                    shadergrad::Error::NoAdapter { .. } => js_error(
                        "this browser offers no WebGPU adapter (WebGPU may be turned off, or the GPU blocklisted)",
                    ),
                    other => js_error(other),
                })?;
            Some(Arc::new(ctx))
        } else {
            None
        };
        let device = ctx.as_ref().map_or_else(
            || "CPU backend (WebAssembly, one thread)".to_string(),
            |c| {
                // A browser may keep the adapter's name to itself.
                let info = c.adapter_info();
                let name = if info.name.is_empty() {
                    "unnamed adapter"
                } else {
                    &info.name
                };
                format!(
                    "WebGPU: {name} ({:?} device; {})",
                    info.device_type,
                    c.describe_subgroups()
                )
            },
        );
        Ok(Session {
            state: Rc::new(RefCell::new(State {
                ctx,
                data: None,
                run: None,
            })),
            device,
        })
    }

    /// The device the session trains on.
    pub fn device(&self) -> String {
        self.device.clone()
    }

    /// Loads an MNIST-style set from its four IDX files' bytes (gzip or raw); returns a line
    /// saying what was loaded.
    pub fn load_mnist(
        &self,
        train_images: &[u8],
        train_labels: &[u8],
        test_images: &[u8],
        test_labels: &[u8],
    ) -> std::result::Result<String, JsValue> {
        let mnist = Mnist::from_idx_bytes(
            (train_images, train_labels),
            (test_images, test_labels),
            Path::new("mnist-sample"),
        )
        .map_err(js_error)?;
        let line = format!("{} training and {} test images", mnist.train.len(), mnist.test.len());
        borrow(&self.state)?.data = Some(mnist);
        Ok(line)
    }

    /// Starts training `model` (a preset name, `mlp`, `lenet`, `lenet_bn`, or a model in the
    /// text form) from a seeded initialisation with Adam at `lr`, decayed over `epochs` on a
    /// cosine as the native `mnist` example does; returns the model's summary.
    pub fn start(
        &self,
        model: &str,
        lr: f32,
        batch_size: usize,
        seed: u64,
        epochs: usize,
    ) -> std::result::Result<String, JsValue> {
        let spec = model_spec(model).map_err(js_error)?;
        let network = Network::init(&spec, seed);
        self.begin(network, (lr, epochs), batch_size, seed)
    }

    fn begin(
        &self,
        network: Network,
        (lr, epochs): (f32, usize),
        batch_size: usize,
        seed: u64,
    ) -> std::result::Result<String, JsValue> {
        let mut state = borrow(&self.state)?;
        let summary = network.summary();
        let config = TrainConfig {
            optimizer: Optimizer::adam(lr),
            schedule: LrSchedule::Cosine { min_lr: 0.0 },
            epochs: epochs.max(1),
            batch_size,
            seed,
            ..TrainConfig::default()
        };
        let mut engine = Engine::new(state.ctx.as_ref(), network, &config).map_err(js_error)?;
        engine
            .backend()
            .set_learning_rate(epoch_lr(&config, 0))
            .map_err(js_error)?;
        if let Engine::Gpu(gpu) = &mut engine {
            gpu.set_steps_per_submit(STEPS_PER_SUBMIT);
        }
        let len = state.data.as_ref().map_or(0, |d| d.train.len());
        state.run = Some(Run {
            order: epoch_order(len, seed, 0, true),
            engine,
            config,
            epoch: 0,
            done: 0,
            steps: 0,
            epoch_totals: Totals::default(),
        });
        Ok(summary)
    }

    /// Trains up to `max_batches` more batches of the current epoch; returns how many it
    /// trained (0 once the epoch is complete: then await [`Session::finish_epoch`]).
    pub fn train(&self, max_batches: usize) -> std::result::Result<usize, JsValue> {
        let mut state = borrow(&self.state)?;
        let State { data, run, .. } = &mut *state;
        let (Some(data), Some(run)) = (data.as_ref(), run.as_mut()) else {
            return Err(js_error("load the data and start a model first"));
        };
        let all: Vec<&[u32]> = batches(&run.order, run.config.batch_size, run.config.drop_last)
            .skip(run.done)
            .take(max_batches)
            .collect();
        for group in all.chunks(STEPS_PER_SUBMIT) {
            run.engine
                .backend()
                .train_batches(&data.train, group)
                .map_err(js_error)?;
        }
        run.done += all.len();
        run.steps += all.len() as u64;
        Ok(all.len())
    }

    /// Reads the training totals since the last read (one small readback) and adds them to the
    /// epoch's. Resolves to `{loss, accuracy, samples}` of the part just read, for a live curve.
    pub fn progress(&self) -> js_sys::Promise {
        let state = Rc::clone(&self.state);
        future_to_promise(async move {
            let mut state = borrow(&state)?;
            let run = state.run.as_mut().ok_or_else(|| js_error("start a model first"))?;
            let part = run.engine.take_train_totals().await.map_err(js_error)?;
            add_totals(&mut run.epoch_totals, &part);
            let report = serde_json::json!({
                "loss": part.mean_loss(), "accuracy": part.accuracy(), "samples": part.samples,
            });
            js_sys::JSON::parse(&report.to_string())
        })
    }

    /// Batches in an epoch of the current run.
    pub fn batches_per_epoch(&self) -> usize {
        self.state
            .try_borrow()
            .map_or(0, |s| s.run.as_ref().map_or(0, Run::batch_count))
    }

    /// Ends the epoch: reads its training totals, evaluates on the test set, and starts the
    /// next epoch's order. Resolves to `{epoch, train_loss, train_accuracy, test_loss,
    /// test_accuracy, samples}`.
    pub fn finish_epoch(&self) -> js_sys::Promise {
        let state = Rc::clone(&self.state);
        future_to_promise(async move {
            let mut state = borrow(&state)?;
            let State { data, run, .. } = &mut *state;
            let (Some(data), Some(run)) = (data.as_ref(), run.as_mut()) else {
                return Err(js_error("load the data and start a model first"));
            };
            let part = run.engine.take_train_totals().await.map_err(js_error)?;
            add_totals(&mut run.epoch_totals, &part);
            let train = std::mem::take(&mut run.epoch_totals);
            let test = run.engine.evaluate(&data.test).await.map_err(js_error)?;
            run.epoch += 1;
            run.done = 0;
            let lr = epoch_lr(&run.config, run.epoch);
            run.engine.backend().set_learning_rate(lr).map_err(js_error)?;
            run.order = epoch_order(data.train.len(), run.config.seed, run.epoch, true);
            let report = serde_json::json!({
                "epoch": run.epoch,
                "train_loss": train.mean_loss(),
                "train_accuracy": train.accuracy(),
                "test_loss": test.mean_loss(),
                "test_accuracy": test.accuracy(),
                "samples": train.samples,
            });
            js_sys::JSON::parse(&report.to_string())
        })
    }

    /// Class probabilities of a drawn digit: `width × height` RGBA pixels (a canvas's
    /// `ImageData`), preprocessed as the native `classify` example preprocesses a PNG.
    pub fn classify(&self, width: u32, height: u32, rgba: Vec<u8>) -> js_sys::Promise {
        let state = Rc::clone(&self.state);
        future_to_promise(async move {
            let features = shadergrad::data::image::rgba_digit_features(width, height, &rgba, Path::new("the canvas"))
                .map_err(js_error)?;
            let mut state = borrow(&state)?;
            let run = state
                .run
                .as_mut()
                .ok_or_else(|| js_error("train or load a model first"))?;
            let probabilities = run.engine.predict(&features, 1).await.map_err(js_error)?;
            Ok(js_sys::Float32Array::from(&probabilities[..]).into())
        })
    }

    /// The model as a checkpoint (safetensors bytes) that the native `classify` example and
    /// the README's PyTorch snippet load.
    pub fn checkpoint(&self) -> js_sys::Promise {
        let state = Rc::clone(&self.state);
        future_to_promise(async move {
            let mut state = borrow(&state)?;
            let run = state
                .run
                .as_mut()
                .ok_or_else(|| js_error("train or load a model first"))?;
            let network = run.engine.network().await.map_err(js_error)?;
            let checkpoint = Checkpoint {
                network,
                optimizer: None,
                progress: Progress {
                    epoch: run.epoch,
                    step: run.steps,
                    seed: run.config.seed,
                },
            };
            let bytes = checkpoint.to_bytes().map_err(js_error)?;
            Ok(js_sys::Uint8Array::from(&bytes[..]).into())
        })
    }

    /// Loads a checkpoint (one the native trainer wrote, or this page saved) to classify with
    /// or to train further; returns the model's summary.
    pub fn load_checkpoint(
        &self,
        bytes: &[u8],
        lr: f32,
        batch_size: usize,
        epochs: usize,
    ) -> std::result::Result<String, JsValue> {
        let checkpoint = Checkpoint::from_bytes(bytes, None).map_err(js_error)?;
        let seed = checkpoint.progress.seed;
        self.begin(checkpoint.network, (lr, epochs), batch_size, seed)
    }
}

/// The kernel checks the page runs in a real browser: for models that together use every
/// shader module (matmul and its paired form, activations, each loss head, every optimizer,
/// dropout, both convolution paths, max pooling, batch norm, the batch gather), train the same
/// network for a few steps on WebGPU and on the in-browser CPU twin, and compare the losses and
/// every tensor. Resolves to a JSON report `{checks: [{name, loss_drift, param_drift, ok}], ok}`.
#[wasm_bindgen]
pub fn check_kernels() -> js_sys::Promise {
    future_to_promise(async move {
        let mut checks = Vec::new();
        for (name, text, loss, optimizer, (matmul_kernel, conv_path)) in CHECKS {
            let request = AdapterRequest {
                matmul_kernel,
                conv_path,
                ..AdapterRequest::default()
            };
            let ctx = Arc::new(GpuContext::with_request_async(&request).await.map_err(js_error)?);
            let (loss_drift, param_drift) = compare(Arc::clone(&ctx), text, loss, optimizer)
                .await
                .map_err(js_error)?;
            let ok = loss_drift <= 1e-4 && param_drift <= 1e-4;
            let kernels: std::collections::BTreeSet<&str> =
                ctx.matmul_choices().iter().map(|(_, c)| c.kernel.name()).collect();
            checks.push(serde_json::json!({
                "name": name, "model": text, "loss_drift": loss_drift, "param_drift": param_drift, "ok": ok,
                "matmul_kernels": kernels,
            }));
        }
        let ok = checks.iter().all(|c| c["ok"] == true);
        js_sys::JSON::parse(&serde_json::json!({ "checks": checks, "ok": ok }).to_string())
    })
}

/// A check's matmul kernel and convolution path (`None`: the device's choice).
type Forced = (Option<MatmulKernel>, Option<ConvPath>);

/// `(name, model, loss head, optimizer, forced kernels)` of each check: each matmul module runs
/// in one (the paired modules bind 14 storage buffers, more than a browser's adapter may bind:
/// there the gradients run as two launches, and the native suites check the pairs).
const CHECKS: [(&str, &str, LossKind, Optimizer, Forced); 6] = [
    (
        "mlp, dropout, sigmoid + BCE, SGD, tiled matmul",
        "20,dense32,relu,dropout0.2,dense16,tanh,dense4,sigmoid",
        LossKind::SigmoidBinaryCrossEntropy,
        Optimizer::Sgd {
            lr: 0.1,
            weight_decay: 0.0,
        },
        (Some(MatmulKernel::Tiled), None),
    ),
    (
        "mlp, leaky ReLU, softmax CE, Adam, block-tiled matmul",
        "20,dense24,leaky_relu,dense4",
        LossKind::SoftmaxCrossEntropy,
        Optimizer::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        (Some(MatmulKernel::BlockTiled), None),
    ),
    (
        "mlp, MSE, RMSProp, row-block matmul",
        "20,dense16,sigmoid,dense4",
        LossKind::MeanSquaredError,
        Optimizer::RmsProp {
            lr: 1e-3,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        (Some(MatmulKernel::RowBlock), None),
    ),
    (
        "mlp, MAE, AdamW (decoupled weight decay)",
        "20,dense16,tanh,dense4",
        LossKind::MeanAbsoluteError,
        Optimizer::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        (None, None),
    ),
    (
        "CNN on the im2col path (block-tiled matmul), batch norm, max pool, momentum",
        "1x8x8,conv4k3p1,batchnorm,relu,maxpool2,flatten,dense8,relu,dense4",
        LossKind::SoftmaxCrossEntropy,
        Optimizer::Momentum {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
        },
        (Some(MatmulKernel::BlockTiled), Some(ConvPath::Im2col)),
    ),
    (
        "CNN on the implicit-GEMM path",
        "1x8x8,conv4k3p1,relu,maxpool2,conv6k3,tanh,flatten,dense4",
        LossKind::SoftmaxCrossEntropy,
        Optimizer::Sgd {
            lr: 0.05,
            weight_decay: 0.0,
        },
        (None, Some(ConvPath::Implicit)),
    ),
];

/// Trains `text` for 20 steps on the device and on the CPU backend; returns the largest relative
/// drift of the per-step losses and of the final tensors (per layer).
async fn compare(ctx: Arc<GpuContext>, text: &str, loss: LossKind, optimizer: Optimizer) -> Result<(f64, f64)> {
    let spec = NetworkSpec::parse(text, loss)?;
    let data = check_data(&spec)?;
    let network = Network::init(&spec, 7);
    let config = TrainConfig {
        optimizer,
        batch_size: 16,
        seed: 3,
        ..TrainConfig::default()
    };
    let mut cpu = CpuBackend::new(network.clone(), &config)?;
    let mut gpu = GpuBackend::new(ctx, &network, &config)?;
    let order = epoch_order(data.len(), 3, 0, true);
    let steps: Vec<&[u32]> = batches(&order, 16, false).cycle().take(20).collect();
    let drift = training_drift(&mut cpu, &mut gpu, &data, &steps).await?;
    Ok((drift.loss, drift.tensors))
}

/// Seeded data for a check: class labels from a fixed projection of the inputs, or targets in
/// [0, 1] for the regression and BCE heads.
fn check_data(spec: &NetworkSpec) -> Result<Dataset> {
    let (dim, width) = (spec.inputs(), spec.outputs());
    let samples = 160;
    let mut x = 0x2545_f491_u32;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0
    };
    let features: Vec<f32> = (0..samples * dim).map(|_| next() as f32).collect();
    if spec.loss.takes_labels() {
        let labels = features
            .chunks(dim)
            .map(|s| {
                (s.iter().take(width).enumerate().fold(
                    (0, f32::MIN),
                    |best, (i, &v)| {
                        if v > best.1 { (i, v) } else { best }
                    },
                ))
                .0 as u32
            })
            .collect();
        Dataset::classification(features, dim, labels, width)
    } else {
        let targets = features
            .chunks(dim)
            .flat_map(|s| s[..width].iter().map(|v| 0.5 + 0.5 * v))
            .collect();
        Dataset::regression(features, dim, targets, width)
    }
}
