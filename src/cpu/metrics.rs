//! Loss totals, accuracy and the step's bookkeeping. GPU twin: `loss_metrics` in
//! `shaders/loss.wgsl`.

use super::Real;
use crate::error::{Result, check_len, check_nonzero};
use crate::optimizer::OptimState;

/// How many rows of `z [rows × cols]` have their largest score at the labelled class.
///
/// Ties go to the lowest index, as on the GPU. A label outside `0..cols` never matches, nor does a
/// row with a NaN score (its argmax is undefined; GPU compilers may fold NaN comparisons).
pub fn count_correct<T: Real>(z: &[T], labels: &[u32], rows: usize, cols: usize) -> Result<u32> {
    const OP: &str = "count_correct";
    check_nonzero(OP, &[("rows", rows), ("cols", cols)])?;
    check_len(OP, "logits", z.len(), rows * cols)?;
    check_len(OP, "labels", labels.len(), rows)?;
    let correct = z
        .chunks_exact(cols)
        .zip(labels)
        .filter(|(row, label)| argmax(row) == **label as usize && !row.iter().any(|v| v.is_nan()))
        .count();
    Ok(correct as u32)
}

/// Index of the first maximum (NaN never wins).
pub fn argmax<T: Real>(row: &[T]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// What one batch's metrics op found.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatchMetrics {
    /// Σ per-sample loss.
    pub loss_sum: f64,
    /// Rows whose argmax is the label (0 without labels).
    pub correct: u64,
    /// Whether the guard asks the rest of the step to be skipped.
    pub skip: bool,
}

/// Twin of the bookkeeping in `loss_metrics` (`shaders/loss.wgsl`): the loss sum, the correct count (with
/// `labels`), then on `state` an [`OptimState::tick`] (with `tick`) and the non-finite
/// [`OptimState::guard`] (with `guard`).
pub fn batch_metrics<T: Real>(
    z: &[T],
    labels: Option<&[u32]>,
    loss_rows: &[T],
    (rows, cols): (usize, usize),
    state: &mut OptimState,
    (tick, guard): (bool, bool),
) -> Result<BatchMetrics> {
    check_len("batch_metrics", "loss_rows", loss_rows.len(), rows)?;
    let correct = match labels {
        Some(labels) => u64::from(count_correct(z, labels, rows, cols)?),
        None => 0,
    };
    if tick {
        state.tick();
    }
    // A row is bad when its loss or any of its scores is NaN or infinite: the GPU twin finds bad
    // scores from their bits, since WGSL does not promise that NaN survives the loss's math.
    let finite = z.iter().all(|v| v.is_finite()) && loss_rows.iter().all(|v| v.is_finite());
    let skip = guard && state.guard(finite);
    Ok(BatchMetrics {
        // NaN for a batch with a bad row, as on the GPU (not +inf from an overflowing row).
        loss_sum: if finite {
            loss_rows.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).sum()
        } else {
            f64::NAN
        },
        correct,
        skip,
    })
}
