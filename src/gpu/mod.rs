//! The GPU backend: a wgpu device, the WGSL kernels in `shaders/`, and typed buffers.
//!
//! Each kernel family has a module mirroring the CPU twins' (`crate::cpu`). Its functions *prepare* a
//! [`Dispatch`] (pipeline from the cache, bind group, grid) once; recording it later creates
//! nothing, so a training step is a fixed list of dispatches replayed every step.

pub(crate) mod buffer;
pub(crate) mod context;
mod dispatch;
pub(crate) mod kernels;
mod matmul_pair;
mod uniforms;
mod wgsl_log;
// The kernel modules: public with the `internals` feature (this crate's tests, benches and
// examples), crate-private otherwise. Written out, not made by a macro, so rustfmt sees them.
/// Batch normalization.
#[cfg(feature = "internals")]
pub mod batchnorm;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod batchnorm;
/// Direct and im2col convolution, max pooling.
#[cfg(feature = "internals")]
pub mod conv;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod conv;
/// Implicit-GEMM convolution.
#[cfg(feature = "internals")]
pub mod conv_implicit;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod conv_implicit;
/// Which convolution path a device runs.
#[cfg(feature = "internals")]
pub mod conv_path;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod conv_path;
/// Gathering a batch on the device.
#[cfg(feature = "internals")]
pub mod data;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod data;
/// Inverted dropout.
#[cfg(feature = "internals")]
pub mod dropout;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod dropout;
/// Activations.
#[cfg(feature = "internals")]
pub mod elementwise;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod elementwise;
/// Fused loss heads and step metrics.
#[cfg(feature = "internals")]
pub mod loss;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod loss;
/// Matrix multiplication kernels.
#[cfg(feature = "internals")]
pub mod matmul;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod matmul;
/// Optimizer updates.
#[cfg(feature = "internals")]
pub mod optim;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod optim;
/// Timestamp queries around passes.
#[cfg(feature = "internals")]
pub mod profiler;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod profiler;
/// Timed kernel choices and their cache.
#[cfg(feature = "internals")]
pub mod tuning;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod tuning;

/// Re-exports kernel functions: public with the `internals` feature, crate-wide otherwise.
macro_rules! kernel_exports {
    ($($tree:tt)*) => {
        #[cfg(feature = "internals")]
        pub use $($tree)*;
        #[cfg(not(feature = "internals"))]
        #[allow(unused_imports)]
        pub(crate) use $($tree)*;
    };
}

pub use buffer::{GpuBuffer, GpuView};
pub use context::{AdapterRequest, GpuContext, SUBGROUP_KERNEL_LANES, list_adapters, parse_backend};
pub use conv_path::ConvPath;
pub use dispatch::Dispatch;
pub use matmul::MatmulKernel;
pub use tuning::{ChoiceSource, KernelPlan, MatmulChoice, PairClass, Pairing, PairingRequest, ShapeClass};
kernel_exports!({
    conv::{ConvScratch, ConvShape, conv2d_backward, conv2d_forward, max_pool2d_backward, max_pool2d_forward},
    conv_implicit::{conv2d_backward_implicit, conv2d_forward_implicit},
    conv_path::ConvWork,
    dropout::*,
    elementwise::{activation_backward, activation_forward},
    loss::{LossInputs, LossOutputs, MetricsFlags, MetricsTotals, loss_and_metrics},
    matmul::{
        DenseGrads, Operand, dense_grads, dense_grads_with_kernel, matmul, matmul_and_row_sums, matmul_strided,
        matmul_with_kernel, weight_grad, weight_grad_with_kernel,
    },
    optim::*,
});

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
