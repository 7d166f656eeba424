//! Loss heads that produce the per-sample loss and `dZ` (with the batch mean's `1/B`) in one
//! pass. GPU twin: `shaders/loss.wgsl`.
//!
//! Conventions: `z` is `[rows × cols]` raw scores (logits); the batch loss is the mean of
//! `loss_rows`; BCE and MSE sum over a sample's outputs.

use super::{PARALLEL_MIN_ELEMENTS, Real};
use crate::activation::stable_sigmoid;
use crate::error::{Error, Result, check_len, check_nonzero};
use rayon::prelude::*;

fn check_shapes<T>(op: &'static str, z: &[T], loss_rows: &[T], dz: &[T], rows: usize, cols: usize) -> Result<()> {
    check_nonzero(op, &[("rows", rows), ("cols", cols)])?;
    check_len(op, "logits", z.len(), rows * cols)?;
    check_len(op, "loss_rows", loss_rows.len(), rows)?;
    check_len(op, "dz", dz.len(), rows * cols)
}

/// Runs `f(row, z_row, dz_row) -> row_loss` over the batch, writing each row's loss.
fn per_row<T: Real>(
    z: &[T],
    loss_rows: &mut [T],
    dz: &mut [T],
    cols: usize,
    f: impl Fn(usize, &[T], &mut [T]) -> T + Send + Sync,
) {
    let run = |(r, (dz_row, loss)): (usize, (&mut [T], &mut T))| {
        *loss = f(r, &z[r * cols..(r + 1) * cols], dz_row);
    };
    if dz.len() >= PARALLEL_MIN_ELEMENTS {
        dz.par_chunks_mut(cols)
            .zip(loss_rows.par_iter_mut())
            .enumerate()
            .for_each(run);
    } else {
        dz.chunks_mut(cols).zip(loss_rows.iter_mut()).enumerate().for_each(run);
    }
}

/// Softmax + cross-entropy against class labels, fused.
///
/// `loss_rows[r] = logsumexp(z_r) − z_r[y_r]` (max-subtracted, so finite for any finite `z`),
/// `dz[r,j] = (softmax(z_r)_j − [j = y_r]) / rows`.
pub fn softmax_cross_entropy<T: Real>(
    z: &[T],
    labels: &[u32],
    loss_rows: &mut [T],
    dz: &mut [T],
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "softmax_cross_entropy";
    check_shapes(OP, z, loss_rows, dz, rows, cols)?;
    check_len(OP, "labels", labels.len(), rows)?;
    if let Some((row, &label)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= cols) {
        return Err(Error::LabelOutOfRange {
            op: OP,
            row,
            label,
            classes: cols,
        });
    }
    let inv_b = T::one() / T::from(rows).unwrap();
    per_row(z, loss_rows, dz, cols, |r, zr, dzr| {
        let max = zr.iter().copied().fold(T::neg_infinity(), T::max);
        let sum: T = zr.iter().map(|&v| (v - max).exp()).sum();
        let y = labels[r] as usize;
        for (j, (d, &v)) in dzr.iter_mut().zip(zr).enumerate() {
            let p = (v - max).exp() / sum;
            let onehot = if j == y { T::one() } else { T::zero() };
            *d = (p - onehot) * inv_b;
        }
        sum.ln() + max - zr[y]
    });
    Ok(())
}

/// Sigmoid + binary cross-entropy against targets in `[0, 1]`, fused and stable for large `|z|`.
///
/// `loss_rows[r] = Σ_j max(z,0) − z·y + ln(1 + e^{−|z|})`, `dz = (σ(z) − y) / rows`.
pub fn sigmoid_binary_cross_entropy<T: Real>(
    z: &[T],
    targets: &[T],
    loss_rows: &mut [T],
    dz: &mut [T],
    rows: usize,
    cols: usize,
) -> Result<()> {
    const OP: &str = "sigmoid_binary_cross_entropy";
    check_shapes(OP, z, loss_rows, dz, rows, cols)?;
    check_len(OP, "targets", targets.len(), rows * cols)?;
    let inv_b = T::one() / T::from(rows).unwrap();
    per_row(z, loss_rows, dz, cols, |r, zr, dzr| {
        let yr = &targets[r * cols..(r + 1) * cols];
        let mut loss = T::zero();
        for ((d, &v), &y) in dzr.iter_mut().zip(zr).zip(yr) {
            loss = loss + v.max(T::zero()) - v * y + (-v.abs()).exp().ln_1p();
            *d = (stable_sigmoid(v) - y) * inv_b;
        }
        loss
    });
    Ok(())
}

/// Mean squared error on linear outputs.
///
/// `loss_rows[r] = Σ_j (z − y)²`, `dz = 2(z − y) / rows`.
pub fn mse<T: Real>(z: &[T], targets: &[T], loss_rows: &mut [T], dz: &mut [T], rows: usize, cols: usize) -> Result<()> {
    let two_inv_b = (T::one() + T::one()) / T::from(rows.max(1)).unwrap();
    difference_head("mse", (z, targets), (loss_rows, dz), (rows, cols), |diff| {
        (diff * diff, diff * two_inv_b)
    })
}

/// Absolute error (L1) on linear outputs.
///
/// `loss_rows[r] = Σ_j |z − y|`, `dz = sign(z − y) / rows` (0 where `z = y`).
pub fn mae<T: Real>(z: &[T], targets: &[T], loss_rows: &mut [T], dz: &mut [T], rows: usize, cols: usize) -> Result<()> {
    let inv_b = T::one() / T::from(rows.max(1)).unwrap();
    difference_head("mae", (z, targets), (loss_rows, dz), (rows, cols), |diff| {
        let grad = if diff > T::zero() {
            inv_b
        } else if diff < T::zero() {
            -inv_b
        } else {
            T::zero()
        };
        (diff.abs(), grad)
    })
}

/// A regression head summing `f(z − y).0` over a row and storing `f(z − y).1` as `dz`.
fn difference_head<T: Real>(
    op: &'static str,
    (z, targets): (&[T], &[T]),
    (loss_rows, dz): (&mut [T], &mut [T]),
    (rows, cols): (usize, usize),
    f: impl Fn(T) -> (T, T) + Send + Sync,
) -> Result<()> {
    check_shapes(op, z, loss_rows, dz, rows, cols)?;
    check_len(op, "targets", targets.len(), rows * cols)?;
    per_row(z, loss_rows, dz, cols, |r, zr, dzr| {
        let yr = &targets[r * cols..(r + 1) * cols];
        let mut loss = T::zero();
        for ((d, &v), &y) in dzr.iter_mut().zip(zr).zip(yr) {
            let (l, g) = f(v - y);
            loss = loss + l;
            *d = g;
        }
        loss
    });
    Ok(())
}
