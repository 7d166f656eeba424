//! Data: the IDX reader, MNIST-style folders, in-memory datasets and batch order.

mod batches;
mod dataset;
#[cfg(feature = "download")]
pub mod download;
pub mod idx;
#[cfg(feature = "png")]
pub mod image;
pub mod mnist;
pub mod synthetic;

pub use batches::{batches, epoch_order};
pub use dataset::{Dataset, Features, Targets};
pub use mnist::{BUNDLED_SAMPLE, Mnist, find_mnist_dir, has_mnist};
