//! The training step, written once: [`plan`] turns a model and a [`Stage`] into an ordered list
//! of [`Op`]s over numbered tensors. Both backends execute that list (the CPU op by op, the GPU
//! as dispatches prepared once and recorded every step), and fusion is decided here and nowhere
//! else.
//!
//! Tensors are batch activations `[rows × width]`: tensor 0 is the gathered input, each forward
//! op writes a new one. Each tensor that needs one has a gradient buffer of the same shape. For
//! the output of a layer with parameters (dense, conv, batch norm) fused with its activation,
//! that buffer holds the gradient with
//! respect to the *pre-activation* (`dZ`): whoever computes it multiplies by `act'` of the
//! stored output (the `input_act` of the backward ops), so no pre-activation is ever stored.

use super::layer_ops;
use crate::activation::Activation;
use crate::cpu::PoolGeometry;
use crate::model::{ConvGeometry, Layer, NetworkSpec, NormShape, ParamKind, ParamLayer, SampleShape};

/// Index of a batch tensor in a [`StepProgram`].
pub(crate) type TensorId = usize;

/// How much of a training step a program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Forward only, evaluation mode (dropout passes through): predictions.
    Predict,
    /// Gather, forward in evaluation mode, loss and metrics: evaluation.
    Evaluate,
    /// Forward in training mode and loss, on inputs placed by the caller (gradient checks).
    Loss,
    /// [`Stage::Loss`] plus every backward op: parameter gradients (gradient checks).
    Gradients,
    /// A full training step: gather, tick, forward, loss, metrics, guard, backward, clipping
    /// norm, update.
    Train,
}

impl Stage {
    /// Whether dropout is active.
    pub fn training_mode(self) -> bool {
        matches!(self, Stage::Loss | Stage::Gradients | Stage::Train)
    }

    fn has_loss(self) -> bool {
        self != Stage::Predict
    }

    fn has_backward(self) -> bool {
        matches!(self, Stage::Gradients | Stage::Train)
    }
}

/// One operation of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    /// Copies the batch's samples into tensor 0 and its labels or targets.
    Gather,
    /// Advances the optimizer's step counter, before the forward pass when dropout masks read
    /// it (otherwise [`Op::Loss`]'s metrics advance it, saving a dispatch).
    Tick,
    /// `output = act(input·Wᵀ + b)` with the weight and bias of dense layer `layer` (its index
    /// among the layers with tensors), one fused op.
    DenseForward {
        layer: usize,
        input: TensorId,
        output: TensorId,
        act: Activation,
    },
    /// `output = act(conv2d(input, W) + b)` for conv layer `layer`, one fused op.
    ConvForward {
        layer: usize,
        geometry: ConvGeometry,
        out_channels: usize,
        input: TensorId,
        output: TensorId,
        act: Activation,
    },
    /// `output = act(γ·x̂ + β)` for batch-norm layer `layer`: `x̂` normalized by the batch's
    /// statistics in `training` (kept for the backward op), by the running ones otherwise.
    BatchNormForward {
        layer: usize,
        norm: NormShape,
        input: TensorId,
        output: TensorId,
        act: Activation,
        training: bool,
    },
    /// `output = act(input)`.
    ActivationForward {
        input: TensorId,
        output: TensorId,
        act: Activation,
    },
    /// `output = layer(input)` for a layer without tensors (dropout, pooling) at `position` in
    /// the model; what it computes lives in `train/layer_ops.rs`.
    LayerForward {
        position: usize,
        plain: PlainLayer,
        input: TensorId,
        output: TensorId,
    },
    /// Per-sample loss and `grad[logits] = dLoss/dlogits` (the `1/B` included), and with
    /// `metrics` the step's bookkeeping: one fused dispatch on the GPU.
    Loss {
        logits: TensorId,
        metrics: Option<StepMetrics>,
    },
    /// `dW = dZᵀ·input`, `db = Σ_rows dZ` with `dZ = grad[output]`; with `input_grad`, also
    /// `grad[input] = (dZ·W) ⊙ input_grad'(input)` (the derivative of the activation fused into
    /// the op that produced `input`).
    DenseBackward {
        layer: usize,
        input: TensorId,
        output: TensorId,
        input_grad: Option<Activation>,
    },
    /// The conv's `dW`, `db` and, with `input_grad`, `grad[input]` (as [`Op::DenseBackward`]).
    ConvBackward {
        layer: usize,
        geometry: ConvGeometry,
        out_channels: usize,
        input: TensorId,
        output: TensorId,
        input_grad: Option<Activation>,
    },
    /// Batch norm's `dγ`, `dβ` and, with `input_grad`, `grad[input]` from `grad[output]`; with
    /// `track`, also moves the running statistics towards the batch's (after the loss guard, so
    /// a skipped step leaves them as they were).
    BatchNormBackward {
        layer: usize,
        norm: NormShape,
        input: TensorId,
        output: TensorId,
        input_grad: Option<Activation>,
        track: bool,
    },
    /// `grad[input] = grad[output] ⊙ act'(output)`.
    ActivationBackward {
        input: TensorId,
        output: TensorId,
        act: Activation,
    },
    /// `grad[input] = grad[output]·∂layer/∂input ⊙ input_act'(input)` for the layer at
    /// `position` (the derivative of the activation fused into `input`'s producer applied too).
    LayerBackward {
        position: usize,
        plain: PlainLayer,
        input: TensorId,
        output: TensorId,
        input_act: Activation,
    },
    /// Σ g² over every gradient, for clipping by global norm.
    GradNorm,
    /// The optimizer's update over the flat parameters.
    Update,
}

/// A layer without tensors, other than an activation, that does something in a stage: what
/// its ops (`train/layer_ops.rs`) need to know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PlainLayer {
    /// Inverted dropout at `rate` (in training only).
    Dropout { rate: f32 },
    /// Max pooling over the input image.
    MaxPool2d(PoolGeometry),
}

/// What a layer of the model does in a stage.
#[derive(Clone, Copy)]
enum Role {
    /// Nothing: its output is its input (flatten; dropout at evaluation or at rate 0).
    Skip,
    /// Ops over its tensors, which layer `index` (among the layers with tensors) owns.
    Owns(usize, ParamKind),
    /// An elementwise nonlinearity, which the op before may fuse.
    Activation(Activation),
    /// A layer without tensors.
    Plain(PlainLayer),
}

/// What `layer` does in `stage`, given its input and output.
fn role(spec: &NetworkSpec, position: usize, stage: Stage, owners: &[ParamLayer]) -> Role {
    let layer = spec.layers[position];
    let owned = || {
        let l = owners
            .iter()
            .find(|l| l.position == position)
            .expect("every layer with tensors is among the spec's param layers");
        Role::Owns(l.index, l.kind)
    };
    match layer {
        Layer::Dense { .. } | Layer::Conv2d { .. } | Layer::BatchNorm => owned(),
        Layer::Activation(act) => Role::Activation(act),
        Layer::Dropout { rate } if stage.training_mode() && rate > 0.0 => Role::Plain(PlainLayer::Dropout { rate }),
        Layer::Dropout { .. } | Layer::Flatten => Role::Skip,
        Layer::MaxPool2d { kernel, stride } => {
            let SampleShape::Image {
                channels,
                height,
                width,
            } = spec.shapes()[position]
            else {
                unreachable!("validation gives pooling an image input")
            };
            Role::Plain(PlainLayer::MaxPool2d(PoolGeometry {
                channels,
                height,
                width,
                kernel,
                stride,
            }))
        }
    }
}

/// What the loss op does after the loss: add the batch's loss sum (and correct count, for class
/// labels) to the totals; in training, first advance the step (`tick`) and then run the
/// non-finite `guard`, which flags a step whose loss is non-finite (the updates skip it when the
/// run asks for that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepMetrics {
    pub tick: bool,
    pub guard: bool,
}

/// The ops of one stage of one model, and the tensors they use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepProgram {
    pub stage: Stage,
    /// Width of each tensor (tensor 0: the input features).
    pub widths: Vec<usize>,
    /// Which tensors have a gradient buffer.
    pub has_grad: Vec<bool>,
    pub ops: Vec<Op>,
    /// The tensor the loss head reads (the model's outputs).
    pub output: TensorId,
}

/// Plans `stage` of `spec`'s step; `clip` adds the gradient-norm op.
///
/// Fusion: a layer with parameters (dense, conv, batch norm) followed by an activation runs as
/// one op with the activation applied to its output (`act(X·Wᵀ + b)` for a dense layer), unless
/// that activation is the model's last layer (the loss head needs `dLoss/dA` turned into `dZ`, a
/// separate op either way) or is followed by another activation (whose backward then sees a
/// plain input). Backward fuses each fused activation's derivative into the op that computes
/// its gradient: the next dense layer's `dZ·W` epilogue, the next conv's or batch norm's input
/// gradient, or the next dropout's or pooling's mask.
pub(crate) fn plan(spec: &NetworkSpec, stage: Stage, clip: bool) -> StepProgram {
    // What each layer does in this stage; those that do nothing (dropout at evaluation and at
    // rate 0, flatten) are left out before fusion is decided. Each keeps its position.
    let owners: Vec<ParamLayer> = spec.param_layers().collect();
    let layers: Vec<(usize, Role)> = (0..spec.layers.len())
        .map(|position| (position, role(spec, position, stage, &owners)))
        .filter(|(_, r)| !matches!(r, Role::Skip))
        .collect();
    // One sample's shape after each layer of the model.
    let shapes = spec.shapes();
    let mut widths = vec![spec.inputs];
    // The activation fused into the op that produced each tensor.
    let mut produced_with = vec![Activation::Identity];
    let mut forward = Vec::new();
    let mut current: TensorId = 0;
    let mut i = 0;
    while i < layers.len() {
        let (position, ref role) = layers[i];
        let width = shapes[position + 1].len();
        let mut new_tensor = |act: Activation| {
            widths.push(width);
            produced_with.push(act);
            widths.len() - 1
        };
        let op = match *role {
            Role::Skip => unreachable!("left out above"),
            Role::Owns(layer, kind) => {
                // The activation right after is fused, unless it is the last layer or another
                // activation follows it.
                let act = match (layers.get(i + 1).map(|l| &l.1), layers.get(i + 2).map(|l| &l.1)) {
                    (Some(Role::Activation(a)), Some(next)) if !matches!(next, Role::Activation(_)) => {
                        i += 1;
                        *a
                    }
                    _ => Activation::Identity,
                };
                let output = new_tensor(act);
                let input = current;
                match kind {
                    ParamKind::Dense { .. } => Op::DenseForward {
                        layer,
                        input,
                        output,
                        act,
                    },
                    ParamKind::Conv2d { geometry, out_channels } => Op::ConvForward {
                        layer,
                        geometry,
                        out_channels,
                        input,
                        output,
                        act,
                    },
                    ParamKind::BatchNorm(norm) => Op::BatchNormForward {
                        layer,
                        norm,
                        input,
                        output,
                        act,
                        training: stage.training_mode(),
                    },
                }
            }
            Role::Activation(act) => Op::ActivationForward {
                input: current,
                output: new_tensor(Activation::Identity),
                act,
            },
            Role::Plain(plain) => Op::LayerForward {
                position,
                plain,
                input: current,
                output: new_tensor(Activation::Identity),
            },
        };
        current = forward_output(&op).0;
        forward.push(op);
        i += 1;
    }
    let output = current;

    // A tensor needs a gradient when some layer with parameters comes before it.
    let mut has_grad = vec![false; widths.len()];
    let mut seen_params = false;
    for op in &forward {
        let (output, trains) = forward_output(op);
        seen_params |= trains;
        if seen_params {
            has_grad[output] = true;
        }
    }

    let mut ops = Vec::new();
    if matches!(stage, Stage::Train | Stage::Evaluate) {
        ops.push(Op::Gather);
    }
    // The step advances before anything reads it: dropout masks in the forward pass if there
    // are any, else nothing before the metrics op, which then ticks in the same dispatch.
    let masks_read_step = layers
        .iter()
        .any(|(_, r)| matches!(r, Role::Plain(p) if layer_ops::reads_step(p)));
    let train = stage == Stage::Train;
    if train && masks_read_step {
        ops.push(Op::Tick);
    }
    ops.extend(forward.iter().copied());
    if stage.has_loss() {
        // Training and evaluation keep totals; the gradient checks only want the loss.
        let metrics = matches!(stage, Stage::Train | Stage::Evaluate).then_some(StepMetrics {
            tick: train && !masks_read_step,
            guard: train,
        });
        ops.push(Op::Loss {
            logits: output,
            metrics,
        });
    }
    if stage.has_backward() {
        for op in forward.iter().rev() {
            let grad_of = |input: TensorId| has_grad[input].then_some(produced_with[input]);
            match *op {
                Op::DenseForward {
                    layer, input, output, ..
                } => ops.push(Op::DenseBackward {
                    layer,
                    input,
                    output,
                    input_grad: grad_of(input),
                }),
                Op::ConvForward {
                    layer,
                    geometry,
                    out_channels,
                    input,
                    output,
                    ..
                } => ops.push(Op::ConvBackward {
                    layer,
                    geometry,
                    out_channels,
                    input,
                    output,
                    input_grad: grad_of(input),
                }),
                Op::BatchNormForward {
                    layer,
                    norm,
                    input,
                    output,
                    ..
                } => ops.push(Op::BatchNormBackward {
                    layer,
                    norm,
                    input,
                    output,
                    input_grad: grad_of(input),
                    track: stage == Stage::Train,
                }),
                Op::ActivationForward { input, output, act } if has_grad[input] => {
                    ops.push(Op::ActivationBackward { input, output, act })
                }
                Op::LayerForward {
                    position,
                    plain,
                    input,
                    output,
                } if has_grad[input] => ops.push(Op::LayerBackward {
                    position,
                    plain,
                    input,
                    output,
                    input_act: produced_with[input],
                }),
                // Layers before the first with parameters need no backward.
                Op::ActivationForward { .. } | Op::LayerForward { .. } => {}
                Op::Gather
                | Op::Tick
                | Op::Loss { .. }
                | Op::DenseBackward { .. }
                | Op::ConvBackward { .. }
                | Op::BatchNormBackward { .. }
                | Op::ActivationBackward { .. }
                | Op::LayerBackward { .. }
                | Op::GradNorm
                | Op::Update => unreachable!("only forward ops are in the forward pass"),
            }
        }
    }
    if stage == Stage::Train {
        if clip {
            ops.push(Op::GradNorm);
        }
        ops.push(Op::Update);
    }
    if !stage.has_backward() {
        // Without backward only the loss head writes a gradient: that of the outputs.
        has_grad.iter_mut().for_each(|g| *g = false);
        has_grad[output] = stage.has_loss();
    }
    StepProgram {
        stage,
        widths,
        has_grad,
        ops,
        output,
    }
}

/// A forward op's output tensor, and whether the op has parameters the step trains (so every
/// tensor after it needs a gradient).
fn forward_output(op: &Op) -> (TensorId, bool) {
    match *op {
        Op::DenseForward { output, .. } | Op::ConvForward { output, .. } | Op::BatchNormForward { output, .. } => {
            (output, true)
        }
        Op::ActivationForward { output, .. } | Op::LayerForward { output, .. } => (output, false),
        Op::Gather
        | Op::Tick
        | Op::Loss { .. }
        | Op::DenseBackward { .. }
        | Op::ConvBackward { .. }
        | Op::BatchNormBackward { .. }
        | Op::ActivationBackward { .. }
        | Op::LayerBackward { .. }
        | Op::GradNorm
        | Op::Update => unreachable!("only forward ops produce tensors"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LossKind;

    fn kinds(p: &StepProgram) -> Vec<String> {
        p.ops
            .iter()
            .map(|op| format!("{op:?}").split([' ', '{']).next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn mlp_train_step_fuses_dense_and_activation() {
        let spec = NetworkSpec::new(&[4, 8, 3], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
        let p = plan(&spec, Stage::Train, false);
        assert_eq!(
            kinds(&p),
            [
                "Gather",
                "DenseForward",
                "DenseForward",
                "Loss",
                "DenseBackward",
                "DenseBackward",
                "Update"
            ]
        );
        assert_eq!(
            p.ops[3],
            Op::Loss {
                logits: 2,
                metrics: Some(StepMetrics {
                    tick: true,
                    guard: true
                })
            },
            "without dropout the loss op's metrics advance the step"
        );
        assert_eq!(p.widths, [4, 8, 3]);
        assert_eq!(
            p.ops[1],
            Op::DenseForward {
                layer: 0,
                input: 0,
                output: 1,
                act: Activation::Relu
            }
        );
        // The first layer's input (the data) needs no gradient; the second's gets relu' fused.
        assert_eq!(
            p.ops[4],
            Op::DenseBackward {
                layer: 1,
                input: 1,
                output: 2,
                input_grad: Some(Activation::Relu)
            }
        );
        assert_eq!(
            p.ops[5],
            Op::DenseBackward {
                layer: 0,
                input: 0,
                output: 1,
                input_grad: None
            }
        );
    }

    #[test]
    fn dropout_is_active_in_training_only_and_fuses_the_activation_derivative() {
        let spec = NetworkSpec::input(4)
            .dense(8)
            .relu()
            .dropout(0.5)
            .dense(3)
            .softmax_cross_entropy()
            .unwrap();
        let train = plan(&spec, Stage::Train, true);
        assert_eq!(train.ops[1], Op::Tick, "masks read the step: it advances first");
        assert!(train.ops.contains(&Op::LayerBackward {
            position: 2,
            plain: PlainLayer::Dropout { rate: 0.5 },
            input: 1,
            output: 2,
            input_act: Activation::Relu
        }));
        assert_eq!(*train.ops.last().unwrap(), Op::Update);
        assert!(train.ops.contains(&Op::GradNorm));
        let eval = plan(&spec, Stage::Evaluate, false);
        assert!(!eval.ops.iter().any(|op| matches!(op, Op::LayerForward { .. })));
        assert_eq!(eval.widths, [4, 8, 3]);
    }

    #[test]
    fn an_inactive_dropout_does_not_change_fusion() {
        let loss = LossKind::MeanSquaredError;
        let with = NetworkSpec::parse("4,dense8,relu,dropout0,tanh,dense3", loss).unwrap();
        let without = NetworkSpec::parse("4,dense8,relu,tanh,dense3", loss).unwrap();
        assert_eq!(plan(&with, Stage::Train, false), plan(&without, Stage::Train, false));
        let eval = NetworkSpec::parse("2,dense3,sigmoid,dropout0.5", loss).unwrap();
        let p = plan(&eval, Stage::Evaluate, false);
        assert!(p.ops.contains(&Op::ActivationForward {
            input: 1,
            output: 2,
            act: Activation::Sigmoid
        }));
    }

    #[test]
    fn a_last_activation_runs_on_its_own() {
        let spec = NetworkSpec::input(2)
            .dense(3)
            .sigmoid()
            .dense(1)
            .sigmoid()
            .mse()
            .unwrap();
        let p = plan(&spec, Stage::Gradients, false);
        assert_eq!(
            kinds(&p),
            [
                "DenseForward",
                "DenseForward",
                "ActivationForward",
                "Loss",
                "ActivationBackward",
                "DenseBackward",
                "DenseBackward"
            ]
        );
    }
}
