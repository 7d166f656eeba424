//! The GPU executor: turns each op of a [`StepProgram`] into dispatches, prepared once (bind
//! groups and all) against a workspace's buffers, and recorded every step.

use crate::cpu::NormBatch;
use crate::data::Dataset;
use crate::error::Result;
use crate::gpu::batchnorm::{self, NormGrads, NormTensors};
use crate::gpu::data::{BatchTargets, DeviceDataset};
use crate::gpu::{self, Dispatch, GpuBuffer, GpuContext, GpuView, Operand};
use crate::model::{ConvGeometry, NetworkSpec, ParamKind};
use crate::ops::{Epilogue, MatmulDims, MatmulForm};
use crate::optimizer::{OptimState, Optimizer};
use crate::train::layer_ops::{self, LayerAt};
use crate::train::program::{Op, PlainLayer, StepProgram};

use super::layout::{DeviceLayout, FlatBuffers};

/// Per-(batch size, stage) buffers: the batch's indices, tensors and gradients.
pub(crate) struct Workspace {
    pub rows: usize,
    /// `slots × rows` sample indices: one batch per step recorded in a submit.
    pub indices: GpuBuffer<u32>,
    /// Batch tensors; tensor 0 is the gathered input.
    pub tensors: Vec<GpuBuffer<f32>>,
    /// Gradient of each tensor that has one.
    pub grads: Vec<Option<GpuBuffer<f32>>>,
    pub labels: GpuBuffer<u32>,
    pub targets: GpuBuffer<f32>,
    pub loss_rows: GpuBuffer<f32>,
    /// Per layer with tensors that is a conv: its path, with the im2col scratch if it needs it.
    pub conv: Vec<Option<gpu::ConvWork>>,
    /// Per layer with tensors that is a batch norm: its batch statistics (`3 × channels`).
    pub norm_stats: Vec<Option<GpuBuffer<f32>>>,
}

impl Workspace {
    pub fn new(ctx: &GpuContext, spec: &NetworkSpec, program: &StepProgram, rows: usize, slots: usize) -> Result<Self> {
        Ok(Workspace {
            rows,
            indices: ctx.zeros("batch indices", rows * slots)?,
            tensors: program
                .widths
                .iter()
                .enumerate()
                .map(|(t, &w)| ctx.zeros(&format!("tensor {t}"), rows * w))
                .collect::<Result<_>>()?,
            grads: program
                .widths
                .iter()
                .zip(&program.has_grad)
                .enumerate()
                .map(|(t, (&w, &g))| g.then(|| ctx.zeros(&format!("grad {t}"), rows * w)).transpose())
                .collect::<Result<_>>()?,
            labels: ctx.zeros("batch labels", rows)?,
            targets: ctx.zeros("batch targets", rows * spec.outputs())?,
            loss_rows: ctx.zeros("loss rows", rows)?,
            conv: spec
                .param_layers()
                .map(|l| match l.kind {
                    ParamKind::Conv2d { geometry, out_channels } => {
                        let s = conv_shape(geometry, out_channels, rows);
                        gpu::ConvWork::new(ctx, &s, &format!("conv {}", l.index)).map(Some)
                    }
                    ParamKind::Dense { .. } | ParamKind::BatchNorm(_) => Ok(None),
                })
                .collect::<Result<_>>()?,
            norm_stats: spec
                .param_layers()
                .map(|l| match l.kind {
                    ParamKind::BatchNorm(norm) => ctx
                        .zeros(&format!("batch norm {} statistics", l.index), 3 * norm.channels)
                        .map(Some),
                    ParamKind::Dense { .. } | ParamKind::Conv2d { .. } => Ok(None),
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Conv layer `layer`'s path and scratch.
    fn conv_work(&self, layer: usize) -> &gpu::ConvWork {
        self.conv[layer].as_ref().expect("a conv layer has its path")
    }

    /// Batch-norm layer `layer`'s batch statistics.
    fn norm_stats(&self, layer: usize) -> &GpuBuffer<f32> {
        self.norm_stats[layer]
            .as_ref()
            .expect("a batch norm layer has its statistics")
    }

    fn grad(&self, t: usize) -> &GpuBuffer<f32> {
        self.grads[t]
            .as_ref()
            .expect("the program gives this tensor a gradient")
    }
}

/// Device-side loss and correct-count accumulators.
pub(crate) struct Accumulators {
    pub loss: GpuBuffer<f32>,
    pub correct: GpuBuffer<u32>,
}

impl Accumulators {
    pub fn new(ctx: &GpuContext, name: &str) -> Result<Self> {
        Ok(Accumulators {
            loss: ctx.zeros(&format!("{name} loss sum"), 1)?,
            correct: ctx.zeros(&format!("{name} correct"), 1)?,
        })
    }
}

/// Everything a program's dispatches bind besides the workspace.
pub(crate) struct Resources<'a> {
    pub ctx: &'a GpuContext,
    pub spec: &'a NetworkSpec,
    pub layout: &'a DeviceLayout,
    pub params: &'a FlatBuffers,
    /// The layers' own state (batch norm's running statistics), flat.
    pub layer_state: &'a GpuBuffer<f32>,
    pub grads: &'a FlatBuffers,
    pub moments: &'a [FlatBuffers],
    pub state: &'a GpuBuffer<OptimState>,
    pub optimizer: &'a Optimizer,
    pub run_seed: u64,
    pub totals: &'a Accumulators,
}

impl Resources<'_> {
    /// Batch-norm layer `layer`'s tensors as its kernels bind them.
    fn norm_tensors(&self, layer: usize) -> Result<NormTensors<'_>> {
        let slots = &self.layout.params.layers[layer];
        let (w, b) = slots.weight_bias();
        // running_mean, running_var, num_batches_tracked: batch norm's state, in order.
        let (mean, var, count) = (slots.state[0], slots.state[1], slots.state[2]);
        Ok(NormTensors {
            affine: self.params.view(w.through(b))?,
            bias_at: b.offset - w.offset,
            running: self.layer_state.view(mean.through(count))?,
            var_at: var.offset - mean.offset,
            count_at: count.offset - mean.offset,
        })
    }

    fn layer_at(&self, position: usize, plain: PlainLayer) -> LayerAt {
        LayerAt {
            plain,
            position,
            run_seed: self.run_seed,
        }
    }
}

fn conv_shape(geometry: ConvGeometry, out_channels: usize, batch: usize) -> gpu::ConvShape {
    gpu::ConvShape {
        geometry,
        out_channels,
        batch,
    }
}

/// An operand of the strided matmul: `view` with element `(i, j)` at `offset + i·ld + j`.
fn operand(view: GpuView<'_, f32>, offset: usize, ld: usize) -> Operand<'_> {
    Operand { view, offset, ld }
}

/// The gather dispatches of each index slot of `ws`.
pub(crate) fn gathers(
    ctx: &GpuContext,
    spec: &NetworkSpec,
    data: &Dataset,
    device_data: &DeviceDataset,
    ws: &Workspace,
    slots: usize,
) -> Result<Vec<Vec<Dispatch>>> {
    let needs_targets = !spec.loss.takes_labels();
    (0..slots)
        .map(|k| {
            let out = BatchTargets {
                x: &ws.tensors[0],
                labels: data.classes().is_some().then_some(&ws.labels),
                targets: needs_targets.then_some(&ws.targets),
            };
            gpu::data::gather(ctx, device_data, &ws.indices, k * ws.rows, ws.rows, out)
        })
        .collect()
}

/// The dispatches of every op after the gather, in order.
pub(crate) fn body(r: &Resources<'_>, program: &StepProgram, ws: &Workspace, classes: bool) -> Result<Vec<Dispatch>> {
    let mut out = Vec::new();
    for &op in &program.ops {
        record(r, op, ws, classes, &mut out)?;
    }
    Ok(out)
}

fn record(r: &Resources<'_>, op: Op, ws: &Workspace, classes: bool, out: &mut Vec<Dispatch>) -> Result<()> {
    let ctx = r.ctx;
    let rows = ws.rows;
    match op {
        Op::Gather => {}
        Op::Tick => out.push(gpu::tick(ctx, r.state)?),
        Op::DenseForward {
            layer,
            input,
            output,
            act,
        } => {
            // One dispatch per weight chunk, each writing its block of output columns.
            let (w, b) = r.layout.params.layers[layer].weight_bias();
            let (fan_in, fan_out) = (w.cols, w.rows);
            for chunk in &r.layout.weight_chunks[layer] {
                out.push(gpu::matmul_strided(
                    ctx,
                    MatmulForm::ABt,
                    MatmulDims::new(rows, fan_in, chunk.len()),
                    operand((&ws.tensors[input]).into(), 0, fan_in),
                    operand(r.params.rows(w, chunk)?, 0, fan_in),
                    operand((&ws.tensors[output]).into(), chunk.start, fan_out),
                    Epilogue::BiasAct {
                        bias: operand(r.params.tensor(b)?, chunk.start, fan_out),
                        act,
                    },
                    false,
                )?);
            }
        }
        Op::ConvForward {
            layer,
            geometry,
            out_channels,
            input,
            output,
            act,
        } => {
            let (w, b) = r.layout.params.layers[layer].weight_bias();
            out.extend(ws.conv_work(layer).forward(
                ctx,
                conv_shape(geometry, out_channels, rows),
                &ws.tensors[input],
                (r.params.tensor(w)?, r.params.tensor(b)?),
                &ws.tensors[output],
                act,
            )?);
        }
        Op::BatchNormForward {
            layer,
            norm,
            input,
            output,
            act,
            training,
        } => {
            let batch = NormBatch { rows, shape: norm };
            let (x, y, t) = (&ws.tensors[input], &ws.tensors[output], r.norm_tensors(layer)?);
            out.push(if training {
                batchnorm::batch_norm_train_forward(ctx, x, t, (y, ws.norm_stats(layer)), batch, act)?
            } else {
                batchnorm::batch_norm_eval_forward(ctx, x, t, y, batch, act)?
            });
        }
        Op::ActivationForward { input, output, act } => out.push(gpu::activation_forward(
            ctx,
            &ws.tensors[input],
            &ws.tensors[output],
            act,
        )?),
        Op::LayerForward {
            position,
            plain,
            input,
            output,
        } => out.push(layer_ops::gpu_forward(
            ctx,
            r.layer_at(position, plain),
            r.state,
            &ws.tensors[input],
            &ws.tensors[output],
        )?),
        Op::Loss { logits, metrics } => {
            let metrics = metrics.expect("the GPU runs stages that keep totals");
            let head = r.spec.loss;
            let inputs = gpu::LossInputs {
                z: &ws.tensors[logits],
                labels: &ws.labels,
                targets: &ws.targets,
            };
            let outputs = gpu::LossOutputs {
                loss_rows: &ws.loss_rows,
                dz: ws.grad(logits),
            };
            let totals = gpu::MetricsTotals {
                loss: &r.totals.loss,
                correct: &r.totals.correct,
            };
            let flags = gpu::MetricsFlags {
                count_correct: classes,
                guard: metrics.guard,
                tick: metrics.tick,
            };
            let shape = (rows, r.spec.outputs());
            out.push(gpu::loss_and_metrics(
                ctx, head, inputs, outputs, totals, r.state, shape, flags,
            )?);
        }
        Op::ConvBackward {
            layer,
            geometry,
            out_channels,
            input,
            output,
            input_grad,
        } => {
            let (w, b) = r.layout.params.layers[layer].weight_bias();
            out.extend(ws.conv_work(layer).backward(
                ctx,
                conv_shape(geometry, out_channels, rows),
                ws.grad(output),
                (&ws.tensors[input], r.params.tensor(w)?),
                (r.grads.tensor(w)?, r.grads.tensor(b)?),
                input_grad.map(|act| (ws.grad(input), act)),
            )?);
        }
        Op::DenseBackward {
            layer,
            input,
            output,
            input_grad,
        } => {
            // Chunk by chunk for split layers: dW[chunk] = dZ[:, chunk]ᵀ·input with
            // db[chunk] = Σ_rows dZ[:, chunk] in the same dispatch, and
            // grad[input] = Σ_chunks dZ[:, chunk]·W[chunk], the last chunk applying act'.
            let (w, b) = r.layout.params.layers[layer].weight_bias();
            let (fan_in, fan_out) = (w.cols, w.rows);
            let chunks = &r.layout.weight_chunks[layer];
            let dz = ws.grad(output);
            if let ([whole], Some(act)) = (chunks.as_slice(), input_grad) {
                // An unsplit layer: both gradients in one launch where the kernels allow.
                out.push(gpu::dense_grads(
                    ctx,
                    &gpu::DenseGrads {
                        dims: MatmulDims::new(fan_out, rows, fan_in),
                        dz: operand(dz.into(), 0, fan_out),
                        input: operand((&ws.tensors[input]).into(), 0, fan_in),
                        weights: operand(r.params.rows(w, whole)?, 0, fan_in),
                        weight_grad: operand(r.grads.rows(w, whole)?, 0, fan_in),
                        bias_grad: operand(r.grads.tensor(b)?, 0, 1),
                        input_grad: operand(ws.grad(input).into(), 0, fan_in),
                        act,
                    },
                )?);
                return Ok(());
            }
            for chunk in chunks {
                out.push(gpu::weight_grad(
                    ctx,
                    MatmulDims::new(chunk.len(), rows, fan_in),
                    operand(dz.into(), chunk.start, fan_out),
                    operand((&ws.tensors[input]).into(), 0, fan_in),
                    operand(r.grads.rows(w, chunk)?, 0, fan_in),
                    operand(r.grads.tensor(b)?, chunk.start, 1),
                )?);
            }
            if let Some(act) = input_grad {
                for (i, chunk) in chunks.iter().enumerate() {
                    let epilogue = if i + 1 == chunks.len() {
                        Epilogue::ActGrad {
                            act_output: operand((&ws.tensors[input]).into(), 0, fan_in),
                            act,
                        }
                    } else {
                        Epilogue::None
                    };
                    out.push(gpu::matmul_strided(
                        ctx,
                        MatmulForm::AB,
                        MatmulDims::new(rows, chunk.len(), fan_in),
                        operand(dz.into(), chunk.start, fan_out),
                        operand(r.params.rows(w, chunk)?, 0, fan_in),
                        operand(ws.grad(input).into(), 0, fan_in),
                        epilogue,
                        i > 0,
                    )?);
                }
            }
        }
        Op::BatchNormBackward {
            layer,
            norm,
            input,
            output,
            input_grad,
            track,
        } => {
            let slots = &r.layout.params.layers[layer];
            let (w, b) = slots.weight_bias();
            let grads = NormGrads {
                affine: r.grads.view(w.through(b))?,
                dx: input_grad.map(|act| (ws.grad(input), act)),
            };
            out.push(batchnorm::batch_norm_backward(
                ctx,
                (ws.grad(output), &ws.tensors[input]),
                r.norm_tensors(layer)?,
                ws.norm_stats(layer),
                grads,
                r.state,
                NormBatch { rows, shape: norm },
                track,
            )?);
        }
        Op::ActivationBackward { input, output, act } => out.push(gpu::activation_backward(
            ctx,
            ws.grad(output),
            &ws.tensors[output],
            ws.grad(input),
            act,
        )?),
        Op::LayerBackward {
            position,
            plain,
            input,
            output,
            input_act,
        } => out.push(layer_ops::gpu_backward(
            ctx,
            r.layer_at(position, plain),
            r.state,
            (ws.grad(output), &ws.tensors[input]),
            ws.grad(input),
            input_act,
        )?),
        Op::GradNorm => {
            for chunk in &r.layout.update_chunks {
                out.push(gpu::accumulate_grad_norm(ctx, r.grads.view(chunk.clone())?, r.state)?);
            }
        }
        Op::Update => {
            for chunk in &r.layout.update_chunks {
                let moments = r
                    .moments
                    .iter()
                    .map(|m| m.view(chunk.clone()))
                    .collect::<Result<Vec<_>>>()?;
                out.push(gpu::optimizer_update(
                    ctx,
                    r.optimizer,
                    r.params.view(chunk.clone())?,
                    r.grads.view(chunk.clone())?,
                    &moments,
                    r.state,
                )?);
            }
        }
    }
    Ok(())
}
