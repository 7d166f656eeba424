//! What each parameterless layer other than an activation (dropout, max pooling, flatten) does in a step, on
//! both executors: whether it acts in a stage, whether it reads the step counter, and its
//! forward and backward. The step program refers to such a layer by its position in the model
//! (`Op::LayerForward`, `Op::LayerBackward`), so adding one means its variant in
//! [`crate::model::Layer`], its kernel and CPU twin, and its arms here — nothing in the planner
//! or the executors.

use super::program::Stage;
use crate::activation::Activation;
use crate::cpu::{self, DropoutMask, Real, dropout::pcg_hash};
use crate::error::Result;
use crate::gpu::{self, Dispatch, GpuBuffer, GpuContext};
use crate::model::{Layer, SampleShape};
use crate::optimizer::OptimState;

/// Where a layer sits and what it may draw on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerAt<'a> {
    pub layer: &'a Layer,
    /// Its index in the model: salts per-layer randomness.
    pub position: usize,
    /// The run's seed.
    pub run_seed: u64,
    /// The shape of one sample of its input.
    pub input: SampleShape,
}

impl LayerAt<'_> {
    /// The dropout mask of this layer.
    fn mask(&self, rate: f32) -> DropoutMask {
        let (seed, salt) = (self.run_seed, self.position as u32);
        let layer_seed = pcg_hash(seed as u32 ^ pcg_hash(salt ^ pcg_hash((seed >> 32) as u32)));
        DropoutMask::new(layer_seed, rate)
    }
}

/// Whether `layer` does anything in `stage` (dropout: in training, at a rate above 0; flatten:
/// never, a row-major image already is its flat features); a layer that does not is left out
/// of the program, its output being its input.
pub(crate) fn acts(layer: &Layer, stage: Stage) -> bool {
    match *layer {
        Layer::Dropout { rate } => stage.training_mode() && rate > 0.0,
        Layer::Flatten => false,
        Layer::Dense { .. } | Layer::Activation(_) | Layer::Conv2d { .. } | Layer::MaxPool2d { .. } => true,
    }
}

/// Whether the layer's ops read the step counter (so it must advance before the forward pass).
pub(crate) fn reads_step(layer: &Layer) -> bool {
    matches!(layer, Layer::Dropout { .. })
}

/// The pooling window over this layer's input image.
fn pool_geometry(at: LayerAt<'_>, kernel: usize, stride: usize) -> cpu::PoolGeometry {
    let SampleShape::Image {
        channels,
        height,
        width,
    } = at.input
    else {
        unreachable!("validation gives pooling an image input")
    };
    cpu::PoolGeometry {
        channels,
        height,
        width,
        kernel,
        stride,
    }
}

fn not_parameterless(layer: &Layer) -> ! {
    unreachable!("{layer} has its own ops in the step program")
}

/// `y = layer(x)` on the host, at optimizer step `step`.
pub(crate) fn cpu_forward<T: Real>(at: LayerAt<'_>, step: u32, x: &[T], y: &mut [T]) -> Result<()> {
    match *at.layer {
        Layer::Dropout { rate } => cpu::dropout_forward(x, y, at.mask(rate), step),
        Layer::MaxPool2d { kernel, stride } => cpu::max_pool2d_forward(x, y, pool_geometry(at, kernel, stride)),
        ref other => not_parameterless(other),
    }
}

/// `dx = dy·∂layer/∂x ⊙ input_act'(x)` on the host (`input_act`: the activation fused into the
/// op that produced `x`).
pub(crate) fn cpu_backward<T: Real>(
    at: LayerAt<'_>,
    step: u32,
    (dy, x): (&[T], &[T]),
    dx: &mut [T],
    input_act: Activation,
) -> Result<()> {
    match *at.layer {
        Layer::Dropout { rate } => cpu::dropout_backward(dy, x, dx, at.mask(rate), step, input_act),
        Layer::MaxPool2d { kernel, stride } => {
            cpu::max_pool2d_backward(dy, x, dx, pool_geometry(at, kernel, stride), input_act)
        }
        ref other => not_parameterless(other),
    }
}

/// Prepares `y = layer(x)` on the device; the step is read from `state`.
pub(crate) fn gpu_forward(
    ctx: &GpuContext,
    at: LayerAt<'_>,
    state: &GpuBuffer<OptimState>,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
) -> Result<Dispatch> {
    match *at.layer {
        Layer::Dropout { rate } => gpu::dropout_forward(ctx, x, y, at.mask(rate), state),
        Layer::MaxPool2d { kernel, stride } => gpu::max_pool2d_forward(ctx, x, y, pool_geometry(at, kernel, stride)),
        ref other => not_parameterless(other),
    }
}

/// Prepares the backward of [`gpu_forward`].
pub(crate) fn gpu_backward(
    ctx: &GpuContext,
    at: LayerAt<'_>,
    state: &GpuBuffer<OptimState>,
    (dy, x): (&GpuBuffer<f32>, &GpuBuffer<f32>),
    dx: &GpuBuffer<f32>,
    input_act: Activation,
) -> Result<Dispatch> {
    match *at.layer {
        Layer::Dropout { rate } => gpu::dropout_backward(ctx, dy, x, dx, at.mask(rate), input_act, state),
        Layer::MaxPool2d { kernel, stride } => {
            gpu::max_pool2d_backward(ctx, (dy, x), dx, pool_geometry(at, kernel, stride), input_act)
        }
        ref other => not_parameterless(other),
    }
}
