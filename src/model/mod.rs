//! Models: what a network is ([`NetworkSpec`], a sequence of [`Layer`]s) and its parameters
//! ([`Network`]), and checkpoints.

pub mod checkpoint;
mod layer;
mod network;
mod spec;

pub use checkpoint::{Checkpoint, OptimizerSnapshot, Progress};
pub use layer::Layer;
pub(crate) use network::check_shapes;
pub use network::{DenseLayer, Network, group_thousands};
pub use spec::{
    ConvGeometry, DenseShape, LossKind, Model, ModelBuilder, NetworkSpec, Preset, SampleShape, output_shape,
};
