//! Convolution and max pooling over NCHW batches: im2col feeding the tuned matmul kernels, with
//! the layout moves, bias, activation and col2im in `shaders/conv.wgsl`. CPU twins:
//! [`crate::cpu::conv`] and [`crate::cpu::pool`].

use bytemuck::{Pod, Zeroable};

use crate::activation::Activation;
use crate::cpu::PoolGeometry;
use crate::error::{Error, Result, check_len, check_nonzero};
use crate::gpu::buffer::Binding;
use crate::gpu::kernels::{Kernel, Shader, Slot};
use crate::gpu::matmul::{Operand, matmul_and_row_sums, matmul_strided};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuView};
use crate::model::ConvGeometry;
use crate::ops::{Epilogue, MatmulDims, MatmulForm};

/// The kernels' source with its prelude.
pub(crate) static CONV: Shader = Shader {
    name: "conv.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/conv_params.wgsl"),
        include_str!("../../shaders/conv.wgsl")
    ),
    trusted: false,
    subgroups: false,
};

/// `ConvParams` in `shaders/conv.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct ConvParams {
    pub batch: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    pub out_channels: u32,
    pub kernel: u32,
    pub stride: u32,
    pub padding: u32,
    pub out_height: u32,
    pub out_width: u32,
    pub act: u32,
    pub _pad: u32,
}

const SLOTS: &[(u32, Slot)] = &[
    (0, Slot::Read),
    (1, Slot::Read),
    (2, Slot::ReadWrite),
    (3, Slot::Uniform),
];
/// Lanes per workgroup, along the grid's x axis.
const WORKGROUP: usize = 64;

/// A convolution's shapes for a batch of `batch` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub geometry: ConvGeometry,
    pub out_channels: usize,
    pub batch: usize,
}

impl ConvShape {
    pub(crate) fn positions(&self) -> usize {
        self.geometry.out_height * self.geometry.out_width
    }

    /// Rows of the im2col matrix: `C·k·k`.
    pub fn patch(&self) -> usize {
        self.geometry.in_channels * self.geometry.kernel * self.geometry.kernel
    }

    /// Columns of the im2col matrix and of `Z'`: `batch · OH · OW`.
    pub fn columns(&self) -> usize {
        self.batch * self.positions()
    }

    /// Elements of the im2col scratch buffer.
    pub fn cols_len(&self) -> usize {
        self.patch() * self.columns()
    }

    /// Elements of the `Z'` scratch buffer (`out_channels × batch·OH·OW`).
    pub fn rows_len(&self) -> usize {
        self.out_channels * self.columns()
    }

    pub(crate) fn input_len(&self) -> usize {
        let g = self.geometry;
        self.batch * g.in_channels * g.height * g.width
    }

    pub(crate) fn output_len(&self) -> usize {
        self.out_channels * self.columns()
    }

    pub(crate) fn params(&self, act: Activation) -> ConvParams {
        let g = self.geometry;
        ConvParams {
            batch: self.batch as u32,
            channels: g.in_channels as u32,
            height: g.height as u32,
            width: g.width as u32,
            out_channels: self.out_channels as u32,
            kernel: g.kernel as u32,
            stride: g.stride as u32,
            padding: g.padding as u32,
            out_height: g.out_height as u32,
            out_width: g.out_width as u32,
            act: act.shader_code(),
            _pad: 0,
        }
    }
}

/// The scratch buffers of one conv layer: the im2col matrix (also `dcols` in backward) and `Z'`
/// (also `dZ'`), allocated once per (layer, batch size).
pub struct ConvScratch<'a> {
    pub cols: &'a GpuBuffer<f32>,
    pub rows: &'a GpuBuffer<f32>,
}

/// Launches `entry` over a `[x, y, z]` grid of invocations (x: positions or pixels, y and z:
/// channels and samples, as the kernel says).
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    buffers: [Binding<'_>; 3],
    [x, y, z]: [usize; 3],
    params: ConvParams,
) -> Result<Dispatch> {
    let kernel = Kernel {
        shader: &CONV,
        entry,
        slots: SLOTS,
    };
    let groups = [x.div_ceil(WORKGROUP), y, z].map(|g| u32::try_from(g).unwrap_or(u32::MAX));
    ctx.prepare(&kernel, &Vec::new(), &buffers, bytemuck::bytes_of(&params), groups)
}

impl ConvShape {
    /// Checks the shape is not empty and a forward pass's `[input, weight, bias, output]`
    /// lengths are its own.
    pub(crate) fn check_forward(&self, op: &'static str, [x, weight, bias, y]: [usize; 4]) -> Result<()> {
        self.check_lens(
            op,
            &[
                ("input", x, self.input_len()),
                ("weight", weight, self.out_channels * self.patch()),
                ("bias", bias, self.out_channels),
                ("output", y, self.output_len()),
            ],
        )
    }

    /// Checks the shape is not empty and a backward pass's `[output gradient, input, weight,
    /// weight gradient, bias gradient]` lengths are its own.
    pub(crate) fn check_backward(&self, op: &'static str, [dz, x, weight, dweight, dbias]: [usize; 5]) -> Result<()> {
        self.check_lens(
            op,
            &[
                ("output gradient", dz, self.output_len()),
                ("input", x, self.input_len()),
                ("weight", weight, self.out_channels * self.patch()),
                ("weight gradient", dweight, self.out_channels * self.patch()),
                ("bias gradient", dbias, self.out_channels),
            ],
        )
    }

    fn check_lens(&self, op: &'static str, lens: &[(&'static str, usize, usize)]) -> Result<()> {
        check_nonzero(op, &[("batch", self.batch), ("out channels", self.out_channels)])?;
        for &(what, got, want) in lens {
            check_len(op, what, got, want)?;
        }
        Ok(())
    }
}

fn check_scratch(op: &'static str, s: &ConvShape, scratch: &ConvScratch<'_>) -> Result<()> {
    check_len(op, "im2col scratch", scratch.cols.len(), s.cols_len())?;
    check_len(op, "row scratch", scratch.rows.len(), s.rows_len())
}

/// Prepares `y = act(conv(x, weight) + bias)`: im2col, one matmul, then bias + activation into
/// NCHW (three dispatches). `weight` `[out_channels × C·k·k]` and `bias` `[out_channels]` are views
/// of the flat parameters.
pub fn conv2d_forward(
    ctx: &GpuContext,
    s: ConvShape,
    x: &GpuBuffer<f32>,
    (weight, bias): (GpuView<'_, f32>, GpuView<'_, f32>),
    scratch: ConvScratch<'_>,
    y: &GpuBuffer<f32>,
    act: Activation,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "conv2d_forward";
    s.check_forward(OP, [x.len(), weight.len(), bias.len(), y.len()])?;
    check_scratch(OP, &s, &scratch)?;
    let identity = Activation::Identity;
    let im2col = launch(
        ctx,
        "im2col",
        [x.into(), ctx.placeholder_binding(), scratch.cols.into()],
        [s.positions(), s.batch, s.patch()],
        s.params(identity),
    )?;
    // Z' [O × B·P] = W [O × C·k·k] · cols [C·k·k × B·P].
    let matmul = matmul_strided(
        ctx,
        MatmulForm::AB,
        MatmulDims::new(s.out_channels, s.patch(), s.columns()),
        Operand::at_start(weight, s.patch()),
        Operand::dense(scratch.cols, s.columns()),
        Operand::dense(scratch.rows, s.columns()),
        Epilogue::None,
        false,
    )?;
    let output = launch(
        ctx,
        "conv_output",
        [scratch.rows.into(), bias.binding(), y.into()],
        [s.positions(), s.out_channels, s.batch],
        s.params(act),
    )?;
    Ok(vec![im2col, matmul, output])
}

/// Prepares the gradients of [`conv2d_forward`] from `dz` (NCHW, with respect to the
/// pre-activation output): `dweight` and `dbias` (one matmul with the row sums fused), and with
/// `dx` also `dx = conv2dᵀ(dz) ⊙ input_act'(x)`. Reads the im2col matrix the forward pass left
/// in `scratch.cols`, then overwrites it with `dcols`. Three or four dispatches.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    ctx: &GpuContext,
    s: ConvShape,
    dz: &GpuBuffer<f32>,
    (x, weight): (&GpuBuffer<f32>, GpuView<'_, f32>),
    (dweight, dbias): (GpuView<'_, f32>, GpuView<'_, f32>),
    scratch: ConvScratch<'_>,
    dx: Option<(&GpuBuffer<f32>, Activation)>,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "conv2d_backward";
    s.check_backward(OP, [dz.len(), x.len(), weight.len(), dweight.len(), dbias.len()])?;
    check_scratch(OP, &s, &scratch)?;
    let identity = Activation::Identity;
    let mut out = vec![launch(
        ctx,
        "conv_grad_rows",
        [dz.into(), ctx.placeholder_binding(), scratch.rows.into()],
        [s.positions(), s.out_channels, s.batch],
        s.params(identity),
    )?];
    // dW [O × C·k·k] = dZ' [O × B·P] · colsᵀ, db = dZ''s row sums.
    out.push(matmul_and_row_sums(
        ctx,
        MatmulForm::ABt,
        MatmulDims::new(s.out_channels, s.columns(), s.patch()),
        Operand::dense(scratch.rows, s.columns()),
        Operand::dense(scratch.cols, s.columns()),
        Operand::at_start(dweight, s.patch()),
        Operand::at_start(dbias, 1),
    )?);
    if let Some((dx, input_act)) = dx {
        check_len(OP, "input gradient", dx.len(), s.input_len())?;
        // dcols [C·k·k × B·P] = Wᵀ · dZ', into the im2col buffer (its columns are used up).
        out.push(matmul_strided(
            ctx,
            MatmulForm::AtB,
            MatmulDims::new(s.patch(), s.out_channels, s.columns()),
            Operand::at_start(weight, s.patch()),
            Operand::dense(scratch.rows, s.columns()),
            Operand::dense(scratch.cols, s.columns()),
            Epilogue::None,
            false,
        )?);
        out.push(launch(
            ctx,
            "col2im",
            [scratch.cols.into(), x.into(), dx.into()],
            [s.geometry.height * s.geometry.width, s.geometry.in_channels, s.batch],
            s.params(input_act),
        )?);
    }
    Ok(out)
}

/// Output positions of one pooled channel.
fn pool_positions(g: &PoolGeometry) -> usize {
    ((g.height - g.kernel) / g.stride + 1) * ((g.width - g.kernel) / g.stride + 1)
}

/// The pooling shapes as the kernels' parameters, for `batch` samples.
fn pool_params(g: &PoolGeometry, batch: usize, act: Activation) -> ConvParams {
    let out = |size: usize| ((size - g.kernel) / g.stride + 1) as u32;
    ConvParams {
        batch: batch as u32,
        channels: g.channels as u32,
        height: g.height as u32,
        width: g.width as u32,
        out_channels: g.channels as u32,
        kernel: g.kernel as u32,
        stride: g.stride as u32,
        padding: 0,
        out_height: out(g.height),
        out_width: out(g.width),
        act: act.shader_code(),
        _pad: 0,
    }
}

/// Samples in `x` for pooling `g`, checking the window fits and `y` has the output's size.
fn pool_batch(op: &'static str, g: &PoolGeometry, x: usize, y: usize) -> Result<usize> {
    check_nonzero(
        op,
        &[("channels", g.channels), ("kernel", g.kernel), ("stride", g.stride)],
    )?;
    if g.kernel > g.height || g.kernel > g.width {
        return Err(Error::InvalidNetwork(format!(
            "{op}: a {k}×{k} window does not fit {h}×{w}",
            k = g.kernel,
            h = g.height,
            w = g.width
        )));
    }
    let in_len = g.channels * g.height * g.width;
    let out_len = g.channels * ((g.height - g.kernel) / g.stride + 1) * ((g.width - g.kernel) / g.stride + 1);
    let batch = x / in_len;
    check_nonzero(op, &[("batch", batch)])?;
    check_len(op, "input", x, batch * in_len)?;
    check_len(op, "output", y, batch * out_len)?;
    Ok(batch)
}

/// Prepares `y = max_pool2d(x)` (first maximum of each window, as the CPU twin).
pub fn max_pool2d_forward(
    ctx: &GpuContext,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    g: PoolGeometry,
) -> Result<Dispatch> {
    let batch = pool_batch("max_pool2d_forward", &g, x.len(), y.len())?;
    launch(
        ctx,
        "max_pool_forward",
        [x.into(), ctx.placeholder_binding(), y.into()],
        [pool_positions(&g), g.channels, batch],
        pool_params(&g, batch, Activation::Identity),
    )
}

/// Prepares `dx = (dy routed to each window's first maximum) ⊙ input_act'(x)`.
pub fn max_pool2d_backward(
    ctx: &GpuContext,
    (dy, x): (&GpuBuffer<f32>, &GpuBuffer<f32>),
    dx: &GpuBuffer<f32>,
    g: PoolGeometry,
    input_act: Activation,
) -> Result<Dispatch> {
    let batch = pool_batch("max_pool2d_backward", &g, x.len(), dy.len())?;
    check_len("max_pool2d_backward", "input gradient", dx.len(), x.len())?;
    launch(
        ctx,
        "max_pool_backward",
        [x.into(), dy.into(), dx.into()],
        [g.height * g.width, g.channels, batch],
        pool_params(&g, batch, input_act),
    )
}
