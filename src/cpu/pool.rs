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

    /// Index in the sample of the first maximum of window `(c, oy, ox)`.
    fn argmax<T: Real>(&self, x: &[T], c: usize, oy: usize, ox: usize) -> usize {
        let mut best = (c * self.height + oy * self.stride) * self.width + ox * self.stride;
        for ky in 0..self.kernel {
            for kx in 0..self.kernel {
                let i = (c * self.height + oy * self.stride + ky) * self.width + ox * self.stride + kx;
                if x[i] > x[best] {
                    best = i;
                }
            }
        }
        best
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
        for c in 0..g.channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    y[(c * oh + oy) * ow + ox] = x[g.argmax(x, c, oy, ox)];
                }
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
            for c in 0..g.channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let i = g.argmax(x, c, oy, ox);
                        dx[i] = dx[i] + dy[(c * oh + oy) * ow + ox];
                    }
                }
            }
            if input_act != Activation::Identity {
                for (d, &a) in dx.iter_mut().zip(x) {
                    *d = *d * input_act.derivative_from_output(a);
                }
            }
        });
    Ok(())
}
