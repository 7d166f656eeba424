//! Device-side metrics. Kernel: `shaders/metrics.wgsl`; CPU twin: [`crate::cpu::metrics`].

use crate::error::{Result, check_len, check_nonzero};
use crate::gpu::dispatch::grid_1d;
use crate::gpu::kernels::{Kernel, METRICS, Slot};
use crate::gpu::uniforms::RowShape;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};

const COUNT_CORRECT: Kernel = Kernel {
    shader: &METRICS,
    entry: "count_correct",
    slots: &[
        (0, Slot::Read),
        (1, Slot::Read),
        (2, Slot::ReadWrite),
        (3, Slot::Uniform),
    ],
};
const ACCUMULATE_SUM: Kernel = Kernel {
    shader: &METRICS,
    entry: "accumulate_sum",
    slots: &[(3, Slot::Uniform), (4, Slot::Read), (5, Slot::ReadWrite)],
};

/// Prepares `counter[0] += (rows whose argmax equals the label)`; the caller zeroes the counter.
pub fn count_correct(
    ctx: &GpuContext,
    z: &GpuBuffer<f32>,
    labels: &GpuBuffer<u32>,
    counter: &GpuBuffer<u32>,
    rows: usize,
    cols: usize,
) -> Result<Dispatch> {
    const OP: &str = "count_correct";
    check_nonzero(OP, &[("rows", rows), ("cols", cols)])?;
    check_len(OP, "logits", z.len(), rows * cols)?;
    check_len(OP, "labels", labels.len(), rows)?;
    check_len(OP, "counter", counter.len(), 1)?;
    let (groups, threads_x) = grid_1d(ctx, OP, rows, 64)?;
    let params = RowShape {
        rows: rows as u32,
        cols: cols as u32,
        threads_x,
        _pad: 0,
    };
    let buffers = [&z.buffer, &labels.buffer, &counter.buffer];
    ctx.prepare(
        &COUNT_CORRECT,
        &Vec::new(),
        &buffers,
        bytemuck::bytes_of(&params),
        groups,
    )
}

/// Prepares `total[0] += Σ values` in a fixed order (deterministic), e.g. to accumulate the
/// batch loss on the device across steps.
pub fn accumulate_sum(ctx: &GpuContext, values: &GpuBuffer<f32>, total: &GpuBuffer<f32>) -> Result<Dispatch> {
    check_len("accumulate_sum", "total", total.len(), 1)?;
    let params = RowShape {
        rows: values.len() as u32,
        cols: 1,
        threads_x: 0,
        _pad: 0,
    };
    let buffers = [&values.buffer, &total.buffer];
    ctx.prepare(
        &ACCUMULATE_SUM,
        &Vec::new(),
        &buffers,
        bytemuck::bytes_of(&params),
        [1, 1, 1],
    )
}
