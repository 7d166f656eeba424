//! The GPU backend: a wgpu device, the WGSL kernels in `shaders/`, and typed buffers.
//!
//! Each kernel family has a module mirroring [`crate::cpu`]. Its functions *prepare* a
//! [`Dispatch`] (pipeline from the cache, bind group, grid) once; recording it later creates
//! nothing, so a training step is a fixed list of dispatches replayed every step.

pub mod batchnorm;
pub(crate) mod buffer;
mod context;
pub mod conv;
pub mod conv_implicit;
pub mod conv_path;
pub mod data;
mod dispatch;
pub mod dropout;
pub mod elementwise;
pub(crate) mod kernels;
pub mod loss;
pub mod matmul;
mod matmul_pair;
pub mod optim;
pub mod profiler;
pub mod tuning;
mod uniforms;
mod wgsl_log;

pub use buffer::{GpuBuffer, GpuView};
pub use context::{AdapterRequest, GpuContext, SUBGROUP_KERNEL_LANES, list_adapters, parse_backend};
pub use conv::{ConvScratch, ConvShape, conv2d_backward, conv2d_forward, max_pool2d_backward, max_pool2d_forward};
pub use conv_implicit::{conv2d_backward_implicit, conv2d_forward_implicit};
pub use conv_path::{ConvPath, ConvWork};
pub use dispatch::Dispatch;
pub use dropout::*;
pub use elementwise::{activation_backward, activation_forward};
pub use loss::{LossInputs, LossOutputs, MetricsFlags, MetricsTotals, loss_and_metrics};
pub use matmul::{
    DenseGrads, MatmulKernel, Operand, dense_grads, dense_grads_with_kernel, matmul, matmul_and_row_sums,
    matmul_strided, matmul_with_kernel, weight_grad, weight_grad_with_kernel,
};
pub use optim::*;
pub use tuning::{ChoiceSource, MatmulChoice, PairClass, Pairing, PairingRequest, ShapeClass};

impl GpuContext {
    /// How many specialised pipelines this device has compiled so far.
    pub fn compiled_pipelines(&self) -> usize {
        self.pipelines.len()
    }

    /// How many dispatches (bind group + parameter buffer each) have been prepared so far.
    /// A training loop past its first steps prepares none.
    pub fn prepared_dispatches(&self) -> u64 {
        self.prepared.load(std::sync::atomic::Ordering::Relaxed)
    }
}
