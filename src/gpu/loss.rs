//! The loss head fused with the step's bookkeeping: per-sample loss and `dZ`, the batch's loss sum
//! and correct count, the step's tick and non-finite guard, in one single-workgroup dispatch.
//! Kernel: `shaders/loss.wgsl`; CPU twins: [`crate::cpu::loss`] and [`crate::cpu::batch_metrics`].

use crate::error::{Result, check_len, check_nonzero};
use crate::gpu::kernels::{Kernel, LOSS, Slot};
use crate::gpu::uniforms::LossParams;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};
use crate::model::LossKind;
use crate::optimizer::OptimState;

const LOSS_METRICS: Kernel = Kernel {
    shader: &LOSS,
    entry: "loss_metrics",
    slots: &[
        (0, Slot::Read),
        (1, Slot::Read),
        (2, Slot::Read),
        (3, Slot::ReadWrite),
        (4, Slot::ReadWrite),
        (5, Slot::Uniform),
        (6, Slot::ReadWrite),
        (7, Slot::ReadWrite),
        (8, Slot::ReadWrite),
    ],
};

/// What [`loss_and_metrics`] does besides the loss and its sum.
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

/// Where [`loss_and_metrics`] accumulates: `loss[0] += Σ loss_rows`, `correct[0] += count`.
pub struct MetricsTotals<'a> {
    pub loss: &'a GpuBuffer<f32>,
    pub correct: &'a GpuBuffer<u32>,
}

/// A batch's outputs and what they are scored against: `labels` (`[rows]`, class indices) for
/// softmax cross-entropy, `targets` (`[rows × cols]`) for the other heads.
pub struct LossInputs<'a> {
    pub z: &'a GpuBuffer<f32>,
    pub labels: &'a GpuBuffer<u32>,
    pub targets: &'a GpuBuffer<f32>,
}

/// What [`loss_and_metrics`] writes per sample: `loss_rows [rows]` and `dz [rows × cols]`
/// (`dLoss/dz` of the batch mean).
pub struct LossOutputs<'a> {
    pub loss_rows: &'a GpuBuffer<f32>,
    pub dz: &'a GpuBuffer<f32>,
}

/// The `HEAD` constant of `shaders/loss.wgsl`.
fn head_code(head: LossKind) -> f64 {
    match head {
        LossKind::SoftmaxCrossEntropy => 0.0,
        LossKind::SigmoidBinaryCrossEntropy => 1.0,
        LossKind::MeanSquaredError => 2.0,
        LossKind::MeanAbsoluteError => 3.0,
    }
}

/// Prepares one dispatch that runs `head` on `z [rows × cols]` (per-row loss and `dz`, see the
/// CPU twins in [`crate::cpu::loss`]), adds the loss sum (in a fixed order) and, with
/// `flags.count_correct`, the count of rows whose argmax is the label to `totals`, then ticks and
/// guards `state` as `flags` say.
///
/// Labels must be `< cols` (validate them on the host); an out-of-range label yields a NaN loss.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_metrics(
    ctx: &GpuContext,
    head: LossKind,
    inputs: LossInputs<'_>,
    outputs: LossOutputs<'_>,
    totals: MetricsTotals<'_>,
    state: &GpuBuffer<OptimState>,
    (rows, cols): (usize, usize),
    flags: MetricsFlags,
) -> Result<Dispatch> {
    const OP: &str = "loss_and_metrics";
    check_nonzero(OP, &[("rows", rows), ("cols", cols)])?;
    check_len(OP, "logits", inputs.z.len(), rows * cols)?;
    check_len(OP, "loss_rows", outputs.loss_rows.len(), rows)?;
    check_len(OP, "dz", outputs.dz.len(), rows * cols)?;
    if head.takes_labels() || flags.count_correct {
        check_len(OP, "labels", inputs.labels.len(), rows)?;
    }
    if !head.takes_labels() {
        check_len(OP, "targets", inputs.targets.len(), rows * cols)?;
    }
    check_len(OP, "loss total", totals.loss.len(), 1)?;
    check_len(OP, "correct count", totals.correct.len(), 1)?;
    check_len(OP, "state", state.len(), 1)?;
    let params = LossParams {
        rows: rows as u32,
        cols: cols as u32,
        flags: flags.bits(),
        _pad: 0,
    };
    let buffers: [crate::gpu::buffer::Binding<'_>; 8] = [
        inputs.z.into(),
        inputs.labels.into(),
        inputs.targets.into(),
        outputs.loss_rows.into(),
        outputs.dz.into(),
        totals.correct.into(),
        totals.loss.into(),
        state.into(),
    ];
    let constants = vec![("HEAD", head_code(head))];
    ctx.prepare(
        &LOSS_METRICS,
        &constants,
        &buffers,
        bytemuck::bytes_of(&params),
        [1, 1, 1],
    )
}
