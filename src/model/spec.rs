//! What a network is: layer sizes, the hidden activation, and the loss head.

use crate::activation::Activation;
use crate::error::{Error, Result};

/// The loss head on the last layer's raw outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// Softmax over classes + cross-entropy against class labels (fused on both backends).
    SoftmaxCrossEntropy,
    /// Sigmoid per output + binary cross-entropy against targets in `[0, 1]`.
    SigmoidBinaryCrossEntropy,
    /// Squared error on linear outputs, summed over outputs.
    MeanSquaredError,
}

impl LossKind {
    /// Every loss head.
    pub const ALL: [LossKind; 3] = [
        LossKind::SoftmaxCrossEntropy,
        LossKind::SigmoidBinaryCrossEntropy,
        LossKind::MeanSquaredError,
    ];

    /// Short name as used on command lines and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::SoftmaxCrossEntropy => "softmax_ce",
            LossKind::SigmoidBinaryCrossEntropy => "sigmoid_bce",
            LossKind::MeanSquaredError => "mse",
        }
    }

    /// The function that turns raw outputs into predictions: softmax, sigmoid or identity.
    pub(crate) fn output_transform(self, logits: &mut [f32], cols: usize) {
        match self {
            LossKind::SoftmaxCrossEntropy => {
                for row in logits.chunks_mut(cols) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for v in row.iter_mut() {
                        *v = (*v - max).exp();
                        sum += *v;
                    }
                    row.iter_mut().for_each(|v| *v /= sum);
                }
            }
            LossKind::SigmoidBinaryCrossEntropy => {
                logits.iter_mut().for_each(|v| *v = Activation::Sigmoid.forward(*v));
            }
            LossKind::MeanSquaredError => {}
        }
    }
}

impl std::str::FromStr for LossKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "softmax_ce" | "ce" | "cross_entropy" | "softmax" => Ok(LossKind::SoftmaxCrossEntropy),
            "sigmoid_bce" | "bce" => Ok(LossKind::SigmoidBinaryCrossEntropy),
            "mse" => Ok(LossKind::MeanSquaredError),
            _ => Err(format!("unknown loss {s:?}; expected softmax_ce, sigmoid_bce or mse")),
        }
    }
}

/// A multilayer perceptron: `sizes[0]` inputs, then one dense layer per following size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Widths from input to output, e.g. `[784, 512, 256, 10]`.
    pub sizes: Vec<usize>,
    /// Activation after every hidden layer (the output layer is linear; the loss applies its own).
    pub hidden: Activation,
    /// The loss head.
    pub loss: LossKind,
}

impl NetworkSpec {
    /// Checks and builds a spec: at least two sizes, none of them 0, and at least two
    /// outputs for softmax cross-entropy.
    pub fn new(sizes: &[usize], hidden: Activation, loss: LossKind) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::InvalidNetwork(format!(
                "layer sizes {sizes:?} need an input and at least one layer, e.g. [784, 10]"
            )));
        }
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::ZeroSizedLayer {
                position: i,
                sizes: sizes.to_vec(),
            });
        }
        if sizes.iter().any(|&s| s > u32::MAX as usize / 4) {
            return Err(Error::InvalidNetwork(format!(
                "a layer size in {sizes:?} is beyond 2^30"
            )));
        }
        Ok(NetworkSpec {
            sizes: sizes.to_vec(),
            hidden,
            loss,
        })
    }

    /// Number of dense layers.
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Inputs of the first layer.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// Outputs of the last layer.
    pub fn outputs(&self) -> usize {
        *self.sizes.last().expect("at least two sizes")
    }

    /// `(fan_in, fan_out)` of layer `l`.
    pub fn layer_shape(&self, l: usize) -> (usize, usize) {
        (self.sizes[l], self.sizes[l + 1])
    }

    /// The activation applied after layer `l` (identity for the output layer).
    pub fn activation(&self, l: usize) -> Activation {
        if l + 1 == self.layers() {
            Activation::Identity
        } else {
            self.hidden
        }
    }

    /// Weights plus biases of every layer.
    pub fn parameter_count(&self) -> usize {
        self.sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }
}
