//! Batch normalization over `[rows × channels × spatial]` batches (PyTorch's `BatchNorm1d` with
//! `spatial = 1`, `BatchNorm2d` with `spatial = H·W`), with an activation fused after it.
//! GPU twin: `shaders/batchnorm.wgsl`.
//!
//! Training normalizes each channel by its batch mean and biased variance over its
//! `rows·spatial` values and keeps them (`stats`: `[mean | 1/√(var + ε) | var]`) for the backward
//! pass, which also moves the running statistics towards them (unbiased variance, as PyTorch).

use rayon::prelude::*;

use super::{PARALLEL_MIN_ELEMENTS, Real, for_each_row};
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

    /// Values per sample.
    fn sample_len(&self) -> usize {
        self.shape.channels * self.shape.spatial
    }

    /// Per channel, the sums `f` adds up over each contiguous run of its values: `f(channel,
    /// run start)` returns the run's `K` sums. Samples are summed in fixed blocks (in parallel
    /// when the batch is large) whose partial sums are added in order, so the result does not
    /// depend on the thread count.
    fn channel_sums<T: Real, const K: usize>(&self, f: impl Fn(usize, usize) -> [T; K] + Sync) -> Vec<[T; K]> {
        let (c, s) = (self.shape.channels, self.shape.spatial);
        let partial = |first: usize| {
            let mut acc = vec![[T::zero(); K]; c];
            for b in first..(first + SUM_BLOCK_ROWS).min(self.rows) {
                for (ch, sums) in acc.iter_mut().enumerate() {
                    for (total, v) in sums.iter_mut().zip(f(ch, (b * c + ch) * s)) {
                        *total = *total + v;
                    }
                }
            }
            acc
        };
        let starts: Vec<usize> = (0..self.rows).step_by(SUM_BLOCK_ROWS).collect();
        let partials: Vec<Vec<[T; K]>> = if self.len() >= PARALLEL_MIN_ELEMENTS {
            starts.par_iter().map(|&b| partial(b)).collect()
        } else {
            starts.iter().map(|&b| partial(b)).collect()
        };
        let mut totals = vec![[T::zero(); K]; c];
        for p in partials {
            for (total, part) in totals.iter_mut().zip(p) {
                for (t, v) in total.iter_mut().zip(part) {
                    *t = *t + v;
                }
            }
        }
        totals
    }

    /// Calls `f(channel, run start, out run)` for every contiguous run of one channel's values
    /// of `out`, sample by sample (in parallel when large).
    fn map_runs<T: Real>(&self, out: &mut [T], f: impl Fn(usize, usize, &mut [T]) + Send + Sync) {
        let (c, s) = (self.shape.channels, self.shape.spatial);
        for_each_row(out, self.sample_len(), |b, sample| {
            for (ch, run) in sample.chunks_exact_mut(s).enumerate() {
                f(ch, (b * c + ch) * s, run);
            }
        });
    }
}

/// Samples per block of a channel sum (see [`NormBatch::channel_sums`]).
const SUM_BLOCK_ROWS: usize = 8;

/// `Σ f(a[i], b[i])` over a run, in 8 interleaved partial sums the compiler can vectorise (a
/// single running sum is a chain it may not reorder).
#[inline]
fn lane_sums<T: Real, const K: usize>(a: &[T], b: &[T], f: impl Fn(T, T) -> [T; K]) -> [T; K] {
    const LANES: usize = 8;
    let mut lanes = [[T::zero(); K]; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_chunks.remainder(), b_chunks.remainder());
    for (ac, bc) in a_chunks.zip(b_chunks) {
        for l in 0..LANES {
            let v = f(ac[l], bc[l]);
            for k in 0..K {
                lanes[l][k] = lanes[l][k] + v[k];
            }
        }
    }
    let mut total = [T::zero(); K];
    for lane in lanes {
        for k in 0..K {
            total[k] = total[k] + lane[k];
        }
    }
    for (&x, &y) in a_rest.iter().zip(b_rest) {
        let v = f(x, y);
        for k in 0..K {
            total[k] = total[k] + v[k];
        }
    }
    total
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
    let sp = batch.shape.spatial;
    let sums = batch.channel_sums(|_, at| lane_sums(&x[at..at + sp], &x[at..at + sp], |v, _| [v]));
    let mean: Vec<T> = sums.iter().map(|[s]| *s / n).collect();
    let squares = batch.channel_sums(|ch, at| {
        let m = mean[ch];
        lane_sums(&x[at..at + sp], &x[at..at + sp], |v, _| [(v - m) * (v - m)])
    });
    let eps: T = real(f64::from(eps));
    for ch in 0..c {
        let variance = squares[ch][0] / n;
        stats[ch] = mean[ch];
        stats[c + ch] = T::one() / (variance + eps).sqrt();
        stats[2 * c + ch] = variance;
    }
    let scale: Vec<T> = (0..c).map(|ch| gamma[ch] * stats[c + ch]).collect();
    batch.map_runs(y, |ch, at, out| {
        let (m, k, shift) = (mean[ch], scale[ch], beta[ch]);
        for (o, &v) in out.iter_mut().zip(&x[at..]) {
            *o = act.forward((v - m) * k + shift);
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
    let scale: Vec<T> = (0..c).map(|ch| gamma[ch] / (running_var[ch] + eps).sqrt()).collect();
    batch.map_runs(y, |ch, at, out| {
        let (m, k, shift) = (running_mean[ch], scale[ch], beta[ch]);
        for (o, &v) in out.iter_mut().zip(&x[at..]) {
            *o = act.forward((v - m) * k + shift);
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
    let sp = batch.shape.spatial;
    let sums = batch.channel_sums(|ch, at| {
        let (m, k) = (mean[ch], inv_std[ch]);
        lane_sums(&dy[at..at + sp], &x[at..at + sp], |g, v| [g, g * (v - m) * k])
    });
    for (ch, [sum_dy, sum_dy_xhat]) in sums.into_iter().enumerate() {
        dbeta[ch] = sum_dy;
        dgamma[ch] = sum_dy_xhat;
    }
    if let Some((dx, input_act)) = dx {
        check_len("batch_norm_backward", "dx", dx.len(), batch.len())?;
        let n: T = real(batch.count() as f64);
        let (dgamma, dbeta) = (&*dgamma, &*dbeta);
        batch.map_runs(dx, |ch, at, out| {
            let (m, k) = (mean[ch], inv_std[ch]);
            let scale = gamma[ch] * k / n;
            let (sum_dy, sum_dy_xhat) = (dbeta[ch], dgamma[ch]);
            for ((o, &g), &v) in out.iter_mut().zip(&dy[at..]).zip(&x[at..]) {
                let xhat = (v - m) * k;
                *o = scale * (n * g - sum_dy - xhat * sum_dy_xhat) * input_act.derivative_from_output(v);
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
