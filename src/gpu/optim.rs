//! Parameter updates. Kernel: `shaders/optim.wgsl`; CPU twin: [`crate::cpu::optim`].
//!
//! Updates read the step's hyperparameters from a device-resident [`OptimState`], advanced
//! by [`tick`] once per step, so a training step uploads nothing for the optimizer.

use crate::error::{Result, check_len, check_nonzero};
use crate::gpu::dispatch::grid_1d;
use crate::gpu::kernels::{Kernel, OPTIM, Slot};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};
use crate::optimizer::OptimState;

const TICK: Kernel = Kernel {
    shader: &OPTIM,
    entry: "tick",
    slots: &[(4, Slot::ReadWrite)],
};
const SGD: Kernel = Kernel {
    shader: &OPTIM,
    entry: "sgd",
    slots: &[
        (0, Slot::ReadWrite),
        (1, Slot::Read),
        (4, Slot::ReadWrite),
        (5, Slot::Uniform),
    ],
};
const MOMENTUM: Kernel = Kernel {
    shader: &OPTIM,
    entry: "momentum",
    slots: &[
        (0, Slot::ReadWrite),
        (1, Slot::Read),
        (2, Slot::ReadWrite),
        (4, Slot::ReadWrite),
        (5, Slot::Uniform),
    ],
};
const ADAM: Kernel = Kernel {
    shader: &OPTIM,
    entry: "adam",
    slots: &[
        (0, Slot::ReadWrite),
        (1, Slot::Read),
        (2, Slot::ReadWrite),
        (3, Slot::ReadWrite),
        (4, Slot::ReadWrite),
        (5, Slot::Uniform),
    ],
};

const GRAD_NORM: Kernel = Kernel {
    shader: &OPTIM,
    entry: "accumulate_grad_norm",
    slots: &[(1, Slot::Read), (4, Slot::ReadWrite), (5, Slot::Uniform)],
};

/// Prepares `state.grad_sq_sum += Σ g²` for one gradient (between [`tick`] and the updates,
/// when clipping by global norm is on).
pub fn accumulate_grad_norm(ctx: &GpuContext, g: &GpuBuffer<f32>, state: &GpuBuffer<OptimState>) -> Result<Dispatch> {
    check_len("accumulate_grad_norm", "state", state.len(), 1)?;
    let params = [g.len() as u32, 0, 0, 0];
    ctx.prepare(
        &GRAD_NORM,
        &Vec::new(),
        &[&g.buffer, &state.buffer],
        bytemuck::bytes_of(&params),
        [1, 1, 1],
    )
}

/// Prepares the once-per-step advance of the state's step counter and bias corrections.
pub fn tick(ctx: &GpuContext, state: &GpuBuffer<OptimState>) -> Result<Dispatch> {
    check_len("tick", "state", state.len(), 1)?;
    ctx.prepare(&TICK, &Vec::new(), &[&state.buffer], &[], [1, 1, 1])
}

fn update(
    ctx: &GpuContext,
    kernel: &Kernel,
    w: &GpuBuffer<f32>,
    g: &GpuBuffer<f32>,
    moments: &[&GpuBuffer<f32>],
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    let op = kernel.entry;
    check_nonzero(op, &[("parameters", w.len())])?;
    check_len(op, "gradient", g.len(), w.len())?;
    for m in moments {
        check_len(op, "optimizer moment", m.len(), w.len())?;
    }
    check_len(op, "state", state.len(), 1)?;
    let (groups, threads_x) = grid_1d(ctx, op, w.len(), 256)?;
    let params = [w.len() as u32, threads_x, 0, 0];
    let mut buffers = vec![&w.buffer, &g.buffer];
    buffers.extend(moments.iter().map(|m| &m.buffer));
    buffers.push(&state.buffer);
    ctx.prepare(kernel, &Vec::new(), &buffers, bytemuck::bytes_of(&params), groups)
}

/// Prepares `w ← w·(1 − lr·wd) − lr·g`.
pub fn sgd_update(
    ctx: &GpuContext,
    w: &GpuBuffer<f32>,
    g: &GpuBuffer<f32>,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    update(ctx, &SGD, w, g, &[], state)
}

/// Prepares `v ← μ·v + g`, `w ← w·(1 − lr·wd) − lr·v`.
pub fn momentum_update(
    ctx: &GpuContext,
    w: &GpuBuffer<f32>,
    g: &GpuBuffer<f32>,
    velocity: &GpuBuffer<f32>,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    update(ctx, &MOMENTUM, w, g, &[velocity], state)
}

/// Prepares the Adam(W) update with bias correction.
pub fn adam_update(
    ctx: &GpuContext,
    w: &GpuBuffer<f32>,
    g: &GpuBuffer<f32>,
    m: &GpuBuffer<f32>,
    v: &GpuBuffer<f32>,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    update(ctx, &ADAM, w, g, &[m, v], state)
}
