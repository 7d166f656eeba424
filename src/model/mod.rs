//! Models: what a network is ([`NetworkSpec`]) and its parameters ([`Network`]).

pub mod checkpoint;
mod network;
mod spec;

pub use checkpoint::{Checkpoint, OptimizerSnapshot, Progress};
pub use network::{DenseLayer, Network, group_thousands};
pub use spec::{LossKind, NetworkSpec};
