//! What each layer without tensors other than an activation (dropout, max pooling) does in a
//! step, on both executors: whether it reads the step counter, and its forward and backward.
//! The step program names such a layer by a [`PlainLayer`] and its position in the model
//! (`Op::LayerForward`, `Op::LayerBackward`), so adding one means its variant in
//! [`crate::model::Layer`] and in [`PlainLayer`] (the planner's match says which), its kernel and
//! CPU twin, and its arms here; every match is exhaustive, so the compiler lists the places.

use super::program::PlainLayer;
use crate::activation::Activation;
use crate::cpu::{self, DropoutMask, Real, dropout::pcg_hash};
use crate::error::Result;
use crate::gpu::{self, Dispatch, GpuBuffer, GpuContext};
use crate::optimizer::OptimState;

/// Where a layer sits and what it may draw on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerAt {
    pub plain: PlainLayer,
    /// Its index in the model: salts per-layer randomness.
    pub position: usize,
    /// The run's seed.
    pub run_seed: u64,
}

impl LayerAt {
    /// The dropout mask of this layer.
    fn mask(&self, rate: f32) -> DropoutMask {
        let (seed, salt) = (self.run_seed, self.position as u32);
        let layer_seed = pcg_hash(seed as u32 ^ pcg_hash(salt ^ pcg_hash((seed >> 32) as u32)));
        DropoutMask::new(layer_seed, rate)
    }
}

/// Whether the layer's ops read the step counter (so it must advance before the forward pass).
pub(crate) fn reads_step(plain: &PlainLayer) -> bool {
    match plain {
        PlainLayer::Dropout { .. } => true,
        PlainLayer::MaxPool2d(_) => false,
    }
}

/// `y = layer(x)` on the host, at optimizer step `step`.
pub(crate) fn cpu_forward<T: Real>(at: LayerAt, step: u32, x: &[T], y: &mut [T]) -> Result<()> {
    match at.plain {
        PlainLayer::Dropout { rate } => cpu::dropout_forward(x, y, at.mask(rate), step),
        PlainLayer::MaxPool2d(geometry) => cpu::max_pool2d_forward(x, y, geometry),
    }
}

/// `dx = dy·∂layer/∂x ⊙ input_act'(x)` on the host (`input_act`: the activation fused into the
/// op that produced `x`).
pub(crate) fn cpu_backward<T: Real>(
    at: LayerAt,
    step: u32,
    (dy, x): (&[T], &[T]),
    dx: &mut [T],
    input_act: Activation,
) -> Result<()> {
    match at.plain {
        PlainLayer::Dropout { rate } => cpu::dropout_backward(dy, x, dx, at.mask(rate), step, input_act),
        PlainLayer::MaxPool2d(geometry) => cpu::max_pool2d_backward(dy, x, dx, geometry, input_act),
    }
}

/// Prepares `y = layer(x)` on the device; the step is read from `state`.
pub(crate) fn gpu_forward(
    ctx: &GpuContext,
    at: LayerAt,
    state: &GpuBuffer<OptimState>,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
) -> Result<Dispatch> {
    match at.plain {
        PlainLayer::Dropout { rate } => gpu::dropout_forward(ctx, x, y, at.mask(rate), state),
        PlainLayer::MaxPool2d(geometry) => gpu::max_pool2d_forward(ctx, x, y, geometry),
    }
}

/// Prepares the backward of [`gpu_forward`].
pub(crate) fn gpu_backward(
    ctx: &GpuContext,
    at: LayerAt,
    state: &GpuBuffer<OptimState>,
    (dy, x): (&GpuBuffer<f32>, &GpuBuffer<f32>),
    dx: &GpuBuffer<f32>,
    input_act: Activation,
) -> Result<Dispatch> {
    match at.plain {
        PlainLayer::Dropout { rate } => gpu::dropout_backward(ctx, dy, x, dx, at.mask(rate), input_act, state),
        PlainLayer::MaxPool2d(geometry) => gpu::max_pool2d_backward(ctx, (dy, x), dx, geometry, input_act),
    }
}
