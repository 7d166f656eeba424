//! Which of the two GPU convolutions a layer runs, and what it keeps between steps.
//!
//! - [`ConvPath::Im2col`]: im2col + the tuned matmul kernels (`gpu/conv.rs`): the block-tiled
//!   and register-tiled kernels that suit discrete and integrated GPUs, at the price of a
//!   `C·k·k × B·OH·OW` scratch matrix.
//! - [`ConvPath::Implicit`]: the implicit GEMMs (`gpu/conv_implicit.rs`), register-blocked like
//!   the row-block matmul for CPU adapters, with no scratch and fewer dispatches.
//!
//! The choice follows measurement: a layer runs the implicit kernels where the device's timed
//! matmul choice for the layer's forward product (`out × C·k·k · C·k·k × B·OH·OW`) is the
//! row-block kernel, whose blocking they share. `SHADERGRAD_CONV=im2col|implicit` (or
//! [`crate::gpu::AdapterRequest`]'s `conv_path`) forces one.

use crate::activation::Activation;
use crate::error::Result;
use crate::gpu::conv::{ConvScratch, ConvShape, conv2d_backward, conv2d_forward};
use crate::gpu::conv_implicit::{conv2d_backward_implicit, conv2d_forward_implicit};
use crate::gpu::matmul::chosen_kernel;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuView};
use crate::ops::{MatmulDims, MatmulForm};

/// How a GPU convolution layer computes its products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvPath {
    /// im2col, then the tuned matmul kernels, then layout passes.
    Im2col,
    /// One implicit-GEMM kernel per product.
    Implicit,
}

impl ConvPath {
    /// Both paths, in the order `SHADERGRAD_CONV` lists them.
    pub const ALL: [ConvPath; 2] = [ConvPath::Im2col, ConvPath::Implicit];

    /// The name `SHADERGRAD_CONV` uses.
    pub fn name(self) -> &'static str {
        match self {
            ConvPath::Im2col => "im2col",
            ConvPath::Implicit => "implicit",
        }
    }

    /// The path called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The path a conv of shape `s` runs on this device: the forced one, else the implicit
    /// kernels where the device's matmul choice for the conv's forward product is the row-block
    /// kernel (timed now if that shape class is new), else im2col.
    pub fn choose(ctx: &GpuContext, s: &ConvShape) -> Result<Self> {
        if let Some(path) = ctx.forced_conv_path() {
            return Ok(path);
        }
        let dims = MatmulDims::new(s.out_channels, s.patch(), s.columns());
        Ok(if chosen_kernel(ctx, MatmulForm::AB, dims)?.is_row_block() {
            ConvPath::Implicit
        } else {
            ConvPath::Im2col
        })
    }
}

/// A conv layer's path for one batch size, with the scratch buffers the im2col path needs
/// (allocated once).
pub enum ConvWork {
    Implicit,
    Im2col { cols: GpuBuffer<f32>, rows: GpuBuffer<f32> },
}

impl ConvWork {
    /// Chooses the path for `s` ([`ConvPath::choose`]) and allocates what it needs; `name`
    /// labels the buffers.
    pub fn new(ctx: &GpuContext, s: &ConvShape, name: &str) -> Result<Self> {
        Self::with_path(ctx, s, ConvPath::choose(ctx, s)?, name)
    }

    /// [`ConvWork::new`] on a given path.
    pub fn with_path(ctx: &GpuContext, s: &ConvShape, path: ConvPath, name: &str) -> Result<Self> {
        Ok(match path {
            ConvPath::Implicit => ConvWork::Implicit,
            ConvPath::Im2col => ConvWork::Im2col {
                cols: ctx.zeros(&format!("{name} im2col"), s.cols_len())?,
                rows: ctx.zeros(&format!("{name} rows"), s.rows_len())?,
            },
        })
    }

    pub fn path(&self) -> ConvPath {
        match self {
            ConvWork::Implicit => ConvPath::Implicit,
            ConvWork::Im2col { .. } => ConvPath::Im2col,
        }
    }

    /// Prepares `y = act(conv(x, weight) + bias)` on this path.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        s: ConvShape,
        x: &GpuBuffer<f32>,
        params: (GpuView<'_, f32>, GpuView<'_, f32>),
        y: &GpuBuffer<f32>,
        act: Activation,
    ) -> Result<Vec<Dispatch>> {
        match self {
            ConvWork::Implicit => Ok(vec![conv2d_forward_implicit(ctx, s, x, params, y, act)?]),
            ConvWork::Im2col { cols, rows } => conv2d_forward(ctx, s, x, params, ConvScratch { cols, rows }, y, act),
        }
    }

    /// Prepares the weight and bias gradients, and with `dx` the input gradient, on this path.
    /// The im2col path reads the patch matrix its forward pass left.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        s: ConvShape,
        dz: &GpuBuffer<f32>,
        input: (&GpuBuffer<f32>, GpuView<'_, f32>),
        grads: (GpuView<'_, f32>, GpuView<'_, f32>),
        dx: Option<(&GpuBuffer<f32>, Activation)>,
    ) -> Result<Vec<Dispatch>> {
        match self {
            ConvWork::Implicit => conv2d_backward_implicit(ctx, s, dz, input, grads, dx),
            ConvWork::Im2col { cols, rows } => {
                conv2d_backward(ctx, s, dz, input, grads, ConvScratch { cols, rows }, dx)
            }
        }
    }
}
