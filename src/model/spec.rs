//! What a network is: an input width, a sequence of layers, and the loss head.

use super::layer::Layer;
use super::tensors::{ParamKind, ParamLayer};
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

/// A named model, with the Adam learning rate it reaches its measured accuracy with (the
/// MNIST example uses it when `--preset` is given without `--lr`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// What `--preset` takes.
    pub name: &'static str,
    /// The model in the text form [`NetworkSpec::parse`] reads.
    pub text: &'static str,
    /// Adam's learning rate for it.
    pub adam_lr: f32,
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
    /// The input as an image `[channels, height, width]` (row-major, `channels·height·width ==
    /// inputs`), for models with convolutions; `None`: flat features.
    pub image: Option<[usize; 3]>,
    /// The layers, input to output.
    pub layers: Vec<Layer>,
    /// The loss head.
    pub loss: LossKind,
}

/// A model description; the same type as [`NetworkSpec`], named for the builder.
pub type Model = NetworkSpec;

/// The most features one sample may have at any layer (as the widths: 2^30).
const MAX_FEATURES: usize = 1 << 30;

/// One sample's tensor between layers: flat features or an image `[C × H × W]` (row-major, so
/// its features are the flattened image, as in PyTorch's NCHW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleShape {
    /// This many features.
    Flat(usize),
    /// An image, row-major.
    Image {
        /// Channels.
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
}

impl SampleShape {
    /// Features per sample (saturating: validation refuses shapes past 2^30 features).
    pub fn len(self) -> usize {
        self.checked_len().unwrap_or(usize::MAX)
    }

    /// Features per sample, or `None` past `usize`.
    pub fn checked_len(self) -> Option<usize> {
        match self {
            SampleShape::Flat(n) => Some(n),
            SampleShape::Image {
                channels,
                height,
                width,
            } => channels.checked_mul(height)?.checked_mul(width),
        }
    }

    /// Always false for a valid model (every layer has at least one output).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for SampleShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleShape::Flat(n) => write!(f, "{n}"),
            SampleShape::Image {
                channels,
                height,
                width,
            } => write!(f, "{channels}x{height}x{width}"),
        }
    }
}

/// Where a convolution runs: its input image and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels.
    pub in_channels: usize,
    /// Input rows.
    pub height: usize,
    /// Input columns.
    pub width: usize,
    /// Window side.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Zeros added on each side.
    pub padding: usize,
    /// Output rows.
    pub out_height: usize,
    /// Output columns.
    pub out_width: usize,
}

/// The shape after `layer` for `input`, or why the layer cannot take that input.
pub fn output_shape(layer: &Layer, input: SampleShape) -> std::result::Result<SampleShape, String> {
    let window = |size: usize, kernel: usize, stride: usize, padding: usize| {
        padding
            .checked_mul(2)
            .and_then(|p| size.checked_add(p))
            .and_then(|padded| padded.checked_sub(kernel))
            .filter(|_| stride > 0)
            .map(|span| span / stride + 1)
            .ok_or_else(|| {
                format!("{layer}: its {kernel}×{kernel} window (stride {stride}) does not fit a {input} input")
            })
    };
    match (*layer, input) {
        (Layer::Dense { units }, SampleShape::Flat(_)) => Ok(SampleShape::Flat(units)),
        (Layer::Dense { .. }, SampleShape::Image { .. }) => Err(format!(
            "{layer} after a {input} image needs a flatten layer first (as in PyTorch)"
        )),
        (Layer::Activation(_) | Layer::Dropout { .. } | Layer::BatchNorm, shape) => Ok(shape),
        (Layer::Flatten, shape) => Ok(SampleShape::Flat(shape.len())),
        (
            Layer::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            },
            SampleShape::Image { height, width, .. },
        ) => Ok(SampleShape::Image {
            channels: out_channels,
            height: window(height, kernel, stride, padding)?,
            width: window(width, kernel, stride, padding)?,
        }),
        (
            Layer::MaxPool2d { kernel, stride },
            SampleShape::Image {
                channels,
                height,
                width,
            },
        ) => Ok(SampleShape::Image {
            channels,
            height: window(height, kernel, stride, 0)?,
            width: window(width, kernel, stride, 0)?,
        }),
        (Layer::Conv2d { .. } | Layer::MaxPool2d { .. }, SampleShape::Flat(_)) => Err(format!(
            "{layer} needs an image input: start the model with CxHxW, e.g. 1x28x28,{layer}"
        )),
    }
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

    /// The shape of the input and after each layer, as far as they are valid, and the first
    /// problem (a layer that cannot take its input).
    fn flow(&self) -> (Vec<SampleShape>, Option<String>) {
        let mut shape = match self.image {
            Some([channels, height, width]) => SampleShape::Image {
                channels,
                height,
                width,
            },
            None => SampleShape::Flat(self.inputs),
        };
        let mut shapes = vec![shape];
        for layer in &self.layers {
            match output_shape(layer, shape) {
                Ok(next) if next.checked_len().is_some_and(|n| n <= MAX_FEATURES) => {
                    shape = next;
                    shapes.push(shape);
                }
                Ok(next) => {
                    let problem = format!("{layer} outputs {next}, more than {MAX_FEATURES} features per sample");
                    return (shapes, Some(problem));
                }
                Err(e) => return (shapes, Some(e)),
            }
        }
        (shapes, None)
    }

    /// The shape of the input and after each layer (valid models only).
    pub fn shapes(&self) -> Vec<SampleShape> {
        self.flow().0
    }

    /// Checks and builds a model: at least one dense or conv layer, no width 0 or beyond 2^30,
    /// dropout rates in `[0, 1)`, at least two outputs for softmax cross-entropy.
    pub fn from_layers(inputs: usize, layers: Vec<Layer>, loss: LossKind) -> Result<Self> {
        let spec = NetworkSpec {
            inputs,
            image: None,
            layers,
            loss,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the model (what [`NetworkSpec::from_layers`] checks); the backends check again,
    /// since the fields are public.
    pub fn validate(&self) -> Result<()> {
        let spec = self;
        let inputs = self.inputs;
        if let Some(image) = self.image {
            let values = image.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if values != Some(inputs) {
                return Err(Error::InvalidNetwork(format!(
                    "input image {image:?} does not hold the model's {inputs} inputs"
                )));
            }
        }
        for layer in &spec.layers {
            layer.validate().map_err(Error::InvalidNetwork)?;
        }
        let (shapes, problem) = spec.flow();
        if let Some(problem) = problem {
            return Err(Error::InvalidNetwork(format!("model {}: {problem}", spec.text())));
        }
        if let Some(last @ SampleShape::Image { .. }) = shapes.last() {
            return Err(Error::InvalidNetwork(format!(
                "model {} ends in a {last} image; the loss needs features: add flatten and a dense layer",
                spec.text()
            )));
        }
        let sizes = spec.sizes();
        if sizes.len() < 2 {
            return Err(Error::InvalidNetwork(format!(
                "model {} has no dense or conv layer; it needs at least one, e.g. {inputs},dense10",
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
            .param_layers()
            .flat_map(|l| l.tensors)
            .try_fold(0u64, |acc, t| {
                t.shape
                    .iter()
                    .try_fold(4u64, |n, &d| n.checked_mul(d as u64))?
                    .checked_add(acc)
            })
            .is_none()
        {
            return Err(Error::InvalidNetwork(format!(
                "model {} has more parameter bytes than a 64-bit count holds",
                spec.text()
            )));
        }
        Ok(())
    }

    /// The named models: `mlp` (the default MNIST network), `lenet` (a small CNN for 28×28
    /// grey images: two 3×3 conv + ReLU + 2×2 max-pool stages, then two dense layers) and
    /// `lenet_bn` (`lenet` with a batch norm after each conv).
    pub const PRESETS: [Preset; 3] = [
        Preset {
            name: "mlp",
            text: "784,dense512,relu,dense256,relu,dense10",
            adam_lr: 1e-3,
        },
        Preset {
            name: "lenet",
            text: "1x28x28,conv32k3p1,relu,maxpool2,conv64k3p1,relu,maxpool2,flatten,dense128,relu,dense10",
            // 5 epochs of MNIST with cosine decay: 99.24–99.30 % over seeds 0–2 on the CPU, 99.20 %
            // on lavapipe; 1e-3 gave 99.03 % (docs/performance.md).
            adam_lr: 2e-3,
        },
        Preset {
            name: "lenet_bn",
            text: "1x28x28,conv32k3p1,batchnorm,relu,maxpool2,conv64k3p1,batchnorm,relu,maxpool2,flatten,\
                   dense128,relu,dense10",
            adam_lr: 2e-3,
        },
    ];

    /// The preset called `name` (case-insensitive), or an error listing the names.
    pub fn find_preset(name: &str) -> Result<&'static Preset> {
        Self::PRESETS
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                let names: Vec<_> = Self::PRESETS.iter().map(|p| p.name).collect();
                Error::InvalidNetwork(format!("unknown preset {name:?}; expected one of {}", names.join(", ")))
            })
    }

    /// The preset called `name` (see [`NetworkSpec::PRESETS`]) with `loss`.
    pub fn preset(name: &str, loss: LossKind) -> Result<Self> {
        Self::parse(Self::find_preset(name)?.text, loss)
    }

    /// Starts a model of `inputs` features; add layers, then finish with a loss head.
    pub fn input(inputs: usize) -> ModelBuilder {
        ModelBuilder {
            inputs,
            image: None,
            layers: Vec::new(),
        }
    }

    /// Starts a model of `channels × height × width` images (row-major, as NCHW), for
    /// convolutions: `Model::image(1, 28, 28).conv2d(32, 3, 1, 1).relu().max_pool2d(2).flatten()…`.
    pub fn image(channels: usize, height: usize, width: usize) -> ModelBuilder {
        ModelBuilder {
            inputs: channels.saturating_mul(height).saturating_mul(width),
            image: Some([channels, height, width]),
            layers: Vec::new(),
        }
    }

    /// Parses the text form `784,dense512,relu,dropout0.2,dense10`: the input width, then one
    /// token per layer (see [`Layer::parse`]).
    pub fn parse(text: &str, loss: LossKind) -> Result<Self> {
        let mut tokens = text.split(',').map(str::trim);
        let first = tokens.next().unwrap_or("");
        let bad_input = || {
            Error::InvalidNetwork(format!(
                "model {text:?} must start with the input width or image shape, e.g. \
                 784,dense512,relu,dense10 or 1x28x28,conv32k3p1,relu,maxpool2,flatten,dense10"
            ))
        };
        let dims = first
            .to_ascii_lowercase()
            .split('x')
            .map(|d| d.parse::<usize>().map_err(|_| bad_input()))
            .collect::<Result<Vec<_>>>()?;
        let (inputs, image) = match dims[..] {
            [inputs] => (inputs, None),
            [c, h, w] => (
                c.checked_mul(h).and_then(|n| n.checked_mul(w)).ok_or_else(bad_input)?,
                Some([c, h, w]),
            ),
            _ => return Err(bad_input()),
        };
        let layers = tokens
            .map(|t| Layer::parse(t).map_err(Error::InvalidNetwork))
            .collect::<Result<Vec<_>>>()?;
        ModelBuilder { inputs, image, layers }.loss(loss)
    }

    /// The text form [`NetworkSpec::parse`] reads back (without the loss head).
    pub fn text(&self) -> String {
        let input = match self.image {
            Some([c, h, w]) => format!("{c}x{h}x{w}"),
            None => self.inputs.to_string(),
        };
        std::iter::once(input)
            .chain(self.layers.iter().map(|l| l.to_string()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The input width, then the output width of each dense or conv layer: `[784, 512, 256, 10]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.inputs)
            .chain(
                self.param_layers()
                    .filter(|l| match l.kind {
                        ParamKind::Dense { .. } | ParamKind::Conv2d { .. } => true,
                        ParamKind::BatchNorm(_) => false,
                    })
                    .map(|l| l.output.len()),
            )
            .collect()
    }

    /// The layers that own tensors, in order, with their shapes and declared tensors.
    pub fn param_layers(&self) -> impl Iterator<Item = ParamLayer> + '_ {
        let shapes = self.shapes();
        let outputs: Vec<SampleShape> = shapes.iter().skip(1).copied().collect();
        let mut index = 0;
        self.layers.iter().zip(shapes).zip(outputs).enumerate().filter_map(
            move |(position, ((layer, input), output))| {
                let kind = layer.param_kind(input, output)?;
                let shape = ParamLayer {
                    index,
                    position,
                    input,
                    output,
                    activation_after: match self.layers.get(position + 1) {
                        Some(Layer::Activation(a)) => *a,
                        _ => Activation::Identity,
                    },
                    tensors: kind.tensors(),
                    kind,
                };
                index += 1;
                Some(shape)
            },
        )
    }

    /// Number of layers that own tensors.
    pub fn param_layer_count(&self) -> usize {
        self.param_layers().count()
    }

    /// Features per sample.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Outputs of the last layer: the width the loss head sees.
    pub fn outputs(&self) -> usize {
        self.shapes().last().expect("the input shape at least").len()
    }

    /// Trainable values of every layer (weights and biases; not batch norm's running statistics).
    pub fn parameter_count(&self) -> usize {
        self.param_layers().map(|l| l.parameter_count()).sum()
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
    image: Option<[usize; 3]>,
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

    /// Adds a 2-D convolution (`nn.Conv2d(in, out_channels, kernel, stride, padding)`).
    pub fn conv2d(self, out_channels: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        self.layer(Layer::Conv2d {
            out_channels,
            kernel,
            stride,
            padding,
        })
    }

    /// Adds max pooling with `kernel × kernel` windows and stride `kernel` (`nn.MaxPool2d(kernel)`).
    pub fn max_pool2d(self, kernel: usize) -> Self {
        self.layer(Layer::MaxPool2d { kernel, stride: kernel })
    }

    /// Adds batch normalization (`nn.BatchNorm1d` after features, `nn.BatchNorm2d` after an
    /// image).
    pub fn batch_norm(self) -> Self {
        self.layer(Layer::BatchNorm)
    }

    /// Adds `flatten` (`torch.flatten(x, 1)`), needed before a dense layer after an image.
    pub fn flatten(self) -> Self {
        self.layer(Layer::Flatten)
    }

    /// Finishes with any loss head.
    pub fn loss(self, loss: LossKind) -> Result<NetworkSpec> {
        let spec = NetworkSpec {
            inputs: self.inputs,
            image: self.image,
            layers: self.layers,
            loss,
        };
        spec.validate()?;
        Ok(spec)
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
