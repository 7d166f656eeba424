//! Models: what a network is ([`NetworkSpec`]) and its parameters ([`Network`]).

mod network;
mod spec;

pub use network::{DenseLayer, Network, group_thousands};
pub use spec::{LossKind, NetworkSpec};
