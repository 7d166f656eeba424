//! Parameter updates. Kernel: `shaders/optim.wgsl`; CPU twin: [`crate::cpu::optim`].
//!
//! Updates read the step's hyperparameters from a device-resident [`OptimState`], advanced
//! by [`tick`] once per step, so a training step uploads nothing for the optimizer.

use crate::error::{Result, check_len, check_nonzero};
use crate::gpu::dispatch::grid_1d;
use bytemuck::Zeroable;

use crate::gpu::kernels::{Kernel, OPTIM, Slot};
use crate::gpu::uniforms::Len;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuView};
use crate::optimizer::OptimState;

const TICK: Kernel = Kernel {
    shader: &OPTIM,
    entry: "tick",
    slots: &[(4, Slot::ReadWrite)],
};
/// An update rule's kernels: scalar, and four elements per invocation.
struct Rule {
    scalar: Kernel,
    vec4: Kernel,
}

const fn rule(scalar: &'static str, vec4: &'static str, moments: usize) -> Rule {
    const SCALAR: [(u32, Slot); 6] = [
        (0, Slot::ReadWrite),
        (1, Slot::Read),
        (2, Slot::ReadWrite),
        (3, Slot::ReadWrite),
        (4, Slot::ReadWrite),
        (5, Slot::Uniform),
    ];
    const VEC4: [(u32, Slot); 6] = [
        (10, Slot::ReadWrite),
        (11, Slot::Read),
        (12, Slot::ReadWrite),
        (13, Slot::ReadWrite),
        (4, Slot::ReadWrite),
        (5, Slot::Uniform),
    ];
    // w, g, the moments, then state and length.
    let slots: [&'static [(u32, Slot)]; 2] = match moments {
        0 => [
            &[SCALAR[0], SCALAR[1], SCALAR[4], SCALAR[5]],
            &[VEC4[0], VEC4[1], VEC4[4], VEC4[5]],
        ],
        1 => [
            &[SCALAR[0], SCALAR[1], SCALAR[2], SCALAR[4], SCALAR[5]],
            &[VEC4[0], VEC4[1], VEC4[2], VEC4[4], VEC4[5]],
        ],
        _ => [&SCALAR, &VEC4],
    };
    Rule {
        scalar: Kernel {
            shader: &OPTIM,
            entry: scalar,
            slots: slots[0],
        },
        vec4: Kernel {
            shader: &OPTIM,
            entry: vec4,
            slots: slots[1],
        },
    }
}

const SGD: Rule = rule("sgd", "sgd4", 0);
const MOMENTUM: Rule = rule("momentum", "momentum4", 1);
const ADAM: Rule = rule("adam", "adam4", 2);
const RMSPROP: Rule = rule("rmsprop", "rmsprop4", 1);

const GRAD_NORM: Kernel = Kernel {
    shader: &OPTIM,
    entry: "accumulate_grad_norm",
    slots: &[(1, Slot::Read), (4, Slot::ReadWrite), (5, Slot::Uniform)],
};

/// Prepares `state.grad_sq_sum += Σ g²` for one gradient (between [`tick`] and the updates,
/// when clipping by global norm is on).
pub fn accumulate_grad_norm<'a>(
    ctx: &GpuContext,
    g: impl Into<GpuView<'a, f32>>,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    check_len("accumulate_grad_norm", "state", state.len(), 1)?;
    let g = g.into();
    let params = Len {
        n: g.len() as u32,
        ..Len::zeroed()
    };
    let bindings = [g.binding(), (&state.buffer).into()];
    ctx.prepare(
        &GRAD_NORM,
        &Vec::new(),
        &bindings,
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
    rule: &Rule,
    w: GpuView<'_, f32>,
    g: GpuView<'_, f32>,
    moments: &[GpuView<'_, f32>],
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    let op = rule.scalar.entry;
    check_nonzero(op, &[("parameters", w.len())])?;
    check_len(op, "gradient", g.len(), w.len())?;
    for m in moments {
        check_len(op, "optimizer moment", m.len(), w.len())?;
    }
    check_len(op, "state", state.len(), 1)?;
    let mut bindings = vec![w.binding(), g.binding()];
    bindings.extend(moments.iter().map(|m| m.binding()));
    // Four elements per invocation when every view is whole vec4s at 16-byte offsets.
    let by_four = w.len().is_multiple_of(4) && bindings.iter().all(|b| b.offset % 16 == 0);
    let (kernel, items) = if by_four {
        (&rule.vec4, w.len() / 4)
    } else {
        (&rule.scalar, w.len())
    };
    let (groups, threads_x) = grid_1d(ctx, op, items, 256)?;
    let params = Len {
        n: items as u32,
        threads_x,
        ..Len::zeroed()
    };
    bindings.push((&state.buffer).into());
    ctx.prepare(kernel, &Vec::new(), &bindings, bytemuck::bytes_of(&params), groups)
}

/// Prepares `w ← w·(1 − lr·wd) − lr·g` (on whole buffers or views of them).
pub fn sgd_update<'a>(
    ctx: &GpuContext,
    w: impl Into<GpuView<'a, f32>>,
    g: impl Into<GpuView<'a, f32>>,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    update(ctx, &SGD, w.into(), g.into(), &[], state)
}

/// Prepares `v ← μ·v + g`, `w ← w·(1 − lr·wd) − lr·v`.
pub fn momentum_update<'a>(
    ctx: &GpuContext,
    w: impl Into<GpuView<'a, f32>>,
    g: impl Into<GpuView<'a, f32>>,
    velocity: impl Into<GpuView<'a, f32>>,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    update(ctx, &MOMENTUM, w.into(), g.into(), &[velocity.into()], state)
}

/// Prepares the Adam(W) update with bias correction.
pub fn adam_update<'a>(
    ctx: &GpuContext,
    w: impl Into<GpuView<'a, f32>>,
    g: impl Into<GpuView<'a, f32>>,
    m: impl Into<GpuView<'a, f32>>,
    v: impl Into<GpuView<'a, f32>>,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    update(ctx, &ADAM, w.into(), g.into(), &[m.into(), v.into()], state)
}

/// Prepares RMSProp: `v ← α·v + (1−α)·g²`, `w ← w·(1 − lr·wd) − lr·g / (√v + ε)`.
pub fn rmsprop_update<'a>(
    ctx: &GpuContext,
    w: impl Into<GpuView<'a, f32>>,
    g: impl Into<GpuView<'a, f32>>,
    square_avg: impl Into<GpuView<'a, f32>>,
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    update(ctx, &RMSPROP, w.into(), g.into(), &[square_avg.into()], state)
}

/// Prepares the update of `optimizer` on one chunk of the flat parameters, its gradient and
/// its moments (in [`crate::Optimizer::moment_names`] order).
pub fn optimizer_update(
    ctx: &GpuContext,
    optimizer: &crate::Optimizer,
    w: GpuView<'_, f32>,
    g: GpuView<'_, f32>,
    moments: &[GpuView<'_, f32>],
    state: &GpuBuffer<OptimState>,
) -> Result<Dispatch> {
    let rule = match optimizer {
        crate::Optimizer::Sgd { .. } => &SGD,
        crate::Optimizer::Momentum { .. } => &MOMENTUM,
        crate::Optimizer::Adam { .. } => &ADAM,
        crate::Optimizer::RmsProp { .. } => &RMSPROP,
    };
    update(ctx, rule, w, g, moments, state)
}
