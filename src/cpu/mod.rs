#![cfg_attr(not(feature = "internals"), allow(unused_imports))]
//! The CPU backend: the reference every GPU kernel is tested against, and a real backend.
//!
//! One module per kernel family, mirroring `shaders/` and `src/gpu/`. Every function is
//! generic over [`Real`], so the backend runs in `f32` while the gradient checks run the
//! very same code in `f64`.

pub mod batchnorm;
pub mod conv;
pub mod data;
pub mod dropout;
pub mod elementwise;
pub mod flush;
pub mod loss;
pub mod matmul;
pub mod metrics;
pub mod optim;
pub mod pool;

pub use batchnorm::{
    NormBatch, batch_norm_backward, batch_norm_eval_forward, batch_norm_track, batch_norm_train_forward,
};
pub use conv::{conv2d_backward, conv2d_forward};
pub use data::gather_batch;
pub use dropout::*;
pub use elementwise::{activation_backward, activation_forward, bias_grad};
pub use loss::{mae, mse, sigmoid_binary_cross_entropy, softmax_cross_entropy};
pub use matmul::matmul;
pub use metrics::{BatchMetrics, batch_metrics, count_correct};

pub use optim::*;
pub use pool::{PoolGeometry, max_pool2d_backward, max_pool2d_forward};

use num_traits::Float;
use rayon::prelude::*;

/// A floating-point type the CPU path computes in: `f32` (the backend) or `f64` (the checks).
pub trait Real: Float + std::iter::Sum + Send + Sync + std::fmt::Debug + 'static {}
impl Real for f32 {}
impl Real for f64 {}

/// Below this many elements an elementwise loop runs on the calling thread: a rayon
/// fork-join costs more than the work.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// Runs `f(row_index, row)` over the rows of a row-major `[rows × cols]` buffer, in parallel
/// when the buffer is large.
pub(crate) fn for_each_row<T: Send>(data: &mut [T], cols: usize, f: impl Fn(usize, &mut [T]) + Send + Sync) {
    if data.len() >= PARALLEL_MIN_ELEMENTS {
        data.par_chunks_mut(cols).enumerate().for_each(|(r, row)| f(r, row));
    } else {
        data.chunks_mut(cols).enumerate().for_each(|(r, row)| f(r, row));
    }
}

/// Runs `f(index, element)` over a buffer, in parallel when it is large.
pub(crate) fn for_each_element<T: Send>(data: &mut [T], f: impl Fn(usize, &mut T) + Send + Sync) {
    if data.len() >= PARALLEL_MIN_ELEMENTS {
        data.par_iter_mut().enumerate().for_each(|(i, x)| f(i, x));
    } else {
        data.iter_mut().enumerate().for_each(|(i, x)| f(i, x));
    }
}
