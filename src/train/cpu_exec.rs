//! Runs a [`StepProgram`] on the host, op by op, with the `cpu` kernels. Generic over `f32`
//! (the CPU backend) and `f64` (the gradient checks run the very same program exactly).

use std::collections::HashMap;

use super::layer_ops::{LayerAt, cpu_backward, cpu_forward};
use super::params::ParamLayout;
use super::program::{Op, PlainLayer, Stage, StepMetrics, StepProgram, plan};
use crate::cpu::{self, NormBatch, Real};
use crate::error::{Result, check_len};
use crate::model::{BATCH_NORM_EPS, BATCH_NORM_MOMENTUM, LayerTensors, LossKind, Network, NetworkSpec, ParamKind};
use crate::ops::{Epilogue, MatmulDims, MatmulForm};
use crate::optimizer::{OptimProgress, OptimState, Optimizer};

/// One batch's inputs as the program's `Gather` op fills them.
pub struct BatchInputs<'a, T> {
    /// `[rows × inputs]` features.
    pub x: &'a mut [T],
    /// `[rows]` class labels (softmax cross-entropy).
    pub labels: &'a mut [u32],
    /// `[rows × outputs]` float targets (the other heads).
    pub targets: &'a mut [T],
}

/// What the loss and metrics ops of one run of a program produced.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepOutcome {
    /// Σ per-sample loss.
    pub loss_sum: f64,
    /// Samples whose argmax matched the label (when counted).
    pub correct: u64,
    /// Whether the guard skipped the rest of the step (non-finite loss, skipping asked for).
    pub skipped: bool,
}

/// Every per-batch array of one (batch size, stage), allocated once and reused.
struct Workspace<T> {
    program: StepProgram,
    /// Batch tensors `[rows × width]`; tensor 0 is the input.
    tensors: Vec<Vec<T>>,
    /// Gradient of each tensor that has one (empty otherwise).
    grads: Vec<Vec<T>>,
    labels: Vec<u32>,
    targets: Vec<T>,
    loss_rows: Vec<T>,
    /// Per layer with tensors: a batch norm's batch statistics (`3 × channels`), else empty.
    norm_stats: Vec<Vec<T>>,
}

impl<T: Real> Workspace<T> {
    fn new(spec: &NetworkSpec, stage: Stage, clip: bool, rows: usize) -> Self {
        let program = plan(spec, stage, clip);
        let tensors = program.widths.iter().map(|&w| vec![T::zero(); rows * w]).collect();
        let grads = program
            .widths
            .iter()
            .zip(&program.has_grad)
            .map(|(&w, &g)| if g { vec![T::zero(); rows * w] } else { Vec::new() })
            .collect();
        Workspace {
            program,
            tensors,
            grads,
            labels: vec![0; rows],
            targets: vec![T::zero(); rows * spec.outputs()],
            loss_rows: vec![T::zero(); rows],
            norm_stats: spec
                .param_layers()
                .map(|l| match l.kind {
                    ParamKind::BatchNorm(norm) => vec![T::zero(); 3 * norm.channels],
                    ParamKind::Dense { .. } | ParamKind::Conv2d { .. } => Vec::new(),
                })
                .collect(),
        }
    }
}

/// A model's flat parameters, gradients and optimizer moments on the host, and the programs
/// that train, evaluate and differentiate it.
pub struct CpuExecutor<T: Real> {
    spec: NetworkSpec,
    layout: ParamLayout,
    params: Vec<T>,
    /// The layers' own state (batch norm's running statistics), flat.
    layer_state: Vec<T>,
    grads: Vec<T>,
    /// One flat buffer per moment, in [`Optimizer::moment_names`] order.
    moments: Vec<Vec<T>>,
    optimizer: Optimizer,
    state: OptimState,
    run_seed: u64,
    workspaces: HashMap<(usize, Stage), Workspace<T>>,
}

fn cast<T: Real>(v: f32) -> T {
    T::from(v).expect("f32 fits every Real")
}

impl<T: Real> CpuExecutor<T> {
    /// An executor for `network`, updated by `optimizer` (`max_grad_norm > 0` clips, a step
    /// with a non-finite loss is skipped when `skip_nonfinite`); `run_seed` seeds dropout.
    pub fn new(
        network: &Network,
        optimizer: Optimizer,
        max_grad_norm: f32,
        skip_nonfinite: bool,
        run_seed: u64,
    ) -> Self {
        let spec = network.spec.clone();
        let layout = ParamLayout::new(&spec);
        let params = layout.flatten(&network.layers, cast::<T>);
        CpuExecutor {
            layer_state: layout.flatten_state(&network.layers, cast::<T>),
            grads: vec![T::zero(); layout.len],
            moments: vec![vec![T::zero(); layout.len]; optimizer.state_tensors()],
            state: optimizer.state_for_run(max_grad_norm, skip_nonfinite, None),
            spec,
            layout,
            params,
            optimizer,
            run_seed,
            workspaces: HashMap::new(),
        }
    }

    /// The model.
    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    /// The flat parameters (each tensor at its aligned offset, zeros between).
    pub fn parameters(&self) -> &[T] {
        &self.params
    }

    /// The flat parameters, to change them (gradient checks perturb them one by one).
    pub fn parameters_mut(&mut self) -> &mut [T] {
        &mut self.params
    }

    /// The flat gradients of the last [`Stage::Gradients`] or training run.
    pub fn gradients(&self) -> &[T] {
        &self.grads
    }

    /// The optimizer and its settings.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// The optimizer's state block.
    pub fn state(&self) -> &OptimState {
        &self.state
    }

    /// Sets the step counter the dropout masks are drawn for.
    pub fn set_step(&mut self, step: u32) {
        self.state.step = step;
    }

    pub(crate) fn state_mut(&mut self) -> &mut OptimState {
        &mut self.state
    }

    /// The parameters and layer state as layers.
    pub fn network(&self) -> Result<Network> {
        let to_f32 = |v: T| v.to_f32().unwrap_or(f32::NAN);
        let layers = self.layout.unflatten(&self.params, Some(&self.layer_state), to_f32);
        Network::from_layers(&self.spec, layers)
    }

    /// The optimizer's moments of the parameters as layers, in [`Optimizer::moment_names`] order.
    pub fn moments(&self) -> Vec<Vec<LayerTensors>> {
        self.moments
            .iter()
            .map(|m| self.layout.unflatten(m, None, |v: T| v.to_f32().unwrap_or(f32::NAN)))
            .collect()
    }

    /// Continues from a checkpoint's optimizer state: step, β powers and moments.
    pub fn restore(&mut self, progress: &OptimProgress, moments: &[Vec<LayerTensors>]) {
        self.state = OptimState {
            lr: self.state.lr,
            ..self
                .optimizer
                .state_for_run(self.state.max_grad_norm, self.state.skip_nonfinite != 0, Some(progress))
        };
        for (dst, layers) in self.moments.iter_mut().zip(moments) {
            *dst = self.layout.flatten(layers, cast::<T>);
        }
    }

    /// Mean loss of `rows` samples placed by `fill`, forward in training mode (dropout on, at
    /// the current step), nothing updated.
    pub fn loss(&mut self, rows: usize, fill: impl FnOnce(BatchInputs<'_, T>) -> Result<()>) -> Result<f64> {
        let out = self.run(rows, Stage::Loss, false, fill)?;
        Ok(out.loss_sum / rows as f64)
    }

    /// Mean loss and the flat parameter gradients ([`CpuExecutor::gradients`]) of `rows`
    /// samples placed by `fill`, without updating anything.
    pub fn loss_and_gradients(
        &mut self,
        rows: usize,
        fill: impl FnOnce(BatchInputs<'_, T>) -> Result<()>,
    ) -> Result<f64> {
        let out = self.run(rows, Stage::Gradients, false, fill)?;
        Ok(out.loss_sum / rows as f64)
    }

    /// The model's outputs (before the loss head's transform) for `features [rows × inputs]`.
    pub fn forward(&mut self, features: &[T], rows: usize) -> Result<Vec<T>> {
        self.run(rows, Stage::Predict, false, |b| {
            b.x.copy_from_slice(features);
            Ok(())
        })?;
        let ws = &self.workspaces[&(rows, Stage::Predict)];
        Ok(ws.tensors[ws.program.output].clone())
    }

    /// Runs `stage`'s program on a batch of `rows`; `fill` carries out the `Gather` op (or
    /// places the inputs, for stages without one); `classes`: the batch has class labels, so
    /// the metrics op counts correct predictions.
    pub(crate) fn run(
        &mut self,
        rows: usize,
        stage: Stage,
        classes: bool,
        fill: impl FnOnce(BatchInputs<'_, T>) -> Result<()>,
    ) -> Result<StepOutcome> {
        let clip = self.state.max_grad_norm > 0.0;
        let mut ws = self
            .workspaces
            .remove(&(rows, stage))
            .unwrap_or_else(|| Workspace::new(&self.spec, stage, clip, rows));
        check_len("step", "features", ws.tensors[0].len(), rows * self.spec.inputs())?;
        // The inputs are placed by the program's Gather op, or first thing when it has none.
        let mut fill = Some(fill);
        let mut place = |ws: &mut Workspace<T>| {
            let Workspace {
                tensors,
                labels,
                targets,
                ..
            } = ws;
            let x = &mut tensors[0];
            (fill.take().expect("inputs are placed once"))(BatchInputs { x, labels, targets })
        };
        let mut out = StepOutcome::default();
        let result = (|| {
            if !ws.program.ops.contains(&Op::Gather) {
                place(&mut ws)?;
            }
            for i in 0..ws.program.ops.len() {
                let op = ws.program.ops[i];
                if op == Op::Gather {
                    place(&mut ws)?;
                } else if self.execute(op, &mut ws, (rows, classes), &mut out)? {
                    out.skipped = true;
                    break;
                }
            }
            Ok(())
        })();
        self.workspaces.insert((rows, stage), ws);
        result.map(|()| out)
    }

    fn layer_at(&self, position: usize, plain: PlainLayer) -> LayerAt {
        LayerAt {
            plain,
            position,
            run_seed: self.run_seed,
        }
    }

    /// Executes one op; returns whether the rest of the step is to be skipped.
    fn execute(
        &mut self,
        op: Op,
        ws: &mut Workspace<T>,
        (rows, classes): (usize, bool),
        out: &mut StepOutcome,
    ) -> Result<bool> {
        let spec = &self.spec;
        match op {
            Op::Gather => unreachable!("handled by run"),
            Op::Tick => self.state.tick(),
            Op::DenseForward {
                layer,
                input,
                output,
                act,
            } => {
                let (w, b) = self.layout.layers[layer].weight_bias();
                let (before, after) = ws.tensors.split_at_mut(output);
                cpu::matmul(
                    MatmulForm::ABt,
                    MatmulDims::new(rows, w.cols, w.rows),
                    &before[input],
                    &self.params[w.range()],
                    &mut after[0],
                    Epilogue::BiasAct {
                        bias: &self.params[b.range()],
                        act,
                    },
                )?;
            }
            Op::ConvForward {
                layer,
                geometry,
                out_channels,
                input,
                output,
                act,
            } => {
                let (w, b) = self.layout.layers[layer].weight_bias();
                let (before, after) = ws.tensors.split_at_mut(output);
                let (weight, bias) = (&self.params[w.range()], &self.params[b.range()]);
                cpu::conv2d_forward(
                    &before[input],
                    weight,
                    bias,
                    &mut after[0],
                    rows,
                    geometry,
                    out_channels,
                    act,
                )?;
            }
            Op::BatchNormForward {
                layer,
                norm,
                input,
                output,
                act,
                training,
            } => {
                let slots = &self.layout.layers[layer];
                let (w, b) = slots.weight_bias();
                let affine = (&self.params[w.range()], &self.params[b.range()]);
                let (before, after) = ws.tensors.split_at_mut(output);
                let batch = NormBatch { rows, shape: norm };
                if training {
                    let stats = &mut ws.norm_stats[layer];
                    cpu::batch_norm_train_forward(
                        &before[input],
                        affine,
                        &mut after[0],
                        stats,
                        batch,
                        act,
                        BATCH_NORM_EPS,
                    )?;
                } else {
                    // running_mean, running_var, num_batches_tracked: batch norm's state, in order.
                    let running = (
                        &self.layer_state[slots.state[0].range()],
                        &self.layer_state[slots.state[1].range()],
                    );
                    cpu::batch_norm_eval_forward(
                        &before[input],
                        affine,
                        running,
                        &mut after[0],
                        batch,
                        act,
                        BATCH_NORM_EPS,
                    )?;
                }
            }
            Op::ActivationForward { input, output, act } => {
                let (before, after) = ws.tensors.split_at_mut(output);
                cpu::activation_forward(&before[input], &mut after[0], act)?;
            }
            Op::LayerForward {
                position,
                plain,
                input,
                output,
            } => {
                let (before, after) = ws.tensors.split_at_mut(output);
                cpu_forward(
                    self.layer_at(position, plain),
                    self.state.step,
                    &before[input],
                    &mut after[0],
                )?;
            }
            Op::Loss { logits, metrics } => {
                let (z, dz, cols) = (&ws.tensors[logits], &mut ws.grads[logits], spec.outputs());
                let (labels, targets, loss_rows) = (&ws.labels, &ws.targets, &mut ws.loss_rows);
                match spec.loss {
                    LossKind::SoftmaxCrossEntropy => cpu::softmax_cross_entropy(z, labels, loss_rows, dz, rows, cols)?,
                    LossKind::SigmoidBinaryCrossEntropy => {
                        cpu::sigmoid_binary_cross_entropy(z, targets, loss_rows, dz, rows, cols)?
                    }
                    LossKind::MeanSquaredError => cpu::mse(z, targets, loss_rows, dz, rows, cols)?,
                    LossKind::MeanAbsoluteError => cpu::mae(z, targets, loss_rows, dz, rows, cols)?,
                }
                out.loss_sum = ws.loss_rows.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).sum();
                if let Some(StepMetrics { tick, guard }) = metrics {
                    let labels = classes.then_some(&ws.labels[..]);
                    let shape = (rows, spec.outputs());
                    let z = &ws.tensors[logits];
                    let metrics = cpu::batch_metrics(z, labels, &ws.loss_rows, shape, &mut self.state, (tick, guard))?;
                    out.correct = metrics.correct;
                    return Ok(metrics.skip);
                }
            }
            Op::DenseBackward {
                layer,
                input,
                output,
                input_grad,
            } => {
                let (w, b) = self.layout.layers[layer].weight_bias();
                let (fan_in, fan_out) = (w.cols, w.rows);
                let (grads_before, grads_after) = ws.grads.split_at_mut(output);
                let dz = &grads_after[0];
                cpu::matmul(
                    MatmulForm::AtB,
                    MatmulDims::new(fan_out, rows, fan_in),
                    dz,
                    &ws.tensors[input],
                    &mut self.grads[w.range()],
                    Epilogue::None,
                )?;
                cpu::bias_grad(dz, &mut self.grads[b.range()], rows, fan_out)?;
                if let Some(act) = input_grad {
                    cpu::matmul(
                        MatmulForm::AB,
                        MatmulDims::new(rows, fan_out, fan_in),
                        dz,
                        &self.params[w.range()],
                        &mut grads_before[input],
                        Epilogue::ActGrad {
                            act_output: &ws.tensors[input][..],
                            act,
                        },
                    )?;
                }
            }
            Op::ConvBackward {
                layer,
                geometry,
                out_channels,
                input,
                output,
                input_grad,
            } => {
                let (w, b) = self.layout.layers[layer].weight_bias();
                let (grads_before, grads_after) = ws.grads.split_at_mut(output);
                let (dw, db) = split_two(&mut self.grads, w.range(), b.range());
                let dx = input_grad.map(|act| (&mut grads_before[input][..], act));
                let (x, weight) = (&ws.tensors[input], &self.params[w.range()]);
                cpu::conv2d_backward(&grads_after[0], x, weight, (dw, db), dx, rows, geometry, out_channels)?;
            }
            Op::BatchNormBackward {
                layer,
                norm,
                input,
                output,
                input_grad,
                track,
            } => {
                let slots = &self.layout.layers[layer];
                let (w, b) = slots.weight_bias();
                let (grads_before, grads_after) = ws.grads.split_at_mut(output);
                let (dw, db) = split_two(&mut self.grads, w.range(), b.range());
                let dx = input_grad.map(|act| (&mut grads_before[input][..], act));
                let batch = NormBatch { rows, shape: norm };
                let (x, gamma, stats) = (&ws.tensors[input], &self.params[w.range()], &ws.norm_stats[layer]);
                cpu::batch_norm_backward(&grads_after[0], x, gamma, stats, (dw, db), dx, batch)?;
                if track {
                    let (mean, var, count) = (slots.state[0], slots.state[1], slots.state[2]);
                    let (head, tail) = self.layer_state.split_at_mut(var.offset);
                    let (var_part, count_part) = tail.split_at_mut(count.offset - var.offset);
                    let running = (&mut head[mean.range()], &mut var_part[..var.len()], &mut count_part[0]);
                    cpu::batch_norm_track(stats, running, batch, BATCH_NORM_MOMENTUM)?;
                }
            }
            Op::ActivationBackward { input, output, act } => {
                let (before, after) = ws.grads.split_at_mut(output);
                cpu::activation_backward(&after[0], &ws.tensors[output], &mut before[input], act)?;
            }
            Op::LayerBackward {
                position,
                plain,
                input,
                output,
                input_act,
            } => {
                let (before, after) = ws.grads.split_at_mut(output);
                let at = self.layer_at(position, plain);
                cpu_backward(
                    at,
                    self.state.step,
                    (&after[0], &ws.tensors[input]),
                    &mut before[input],
                    input_act,
                )?;
            }
            Op::GradNorm => cpu::accumulate_grad_norm(&self.grads, &mut self.state),
            Op::Update => cpu::optimizer_update(
                &self.optimizer,
                &mut self.params,
                &self.grads,
                &mut self.moments,
                &self.state,
            )?,
        }
        Ok(false)
    }
}

/// Two disjoint ranges of one buffer, mutably (a layer's weight and bias in the flat gradients).
fn split_two<T>(buf: &mut [T], first: std::ops::Range<usize>, second: std::ops::Range<usize>) -> (&mut [T], &mut [T]) {
    assert!(first.end <= second.start, "ranges in order and disjoint");
    let (head, tail) = buf.split_at_mut(second.start);
    (&mut head[first], &mut tail[..second.end - second.start])
}
