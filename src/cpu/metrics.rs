//! Accuracy without reading logits back. GPU twin: `shaders/metrics.wgsl`.

use super::Real;
use crate::error::{Result, check_len, check_nonzero};

/// How many rows of `z [rows × cols]` have their largest score at the labelled class.
///
/// Ties go to the lowest index, as on the GPU. A label outside `0..cols` never matches.
pub fn count_correct<T: Real>(z: &[T], labels: &[u32], rows: usize, cols: usize) -> Result<u32> {
    const OP: &str = "count_correct";
    check_nonzero(OP, &[("rows", rows), ("cols", cols)])?;
    check_len(OP, "logits", z.len(), rows * cols)?;
    check_len(OP, "labels", labels.len(), rows)?;
    let correct = z
        .chunks_exact(cols)
        .zip(labels)
        .filter(|(row, label)| argmax(row) == **label as usize)
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
