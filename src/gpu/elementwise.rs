//! Activations forward and backward. Kernel: `shaders/elementwise.wgsl`;
//! CPU twin: [`crate::cpu::elementwise`].

use crate::activation::Activation;
use crate::error::{Result, check_len};
use crate::gpu::buffer::Binding;
use crate::gpu::dispatch::grid_1d;
use crate::gpu::kernels::{ELEMENTWISE, Kernel, Slot};
use crate::gpu::uniforms::ElementwiseShape;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};

const SLOTS: &[(u32, Slot)] = &[
    (0, Slot::Read),
    (1, Slot::Read),
    (2, Slot::ReadWrite),
    (3, Slot::Uniform),
];
const WORKGROUP: u32 = 256;

fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        shader: &ELEMENTWISE,
        entry,
        slots: SLOTS,
    }
}

/// Launches `entry` with one thread per element of `threads`.
#[allow(clippy::too_many_arguments)]
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    act: Activation,
    x: Binding<'_>,
    y: Binding<'_>,
    out: Binding<'_>,
    (rows, cols, len): (usize, usize, usize),
    threads: usize,
) -> Result<Dispatch> {
    let (groups, threads_x) = grid_1d(ctx, entry, threads, WORKGROUP)?;
    let params = ElementwiseShape {
        rows: rows as u32,
        cols: cols as u32,
        len: len as u32,
        threads_x,
    };
    let constants = vec![("ACT", f64::from(act.shader_code()))];
    ctx.prepare(
        &kernel(entry),
        &constants,
        &[x, y, out],
        bytemuck::bytes_of(&params),
        groups,
    )
}

/// Prepares `a = act(z)`.
pub fn activation_forward(
    ctx: &GpuContext,
    z: &GpuBuffer<f32>,
    a: &GpuBuffer<f32>,
    act: Activation,
) -> Result<Dispatch> {
    const OP: &str = "activation_forward";
    check_len(OP, "output", a.len(), z.len())?;
    let len = z.len();
    launch(
        ctx,
        OP,
        act,
        z.into(),
        (&ctx.placeholder).into(),
        a.into(),
        (1, len, len),
        len,
    )
}

/// Prepares `dz = da ⊙ act'(z)`, the derivative taken from the stored output `a`.
pub fn activation_backward(
    ctx: &GpuContext,
    da: &GpuBuffer<f32>,
    a: &GpuBuffer<f32>,
    dz: &GpuBuffer<f32>,
    act: Activation,
) -> Result<Dispatch> {
    const OP: &str = "activation_backward";
    check_len(OP, "activation output", a.len(), da.len())?;
    check_len(OP, "dz", dz.len(), da.len())?;
    let len = da.len();
    launch(ctx, OP, act, da.into(), a.into(), dz.into(), (1, len, len), len)
}
