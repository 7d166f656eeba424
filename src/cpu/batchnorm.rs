//! Batch normalization over `[rows × channels × spatial]` batches (PyTorch's `BatchNorm1d` with
//! `spatial = 1`, `BatchNorm2d` with `spatial = H·W`), with an activation fused after it.
//! GPU twin: `shaders/batchnorm.wgsl`.
//!
//! Training normalizes each channel by its batch mean and biased variance over its
//! `rows·spatial` values and keeps them (`stats`: `[mean | 1/√(var + ε) | var]`) for the backward
//! pass, which also moves the running statistics towards them (unbiased variance, as PyTorch).

use super::Real;
use crate::activation::Activation;
use crate::error::{Result, check_len, check_nonzero};
use crate::model::NormShape;

/// The batch: `rows` samples of `channels × spatial` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormBatch {
    /// Samples.
    pub rows: usize,
    /// Channels and positions per channel.
    pub shape: NormShape,
}

impl NormBatch {
    fn len(&self) -> usize {
        self.rows * self.shape.channels * self.shape.spatial
    }

    /// Values each channel's statistics are taken over.
    fn count(&self) -> usize {
        self.rows * self.shape.spatial
    }

    fn check(&self, op: &'static str, buffers: &[(&'static str, usize, usize)]) -> Result<()> {
        check_nonzero(
            op,
            &[
                ("rows", self.rows),
                ("channels", self.shape.channels),
                ("spatial", self.shape.spatial),
            ],
        )?;
        for &(what, got, expected) in buffers {
            check_len(op, what, got, expected)?;
        }
        Ok(())
    }

    /// Calls `f(channel, run)` for every contiguous run of one channel's values, sample by sample.
    fn runs(&self, mut f: impl FnMut(usize, std::ops::Range<usize>)) {
        let (c, s) = (self.shape.channels, self.shape.spatial);
        for b in 0..self.rows {
            for ch in 0..c {
                let start = (b * c + ch) * s;
                f(ch, start..start + s);
            }
        }
    }
}

fn real<T: Real>(v: f64) -> T {
    T::from(v).expect("a small constant fits every Real")
}

/// Training forward: `y = act(γ·(x − mean)/√(var + ε) + β)` with each channel's batch mean and
/// biased variance, which `stats` (`3 × channels`) keeps with `1/√(var + ε)`.
pub fn batch_norm_train_forward<T: Real>(
    x: &[T],
    (gamma, beta): (&[T], &[T]),
    y: &mut [T],
    stats: &mut [T],
    batch: NormBatch,
    act: Activation,
    eps: f32,
) -> Result<()> {
    let c = batch.shape.channels;
    batch.check(
        "batch_norm_train_forward",
        &[
            ("x", x.len(), batch.len()),
            ("y", y.len(), batch.len()),
            ("weight", gamma.len(), c),
            ("bias", beta.len(), c),
            ("stats", stats.len(), 3 * c),
        ],
    )?;
    let n: T = real(batch.count() as f64);
    let mut sum = vec![T::zero(); c];
    batch.runs(|ch, run| sum[ch] = x[run].iter().fold(sum[ch], |acc, &v| acc + v));
    let mean: Vec<T> = sum.iter().map(|&s| s / n).collect();
    let mut squares = vec![T::zero(); c];
    batch.runs(|ch, run| {
        squares[ch] = x[run]
            .iter()
            .fold(squares[ch], |acc, &v| acc + (v - mean[ch]) * (v - mean[ch]))
    });
    let eps: T = real(f64::from(eps));
    for ch in 0..c {
        let variance = squares[ch] / n;
        stats[ch] = mean[ch];
        stats[c + ch] = T::one() / (variance + eps).sqrt();
        stats[2 * c + ch] = variance;
    }
    batch.runs(|ch, run| {
        let (scale, shift) = (gamma[ch] * stats[c + ch], beta[ch]);
        for i in run {
            y[i] = act.forward((x[i] - mean[ch]) * scale + shift);
        }
    });
    Ok(())
}

/// Evaluation forward: `y = act(γ·(x − running_mean)/√(running_var + ε) + β)`.
pub fn batch_norm_eval_forward<T: Real>(
    x: &[T],
    (gamma, beta): (&[T], &[T]),
    (running_mean, running_var): (&[T], &[T]),
    y: &mut [T],
    batch: NormBatch,
    act: Activation,
    eps: f32,
) -> Result<()> {
    let c = batch.shape.channels;
    batch.check(
        "batch_norm_eval_forward",
        &[
            ("x", x.len(), batch.len()),
            ("y", y.len(), batch.len()),
            ("weight", gamma.len(), c),
            ("bias", beta.len(), c),
            ("running_mean", running_mean.len(), c),
            ("running_var", running_var.len(), c),
        ],
    )?;
    let eps: T = real(f64::from(eps));
    batch.runs(|ch, run| {
        let scale = gamma[ch] / (running_var[ch] + eps).sqrt();
        for i in run {
            y[i] = act.forward((x[i] - running_mean[ch]) * scale + beta[ch]);
        }
    });
    Ok(())
}

/// Backward with `dy = dL/d(γ·x̂ + β)`: `dγ = Σ dy·x̂`, `dβ = Σ dy`, and with `dx`,
/// `dx = γ/(N·σ)·(N·dy − Σdy − x̂·Σdy·x̂) ⊙ input_act'(x)` (`input_act`: the activation fused
/// into the op that produced `x`).
pub fn batch_norm_backward<T: Real>(
    dy: &[T],
    x: &[T],
    gamma: &[T],
    stats: &[T],
    (dgamma, dbeta): (&mut [T], &mut [T]),
    dx: Option<(&mut [T], Activation)>,
    batch: NormBatch,
) -> Result<()> {
    let c = batch.shape.channels;
    batch.check(
        "batch_norm_backward",
        &[
            ("dy", dy.len(), batch.len()),
            ("x", x.len(), batch.len()),
            ("weight", gamma.len(), c),
            ("stats", stats.len(), 3 * c),
            ("weight grad", dgamma.len(), c),
            ("bias grad", dbeta.len(), c),
        ],
    )?;
    let (mean, inv_std) = (&stats[..c], &stats[c..2 * c]);
    dgamma.fill(T::zero());
    dbeta.fill(T::zero());
    batch.runs(|ch, run| {
        for i in run {
            dbeta[ch] = dbeta[ch] + dy[i];
            dgamma[ch] = dgamma[ch] + dy[i] * (x[i] - mean[ch]) * inv_std[ch];
        }
    });
    if let Some((dx, input_act)) = dx {
        check_len("batch_norm_backward", "dx", dx.len(), batch.len())?;
        let n: T = real(batch.count() as f64);
        batch.runs(|ch, run| {
            let scale = gamma[ch] * inv_std[ch] / n;
            for i in run {
                let xhat = (x[i] - mean[ch]) * inv_std[ch];
                let d = scale * (n * dy[i] - dbeta[ch] - xhat * dgamma[ch]);
                dx[i] = d * input_act.derivative_from_output(x[i]);
            }
        });
    }
    Ok(())
}

/// Moves the running statistics towards the batch's in `stats`: `running = (1 − m)·running +
/// m·batch`, with the unbiased variance (`var·N/(N − 1)`; `N = 1` keeps the biased one), and
/// counts the batch in `num_batches_tracked`.
pub fn batch_norm_track<T: Real>(
    stats: &[T],
    (running_mean, running_var, tracked): (&mut [T], &mut [T], &mut T),
    batch: NormBatch,
    momentum: f32,
) -> Result<()> {
    let c = batch.shape.channels;
    batch.check(
        "batch_norm_track",
        &[
            ("stats", stats.len(), 3 * c),
            ("running_mean", running_mean.len(), c),
            ("running_var", running_var.len(), c),
        ],
    )?;
    let n = batch.count();
    let correction: T = real(n as f64 / n.max(2).saturating_sub(1) as f64);
    let m: T = real(f64::from(momentum));
    for ch in 0..c {
        running_mean[ch] = (T::one() - m) * running_mean[ch] + m * stats[ch];
        running_var[ch] = (T::one() - m) * running_var[ch] + m * stats[2 * c + ch] * correction;
    }
    *tracked = *tracked + T::one();
    Ok(())
}
