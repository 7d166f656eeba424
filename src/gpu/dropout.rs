//! Inverted dropout. Kernel: `shaders/dropout.wgsl`; CPU twin: [`crate::cpu::dropout`].

use bytemuck::{Pod, Zeroable};

use crate::activation::Activation;
use crate::cpu::DropoutMask;
use crate::error::{Result, check_len, check_nonzero};
use crate::gpu::dispatch::grid_1d;
use crate::gpu::kernels::{Kernel, Shader, Slot};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};
use crate::optimizer::OptimState;

/// The kernel's source with its preludes.
pub(crate) static DROPOUT: Shader = Shader {
    name: "dropout.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/optim_state.wgsl"),
        include_str!("../../shaders/dropout.wgsl")
    ),
    trusted: false,
    subgroups: false,
};

/// `DropoutParams` in `shaders/dropout.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct DropoutParams {
    pub len: u32,
    pub threads_x: u32,
    pub seed: u32,
    pub threshold: u32,
    pub scale: f32,
    pub input_act: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

const SLOTS: &[(u32, Slot)] = &[
    (0, Slot::Read),
    (1, Slot::Read),
    (2, Slot::ReadWrite),
    (3, Slot::Uniform),
    (4, Slot::Read),
];
const WORKGROUP: u32 = 256;

#[allow(clippy::too_many_arguments)]
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    x: &GpuBuffer<f32>,
    y: &wgpu::Buffer,
    out: &GpuBuffer<f32>,
    mask: DropoutMask,
    input_act: Activation,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    check_nonzero(entry, &[("len", x.len())])?;
    check_len(entry, "output", out.len(), x.len())?;
    check_len(entry, "state", state.len(), 1)?;
    let (groups, threads_x) = grid_1d(ctx, entry, x.len(), WORKGROUP)?;
    let params = DropoutParams {
        len: x.len() as u32,
        threads_x,
        seed: mask.seed,
        threshold: mask.threshold,
        scale: mask.scale,
        input_act: input_act.shader_code(),
        _pad0: 0,
        _pad1: 0,
    };
    let kernel = Kernel {
        shader: &DROPOUT,
        entry,
        slots: SLOTS,
    };
    let bindings: [crate::gpu::buffer::Binding<'_>; 4] = [
        (&x.buffer).into(),
        y.into(),
        (&out.buffer).into(),
        (&state.buffer).into(),
    ];
    ctx.prepare(&kernel, &Vec::new(), &bindings, bytemuck::bytes_of(&params), groups)
}

/// Prepares `out = keep ? x·scale : 0`, the mask of the state's current step.
pub fn dropout_forward(
    ctx: &GpuContext,
    x: &GpuBuffer<f32>,
    out: &GpuBuffer<f32>,
    mask: DropoutMask,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    launch(
        ctx,
        "dropout_forward",
        x,
        &ctx.placeholder,
        out,
        mask,
        Activation::Identity,
        state,
    )
}

/// Prepares `dx = keep ? dy·scale·input_act'(input) : 0`.
#[allow(clippy::too_many_arguments)]
pub fn dropout_backward(
    ctx: &GpuContext,
    dy: &GpuBuffer<f32>,
    input: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    mask: DropoutMask,
    input_act: Activation,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    check_len("dropout_backward", "input", input.len(), dy.len())?;
    launch(ctx, "dropout_backward", dy, &input.buffer, dx, mask, input_act, state)
}
