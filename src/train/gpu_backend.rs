//! The GPU backend: every buffer allocated once, every dispatch prepared once, and a training
//! step recorded layer by layer into one compute pass, several steps per submit.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use super::backend::{Backend, Totals, check_batches, check_fits, check_predict_input, check_snapshot, optimizer_kind};
use super::cpu_backend::EVAL_BATCH;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::data::{BatchTargets, DeviceDataset};
use crate::gpu::profiler::PassTimer;
use crate::gpu::{self, Dispatch, GpuBuffer, GpuContext, GpuView, Operand};
use crate::model::{DenseLayer, LossKind, Network, NetworkSpec, OptimizerSnapshot};
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
    /// Output-row chunks of each layer's weight, one storage binding each.
    chunks: Vec<Vec<Range<usize>>>,
    eval_batch: usize,
    steps_per_submit: usize,
    datasets: HashMap<u64, DeviceDataset>,
    programs: HashMap<(u64, usize, Purpose), Program>,
    predict_programs: HashMap<usize, (Workspace, Vec<Dispatch>)>,
    train_totals: Accumulators,
    eval_totals: Accumulators,
    train_samples: u64,
    train_has_accuracy: bool,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
    /// Host copy of the indices of the batches being submitted.
    index_scratch: Vec<u32>,
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

/// How a network is laid out on a device: each layer's weight split into output-row chunks
/// that each fit one storage binding, and the evaluation batch that fits the bindings.
struct Plan {
    chunks: Vec<Vec<Range<usize>>>,
    eval_batch: usize,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Plans the layout, refusing before anything is allocated a network whose tensors the device
/// cannot hold: the error names the layer and the limit.
fn plan(ctx: &GpuContext, spec: &NetworkSpec, max_batch: usize) -> Result<Plan> {
    let limits = ctx.limits();
    let binding = limits.max_storage_buffer_binding_size;
    let align = u64::from(limits.min_storage_buffer_offset_alignment);
    let widest = *spec.sizes.iter().max().expect("sizes") as u64;
    let mut chunks = Vec::new();
    for l in 0..spec.layers() {
        let (fan_in, fan_out) = spec.layer_shape(l);
        let row_bytes = fan_in as u64 * 4;
        let weight_bytes = row_bytes * fan_out as u64;
        if weight_bytes > limits.max_buffer_size {
            return Err(Error::LayerTooLarge {
                layer: l,
                what: "weight",
                bytes: weight_bytes,
                limit: limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        // Chunk starts must sit on the binding-offset alignment: whole multiples of `step` rows.
        let step = align / gcd(row_bytes, align);
        let rows_per_chunk = (binding / row_bytes) / step * step;
        if weight_bytes <= binding {
            chunks.push(std::iter::once(0..fan_out).collect());
        } else if rows_per_chunk == 0 {
            return Err(Error::LayerTooLarge {
                layer: l,
                what: "weight rows (one aligned group of rows)",
                bytes: row_bytes * step,
                limit: binding,
                limit_name: "max_storage_buffer_binding_size",
            });
        } else {
            let per = rows_per_chunk as usize;
            chunks.push((0..fan_out).step_by(per).map(|s| s..(s + per).min(fan_out)).collect());
        }
        let activation_bytes = max_batch as u64 * fan_out.max(fan_in) as u64 * 4;
        if activation_bytes > binding {
            return Err(Error::LayerTooLarge {
                layer: l,
                what: "batch activations",
                bytes: activation_bytes,
                limit: binding,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
    }
    let fits = (binding / (4 * widest)) as usize;
    let eval_batch = EVAL_BATCH.min(fits).max(max_batch);
    Ok(Plan { chunks, eval_batch })
}

/// An operand of the strided matmul: `buffer[view]` with element `(i, j)` at `offset + i·ld + j`.
fn operand(view: GpuView<'_, f32>, offset: usize, ld: usize) -> Operand<'_> {
    Operand { view, offset, ld }
}

/// The rows `chunk` of a `[rows × cols]` parameter-shaped buffer, as a view.
fn rows<'a>(buffer: &'a GpuBuffer<f32>, chunk: &Range<usize>, cols: usize) -> Result<GpuView<'a, f32>> {
    buffer.view(chunk.start * cols..chunk.end * cols)
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
        let plan = plan(&ctx, &spec, max_batch)?;
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
            chunks: plan.chunks,
            eval_batch: plan.eval_batch,
            steps_per_submit: DEFAULT_STEPS_PER_SUBMIT,
            datasets: HashMap::new(),
            programs: HashMap::new(),
            predict_programs: HashMap::new(),
            train_totals,
            eval_totals,
            train_samples: 0,
            train_has_accuracy: false,
            in_flight: VecDeque::new(),
            index_scratch: Vec::new(),
        })
    }

    /// Records up to this many training steps into one submit (default 8).
    pub fn set_steps_per_submit(&mut self, steps: usize) {
        self.steps_per_submit = steps.max(1);
        self.programs.clear();
    }

    /// Trains on `batches` like [`Backend::train_batches`], one submit per batch, timing each
    /// pass with timestamp queries: returns the GPU seconds of all steps, or `None` when the
    /// adapter has no timestamps. Waits after every step, so use it to measure, not to train.
    pub fn train_batches_timed(&mut self, data: &Dataset, batches: &[&[u32]]) -> Result<Option<f64>> {
        check_fits(&self.spec, data)?;
        check_batches(batches, data.len(), self.max_batch)?;
        let Some(timer) = PassTimer::new(&self.ctx) else {
            return Ok(None);
        };
        let mut seconds = 0.0;
        for batch in batches {
            seconds += self
                .submit_batches(data, &[batch], Purpose::Train, Some(&timer))?
                .unwrap_or(0.0);
            self.train_samples += batch.len() as u64;
        }
        self.train_has_accuracy = data.classes().is_some();
        Ok(Some(seconds))
    }

    /// GPU seconds of each dispatch of one training step on `batch`, each timed in a pass of
    /// its own (so the sum exceeds a real step by the per-pass overhead). `None` without
    /// timestamp queries. Trains on the batch as a side effect.
    pub fn profile_step(&mut self, data: &Dataset, batch: &[u32]) -> Result<Option<Vec<(String, f64)>>> {
        check_fits(&self.spec, data)?;
        check_batches(&[batch], data.len(), self.max_batch)?;
        let Some(timer) = PassTimer::new(&self.ctx) else {
            return Ok(None);
        };
        let ctx = Arc::clone(&self.ctx);
        let program = self.program(data, batch.len(), Purpose::Train)?;
        ctx.queue
            .write_buffer(&program.ws.indices.buffer, 0, bytemuck::cast_slice(batch));
        let mut times = Vec::new();
        for d in program.gathers[0].iter().chain(&program.body) {
            times.push((
                format!("{} {:?}", d.name(), d.workgroups()),
                ctx.run_timed(&[d], &timer)?,
            ));
        }
        self.train_samples += batch.len() as u64;
        Ok(Some(times))
    }

    /// How many storage bindings layer `l`'s weight is split across (1 when it fits one).
    pub fn weight_bindings(&self, l: usize) -> usize {
        self.chunks[l].len()
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

    /// Forward pass: `acts[l] = act_l(input·W_lᵀ + b_l)`, one dispatch per weight chunk (each
    /// writes its block of output columns).
    fn forward(&self, ws: &Workspace, out: &mut Vec<Dispatch>) -> Result<()> {
        for l in 0..self.spec.layers() {
            let (fan_in, fan_out) = self.spec.layer_shape(l);
            let input = if l == 0 { &ws.x } else { &ws.acts[l - 1] };
            let p = &self.params[l];
            let act = self.spec.activation(l);
            for chunk in &self.chunks[l] {
                let dims = MatmulDims::new(ws.rows, fan_in, chunk.len());
                out.push(gpu::matmul_strided(
                    &self.ctx,
                    MatmulForm::ABt,
                    dims,
                    operand(input.into(), 0, fan_in),
                    operand(rows(&p.weight, chunk, fan_in)?, 0, fan_in),
                    operand((&ws.acts[l]).into(), chunk.start, fan_out),
                    Epilogue::BiasAct {
                        bias: operand((&p.bias).into(), chunk.start, fan_out),
                        act,
                    },
                    false,
                )?);
            }
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

    /// Backward pass and parameter update, chunk by chunk for split layers:
    /// `dW[chunk] = dZ[:, chunk]ᵀ·A_prev`, `dA_prev = Σ_chunks dZ[:, chunk]·W[chunk]` with the
    /// activation derivative applied by the last chunk.
    fn backward_and_update(&self, ws: &Workspace, out: &mut Vec<Dispatch>) -> Result<()> {
        let ctx = &self.ctx;
        let rows_b = ws.rows;
        for l in (0..self.spec.layers()).rev() {
            let (fan_in, fan_out) = self.spec.layer_shape(l);
            let input = if l == 0 { &ws.x } else { &ws.acts[l - 1] };
            let g = &self.grads[l];
            let w = &self.params[l].weight;
            let chunks = &self.chunks[l];
            for chunk in chunks {
                out.push(gpu::matmul_strided(
                    ctx,
                    MatmulForm::AtB,
                    MatmulDims::new(chunk.len(), rows_b, fan_in),
                    operand((&ws.dz[l]).into(), chunk.start, fan_out),
                    operand(input.into(), 0, fan_in),
                    operand(rows(&g.weight, chunk, fan_in)?, 0, fan_in),
                    Epilogue::None,
                    false,
                )?);
            }
            out.push(gpu::bias_grad(ctx, &ws.dz[l], &g.bias, rows_b, fan_out)?);
            if l > 0 {
                for (i, chunk) in chunks.iter().enumerate() {
                    let last = i + 1 == chunks.len();
                    let epilogue = if last {
                        let act_output = operand((&ws.acts[l - 1]).into(), 0, fan_in);
                        Epilogue::ActGrad {
                            act_output,
                            act: self.spec.activation(l - 1),
                        }
                    } else {
                        Epilogue::None
                    };
                    out.push(gpu::matmul_strided(
                        ctx,
                        MatmulForm::AB,
                        MatmulDims::new(rows_b, chunk.len(), fan_in),
                        operand((&ws.dz[l]).into(), chunk.start, fan_out),
                        operand(rows(w, chunk, fan_in)?, 0, fan_in),
                        operand((&ws.dz[l - 1]).into(), 0, fan_in),
                        epilogue,
                        i > 0,
                    )?);
                }
            }
        }
        out.push(gpu::tick(ctx, &self.state)?);
        out.push(gpu::guard(ctx, &ws.loss_rows, &self.state)?);
        // Every parameter tensor as views that fit one binding: weight chunks, then the bias.
        let mut tensors: Vec<(usize, Option<Range<usize>>)> = Vec::new();
        for l in 0..self.spec.layers() {
            tensors.extend(self.chunks[l].iter().map(|c| (l, Some(c.clone()))));
            tensors.push((l, None));
        }
        let sizes = &self.spec.sizes;
        fn tensor_view<'a>(
            layers: &'a [LayerBuffers],
            l: usize,
            chunk: &Option<Range<usize>>,
            fan_in: usize,
        ) -> Result<GpuView<'a, f32>> {
            match chunk {
                Some(c) => rows(&layers[l].weight, c, fan_in),
                None => Ok((&layers[l].bias).into()),
            }
        }
        let view = |layers, l: usize, chunk| tensor_view(layers, l, chunk, sizes[l]);
        if self.max_grad_norm > 0.0 {
            for (l, chunk) in &tensors {
                out.push(gpu::accumulate_grad_norm(
                    ctx,
                    view(&self.grads, *l, chunk)?,
                    &self.state,
                )?);
            }
        }
        for (l, chunk) in &tensors {
            let (w, g) = (view(&self.params, *l, chunk)?, view(&self.grads, *l, chunk)?);
            out.push(match self.optimizer {
                Optimizer::Sgd { .. } => gpu::sgd_update(ctx, w, g, &self.state)?,
                Optimizer::Momentum { .. } => {
                    gpu::momentum_update(ctx, w, g, view(&self.moments[0], *l, chunk)?, &self.state)?
                }
                Optimizer::Adam { .. } => gpu::adam_update(
                    ctx,
                    w,
                    g,
                    view(&self.moments[0], *l, chunk)?,
                    view(&self.moments[1], *l, chunk)?,
                    &self.state,
                )?,
            });
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

    /// Records `batches` (all of one size, at most one program's slots) into one submit; with a
    /// timer, times the pass and waits for it, returning its GPU seconds.
    fn submit_batches(
        &mut self,
        data: &Dataset,
        batches: &[&[u32]],
        purpose: Purpose,
        timer: Option<&PassTimer>,
    ) -> Result<Option<f64>> {
        let rows = batches[0].len();
        // Reused across submits: the training loop allocates nothing per step.
        let mut indices = std::mem::take(&mut self.index_scratch);
        indices.clear();
        indices.extend(batches.iter().flat_map(|b| b.iter().copied()));
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
                    timestamp_writes: timer.map(|t| t.writes()),
                });
                for k in 0..batches.len() {
                    for d in program.gathers[k].iter().chain(&program.body) {
                        d.record(&mut pass);
                    }
                }
            }
            if let Some(t) = timer {
                t.resolve(&mut encoder);
            }
            ctx.queue.submit([encoder.finish()])
        });
        self.index_scratch = indices;
        let index = index?;
        if let Some(t) = timer {
            self.in_flight.clear();
            return t.read_seconds(&ctx).map(Some);
        }
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
        Ok(None)
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
            self.submit_batches(data, &batches[start..end], Purpose::Train, None)?;
            self.train_samples += ((end - start) * rows) as u64;
            start = end;
        }
        self.train_has_accuracy = data.classes().is_some();
        Ok(())
    }

    fn take_train_totals(&mut self) -> Result<Totals> {
        let (loss_sum, correct) = self.read_totals(Purpose::Train)?;
        let samples = std::mem::take(&mut self.train_samples);
        let state = self.ctx.read(&self.state)?[0];
        Ok(Totals {
            loss_sum,
            correct,
            samples,
            has_accuracy: self.train_has_accuracy,
            nonfinite_step: (state.first_nonfinite_step > 0).then_some(u64::from(state.first_nonfinite_step)),
            skipped_steps: u64::from(state.skipped_steps),
        })
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Totals> {
        check_fits(&self.spec, data)?;
        let order: Vec<u32> = (0..data.len() as u32).collect();
        for chunk in order.chunks(self.eval_batch) {
            self.submit_batches(data, &[chunk], Purpose::Evaluate, None)?;
        }
        let (loss_sum, correct) = self.read_totals(Purpose::Evaluate)?;
        Ok(Totals {
            loss_sum,
            correct,
            samples: data.len() as u64,
            has_accuracy: data.classes().is_some(),
            ..Totals::default()
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

    fn set_skip_nonfinite(&mut self, skip: bool) -> Result<()> {
        // OptimState::skip_nonfinite: a 4-byte write, ordered before the next submit.
        let offset = std::mem::offset_of!(OptimState, skip_nonfinite) as u64;
        self.ctx
            .queue
            .write_buffer(&self.state.buffer, offset, bytemuck::bytes_of(&u32::from(skip)));
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

    fn optimizer_snapshot(&mut self) -> Result<OptimizerSnapshot> {
        let read = |layers: &[LayerBuffers]| -> Result<Vec<DenseLayer>> {
            layers
                .iter()
                .map(|m| {
                    Ok(DenseLayer {
                        weight: self.ctx.read(&m.weight)?,
                        bias: self.ctx.read(&m.bias)?,
                    })
                })
                .collect()
        };
        let moments = self.moments.iter().map(|m| read(m)).collect::<Result<Vec<_>>>()?;
        let state = self.ctx.read(&self.state)?[0];
        Ok(OptimizerSnapshot {
            kind: optimizer_kind(&self.optimizer).to_string(),
            state,
            moments,
        })
    }

    fn restore_optimizer(&mut self, snapshot: &OptimizerSnapshot) -> Result<()> {
        check_snapshot(&self.optimizer, &self.spec, snapshot)?;
        for (buffers, layers) in self.moments.iter().zip(&snapshot.moments) {
            for (b, layer) in buffers.iter().zip(layers) {
                self.ctx.write(&b.weight, &layer.weight)?;
                self.ctx.write(&b.bias, &layer.bias)?;
            }
        }
        self.ctx.write(&self.state, &[snapshot.state])?;
        self.max_grad_norm = snapshot.state.max_grad_norm;
        self.programs.clear();
        Ok(())
    }
}
