//! Models: what a network is ([`NetworkSpec`], a sequence of [`Layer`]s) and its parameters
//! ([`Network`]), and checkpoints.

pub mod checkpoint;
mod layer;
mod network;
mod spec;
mod tensors;

pub use checkpoint::{Checkpoint, OptimizerSnapshot, Progress};
pub use layer::Layer;
pub(crate) use network::check_tensors;
pub use network::{LayerTensors, NamedTensor, Network, group_thousands};
pub use spec::{ConvGeometry, LossKind, Model, ModelBuilder, NetworkSpec, Preset, SampleShape, output_shape};
pub use tensors::{
    BATCH_NORM_EPS, BATCH_NORM_MOMENTUM, Init, NormShape, ParamKind, ParamLayer, StoredAs, TensorDecl, TensorRole,
};
