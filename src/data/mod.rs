//! Data: the IDX reader, MNIST-style folders, in-memory datasets and batch order.

mod batches;
mod dataset;
pub mod idx;
pub mod mnist;

pub use batches::{batches, epoch_order};
pub use dataset::{Dataset, Features, Targets};
pub use mnist::{Mnist, find_mnist_dir};
