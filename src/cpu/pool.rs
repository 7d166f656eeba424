//! Max pooling over NCHW batches, as PyTorch's `nn.MaxPool2d` (no padding). The backward pass
//! finds each window's maximum again from the stored input (the first one on ties), so no
//! indices are kept. GPU twin: `max_pool_forward`/`max_pool_backward` in `shaders/conv.wgsl`.

use rayon::prelude::*;

use super::Real;
use crate::activation::Activation;
use crate::error::{Result, check_len, check_nonzero};

/// A pooling window over `[channels × height × width]` images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl PoolGeometry {
    fn out(&self, size: usize) -> usize {
        (size - self.kernel) / self.stride + 1
    }

    fn lens(&self) -> (usize, usize) {
        let plane = self.out(self.height) * self.out(self.width);
        (self.channels * self.height * self.width, self.channels * plane)
    }

    /// The first maximum of every window of output row `oy` of plane `c` of one sample `x`:
    /// its value into `best` and, with `at`, its index in the sample. Windows are swept a
    /// kernel offset at a time over the whole output row (strict `>` in (ky, kx) order keeps
    /// the first maximum, as the GPU twin does), so the inner loop is a plain pass over a row.
    fn row_maxima<T: Real>(&self, x: &[T], c: usize, oy: usize, best: &mut [T], mut at: Option<&mut [usize]>) {
        let (s, w) = (self.stride, self.width);
        let row = |ky: usize| (c * self.height + oy * s + ky) * w;
        let first = row(0);
        for (ox, b) in best.iter_mut().enumerate() {
            *b = x[first + ox * s];
        }
        if let Some(at) = at.as_deref_mut() {
            for (ox, i) in at.iter_mut().enumerate() {
                *i = first + ox * s;
            }
        }
        for ky in 0..self.kernel {
            let start = row(ky);
            let line = &x[start..start + w];
            for kx in (0..self.kernel).filter(|&kx| ky + kx > 0) {
                let taps = line[kx..].iter().step_by(s).zip(best.iter_mut());
                // Selects, not branches: which tap wins is data, and mispredicted branches
                // cost more than the comparisons.
                match at.as_deref_mut() {
                    None => taps.for_each(|(&v, b)| *b = if v > *b { v } else { *b }),
                    Some(at) => taps.zip(at.iter_mut()).enumerate().for_each(|(ox, ((&v, b), i))| {
                        let wins = v > *b;
                        *b = if wins { v } else { *b };
                        *i = if wins { start + ox * s + kx } else { *i };
                    }),
                }
            }
        }
    }

    /// Whether windows are 2×2 with stride 2, which [`PoolGeometry::pair_rows`] serves.
    fn pairs(&self) -> bool {
        self.kernel == 2 && self.stride == 2
    }

    /// For 2×2 windows with stride 2 (the common case, which a pass over pairs of elements
    /// serves), the two input rows under output row `oy` of plane `c`, cut to the columns the
    /// windows cover.
    fn pair_rows<'x, T>(&self, x: &'x [T], c: usize, oy: usize) -> Option<(&'x [T], &'x [T])> {
        if !self.pairs() {
            return None;
        }
        let start = (c * self.height + 2 * oy) * self.width;
        let used = self.width / 2 * 2;
        Some((
            &x[start..start + used],
            &x[start + self.width..start + self.width + used],
        ))
    }

    /// Checks the window fits (before any size is computed from it) and the lengths; returns
    /// the number of samples.
    fn check(&self, op: &'static str, input: usize, output: usize) -> Result<usize> {
        check_nonzero(
            op,
            &[
                ("channels", self.channels),
                ("kernel", self.kernel),
                ("stride", self.stride),
            ],
        )?;
        if self.kernel > self.height || self.kernel > self.width {
            return Err(crate::Error::InvalidNetwork(format!(
                "{op}: a {k}×{k} window (stride {s}) does not fit {h}×{w}",
                k = self.kernel,
                s = self.stride,
                h = self.height,
                w = self.width
            )));
        }
        let (in_len, out_len) = self.lens();
        let rows = input / in_len;
        check_nonzero(op, &[("rows", rows)])?;
        check_len(op, "input", input, rows * in_len)?;
        check_len(op, "output", output, rows * out_len)?;
        Ok(rows)
    }
}

/// `y[c][oy][ox] = max of x[c] over the window at (oy·s, ox·s)`, for `rows` samples.
pub fn max_pool2d_forward<T: Real>(x: &[T], y: &mut [T], g: PoolGeometry) -> Result<()> {
    g.check("max_pool2d_forward", x.len(), y.len())?;
    let (in_len, out_len) = g.lens();
    let (oh, ow) = (g.out(g.height), g.out(g.width));
    y.par_chunks_mut(out_len).zip(x.par_chunks(in_len)).for_each(|(y, x)| {
        for (r, best) in y.chunks_mut(ow).enumerate() {
            match g.pair_rows(x, r / oh, r % oh) {
                Some((top, bottom)) => {
                    for ((y, t), b) in best.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                        *y = max4([t[0], t[1], b[0], b[1]]).0;
                    }
                }
                None => g.row_maxima(x, r / oh, r % oh, best, None),
            }
        }
    });
    Ok(())
}

/// `dx = (dy routed to each window's maximum) ⊙ input_act'(x)` (`input_act`: the activation
/// fused into the op that produced `x`); overlapping windows add up.
pub fn max_pool2d_backward<T: Real>(
    dy: &[T],
    x: &[T],
    dx: &mut [T],
    g: PoolGeometry,
    input_act: Activation,
) -> Result<()> {
    g.check("max_pool2d_backward", x.len(), dy.len())?;
    let (in_len, out_len) = g.lens();
    check_len("max_pool2d_backward", "input gradient", dx.len(), x.len())?;
    let (oh, ow) = (g.out(g.height), g.out(g.width));
    dx.par_chunks_mut(in_len)
        .zip(dy.par_chunks(out_len).zip(x.par_chunks(in_len)))
        .for_each(|(dx, (dy, x))| {
            dx.fill(T::zero());
            let (mut best, mut at) = (vec![T::zero(); ow], vec![0usize; ow]);
            for (r, dy) in dy.chunks(ow).enumerate() {
                let (c, oy) = (r / oh, r % oh);
                if let Some((top, bottom)) = g.pair_rows(x, c, oy) {
                    // Each pixel is in one window: write the two rows of dx directly.
                    let start = (c * g.height + 2 * oy) * g.width;
                    let (dtop, dbottom) = dx[start..start + 2 * g.width].split_at_mut(g.width);
                    let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                    let grads = dtop.chunks_exact_mut(2).zip(dbottom.chunks_exact_mut(2));
                    for (((t, b), (dt, db)), &d) in windows.zip(grads).zip(dy) {
                        let (best, winner) = max4([t[0], t[1], b[0], b[1]]);
                        // The derivative of the input's activation, at the one pixel it reaches.
                        let d = d * input_act.derivative_from_output(best);
                        let pick = |k: usize| if winner == k { d } else { T::zero() };
                        (dt[0], dt[1], db[0], db[1]) = (pick(0), pick(1), pick(2), pick(3));
                    }
                    continue;
                }
                g.row_maxima(x, c, oy, &mut best, Some(&mut at));
                for (&i, &d) in at.iter().zip(dy) {
                    dx[i] = dx[i] + d;
                }
            }
            if input_act != Activation::Identity && !g.pairs() {
                for (d, &a) in dx.iter_mut().zip(x) {
                    *d = *d * input_act.derivative_from_output(a);
                }
            }
        });
    Ok(())
}

/// The first maximum of a 2×2 window in row-major order and its position, 0–3 (strict `>`,
/// as the general path), with selects rather than branches.
#[inline(always)]
fn max4<T: Real>(v: [T; 4]) -> (T, usize) {
    let (mut best, mut at) = (v[0], 0);
    for (k, &x) in v.iter().enumerate().skip(1) {
        let wins = x > best;
        best = if wins { x } else { best };
        at = if wins { k } else { at };
    }
    (best, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2×2 fast path and the general path agree, ties going to the first maximum in
    /// row-major order, on an odd-sized image whose last row and column no window covers.
    #[test]
    fn pair_fast_path_matches_the_general_path_with_ties() {
        let (h, w) = (5, 7);
        // Values from a small set, so most windows hold ties; ReLU outputs (≥ 0).
        let x: Vec<f64> = (0..2 * h * w).map(|i| ((i * 7) % 3) as f64).collect();
        let dy: Vec<f64> = (0..2 * 2 * 3).map(|i| 1.0 + i as f64).collect();
        let fast = PoolGeometry {
            channels: 1,
            height: h,
            width: w,
            kernel: 2,
            stride: 2,
        };
        assert!(fast.pairs());
        let (mut y, mut dx) = (vec![f64::NAN; dy.len()], vec![f64::NAN; x.len()]);
        max_pool2d_forward(&x, &mut y, fast).unwrap();
        max_pool2d_backward(&dy, &x, &mut dx, fast, Activation::Relu).unwrap();
        // The general path, by hand: first maximum of each window, then ReLU's derivative.
        let mut want_dx = vec![0.0; x.len()];
        for s in 0..2 {
            for oy in 0..2 {
                for ox in 0..3 {
                    let plane = s * h * w;
                    let mut at = plane + 2 * oy * w + 2 * ox;
                    for (ky, kx) in [(0, 1), (1, 0), (1, 1)] {
                        let i = plane + (2 * oy + ky) * w + 2 * ox + kx;
                        if x[i] > x[at] {
                            at = i;
                        }
                    }
                    let o = (s * 2 + oy) * 3 + ox;
                    assert_eq!(y[o], x[at], "window {s} {oy} {ox}");
                    want_dx[at] = dy[o] * Activation::Relu.derivative_from_output(x[at]);
                }
            }
        }
        assert_eq!(dx, want_dx);
        assert!(
            dx.iter().filter(|&&d| d != 0.0).count() >= 6,
            "the check routes gradients"
        );
    }
}
