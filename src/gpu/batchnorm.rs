//! Batch normalization. Kernel: `shaders/batchnorm.wgsl`; CPU twin: [`crate::cpu::batchnorm`].

use bytemuck::{Pod, Zeroable};

use crate::activation::Activation;
use crate::cpu::NormBatch;
use crate::error::{Result, check_len, check_nonzero};
use crate::gpu::buffer::Binding;
use crate::gpu::dispatch::grid_1d;
use crate::gpu::kernels::{Kernel, Shader, Slot};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuView};
use crate::model::{BATCH_NORM_EPS, BATCH_NORM_MOMENTUM};
use crate::optimizer::OptimState;

/// The kernel's source with its preludes.
pub(crate) static BATCH_NORM: Shader = Shader {
    name: "batchnorm.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/optim_state.wgsl"),
        include_str!("../../shaders/batchnorm.wgsl")
    ),
    trusted: false,
    subgroups: false,
};

/// `BatchNormParams` in `shaders/batchnorm.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct BatchNormParams {
    pub rows: u32,
    pub channels: u32,
    pub spatial: u32,
    pub groups_x: u32,
    pub bias_at: u32,
    pub var_at: u32,
    pub count_at: u32,
    pub act: u32,
    pub input_act: u32,
    /// Bit 0: write dx; bit 1: update the running statistics.
    pub flags: u32,
    pub eps: f32,
    pub momentum: f32,
    pub threads_x: u32,
    pub len: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

const WORKGROUP: u32 = 256;

/// Prepares entry point `entry` of the module with its `slots` bound to `bindings` in order.
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    slots: &'static [(u32, Slot)],
    bindings: &[Binding<'_>],
    (p, grid): (BatchNormParams, [u32; 3]),
) -> Result<Dispatch> {
    let kernel = Kernel {
        shader: &BATCH_NORM,
        entry,
        slots,
    };
    ctx.prepare(&kernel, &Vec::new(), bindings, bytemuck::bytes_of(&p), grid)
}

/// A layer's tensors as the kernels bind them: weight and bias in one view of the parameters
/// (`bias_at` values apart), and running mean, running variance and `num_batches_tracked` in
/// one view of the layer state (`var_at`, `count_at` apart).
#[derive(Clone, Copy)]
pub struct NormTensors<'a> {
    pub affine: GpuView<'a, f32>,
    pub bias_at: usize,
    pub running: GpuView<'a, f32>,
    pub var_at: usize,
    pub count_at: usize,
}

/// One workgroup per channel, folded into two dimensions past the per-dimension limit.
fn channel_grid(ctx: &GpuContext, entry: &'static str, channels: usize) -> Result<([u32; 3], u32)> {
    let (grid, _) = grid_1d(ctx, entry, channels, 1)?;
    Ok((grid, grid[0]))
}

fn params(batch: NormBatch, t: &NormTensors<'_>, (act, input_act): (Activation, Activation)) -> BatchNormParams {
    BatchNormParams {
        rows: batch.rows as u32,
        channels: batch.shape.channels as u32,
        spatial: batch.shape.spatial as u32,
        groups_x: 0,
        bias_at: t.bias_at as u32,
        var_at: t.var_at as u32,
        count_at: t.count_at as u32,
        act: act.shader_code(),
        input_act: input_act.shader_code(),
        flags: 0,
        eps: BATCH_NORM_EPS,
        momentum: BATCH_NORM_MOMENTUM,
        threads_x: 0,
        len: (batch.rows * batch.shape.channels * batch.shape.spatial) as u32,
        _pad0: 0,
        _pad1: 0,
    }
}

fn check(entry: &'static str, batch: NormBatch, t: &NormTensors<'_>, buffers: &[(&'static str, usize)]) -> Result<()> {
    let c = batch.shape.channels;
    check_nonzero(
        entry,
        &[("rows", batch.rows), ("channels", c), ("spatial", batch.shape.spatial)],
    )?;
    let len = batch.rows * c * batch.shape.spatial;
    for &(what, got) in buffers {
        check_len(entry, what, got, len)?;
    }
    check_len(entry, "weight and bias", t.affine.len(), t.bias_at + c)?;
    check_len(entry, "running statistics", t.running.len(), t.count_at + 1)?;
    Ok(())
}

/// Prepares the training forward: `y = act(γ·x̂ + β)` with batch statistics, kept in `stats`
/// (`3 × channels`).
pub fn batch_norm_train_forward(
    ctx: &GpuContext,
    x: &GpuBuffer<f32>,
    t: NormTensors<'_>,
    (y, stats): (&GpuBuffer<f32>, &GpuBuffer<f32>),
    batch: NormBatch,
    act: Activation,
) -> Result<Dispatch> {
    const ENTRY: &str = "batch_norm_train";
    check(ENTRY, batch, &t, &[("x", x.len()), ("y", y.len())])?;
    check_len(ENTRY, "stats", stats.len(), 3 * batch.shape.channels)?;
    let (grid, groups_x) = channel_grid(ctx, ENTRY, batch.shape.channels)?;
    let p = BatchNormParams {
        groups_x,
        ..params(batch, &t, (act, Activation::Identity))
    };
    let bindings: [Binding<'_>; 4] = [x.into(), y.into(), t.affine.binding(), stats.into()];
    launch(
        ctx,
        ENTRY,
        &[
            (0, Slot::Read),
            (2, Slot::ReadWrite),
            (3, Slot::Read),
            (4, Slot::ReadWrite),
            (8, Slot::Uniform),
        ],
        &bindings,
        (p, grid),
    )
}

/// Prepares the evaluation forward: `y = act(γ·(x − running_mean)/√(running_var + ε) + β)`.
pub fn batch_norm_eval_forward(
    ctx: &GpuContext,
    x: &GpuBuffer<f32>,
    t: NormTensors<'_>,
    y: &GpuBuffer<f32>,
    batch: NormBatch,
    act: Activation,
) -> Result<Dispatch> {
    const ENTRY: &str = "batch_norm_eval";
    check(ENTRY, batch, &t, &[("x", x.len()), ("y", y.len())])?;
    let (grid, threads_x) = grid_1d(ctx, ENTRY, x.len(), WORKGROUP)?;
    let p = BatchNormParams {
        threads_x,
        ..params(batch, &t, (act, Activation::Identity))
    };
    let bindings: [Binding<'_>; 4] = [x.into(), y.into(), t.affine.binding(), t.running.binding()];
    launch(
        ctx,
        ENTRY,
        &[
            (0, Slot::Read),
            (2, Slot::ReadWrite),
            (3, Slot::Read),
            (5, Slot::ReadWrite),
            (8, Slot::Uniform),
        ],
        &bindings,
        (p, grid),
    )
}

/// Where the backward writes: the weight and bias gradients (one view, `bias_at` apart) and,
/// when the input has a gradient, `dx` with the input's activation to differentiate.
pub struct NormGrads<'a> {
    pub affine: GpuView<'a, f32>,
    pub dx: Option<(&'a GpuBuffer<f32>, Activation)>,
}

/// Prepares the backward from `dy = dL/d(γ·x̂ + β)`; with `track`, the running statistics move
/// towards the batch's unless the state says the step is skipped.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    ctx: &GpuContext,
    (dy, x): (&GpuBuffer<f32>, &GpuBuffer<f32>),
    t: NormTensors<'_>,
    stats: &GpuBuffer<f32>,
    grads: NormGrads<'_>,
    state: &GpuBuffer<OptimState>,
    batch: NormBatch,
    track: bool,
) -> Result<Dispatch> {
    const ENTRY: &str = "batch_norm_backward";
    check(ENTRY, batch, &t, &[("dy", dy.len()), ("x", x.len())])?;
    check_len(ENTRY, "stats", stats.len(), 3 * batch.shape.channels)?;
    check_len(ENTRY, "weight and bias grads", grads.affine.len(), t.affine.len())?;
    check_len(ENTRY, "state", state.len(), 1)?;
    if let Some((dx, _)) = grads.dx {
        check_len(ENTRY, "dx", dx.len(), x.len())?;
    }
    let (grid, groups_x) = channel_grid(ctx, ENTRY, batch.shape.channels)?;
    let input_act = grads.dx.map_or(Activation::Identity, |(_, act)| act);
    let p = BatchNormParams {
        groups_x,
        flags: u32::from(grads.dx.is_some()) | (u32::from(track) << 1),
        ..params(batch, &t, (Activation::Identity, input_act))
    };
    let dx: Binding<'_> = match grads.dx {
        Some((dx, _)) => dx.into(),
        None => ctx.scratch_binding(),
    };
    let bindings: [Binding<'_>; 8] = [
        x.into(),
        dy.into(),
        dx,
        t.affine.binding(),
        stats.into(),
        t.running.binding(),
        grads.affine.binding(),
        state.into(),
    ];
    launch(
        ctx,
        ENTRY,
        &[
            (0, Slot::Read),
            (1, Slot::Read),
            (2, Slot::ReadWrite),
            (3, Slot::Read),
            (4, Slot::ReadWrite),
            (5, Slot::ReadWrite),
            (6, Slot::ReadWrite),
            (7, Slot::Read),
            (8, Slot::Uniform),
        ],
        &bindings,
        (p, grid),
    )
}
