//! What each layer kind owns: its named tensors, their shapes and roles. Everything that holds
//! or counts a model's tensors (the flat buffers of both backends, checkpoints and their PyTorch
//! names, the memory checks) is derived from these declarations, so a new layer kind declares
//! its tensors here once.

use super::layer::Layer;
use super::spec::{ConvGeometry, SampleShape};
use crate::activation::Activation;

/// What a layer's tensor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorRole {
    /// Trained by the optimizer: it has a gradient and optimizer moments.
    Parameter,
    /// Updated by the layer itself in training and used in evaluation (batch norm's running
    /// statistics, PyTorch's "buffers"); no gradient, never touched by the optimizer.
    State,
}

/// How a tensor starts before training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// A weight matrix `fan_out × fan_in`: He or Glorot, chosen by the activation after the
    /// layer (see [`crate::model::Network::init`]).
    Weight {
        /// Inputs each output sums over.
        fan_in: usize,
        /// Outputs.
        fan_out: usize,
    },
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

/// How a tensor is stored in a checkpoint (on the devices every tensor is `f32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAs {
    /// `F32`.
    F32,
    /// `I64`, as PyTorch stores a counter (batch norm's `num_batches_tracked`).
    I64,
}

/// One named tensor a layer owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDecl {
    /// The name after `layers.{i}.` (PyTorch's: `weight`, `bias`, `running_mean`, …).
    pub name: &'static str,
    /// Its shape as PyTorch stores it (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Trained by the optimizer or kept by the layer.
    pub role: TensorRole,
    /// Its starting values.
    pub init: Init,
    /// Its dtype in a checkpoint.
    pub stored_as: StoredAs,
}

impl TensorDecl {
    fn f32(name: &'static str, shape: Vec<usize>, role: TensorRole, init: Init) -> Self {
        TensorDecl {
            name,
            shape,
            role,
            init,
            stored_as: StoredAs::F32,
        }
    }

    /// Values it holds (1 for a scalar; saturating: validation refuses models past 2^64 bytes).
    pub fn len(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// Always false for a valid model.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows of the tensor seen as a matrix: its first dimension (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}

/// A batch-normalised tensor: `channels` statistics, each over the batch and `spatial`
/// positions (`H·W` after a conv, as `nn.BatchNorm2d`; 1 after a dense layer, as
/// `nn.BatchNorm1d`). One sample is `[channels × spatial]`, row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Features (after a dense layer) or image channels (after a conv).
    pub channels: usize,
    /// Positions per channel in one sample.
    pub spatial: usize,
}

/// A layer kind that owns tensors, with the shapes its ops need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `nn.Linear`: weight `[fan_out × fan_in]`, bias `[fan_out]`.
    Dense {
        /// Input features.
        fan_in: usize,
        /// Output features.
        fan_out: usize,
    },
    /// `nn.Conv2d`: weight `[out_channels × in_channels × k × k]`, bias `[out_channels]`.
    Conv2d {
        /// Its input image and window.
        geometry: ConvGeometry,
        /// Output channels.
        out_channels: usize,
    },
    /// `nn.BatchNorm1d` / `nn.BatchNorm2d`: weight and bias `[channels]` trained; running
    /// mean and variance `[channels]` and `num_batches_tracked` kept.
    BatchNorm(NormShape),
}

/// Batch norm's running-statistics momentum (PyTorch's default).
pub const BATCH_NORM_MOMENTUM: f32 = 0.1;
/// Batch norm's ε added to the variance (PyTorch's default).
pub const BATCH_NORM_EPS: f32 = 1e-5;

impl ParamKind {
    /// The tensors this kind owns, in checkpoint order.
    pub fn tensors(&self) -> Vec<TensorDecl> {
        use TensorRole::{Parameter, State};
        match *self {
            ParamKind::Dense { fan_in, fan_out } => vec![
                TensorDecl::f32(
                    "weight",
                    vec![fan_out, fan_in],
                    Parameter,
                    Init::Weight { fan_in, fan_out },
                ),
                TensorDecl::f32("bias", vec![fan_out], Parameter, Init::Zeros),
            ],
            ParamKind::Conv2d { geometry, out_channels } => {
                let (c, k) = (geometry.in_channels, geometry.kernel);
                let fan_in = c.saturating_mul(k).saturating_mul(k);
                vec![
                    TensorDecl::f32(
                        "weight",
                        vec![out_channels, c, k, k],
                        Parameter,
                        Init::Weight {
                            fan_in,
                            fan_out: out_channels,
                        },
                    ),
                    TensorDecl::f32("bias", vec![out_channels], Parameter, Init::Zeros),
                ]
            }
            ParamKind::BatchNorm(NormShape { channels, .. }) => vec![
                TensorDecl::f32("weight", vec![channels], Parameter, Init::Ones),
                TensorDecl::f32("bias", vec![channels], Parameter, Init::Zeros),
                TensorDecl::f32("running_mean", vec![channels], State, Init::Zeros),
                TensorDecl::f32("running_var", vec![channels], State, Init::Ones),
                TensorDecl {
                    name: "num_batches_tracked",
                    shape: vec![],
                    role: State,
                    init: Init::Zeros,
                    stored_as: StoredAs::I64,
                },
            ],
        }
    }

    /// The widest per-sample tensor its ops bind besides the parameters: its input, its output,
    /// and for a conv its im2col columns (`C·k·k` per output position).
    pub fn per_sample(&self, input: SampleShape, output: SampleShape) -> usize {
        let widest = input.len().max(output.len());
        match *self {
            ParamKind::Conv2d { geometry: g, .. } => widest.max(
                g.in_channels
                    .saturating_mul(g.kernel * g.kernel)
                    .saturating_mul(g.out_height * g.out_width),
            ),
            ParamKind::Dense { .. } | ParamKind::BatchNorm(_) => widest,
        }
    }

    /// Multiply-adds per sample of its forward pass (its backward costs about twice as many).
    pub fn forward_macs(&self) -> usize {
        match *self {
            ParamKind::Dense { fan_in, fan_out } => fan_in * fan_out,
            ParamKind::Conv2d {
                geometry: g,
                out_channels,
            } => g.in_channels * g.kernel * g.kernel * out_channels * g.out_height * g.out_width,
            ParamKind::BatchNorm(n) => n.channels * n.spatial,
        }
    }
}

impl Layer {
    /// What the layer owns when it takes `input` and gives `output`; `None` for a layer
    /// without tensors (activations, dropout, pooling, flatten).
    pub fn param_kind(&self, input: SampleShape, output: SampleShape) -> Option<ParamKind> {
        match (*self, input, output) {
            (Layer::Dense { units }, _, _) => Some(ParamKind::Dense {
                fan_in: input.len(),
                fan_out: units,
            }),
            (
                Layer::Conv2d {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                },
                SampleShape::Image {
                    channels,
                    height,
                    width,
                },
                SampleShape::Image {
                    height: out_height,
                    width: out_width,
                    ..
                },
            ) => Some(ParamKind::Conv2d {
                geometry: ConvGeometry {
                    in_channels: channels,
                    height,
                    width,
                    kernel,
                    stride,
                    padding,
                    out_height,
                    out_width,
                },
                out_channels,
            }),
            // A conv without image shapes is past the first invalid layer (validation refuses it).
            (Layer::Conv2d { .. }, _, _) => None,
            (Layer::BatchNorm, SampleShape::Flat(features), _) => Some(ParamKind::BatchNorm(NormShape {
                channels: features,
                spatial: 1,
            })),
            (
                Layer::BatchNorm,
                SampleShape::Image {
                    channels,
                    height,
                    width,
                },
                _,
            ) => Some(ParamKind::BatchNorm(NormShape {
                channels,
                spatial: height.saturating_mul(width),
            })),
            (Layer::Activation(_) | Layer::Dropout { .. } | Layer::MaxPool2d { .. } | Layer::Flatten, _, _) => None,
        }
    }
}

/// A layer of a model that owns tensors: where it sits, its shapes and what it declares.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayer {
    /// Index among the layers with tensors (the `i` of `layers.{i}.weight`).
    pub index: usize,
    /// Index in [`crate::model::NetworkSpec::layers`].
    pub position: usize,
    /// One sample's input.
    pub input: SampleShape,
    /// One sample's output.
    pub output: SampleShape,
    /// The activation layer directly after this one, or identity (it picks the weight init).
    pub activation_after: Activation,
    /// Its kind and shapes.
    pub kind: ParamKind,
    /// Its tensors ([`ParamKind::tensors`]).
    pub tensors: Vec<TensorDecl>,
}

impl ParamLayer {
    /// Trainable values it owns.
    pub fn parameter_count(&self) -> usize {
        self.tensors
            .iter()
            .filter(|t| t.role == TensorRole::Parameter)
            .map(TensorDecl::len)
            .sum()
    }
}
