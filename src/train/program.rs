//! The training step, written once: [`plan`] turns a model and a [`Stage`] into an ordered list
//! of [`Op`]s over numbered tensors. Both backends execute that list (the CPU op by op, the GPU
//! as dispatches prepared once and recorded every step), and fusion is decided here and nowhere
//! else.
//!
//! Tensors are batch activations `[rows × width]`: tensor 0 is the gathered input, each forward
//! op writes a new one. Each tensor that needs one has a gradient buffer of the same shape. For
//! the output of a dense layer fused with its activation, that buffer holds the gradient with
//! respect to the *pre-activation* (`dZ`): whoever computes it multiplies by `act'` of the
//! stored output (the `input_act` of the backward ops), so no pre-activation is ever stored.

use super::layer_ops;
use crate::activation::Activation;
use crate::model::{Layer, NetworkSpec};

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
    /// `output = act(input·Wᵀ + b)` with dense layer `dense`'s parameters, one fused op.
    DenseForward {
        dense: usize,
        input: TensorId,
        output: TensorId,
        act: Activation,
    },
    /// `output = act(input)`.
    ActivationForward {
        input: TensorId,
        output: TensorId,
        act: Activation,
    },
    /// `output = layer(input)` for the parameterless layer at `position` in the model (dropout);
    /// what it computes lives in `train/layer_ops.rs`.
    LayerForward {
        position: usize,
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
        dense: usize,
        input: TensorId,
        output: TensorId,
        input_grad: Option<Activation>,
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
        input: TensorId,
        output: TensorId,
        input_act: Activation,
    },
    /// Σ g² over every gradient, for clipping by global norm.
    GradNorm,
    /// The optimizer's update over the flat parameters.
    Update,
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
/// Fusion: a dense layer followed by an activation runs as one `act(X·Wᵀ + b)` op, unless that
/// activation is the model's last layer (the loss head needs `dLoss/dA` turned into `dZ`, a
/// separate op either way) or is followed by another activation (whose backward then sees a
/// plain input). Backward fuses each fused activation's derivative into the op that computes
/// its gradient: the next dense layer's `dZ·W` epilogue, or the next dropout's mask.
pub(crate) fn plan(spec: &NetworkSpec, stage: Stage, clip: bool) -> StepProgram {
    // Layers that do something in this stage (dropout is the identity at evaluation and at rate
    // 0), left out before fusion is decided. Each keeps its position in the model.
    let layers: Vec<(usize, Layer)> = spec
        .layers
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, l)| layer_ops::acts(l, stage))
        .collect();
    // One sample's shape after each layer of the model.
    let shapes = spec.shapes();
    let mut widths = vec![spec.inputs];
    // The activation fused into the op that produced each tensor.
    let mut produced_with = vec![Activation::Identity];
    let mut forward = Vec::new();
    let mut current: TensorId = 0;
    let mut dense = 0;
    let mut i = 0;
    while i < layers.len() {
        let new_tensor = |width: usize, act: Activation, widths: &mut Vec<usize>, with: &mut Vec<Activation>| {
            widths.push(width);
            with.push(act);
            widths.len() - 1
        };
        match layers[i].1 {
            Layer::Dense { .. } | Layer::Conv2d { .. } => {
                let act = match (layers.get(i + 1).map(|l| l.1), layers.get(i + 2).map(|l| l.1)) {
                    (Some(Layer::Activation(a)), Some(next)) if !matches!(next, Layer::Activation(_)) => {
                        i += 1;
                        a
                    }
                    _ => Activation::Identity,
                };
                let output = new_tensor(shapes[layers[i].0 + 1].len(), act, &mut widths, &mut produced_with);
                forward.push(Op::DenseForward {
                    dense,
                    input: current,
                    output,
                    act,
                });
                dense += 1;
                current = output;
            }
            Layer::Activation(act) => {
                let output = new_tensor(widths[current], Activation::Identity, &mut widths, &mut produced_with);
                forward.push(Op::ActivationForward {
                    input: current,
                    output,
                    act,
                });
                current = output;
            }
            _ => {
                // Any other layer: parameterless, its ops in layer_ops.rs.
                let width = shapes[layers[i].0 + 1].len();
                let output = new_tensor(width, Activation::Identity, &mut widths, &mut produced_with);
                forward.push(Op::LayerForward {
                    position: layers[i].0,
                    input: current,
                    output,
                });
                current = output;
            }
        }
        i += 1;
    }
    let output = current;

    // A tensor needs a gradient when some layer with parameters comes before it.
    let mut has_grad = vec![false; widths.len()];
    let mut seen_dense = false;
    for op in &forward {
        if let Op::DenseForward { .. } = op {
            seen_dense = true;
        }
        if seen_dense {
            has_grad[output_of(op)] = true;
        }
    }

    let mut ops = Vec::new();
    if matches!(stage, Stage::Train | Stage::Evaluate) {
        ops.push(Op::Gather);
    }
    // The step advances before anything reads it: dropout masks in the forward pass if there
    // are any, else nothing before the metrics op, which then ticks in the same dispatch.
    let masks_read_step = layers.iter().any(|(_, l)| layer_ops::reads_step(l));
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
            match *op {
                Op::DenseForward {
                    dense, input, output, ..
                } => ops.push(Op::DenseBackward {
                    dense,
                    input,
                    output,
                    input_grad: has_grad[input].then_some(produced_with[input]),
                }),
                Op::ActivationForward { input, output, act } if has_grad[input] => {
                    ops.push(Op::ActivationBackward { input, output, act })
                }
                Op::LayerForward {
                    position,
                    input,
                    output,
                } if has_grad[input] => ops.push(Op::LayerBackward {
                    position,
                    input,
                    output,
                    input_act: produced_with[input],
                }),
                _ => {}
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

fn output_of(op: &Op) -> TensorId {
    match *op {
        Op::DenseForward { output, .. } | Op::ActivationForward { output, .. } | Op::LayerForward { output, .. } => {
            output
        }
        _ => unreachable!("only forward ops produce tensors"),
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
                dense: 0,
                input: 0,
                output: 1,
                act: Activation::Relu
            }
        );
        // The first layer's input (the data) needs no gradient; the second's gets relu' fused.
        assert_eq!(
            p.ops[4],
            Op::DenseBackward {
                dense: 1,
                input: 1,
                output: 2,
                input_grad: Some(Activation::Relu)
            }
        );
        assert_eq!(
            p.ops[5],
            Op::DenseBackward {
                dense: 0,
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
