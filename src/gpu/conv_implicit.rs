//! A convolution as implicit GEMMs (`shaders/conv_implicit.wgsl`): forward, weight + bias
//! gradient and input gradient, one dispatch each, reading patches straight from the image
//! instead of from an im2col matrix. The same products as [`crate::gpu::conv2d_forward`] and
//! [`crate::gpu::conv2d_backward`] (im2col + the tuned matmuls); [`crate::gpu::ConvPath`] says
//! which a layer runs. CPU twin: [`crate::cpu::conv2d_forward`] and [`crate::cpu::conv2d_backward`].

use crate::activation::Activation;
use crate::error::{Result, check_len};
use crate::gpu::conv::ConvShape;
use crate::gpu::kernels::{Kernel, Shader, Slot};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuView, MatmulKernel};

/// The kernels' source with its prelude. Built without runtime bounds checks: every index is
/// clamped (rows and columns past the end) or selected to 0 (padding) in the shader, so it stays
/// inside the extents `check` validates here (input `B·C·H·W`, weight `O·C·k·k`, output
/// `B·O·OH·OW`); stores are masked to the rows and columns that exist.
pub(crate) static CONV_IMPLICIT: Shader = Shader {
    name: "conv_implicit.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/conv_params.wgsl"),
        include_str!("../../shaders/conv_implicit.wgsl")
    ),
    trusted: true,
    subgroups: false,
};

/// [`CONV_IMPLICIT`] sharing each step's row values through `subgroupBroadcast` (generated with
/// `--subgroup`): on devices with subgroups of at least 8 lanes, the same checks apply.
pub(crate) static CONV_IMPLICIT_SUBGROUP: Shader = Shader {
    name: "conv_implicit_subgroup.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/conv_params.wgsl"),
        include_str!("../../shaders/conv_implicit_subgroup.wgsl")
    ),
    trusted: true,
    subgroups: true,
};

const SLOTS: &[(u32, Slot)] = &[
    (0, Slot::Read),
    (1, Slot::Read),
    (2, Slot::Read),
    (3, Slot::ReadWrite),
    (4, Slot::ReadWrite),
    (5, Slot::Uniform),
];
/// Rows of the product per workgroup and columns per workgroup (8 lanes × 8 columns).
const ROWS: usize = 16;
const COLUMNS: usize = 64;

/// Launches `entry` with `rows` rows and `columns` columns of product.
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    s: &ConvShape,
    act: Activation,
    buffers: [crate::gpu::buffer::Binding<'_>; 5],
    (rows, columns): (usize, usize),
) -> Result<Dispatch> {
    // The subgroup kernels wherever the device runs the subgroup matmul (same blocking).
    let shader = if ctx.runs(MatmulKernel::RowBlockSubgroup) {
        &CONV_IMPLICIT_SUBGROUP
    } else {
        &CONV_IMPLICIT
    };
    let kernel = Kernel {
        shader,
        entry,
        slots: SLOTS,
    };
    let groups = [columns.div_ceil(COLUMNS), rows.div_ceil(ROWS), 1].map(|g| u32::try_from(g).unwrap_or(u32::MAX));
    ctx.prepare(
        &kernel,
        &Vec::new(),
        &buffers,
        bytemuck::bytes_of(&s.params(act)),
        groups,
    )
}

/// Prepares `y = act(conv(x, weight) + bias)` in one dispatch. `weight` `[out_channels × C·k·k]`
/// and `bias` `[out_channels]` are views of the flat parameters.
pub fn conv2d_forward_implicit(
    ctx: &GpuContext,
    s: ConvShape,
    x: &GpuBuffer<f32>,
    (weight, bias): (GpuView<'_, f32>, GpuView<'_, f32>),
    y: &GpuBuffer<f32>,
    act: Activation,
) -> Result<Dispatch> {
    s.check_forward("conv2d_forward_implicit", [x.len(), weight.len(), bias.len(), y.len()])?;
    launch(
        ctx,
        "conv_forward",
        &s,
        act,
        [
            x.into(),
            weight.binding(),
            bias.binding(),
            y.into(),
            ctx.scratch_binding(),
        ],
        (s.out_channels, s.columns()),
    )
}

/// Prepares the gradients of a convolution from `dz` (NCHW, with respect to its pre-activation
/// output): `dweight` and `dbias` in one dispatch, and with `dx` also
/// `dx = conv2dᵀ(dz) ⊙ input_act'(x)` in a second.
pub fn conv2d_backward_implicit(
    ctx: &GpuContext,
    s: ConvShape,
    dz: &GpuBuffer<f32>,
    (x, weight): (&GpuBuffer<f32>, GpuView<'_, f32>),
    (dweight, dbias): (GpuView<'_, f32>, GpuView<'_, f32>),
    dx: Option<(&GpuBuffer<f32>, Activation)>,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "conv2d_backward_implicit";
    s.check_backward(OP, [dz.len(), x.len(), weight.len(), dweight.len(), dbias.len()])?;
    let identity = Activation::Identity;
    // Columns: the patch plus one whose sums are the bias gradient.
    let mut out = vec![launch(
        ctx,
        "conv_weight_grad",
        &s,
        identity,
        [
            x.into(),
            dz.into(),
            ctx.placeholder_binding(),
            dweight.binding(),
            dbias.binding(),
        ],
        (s.out_channels, s.patch() + 1),
    )?];
    if let Some((dx, input_act)) = dx {
        check_len(OP, "input gradient", dx.len(), s.input_len())?;
        let g = s.geometry;
        out.push(launch(
            ctx,
            "conv_input_grad",
            &s,
            input_act,
            [dz.into(), weight.binding(), x.into(), dx.into(), ctx.scratch_binding()],
            (g.in_channels, s.batch * g.height * g.width),
        )?);
    }
    Ok(out)
}
