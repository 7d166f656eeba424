//! The GPU backend: every buffer allocated once, every dispatch prepared once, and a training
//! step recorded layer by layer into one compute pass, several steps per submit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::backend::{Backend, Totals, check_batches, check_fits, check_predict_input};
use super::cpu_backend::EVAL_BATCH;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::data::{BatchTargets, DeviceDataset};
use crate::gpu::{self, Dispatch, GpuBuffer, GpuContext};
use crate::model::{DenseLayer, LossKind, Network, NetworkSpec};
use crate::ops::{Epilogue, MatmulDims, MatmulForm};
use crate::optimizer::{OptimState, Optimizer};

/// Training steps recorded into one submit by default.
pub const DEFAULT_STEPS_PER_SUBMIT: usize = 8;
/// Submits allowed in flight before the host waits (bounds queued memory).
const MAX_IN_FLIGHT: usize = 2;

/// A weight and a bias on the device.
struct LayerBuffers {
    weight: GpuBuffer<f32>,
    bias: GpuBuffer<f32>,
}

/// Per-batch-size buffers: inputs, labels/targets, every layer's output and dZ.
struct Workspace {
    rows: usize,
    /// `slots × rows` sample indices: one batch per step recorded in a submit.
    indices: GpuBuffer<u32>,
    x: GpuBuffer<f32>,
    labels: GpuBuffer<u32>,
    targets: GpuBuffer<f32>,
    acts: Vec<GpuBuffer<f32>>,
    dz: Vec<GpuBuffer<f32>>,
    loss_rows: GpuBuffer<f32>,
}

/// Device-side loss and correct-count accumulators.
struct Accumulators {
    loss: GpuBuffer<f32>,
    correct: GpuBuffer<u32>,
}

/// What a prepared program does after its gather.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Purpose {
    Train,
    Evaluate,
}

/// Everything recorded for one (dataset, batch size, purpose): built once, replayed every step.
struct Program {
    ws: Workspace,
    /// Gather dispatches for each index slot.
    gathers: Vec<Vec<Dispatch>>,
    /// Forward, loss, metrics (and backward and update, for training).
    body: Vec<Dispatch>,
}

/// Trains on a GPU through the WGSL kernels.
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
    spec: NetworkSpec,
    optimizer: Optimizer,
    params: Vec<LayerBuffers>,
    grads: Vec<LayerBuffers>,
    moments: Vec<Vec<LayerBuffers>>,
    state: GpuBuffer<OptimState>,
    max_grad_norm: f32,
    max_batch: usize,
    steps_per_submit: usize,
    datasets: HashMap<u64, DeviceDataset>,
    programs: HashMap<(u64, usize, Purpose), Program>,
    predict_programs: HashMap<usize, (Workspace, Vec<Dispatch>)>,
    train_totals: Accumulators,
    eval_totals: Accumulators,
    train_samples: u64,
    train_has_accuracy: bool,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
}

fn layer_buffers(
    ctx: &GpuContext,
    spec: &NetworkSpec,
    name: &str,
    init: Option<&Network>,
) -> Result<Vec<LayerBuffers>> {
    (0..spec.layers())
        .map(|l| {
            let (fan_in, fan_out) = spec.layer_shape(l);
            let (weight, bias) = match init {
                Some(n) => (
                    ctx.upload(&format!("{name} {l} weight"), &n.layers[l].weight)?,
                    ctx.upload(&format!("{name} {l} bias"), &n.layers[l].bias)?,
                ),
                None => (
                    ctx.zeros(&format!("{name} {l} weight"), fan_in * fan_out)?,
                    ctx.zeros(&format!("{name} {l} bias"), fan_out)?,
                ),
            };
            Ok(LayerBuffers { weight, bias })
        })
        .collect()
}

fn accumulators(ctx: &GpuContext, name: &str) -> Result<Accumulators> {
    Ok(Accumulators {
        loss: ctx.zeros(&format!("{name} loss sum"), 1)?,
        correct: ctx.zeros(&format!("{name} correct"), 1)?,
    })
}

/// Refuses, before anything is allocated, a network whose tensors the device cannot hold.
fn check_device_fits(ctx: &GpuContext, spec: &NetworkSpec, max_batch: usize) -> Result<()> {
    let limits = ctx.limits();
    let binding = limits.max_storage_buffer_binding_size;
    let rows = max_batch.max(EVAL_BATCH) as u64;
    for l in 0..spec.layers() {
        let (fan_in, fan_out) = spec.layer_shape(l);
        let tensors = [
            ("weight", (fan_in * fan_out) as u64 * 4),
            ("activations", rows * fan_out as u64 * 4),
        ];
        for (what, bytes) in tensors {
            let (limit, limit_name) = if bytes > limits.max_buffer_size {
                (limits.max_buffer_size, "max_buffer_size")
            } else {
                (binding, "max_storage_buffer_binding_size")
            };
            if bytes > limit {
                return Err(Error::LayerTooLarge {
                    layer: l,
                    what,
                    bytes,
                    limit,
                    limit_name,
                });
            }
        }
    }
    Ok(())
}

impl GpuBackend {
    /// A backend training `network` on `ctx` with `optimizer`, batches of at most `max_batch`.
    /// `max_grad_norm > 0` clips gradients to that global norm.
    pub fn new(
        ctx: Arc<GpuContext>,
        network: &Network,
        optimizer: Optimizer,
        max_batch: usize,
        max_grad_norm: f32,
    ) -> Result<Self> {
        super::check_training_options(max_batch, max_grad_norm, &optimizer)?;
        let spec = network.spec.clone();
        check_device_fits(&ctx, &spec, max_batch)?;
        let params = layer_buffers(&ctx, &spec, "param", Some(network))?;
        let grads = layer_buffers(&ctx, &spec, "grad", None)?;
        let moments = (0..optimizer.state_tensors())
            .map(|i| layer_buffers(&ctx, &spec, &format!("moment{i}"), None))
            .collect::<Result<_>>()?;
        let state = ctx.upload(
            "optimizer state",
            &[OptimState {
                max_grad_norm,
                ..optimizer.initial_state()
            }],
        )?;
        let train_totals = accumulators(&ctx, "train")?;
        let eval_totals = accumulators(&ctx, "eval")?;
        Ok(GpuBackend {
            ctx,
            spec,
            optimizer,
            params,
            grads,
            moments,
            state,
            max_grad_norm,
            max_batch,
            steps_per_submit: DEFAULT_STEPS_PER_SUBMIT,
            datasets: HashMap::new(),
            programs: HashMap::new(),
            predict_programs: HashMap::new(),
            train_totals,
            eval_totals,
            train_samples: 0,
            train_has_accuracy: false,
            in_flight: VecDeque::new(),
        })
    }

    /// Records up to this many training steps into one submit (default 8).
    pub fn set_steps_per_submit(&mut self, steps: usize) {
        self.steps_per_submit = steps.max(1);
        self.programs.clear();
    }

    /// Dispatches one training step records (gather included), for reporting.
    pub fn dispatches_per_step(&self) -> Option<usize> {
        self.programs
            .iter()
            .find(|(k, _)| k.2 == Purpose::Train)
            .map(|(_, p)| p.gathers[0].len() + p.body.len())
    }

    fn workspace(&self, rows: usize, slots: usize) -> Result<Workspace> {
        let ctx = &self.ctx;
        let spec = &self.spec;
        Ok(Workspace {
            rows,
            indices: ctx.zeros("batch indices", rows * slots)?,
            x: ctx.zeros("batch x", rows * spec.inputs())?,
            labels: ctx.zeros("batch labels", rows)?,
            targets: ctx.zeros("batch targets", rows * spec.outputs())?,
            acts: spec.sizes[1..]
                .iter()
                .enumerate()
                .map(|(l, &s)| ctx.zeros(&format!("act {l}"), rows * s))
                .collect::<Result<_>>()?,
            dz: spec.sizes[1..]
                .iter()
                .enumerate()
                .map(|(l, &s)| ctx.zeros(&format!("dz {l}"), rows * s))
                .collect::<Result<_>>()?,
            loss_rows: ctx.zeros("loss rows", rows)?,
        })
    }

    /// Forward pass: `acts[l] = act_l(input·W_lᵀ + b_l)`.
    fn forward(&self, ws: &Workspace, out: &mut Vec<Dispatch>) -> Result<()> {
        for l in 0..self.spec.layers() {
            let (fan_in, fan_out) = self.spec.layer_shape(l);
            let input = if l == 0 { &ws.x } else { &ws.acts[l - 1] };
            let p = &self.params[l];
            let epilogue = Epilogue::BiasAct {
                bias: &p.bias,
                act: self.spec.activation(l),
            };
            let dims = MatmulDims::new(ws.rows, fan_in, fan_out);
            out.push(gpu::matmul(
                &self.ctx,
                MatmulForm::ABt,
                dims,
                input,
                &p.weight,
                &ws.acts[l],
                epilogue,
            )?);
        }
        Ok(())
    }

    /// Loss head and metric accumulation.
    fn loss(&self, ws: &Workspace, classes: bool, totals: &Accumulators, out: &mut Vec<Dispatch>) -> Result<()> {
        let ctx = &self.ctx;
        let (rows, cols) = (ws.rows, self.spec.outputs());
        let last = self.spec.layers() - 1;
        let (z, dz) = (&ws.acts[last], &ws.dz[last]);
        out.push(match self.spec.loss {
            LossKind::SoftmaxCrossEntropy => {
                gpu::softmax_cross_entropy(ctx, z, &ws.labels, &ws.loss_rows, dz, rows, cols)?
            }
            LossKind::SigmoidBinaryCrossEntropy => {
                gpu::sigmoid_binary_cross_entropy(ctx, z, &ws.targets, &ws.loss_rows, dz, rows, cols)?
            }
            LossKind::MeanSquaredError => gpu::mse(ctx, z, &ws.targets, &ws.loss_rows, dz, rows, cols)?,
        });
        out.push(gpu::accumulate_sum(ctx, &ws.loss_rows, &totals.loss)?);
        if classes {
            out.push(gpu::count_correct(ctx, z, &ws.labels, &totals.correct, rows, cols)?);
        }
        Ok(())
    }

    /// Backward pass and parameter update.
    fn backward_and_update(&self, ws: &Workspace, out: &mut Vec<Dispatch>) -> Result<()> {
        let ctx = &self.ctx;
        let rows = ws.rows;
        for l in (0..self.spec.layers()).rev() {
            let (fan_in, fan_out) = self.spec.layer_shape(l);
            let input = if l == 0 { &ws.x } else { &ws.acts[l - 1] };
            let g = &self.grads[l];
            let dims = MatmulDims::new(fan_out, rows, fan_in);
            out.push(gpu::matmul(
                ctx,
                MatmulForm::AtB,
                dims,
                &ws.dz[l],
                input,
                &g.weight,
                Epilogue::None,
            )?);
            out.push(gpu::bias_grad(ctx, &ws.dz[l], &g.bias, rows, fan_out)?);
            if l > 0 {
                let epilogue = Epilogue::ActGrad {
                    act_output: &ws.acts[l - 1],
                    act: self.spec.activation(l - 1),
                };
                let dims = MatmulDims::new(rows, fan_out, fan_in);
                out.push(gpu::matmul(
                    ctx,
                    MatmulForm::AB,
                    dims,
                    &ws.dz[l],
                    &self.params[l].weight,
                    &ws.dz[l - 1],
                    epilogue,
                )?);
            }
        }
        out.push(gpu::tick(ctx, &self.state)?);
        if self.max_grad_norm > 0.0 {
            for g in &self.grads {
                out.push(gpu::accumulate_grad_norm(ctx, &g.weight, &self.state)?);
                out.push(gpu::accumulate_grad_norm(ctx, &g.bias, &self.state)?);
            }
        }
        for (l, p) in self.params.iter().enumerate() {
            let g = &self.grads[l];
            for (w, grad, which) in [(&p.weight, &g.weight, 0), (&p.bias, &g.bias, 1)] {
                let moment = |i: usize| {
                    let m = &self.moments[i][l];
                    if which == 0 { &m.weight } else { &m.bias }
                };
                out.push(match self.optimizer {
                    Optimizer::Sgd { .. } => gpu::sgd_update(ctx, w, grad, &self.state)?,
                    Optimizer::Momentum { .. } => gpu::momentum_update(ctx, w, grad, moment(0), &self.state)?,
                    Optimizer::Adam { .. } => gpu::adam_update(ctx, w, grad, moment(0), moment(1), &self.state)?,
                });
            }
        }
        Ok(())
    }

    fn program(&mut self, data: &Dataset, rows: usize, purpose: Purpose) -> Result<&Program> {
        let key = (data.id(), rows, purpose);
        if !self.programs.contains_key(&key) {
            if !self.datasets.contains_key(&data.id()) {
                let device_data = DeviceDataset::upload(&self.ctx, data)?;
                self.datasets.insert(data.id(), device_data);
            }
            let slots = if purpose == Purpose::Train {
                self.steps_per_submit
            } else {
                1
            };
            let ws = self.workspace(rows, slots)?;
            let device_data = &self.datasets[&data.id()];
            let needs_targets = self.spec.loss != LossKind::SoftmaxCrossEntropy;
            let classes = data.classes().is_some();
            let gathers = (0..slots)
                .map(|k| {
                    let out = BatchTargets {
                        x: &ws.x,
                        labels: classes.then_some(&ws.labels),
                        targets: needs_targets.then_some(&ws.targets),
                    };
                    gpu::data::gather(&self.ctx, device_data, &ws.indices, k * rows, rows, out)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut body = Vec::new();
            self.forward(&ws, &mut body)?;
            match purpose {
                Purpose::Train => {
                    self.loss(&ws, classes, &self.train_totals, &mut body)?;
                    self.backward_and_update(&ws, &mut body)?;
                }
                Purpose::Evaluate => self.loss(&ws, classes, &self.eval_totals, &mut body)?,
            }
            self.programs.insert(key, Program { ws, gathers, body });
        }
        Ok(&self.programs[&key])
    }

    /// Records `batches` (all of one size, at most one program's slots) into one submit.
    fn submit_batches(&mut self, data: &Dataset, batches: &[&[u32]], purpose: Purpose) -> Result<()> {
        let rows = batches[0].len();
        let indices: Vec<u32> = batches.iter().flat_map(|b| b.iter().copied()).collect();
        let ctx = Arc::clone(&self.ctx);
        let program = self.program(data, rows, purpose)?;
        let index = ctx.scoped("recording a training step", || {
            ctx.queue
                .write_buffer(&program.ws.indices.buffer, 0, bytemuck::cast_slice(&indices));
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("steps") });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("steps"),
                    timestamp_writes: None,
                });
                for k in 0..batches.len() {
                    for d in program.gathers[k].iter().chain(&program.body) {
                        d.record(&mut pass);
                    }
                }
            }
            ctx.queue.submit([encoder.finish()])
        })?;
        self.in_flight.push_back(index);
        while self.in_flight.len() > MAX_IN_FLIGHT {
            let oldest = self.in_flight.pop_front().expect("non-empty");
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(oldest),
                    timeout: None,
                })
                .map_err(|e| Error::Gpu {
                    context: "waiting for training steps".into(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    fn read_totals(&mut self, which: Purpose) -> Result<(f64, u64)> {
        let acc = if which == Purpose::Train {
            &self.train_totals
        } else {
            &self.eval_totals
        };
        let loss = self.ctx.read(&acc.loss)?[0];
        let correct = self.ctx.read(&acc.correct)?[0];
        self.ctx.write(&acc.loss, &[0.0])?;
        self.ctx.write(&acc.correct, &[0])?;
        self.in_flight.clear();
        Ok((f64::from(loss), u64::from(correct)))
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        format!("gpu: {}", self.ctx.describe())
    }

    fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    fn train_batches(&mut self, data: &Dataset, batches: &[&[u32]]) -> Result<()> {
        check_fits(&self.spec, data)?;
        check_batches(batches, data.len(), self.max_batch)?;
        let mut start = 0;
        while start < batches.len() {
            // Consecutive batches of the same size, at most steps_per_submit of them.
            let rows = batches[start].len();
            let mut end = start + 1;
            while end < batches.len() && end - start < self.steps_per_submit && batches[end].len() == rows {
                end += 1;
            }
            self.submit_batches(data, &batches[start..end], Purpose::Train)?;
            self.train_samples += ((end - start) * rows) as u64;
            start = end;
        }
        self.train_has_accuracy = data.classes().is_some();
        Ok(())
    }

    fn take_train_totals(&mut self) -> Result<Totals> {
        let (loss_sum, correct) = self.read_totals(Purpose::Train)?;
        let samples = std::mem::take(&mut self.train_samples);
        Ok(Totals {
            loss_sum,
            correct,
            samples,
            has_accuracy: self.train_has_accuracy,
        })
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Totals> {
        check_fits(&self.spec, data)?;
        let order: Vec<u32> = (0..data.len() as u32).collect();
        for chunk in order.chunks(EVAL_BATCH) {
            self.submit_batches(data, &[chunk], Purpose::Evaluate)?;
        }
        let (loss_sum, correct) = self.read_totals(Purpose::Evaluate)?;
        Ok(Totals {
            loss_sum,
            correct,
            samples: data.len() as u64,
            has_accuracy: data.classes().is_some(),
        })
    }

    fn predict(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        check_predict_input(&self.spec, features, rows)?;
        if !self.predict_programs.contains_key(&rows) {
            let ws = self.workspace(rows, 1)?;
            let mut forward = Vec::new();
            self.forward(&ws, &mut forward)?;
            self.predict_programs.insert(rows, (ws, forward));
        }
        let (ws, forward) = &self.predict_programs[&rows];
        self.ctx.write(&ws.x, features)?;
        self.ctx.run(&forward.iter().collect::<Vec<_>>())?;
        let mut out = self.ctx.read(&ws.acts[self.spec.layers() - 1])?;
        self.spec.loss.output_transform(&mut out, self.spec.outputs());
        Ok(out)
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        super::check_learning_rate(lr)?;
        // `lr` is the first field of OptimState: a 4-byte write, ordered before the next submit.
        self.ctx
            .queue
            .write_buffer(&self.state.buffer, 0, bytemuck::bytes_of(&lr));
        Ok(())
    }

    fn network(&mut self) -> Result<Network> {
        let layers = self
            .params
            .iter()
            .map(|p| {
                Ok(DenseLayer {
                    weight: self.ctx.read(&p.weight)?,
                    bias: self.ctx.read(&p.bias)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Network::from_layers(&self.spec, layers)
    }
}
