//! Fused loss heads. Kernel: `shaders/loss.wgsl`; CPU twin: [`crate::cpu::loss`].

use crate::error::{Result, check_len, check_nonzero};
use crate::gpu::dispatch::grid_1d;
use crate::gpu::kernels::{Constants, Kernel, LOSS, Slot};
use crate::gpu::uniforms::RowShape;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};

const SLOTS: &[(u32, Slot)] = &[
    (0, Slot::Read),
    (1, Slot::Read),
    (2, Slot::Read),
    (3, Slot::ReadWrite),
    (4, Slot::ReadWrite),
    (5, Slot::Uniform),
];
const WORKGROUP: u32 = 64;

fn check(op: &'static str, z: usize, loss_rows: usize, dz: usize, rows: usize, cols: usize) -> Result<()> {
    check_nonzero(op, &[("rows", rows), ("cols", cols)])?;
    check_len(op, "logits", z, rows * cols)?;
    check_len(op, "loss_rows", loss_rows, rows)?;
    check_len(op, "dz", dz, rows * cols)
}

fn launch(
    ctx: &GpuContext,
    (entry, constants): (&'static str, Constants),
    buffers: [&wgpu::Buffer; 5],
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    let (groups, threads_x) = grid_1d(ctx, entry, rows, WORKGROUP)?;
    let params = RowShape {
        rows: rows as u32,
        cols: cols as u32,
        threads_x,
        _pad: 0,
    };
    let kernel = Kernel {
        shader: &LOSS,
        entry,
        slots: SLOTS,
    };
    ctx.prepare(&kernel, &constants, &buffers, bytemuck::bytes_of(&params), groups)
}

/// Prepares fused softmax + cross-entropy: per-row loss and `dz = (softmax(z) − onehot(y)) / rows`.
///
/// Labels must be `< cols` (validate them on the host); an out-of-range label yields a NaN loss.
pub fn softmax_cross_entropy(
    ctx: &GpuContext,
    z: &GpuBuffer<f32>,
    labels: &GpuBuffer<u32>,
    loss_rows: &GpuBuffer<f32>,
    dz: &GpuBuffer<f32>,
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    const OP: &str = "softmax_cross_entropy";
    check(OP, z.len(), loss_rows.len(), dz.len(), rows, cols)?;
    check_len(OP, "labels", labels.len(), rows)?;
    let buffers = [
        &z.buffer,
        &labels.buffer,
        &ctx.placeholder,
        &loss_rows.buffer,
        &dz.buffer,
    ];
    launch(ctx, (OP, Vec::new()), buffers, rows, cols)
}

/// Prepares fused sigmoid + binary cross-entropy against targets in `[0, 1]`.
pub fn sigmoid_binary_cross_entropy(
    ctx: &GpuContext,
    z: &GpuBuffer<f32>,
    targets: &GpuBuffer<f32>,
    loss_rows: &GpuBuffer<f32>,
    dz: &GpuBuffer<f32>,
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    float_target_head(
        ctx,
        ("sigmoid_binary_cross_entropy", Vec::new()),
        z,
        targets,
        loss_rows,
        dz,
        rows,
        cols,
    )
}

/// Prepares mean squared error on linear outputs: per-row `Σ (z − y)²`, `dz = 2(z − y) / rows`.
pub fn mse(
    ctx: &GpuContext,
    z: &GpuBuffer<f32>,
    targets: &GpuBuffer<f32>,
    loss_rows: &GpuBuffer<f32>,
    dz: &GpuBuffer<f32>,
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    float_target_head(
        ctx,
        ("difference_head", vec![("HEAD", 0.0)]),
        z,
        targets,
        loss_rows,
        dz,
        rows,
        cols,
    )
}

/// A loss head whose targets are floats (`[rows × cols]`), selected by its entry point and
/// pipeline constants.
#[allow(clippy::too_many_arguments)]
fn float_target_head(
    ctx: &GpuContext,
    (entry, constants): (&'static str, Constants),
    z: &GpuBuffer<f32>,
    targets: &GpuBuffer<f32>,
    loss_rows: &GpuBuffer<f32>,
    dz: &GpuBuffer<f32>,
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    check(entry, z.len(), loss_rows.len(), dz.len(), rows, cols)?;
    check_len(entry, "targets", targets.len(), rows * cols)?;
    let buffers = [
        &z.buffer,
        &ctx.placeholder,
        &targets.buffer,
        &loss_rows.buffer,
        &dz.buffer,
    ];
    launch(ctx, (entry, constants), buffers, rows, cols)
}

/// Prepares absolute error (L1): per-row `Σ_j |z − y|` and `dz = sign(z − y) / rows`.
pub fn mae(
    ctx: &GpuContext,
    z: &GpuBuffer<f32>,
    targets: &GpuBuffer<f32>,
    loss_rows: &GpuBuffer<f32>,
    dz: &GpuBuffer<f32>,
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    float_target_head(
        ctx,
        ("difference_head", vec![("HEAD", 1.0)]),
        z,
        targets,
        loss_rows,
        dz,
        rows,
        cols,
    )
}
