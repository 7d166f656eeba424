//! What a network is: an input width, a sequence of layers, and the loss head.

use super::layer::Layer;
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
    /// Absolute error (L1) on linear outputs, summed over outputs.
    MeanAbsoluteError,
}

impl LossKind {
    /// Every loss head.
    pub const ALL: [LossKind; 4] = [
        LossKind::SoftmaxCrossEntropy,
        LossKind::SigmoidBinaryCrossEntropy,
        LossKind::MeanSquaredError,
        LossKind::MeanAbsoluteError,
    ];

    /// A per-sample loss a model this head is attached to should never exceed while training
    /// sanely (`DIVERGENCE_FACTOR` × the loss of a uniform guess); `None` for the regression
    /// heads, whose scale is the targets'.
    pub fn sane_bound(self, outputs: usize) -> Option<f64> {
        let chance = match self {
            LossKind::SoftmaxCrossEntropy => (outputs.max(2) as f64).ln(),
            LossKind::SigmoidBinaryCrossEntropy => outputs as f64 * std::f64::consts::LN_2,
            LossKind::MeanSquaredError | LossKind::MeanAbsoluteError => return None,
        };
        Some(crate::train::DIVERGENCE_FACTOR * chance)
    }

    /// Whether the head trains against class labels (else against float targets).
    pub fn takes_labels(self) -> bool {
        self == LossKind::SoftmaxCrossEntropy
    }

    /// Short name as used on command lines and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::SoftmaxCrossEntropy => "softmax_ce",
            LossKind::SigmoidBinaryCrossEntropy => "sigmoid_bce",
            LossKind::MeanSquaredError => "mse",
            LossKind::MeanAbsoluteError => "mae",
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
            LossKind::MeanSquaredError | LossKind::MeanAbsoluteError => {}
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
            "mae" | "l1" => Ok(LossKind::MeanAbsoluteError),
            _ => Err(format!(
                "unknown loss {s:?}; expected softmax_ce, sigmoid_bce, mse or mae"
            )),
        }
    }
}

/// A sequential model: `inputs` features, then `layers` in order, then the `loss` head on the
/// last layer's outputs.
///
/// Build one with [`NetworkSpec::input`] (`Model::input(784).dense(512).relu().dense(10)
/// .softmax_cross_entropy()`), from text with [`NetworkSpec::parse`], or as a plain MLP with
/// [`NetworkSpec::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    /// Features per sample.
    pub inputs: usize,
    /// The layers, input to output.
    pub layers: Vec<Layer>,
    /// The loss head.
    pub loss: LossKind,
}

/// A model description; the same type as [`NetworkSpec`], named for the builder.
pub type Model = NetworkSpec;

/// The shape of one dense layer and the activation right after it (which picks its init).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseShape {
    /// Index among the dense layers (the `i` of `layers.{i}.weight`).
    pub index: usize,
    /// Index in [`NetworkSpec::layers`].
    pub position: usize,
    pub fan_in: usize,
    pub fan_out: usize,
    /// The activation layer directly after this one, or identity.
    pub activation_after: Activation,
}

impl NetworkSpec {
    /// An MLP: a dense layer per size after the first, `hidden` after every one but the last
    /// (whose outputs go to the loss as they are).
    pub fn new(sizes: &[usize], hidden: Activation, loss: LossKind) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::InvalidNetwork(format!(
                "layer sizes {sizes:?} need an input and at least one layer, e.g. [784, 10]"
            )));
        }
        let mut layers = Vec::new();
        for (i, &units) in sizes[1..].iter().enumerate() {
            layers.push(Layer::Dense { units });
            if i + 2 < sizes.len() {
                layers.push(Layer::Activation(hidden));
            }
        }
        Self::from_layers(sizes[0], layers, loss)
    }

    /// Checks and builds a model: at least one dense layer, no width 0 or beyond 2^30,
    /// dropout rates in `[0, 1)`, at least two outputs for softmax cross-entropy.
    pub fn from_layers(inputs: usize, layers: Vec<Layer>, loss: LossKind) -> Result<Self> {
        let spec = NetworkSpec { inputs, layers, loss };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the model (what [`NetworkSpec::from_layers`] checks); the backends check again,
    /// since the fields are public.
    pub fn validate(&self) -> Result<()> {
        let spec = self;
        let inputs = self.inputs;
        let sizes = spec.sizes();
        if sizes.len() < 2 {
            return Err(Error::InvalidNetwork(format!(
                "model {} has no dense layer; it needs at least one, e.g. {inputs},dense10",
                spec.text()
            )));
        }
        if let Some(i) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::ZeroSizedLayer { position: i, sizes });
        }
        if sizes.iter().any(|&s| s > u32::MAX as usize / 4) {
            return Err(Error::InvalidNetwork(format!(
                "a layer width in {sizes:?} is beyond 2^30"
            )));
        }
        if spec
            .dense()
            .try_fold(0u64, |acc, d| {
                (d.fan_in as u64)
                    .checked_add(1)?
                    .checked_mul(d.fan_out as u64)?
                    .checked_mul(4)?
                    .checked_add(acc)
            })
            .is_none()
        {
            return Err(Error::InvalidNetwork(format!(
                "model {} has more parameter bytes than a 64-bit count holds",
                spec.text()
            )));
        }
        for layer in &spec.layers {
            layer.validate().map_err(Error::InvalidNetwork)?;
        }
        Ok(())
    }

    /// Starts a model of `inputs` features; add layers, then finish with a loss head.
    pub fn input(inputs: usize) -> ModelBuilder {
        ModelBuilder {
            inputs,
            layers: Vec::new(),
        }
    }

    /// Parses the text form `784,dense512,relu,dropout0.2,dense10`: the input width, then one
    /// token per layer (see [`Layer::parse`]).
    pub fn parse(text: &str, loss: LossKind) -> Result<Self> {
        let mut tokens = text.split(',').map(str::trim);
        let first = tokens.next().unwrap_or("");
        let inputs = first.parse::<usize>().map_err(|_| {
            Error::InvalidNetwork(format!(
                "model {text:?} must start with the input width, e.g. 784,dense512,relu,dense10"
            ))
        })?;
        let layers = tokens
            .map(|t| Layer::parse(t).map_err(Error::InvalidNetwork))
            .collect::<Result<Vec<_>>>()?;
        Self::from_layers(inputs, layers, loss)
    }

    /// The text form [`NetworkSpec::parse`] reads back (without the loss head).
    pub fn text(&self) -> String {
        std::iter::once(self.inputs.to_string())
            .chain(self.layers.iter().map(|l| l.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The input width, then each dense layer's width: `[784, 512, 256, 10]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.inputs)
            .chain(self.dense().map(|d| d.fan_out))
            .collect()
    }

    /// The dense layers in order, with their shapes.
    pub fn dense(&self) -> impl Iterator<Item = DenseShape> + '_ {
        let mut width = self.inputs;
        let mut index = 0;
        self.layers
            .iter()
            .enumerate()
            .filter_map(move |(position, layer)| match *layer {
                Layer::Dense { units } => {
                    let shape = DenseShape {
                        index,
                        position,
                        fan_in: width,
                        fan_out: units,
                        activation_after: match self.layers.get(position + 1) {
                            Some(Layer::Activation(a)) => *a,
                            _ => Activation::Identity,
                        },
                    };
                    index += 1;
                    width = units;
                    Some(shape)
                }
                _ => None,
            })
    }

    /// Number of dense layers (layers with parameters).
    pub fn dense_count(&self) -> usize {
        self.dense().count()
    }

    /// `(fan_in, fan_out)` of dense layer `l`.
    pub fn layer_shape(&self, l: usize) -> (usize, usize) {
        let d = self.dense().nth(l).expect("dense layer index in range");
        (d.fan_in, d.fan_out)
    }

    /// Features per sample.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Outputs of the last layer: the width the loss head sees.
    pub fn outputs(&self) -> usize {
        *self.sizes().last().expect("at least one dense layer")
    }

    /// Weights plus biases of every dense layer.
    pub fn parameter_count(&self) -> usize {
        self.dense().map(|d| d.fan_in * d.fan_out + d.fan_out).sum()
    }

    /// Whether any layer behaves differently in training (dropout).
    pub fn has_dropout(&self) -> bool {
        self.layers.iter().any(|l| matches!(l, Layer::Dropout { .. }))
    }
}

/// Builds a [`NetworkSpec`] layer by layer; finished by a loss head, which validates it.
#[derive(Debug, Clone)]
pub struct ModelBuilder {
    inputs: usize,
    layers: Vec<Layer>,
}

impl ModelBuilder {
    /// Appends any layer.
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    /// A dense layer of `units` outputs.
    pub fn dense(self, units: usize) -> Self {
        self.layer(Layer::Dense { units })
    }

    /// An activation layer.
    pub fn activation(self, act: Activation) -> Self {
        self.layer(Layer::Activation(act))
    }

    /// ReLU.
    pub fn relu(self) -> Self {
        self.activation(Activation::Relu)
    }

    /// Leaky ReLU (slope 0.01).
    pub fn leaky_relu(self) -> Self {
        self.activation(Activation::LeakyRelu)
    }

    /// Logistic sigmoid.
    pub fn sigmoid(self) -> Self {
        self.activation(Activation::Sigmoid)
    }

    /// tanh.
    pub fn tanh(self) -> Self {
        self.activation(Activation::Tanh)
    }

    /// Inverted dropout with drop probability `rate`.
    pub fn dropout(self, rate: f32) -> Self {
        self.layer(Layer::Dropout { rate })
    }

    /// Finishes with any loss head.
    pub fn loss(self, loss: LossKind) -> Result<NetworkSpec> {
        NetworkSpec::from_layers(self.inputs, self.layers, loss)
    }

    /// Finishes with softmax + cross-entropy against class labels.
    pub fn softmax_cross_entropy(self) -> Result<NetworkSpec> {
        self.loss(LossKind::SoftmaxCrossEntropy)
    }

    /// Finishes with sigmoid + binary cross-entropy against targets in `[0, 1]`.
    pub fn sigmoid_binary_cross_entropy(self) -> Result<NetworkSpec> {
        self.loss(LossKind::SigmoidBinaryCrossEntropy)
    }

    /// Finishes with squared error.
    pub fn mse(self) -> Result<NetworkSpec> {
        self.loss(LossKind::MeanSquaredError)
    }

    /// Finishes with absolute error (L1).
    pub fn mae(self) -> Result<NetworkSpec> {
        self.loss(LossKind::MeanAbsoluteError)
    }
}
