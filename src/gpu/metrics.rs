//! Device-side metrics and the step's bookkeeping in one dispatch. Kernel: `shaders/metrics.wgsl`;
//! CPU twin: [`crate::cpu::batch_metrics`].

use crate::error::{Result, check_len, check_nonzero};
use crate::gpu::kernels::{Kernel, METRICS, Slot};
use crate::gpu::uniforms::MetricsParams;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};
use crate::optimizer::OptimState;

const BATCH_METRICS: Kernel = Kernel {
    shader: &METRICS,
    entry: "batch_metrics",
    slots: &[
        (0, Slot::Read),
        (1, Slot::Read),
        (2, Slot::ReadWrite),
        (3, Slot::Uniform),
        (4, Slot::Read),
        (5, Slot::ReadWrite),
        (6, Slot::ReadWrite),
    ],
};

/// What [`batch_metrics`] does besides summing the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsFlags {
    /// Count rows whose argmax is the label (the batch has class labels).
    pub count_correct: bool,
    /// Run the non-finite guard on the state (training).
    pub guard: bool,
    /// Advance the state's step first (training without dropout; see `OptimState::tick`).
    pub tick: bool,
}

impl MetricsFlags {
    fn bits(self) -> u32 {
        u32::from(self.count_correct) | u32::from(self.guard) << 1 | u32::from(self.tick) << 2
    }
}

/// Where [`batch_metrics`] accumulates: `loss[0] += Σ loss_rows`, `correct[0] += count`.
pub struct MetricsTotals<'a> {
    pub loss: &'a GpuBuffer<f32>,
    pub correct: &'a GpuBuffer<u32>,
}

/// Prepares one single-workgroup dispatch: `totals.loss[0] += Σ loss_rows` in a fixed order,
/// `totals.correct[0] +=` the rows of `z [rows × cols]` whose argmax is the label (with
/// `flags.count_correct`), then the state's tick and non-finite guard as `flags` say.
#[allow(clippy::too_many_arguments)]
pub fn batch_metrics(
    ctx: &GpuContext,
    z: &GpuBuffer<f32>,
    labels: &GpuBuffer<u32>,
    loss_rows: &GpuBuffer<f32>,
    totals: MetricsTotals<'_>,
    state: &GpuBuffer<OptimState>,
    (rows, cols): (usize, usize),
    flags: MetricsFlags,
) -> Result<Dispatch> {
    const OP: &str = "batch_metrics";
    check_nonzero(OP, &[("rows", rows), ("cols", cols)])?;
    check_len(OP, "logits", z.len(), rows * cols)?;
    check_len(OP, "loss_rows", loss_rows.len(), rows)?;
    if flags.count_correct {
        check_len(OP, "labels", labels.len(), rows)?;
    }
    check_len(OP, "loss total", totals.loss.len(), 1)?;
    check_len(OP, "correct count", totals.correct.len(), 1)?;
    check_len(OP, "state", state.len(), 1)?;
    let params = MetricsParams {
        rows: rows as u32,
        cols: cols as u32,
        flags: flags.bits(),
        _pad: 0,
    };
    let buffers: [crate::gpu::buffer::Binding<'_>; 6] = [
        z.into(),
        labels.into(),
        totals.correct.into(),
        loss_rows.into(),
        totals.loss.into(),
        state.into(),
    ];
    ctx.prepare(
        &BATCH_METRICS,
        &Vec::new(),
        &buffers,
        bytemuck::bytes_of(&params),
        [1, 1, 1],
    )
}
