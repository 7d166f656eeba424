//! The GPU backend: every buffer allocated once, every op of the step program prepared once
//! as dispatches, and several training steps recorded into one compute pass per submit.
//!
//! `layout` plans what fits the device, `record` turns program ops into dispatches, this file
//! owns the buffers and submits; `profile` holds the benchmark's timing helpers.

mod layout;
pub mod profile;
mod record;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::TrainConfig;
use super::backend::{Backend, Totals, check_batches, check_fits, check_predict_input, check_snapshot};
use super::program::{Stage, StepProgram, plan};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::context::block_on;
use crate::gpu::data::DeviceDataset;
use crate::gpu::profiler::PassTimer;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, KernelPlan};
use crate::model::{Network, NetworkSpec, OptimizerSnapshot};
use crate::optimizer::{OptimProgress, OptimState, Optimizer};
use layout::{DeviceLayout, FlatBuffers};
use record::{Accumulators, Resources, Workspace};

/// Training steps recorded into one submit by default.
pub const DEFAULT_STEPS_PER_SUBMIT: usize = 8;
/// Submits allowed in flight before the host waits (bounds queued memory).
const MAX_IN_FLIGHT: usize = 2;

/// Checks that `spec` fits `ctx` for batches of `max_batch`, allocating nothing: every layer's
/// weight against `max_buffer_size`, its row chunks and batch activations against the binding
/// size (see the layout), and the host copy of the parameters against host memory.
pub(crate) fn check_model(ctx: &GpuContext, spec: &NetworkSpec, max_batch: usize) -> Result<()> {
    DeviceLayout::plan(ctx, spec, max_batch)?;
    crate::memory::check_host(spec, 1, 0)
}

/// Everything recorded for one (dataset, batch size, stage): built once, replayed every step.
struct Program {
    ws: Workspace,
    /// Gather dispatches for each index slot.
    gathers: Vec<Vec<Dispatch>>,
    /// Every op after the gather.
    body: Vec<Dispatch>,
    /// The kernel choices its planning made.
    plan: KernelPlan,
}

/// Plans a program, then records it. Planning allocates the workspace (a conv's path follows
/// the matmul kernel chosen for its shape) and makes every kernel choice the program's matmuls
/// need, asking the device's tuner, which times a shape class it has not seen (on scratch
/// copies, within its budget) and caches the result on disk. Recording then prepares the
/// dispatches from those choices alone: it never times, compiles a candidate or touches the
/// disk (a choice the plan did not make is [`Error::Unplanned`]).
fn plan_and_record(
    r: &Resources<'_>,
    program: &StepProgram,
    (rows, slots): (usize, usize),
    classes: bool,
    gather: impl FnOnce(&Workspace) -> Result<Vec<Vec<Dispatch>>>,
) -> Result<Program> {
    let (ws, plan) = crate::gpu::tuning::planning(|| {
        let ws = Workspace::new(r.ctx, r.spec, program, rows, slots)?;
        record::body(r, program, &ws, classes)?;
        Ok(ws)
    })?;
    let (gathers, body) =
        crate::gpu::tuning::recording(|| Ok((gather(&ws)?, record::body(r, program, &ws, classes)?)))?;
    Ok(Program {
        ws,
        gathers,
        body,
        plan,
    })
}

/// Trains on a GPU through the WGSL kernels.
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
    spec: NetworkSpec,
    optimizer: Optimizer,
    layout: DeviceLayout,
    params: FlatBuffers,
    /// The layers' own state (batch norm's running statistics), flat.
    layer_state: GpuBuffer<f32>,
    grads: FlatBuffers,
    moments: Vec<FlatBuffers>,
    state: GpuBuffer<OptimState>,
    max_grad_norm: f32,
    skip_nonfinite: bool,
    run_seed: u64,
    max_batch: usize,
    steps_per_submit: usize,
    datasets: HashMap<u64, DeviceDataset>,
    programs: HashMap<(u64, usize, Stage), Program>,
    predict_programs: HashMap<usize, Program>,
    train_totals: Accumulators,
    eval_totals: Accumulators,
    train_samples: u64,
    train_has_accuracy: bool,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
    /// Host copy of the indices of the batches being submitted.
    index_scratch: Vec<u32>,
}

impl GpuBackend {
    /// A backend training `network` on `ctx` with the optimizer, batch size, clipping,
    /// non-finite handling and seed of `config`.
    pub fn new(ctx: Arc<GpuContext>, network: &Network, config: &TrainConfig) -> Result<Self> {
        config.validate()?;
        network.spec.validate()?;
        let spec = network.spec.clone();
        let layout = DeviceLayout::plan(&ctx, &spec, config.batch_size)?;
        let flat = layout.params.flatten(&network.layers, |v| v);
        let params = layout.allocate(&ctx, "params", Some(&flat))?;
        // At least one value: a buffer of no bytes cannot be bound.
        let mut kept = layout.params.flatten_state(&network.layers, |v| v);
        kept.resize(kept.len().max(1), 0.0);
        let layer_state = ctx.upload("layer state", &kept)?;
        let grads = layout.allocate(&ctx, "grads", None)?;
        let moments = config
            .optimizer
            .moment_names()
            .iter()
            .map(|name| layout.allocate(&ctx, name, None))
            .collect::<Result<_>>()?;
        let state = ctx.upload(
            "optimizer state",
            &[config
                .optimizer
                .state_for_run(config.max_grad_norm, config.skip_nonfinite, None)],
        )?;
        let train_totals = Accumulators::new(&ctx, "train")?;
        let eval_totals = Accumulators::new(&ctx, "eval")?;
        Ok(GpuBackend {
            ctx,
            spec,
            optimizer: config.optimizer,
            layout,
            params,
            layer_state,
            grads,
            moments,
            state,
            max_grad_norm: config.max_grad_norm,
            skip_nonfinite: config.skip_nonfinite,
            run_seed: config.seed,
            max_batch: config.batch_size,
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

    /// How many storage bindings the weight of layer `l` (counted among the layers with tensors)
    /// is split across (1 when it fits one; only dense weights are split).
    pub fn weight_bindings(&self, l: usize) -> usize {
        self.layout.weight_chunks[l].len()
    }

    /// The kernel choices of the training program planned last (empty before the first
    /// step): each matmul shape class with its kernel, and each gradient pair's launch count.
    pub fn kernel_plan(&self) -> KernelPlan {
        self.programs
            .iter()
            .filter(|((_, _, stage), _)| *stage == Stage::Train)
            .map(|(_, p)| p.plan.clone())
            .next()
            .unwrap_or_default()
    }

    /// Dispatches one training step records (gather included), for reporting.
    pub fn dispatches_per_step(&self) -> Option<usize> {
        self.programs
            .iter()
            .find(|(k, _)| k.2 == Stage::Train)
            .map(|(_, p)| p.gathers[0].iter().chain(&p.body).map(|d| d.parts()).sum())
    }

    fn resources<'a>(&'a self, totals: &'a Accumulators) -> Resources<'a> {
        Resources {
            ctx: &self.ctx,
            spec: &self.spec,
            layout: &self.layout,
            params: &self.params,
            layer_state: &self.layer_state,
            grads: &self.grads,
            moments: &self.moments,
            state: &self.state,
            optimizer: &self.optimizer,
            run_seed: self.run_seed,
            totals,
        }
    }

    fn step_program(&self, stage: Stage) -> StepProgram {
        plan(&self.spec, stage, self.max_grad_norm > 0.0)
    }

    fn program(&mut self, data: &Dataset, rows: usize, stage: Stage) -> Result<&Program> {
        let key = (data.id(), rows, stage);
        if !self.programs.contains_key(&key) {
            if !self.datasets.contains_key(&data.id()) {
                let device_data = DeviceDataset::upload(&self.ctx, data)?;
                self.datasets.insert(data.id(), device_data);
            }
            let slots = if stage == Stage::Train {
                self.steps_per_submit
            } else {
                1
            };
            let program = self.step_program(stage);
            let totals = if stage == Stage::Train {
                &self.train_totals
            } else {
                &self.eval_totals
            };
            let device_data = &self.datasets[&data.id()];
            let gather = |ws: &Workspace| record::gathers(&self.ctx, &self.spec, data, device_data, ws, slots);
            let classes = data.classes().is_some();
            let planned = plan_and_record(&self.resources(totals), &program, (rows, slots), classes, gather)?;
            self.programs.insert(key, planned);
        }
        Ok(&self.programs[&key])
    }

    /// Records `batches` (all of one size, at most one program's slots) into one submit; with a
    /// timer, times the pass and waits for it, returning its GPU seconds.
    fn submit_batches(
        &mut self,
        data: &Dataset,
        batches: &[&[u32]],
        stage: Stage,
        timer: Option<&PassTimer>,
    ) -> Result<Option<f64>> {
        let rows = batches[0].len();
        // Reused across submits: the training loop allocates nothing per step.
        let mut indices = std::mem::take(&mut self.index_scratch);
        indices.clear();
        indices.extend(batches.iter().flat_map(|b| b.iter().copied()));
        let ctx = Arc::clone(&self.ctx);
        let program = self.program(data, rows, stage)?;
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

    /// [`Backend::take_train_totals`] as a future (the form a browser awaits).
    pub async fn take_train_totals_async(&mut self) -> Result<Totals> {
        let (loss_sum, correct) = self.read_totals_async(Stage::Train).await?;
        let samples = std::mem::take(&mut self.train_samples);
        let state = self.ctx.read_async(&self.state).await?[0];
        Ok(Totals {
            loss_sum,
            correct,
            samples,
            has_accuracy: self.train_has_accuracy,
            nonfinite_step: (state.first_nonfinite_step > 0).then_some(u64::from(state.first_nonfinite_step)),
            skipped_steps: u64::from(state.skipped_steps),
        })
    }

    /// [`Backend::evaluate`] as a future.
    pub async fn evaluate_async(&mut self, data: &Dataset) -> Result<Totals> {
        check_fits(&self.spec, data)?;
        let order: Vec<u32> = (0..data.len() as u32).collect();
        for chunk in order.chunks(self.layout.eval_batch) {
            self.submit_batches(data, &[chunk], Stage::Evaluate, None)?;
        }
        let (loss_sum, correct) = self.read_totals_async(Stage::Evaluate).await?;
        Ok(Totals {
            loss_sum,
            correct,
            samples: data.len() as u64,
            has_accuracy: data.classes().is_some(),
            ..Totals::default()
        })
    }

    /// [`Backend::predict`] as a future.
    pub async fn predict_async(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        check_predict_input(&self.spec, features, rows)?;
        // In chunks that fit the bindings, like evaluation; programs for at most two sizes
        // (full chunks and the remainder) are kept.
        let (inputs, outputs) = (self.spec.inputs(), self.spec.outputs());
        let output = self.step_program(Stage::Predict).output;
        let mut out = Vec::with_capacity(rows * outputs);
        for chunk in features.chunks(self.layout.eval_batch * inputs) {
            let n = chunk.len() / inputs;
            if !self.predict_programs.contains_key(&n) {
                if self.predict_programs.len() >= 2 {
                    self.predict_programs.clear();
                }
                let program = self.step_program(Stage::Predict);
                let resources = self.resources(&self.eval_totals);
                let planned = plan_and_record(&resources, &program, (n, 1), false, |_| Ok(Vec::new()))?;
                self.predict_programs.insert(n, planned);
            }
            let program = &self.predict_programs[&n];
            self.ctx.write(&program.ws.tensors[0], chunk)?;
            self.ctx.run(&program.body.iter().collect::<Vec<_>>())?;
            out.extend(self.ctx.read_async(&program.ws.tensors[output]).await?);
        }
        self.spec.loss.output_transform(&mut out, outputs);
        Ok(out)
    }

    /// [`Backend::network`] as a future.
    pub async fn network_async(&mut self) -> Result<Network> {
        let flat = self.params.read_async(&self.ctx).await?;
        let kept = self.ctx.read_async(&self.layer_state).await?;
        Network::from_layers(&self.spec, self.layout.params.unflatten(&flat, Some(&kept), |v| v))
    }

    /// [`Backend::optimizer_snapshot`] as a future.
    pub async fn optimizer_snapshot_async(&mut self) -> Result<OptimizerSnapshot> {
        let mut moments = Vec::new();
        for m in &self.moments {
            moments.push(
                self.layout
                    .params
                    .unflatten(&m.read_async(&self.ctx).await?, None, |v| v),
            );
        }
        let state = self.ctx.read_async(&self.state).await?[0];
        Ok(OptimizerSnapshot {
            kind: self.optimizer.kind().to_string(),
            progress: OptimProgress::from(&state),
            moments,
        })
    }

    async fn read_totals_async(&mut self, stage: Stage) -> Result<(f64, u64)> {
        let acc = if stage == Stage::Train {
            &self.train_totals
        } else {
            &self.eval_totals
        };
        let loss = self.ctx.read_async(&acc.loss).await?[0];
        let correct = self.ctx.read_async(&acc.correct).await?[0];
        self.ctx.write(&acc.loss, &[0.0])?;
        self.ctx.write(&acc.correct, &[0])?;
        self.in_flight.clear();
        Ok((f64::from(loss), u64::from(correct)))
    }
}

impl Backend for GpuBackend {
    fn take_train_totals(&mut self) -> Result<Totals> {
        block_on(self.take_train_totals_async())?
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Totals> {
        block_on(self.evaluate_async(data))?
    }

    fn predict(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        block_on(self.predict_async(features, rows))?
    }

    fn network(&mut self) -> Result<Network> {
        block_on(self.network_async())?
    }

    fn optimizer_snapshot(&mut self) -> Result<OptimizerSnapshot> {
        block_on(self.optimizer_snapshot_async())?
    }

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
            self.submit_batches(data, &batches[start..end], Stage::Train, None)?;
            self.train_samples += ((end - start) * rows) as u64;
            start = end;
        }
        self.train_has_accuracy = data.classes().is_some();
        Ok(())
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        super::check_learning_rate(lr)?;
        // A 4-byte write, ordered before the next submit.
        let offset = std::mem::offset_of!(OptimState, lr) as u64;
        self.ctx
            .queue
            .write_buffer(&self.state.buffer, offset, bytemuck::bytes_of(&lr));
        Ok(())
    }

    fn set_skip_nonfinite(&mut self, skip: bool) -> Result<()> {
        self.skip_nonfinite = skip;
        let offset = std::mem::offset_of!(OptimState, skip_nonfinite) as u64;
        self.ctx
            .queue
            .write_buffer(&self.state.buffer, offset, bytemuck::bytes_of(&u32::from(skip)));
        Ok(())
    }

    fn restore_optimizer(&mut self, snapshot: &OptimizerSnapshot) -> Result<()> {
        check_snapshot(self.optimizer.kind(), &self.spec, snapshot)?;
        for (buffers, layers) in self.moments.iter().zip(&snapshot.moments) {
            buffers.write(&self.ctx, &self.layout.params.flatten(layers, |v| v))?;
        }
        // Only the progress comes from the snapshot; every setting stays this run's.
        let state = self.ctx.read(&self.state)?[0].resumed(&snapshot.progress);
        self.ctx.write(&self.state, &[state])
    }
}
