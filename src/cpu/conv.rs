//! 2-D convolution over NCHW batches, as PyTorch's `nn.Conv2d` (zero padding): im2col per sample
//! feeding gemm, samples in parallel. The bias and the activation after the layer are fused
//! into the forward pass, the activation derivative of the layer *before* into the input
//! gradient, as for dense layers. GPU twin: `src/gpu/conv.rs` (im2col + the matmul kernels).

use rayon::prelude::*;

use super::Real;
use super::matmul::gemm_into;
use crate::activation::Activation;
use crate::error::{Result, check_len, check_nonzero};
use crate::model::ConvGeometry;
use crate::ops::{MatmulDims, MatmulForm};

/// Samples per group whose weight and bias gradients are summed together: fixed by the batch
/// size alone, so the sums (and so training) are the same on every run whatever the threads do.
const GROUPS: usize = 16;

/// Per-sample input and output lengths, the im2col rows (`C·k·k`) and the output positions
/// (saturating: [`check`] refuses what does not add up).
fn sizes(g: &ConvGeometry, out_channels: usize) -> (usize, usize, usize, usize) {
    let in_len = g.in_channels.saturating_mul(g.height).saturating_mul(g.width);
    let patch = g.in_channels.saturating_mul(g.kernel).saturating_mul(g.kernel);
    let positions = g.out_height.saturating_mul(g.out_width);
    (in_len, out_channels.saturating_mul(positions), patch, positions)
}

fn check(
    op: &'static str,
    g: &ConvGeometry,
    out_channels: usize,
    rows: usize,
    lens: [(&'static str, usize, usize); 4],
) -> Result<()> {
    check_nonzero(
        op,
        &[
            ("rows", rows),
            ("out channels", out_channels),
            ("in channels", g.in_channels),
            ("height", g.height),
            ("width", g.width),
            ("kernel", g.kernel),
            ("stride", g.stride),
        ],
    )?;
    let out = |size: usize| {
        size.checked_add(2 * g.padding)
            .and_then(|padded| padded.checked_sub(g.kernel))
            .map(|span| span / g.stride + 1)
    };
    if out(g.height) != Some(g.out_height) || out(g.width) != Some(g.out_width) {
        return Err(crate::Error::InvalidNetwork(format!(
            "{op}: {g:?}: the output size does not follow from the input, kernel, stride and padding"
        )));
    }
    for (what, got, want) in lens {
        check_len(op, what, got, want)?;
    }
    Ok(())
}

/// The output columns `ox` whose input column `ox·s − p + kx` lies inside the image (the others
/// read the padding).
fn inside_columns(g: &ConvGeometry, kx: usize) -> std::ops::Range<usize> {
    let start = g.padding.saturating_sub(kx).div_ceil(g.stride);
    // The last inside column is the largest ox with ox·s + kx ≤ width − 1 + p.
    let end = match (g.width - 1 + g.padding).checked_sub(kx) {
        Some(span) => (span / g.stride + 1).min(g.out_width),
        None => 0,
    };
    start.min(end)..end
}

/// im2col of one sample: `cols[(c·k + ky)·k + kx][oy·OW + ox] = x[c][oy·s − p + ky][ox·s − p + kx]`
/// (0 in the padding).
fn im2col<T: Real>(x: &[T], g: &ConvGeometry, cols: &mut [T]) {
    let (k, positions) = (g.kernel, g.out_height * g.out_width);
    for c in 0..g.in_channels {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((c * k + ky) * k + kx) * positions..][..positions];
                for oy in 0..g.out_height {
                    let dst = &mut row[oy * g.out_width..][..g.out_width];
                    let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                    if iy < 0 || iy >= g.height as isize {
                        dst.fill(T::zero());
                        continue;
                    }
                    let src = &x[(c * g.height + iy as usize) * g.width..][..g.width];
                    // Columns left and right of `inside` read the padding.
                    let inside = inside_columns(g, kx);
                    dst[..inside.start].fill(T::zero());
                    dst[inside.end..].fill(T::zero());
                    if inside.is_empty() {
                        continue;
                    }
                    let first = inside.start * g.stride + kx - g.padding;
                    let dst = &mut dst[inside];
                    if g.stride == 1 {
                        dst.copy_from_slice(&src[first..first + dst.len()]);
                    } else {
                        dst.iter_mut()
                            .zip(src[first..].iter().step_by(g.stride))
                            .for_each(|(d, &v)| *d = v);
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column entry back onto the input pixel it came from.
fn col2im_add<T: Real>(cols: &[T], g: &ConvGeometry, dx: &mut [T]) {
    let (k, positions) = (g.kernel, g.out_height * g.out_width);
    for c in 0..g.in_channels {
        for ky in 0..k {
            for kx in 0..k {
                let row = &cols[((c * k + ky) * k + kx) * positions..][..positions];
                for oy in 0..g.out_height {
                    let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                    if iy < 0 || iy >= g.height as isize {
                        continue;
                    }
                    let dst = &mut dx[(c * g.height + iy as usize) * g.width..][..g.width];
                    let inside = inside_columns(g, kx);
                    if inside.is_empty() {
                        continue;
                    }
                    let first = inside.start * g.stride + kx - g.padding;
                    let src = &row[oy * g.out_width..][inside];
                    // Each output column lands on its own pixel, so the sums keep their order.
                    if g.stride == 1 {
                        dst[first..first + src.len()]
                            .iter_mut()
                            .zip(src)
                            .for_each(|(d, &v)| *d = *d + v);
                    } else {
                        dst[first..]
                            .iter_mut()
                            .step_by(g.stride)
                            .zip(src)
                            .for_each(|(d, &v)| *d = *d + v);
                    }
                }
            }
        }
    }
}

/// `y = act(conv(x, weight) + bias)` for `rows` samples: `x [rows × C·H·W]`, `weight
/// [out_channels × C·k·k]`, `bias [out_channels]`, `y [rows × out_channels·OH·OW]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward<T: Real>(
    x: &[T],
    weight: &[T],
    bias: &[T],
    y: &mut [T],
    rows: usize,
    g: ConvGeometry,
    out_channels: usize,
    act: Activation,
) -> Result<()> {
    let (in_len, out_len, patch, positions) = sizes(&g, out_channels);
    check(
        "conv2d_forward",
        &g,
        out_channels,
        rows,
        [
            ("input", x.len(), rows * in_len),
            ("weight", weight.len(), out_channels * patch),
            ("bias", bias.len(), out_channels),
            ("output", y.len(), rows * out_len),
        ],
    )?;
    y.par_chunks_mut(out_len).zip(x.par_chunks(in_len)).for_each_init(
        || vec![T::zero(); patch * positions],
        |cols, (y, x)| {
            im2col(x, &g, cols);
            let dims = MatmulDims::new(out_channels, patch, positions);
            gemm_into(MatmulForm::AB, dims, weight, cols, y, false, false);
            for (plane, &b) in y.chunks_mut(positions).zip(bias) {
                plane.iter_mut().for_each(|v| *v = act.forward(*v + b));
            }
        },
    );
    Ok(())
}

/// The gradients of [`conv2d_forward`] from `dz = dLoss/d(pre-activation output)`:
/// `dweight`, `dbias`, and with `dx` also `dx = conv2dᵀ(dz) ⊙ input_act'(x)` (`input_act`: the
/// activation fused into the op that produced `x`).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward<T: Real>(
    dz: &[T],
    x: &[T],
    weight: &[T],
    (dweight, dbias): (&mut [T], &mut [T]),
    dx: Option<(&mut [T], Activation)>,
    rows: usize,
    g: ConvGeometry,
    out_channels: usize,
) -> Result<()> {
    let (in_len, out_len, patch, positions) = sizes(&g, out_channels);
    check(
        "conv2d_backward",
        &g,
        out_channels,
        rows,
        [
            ("input", x.len(), rows * in_len),
            ("weight gradient", dweight.len(), out_channels * patch),
            ("bias gradient", dbias.len(), out_channels),
            ("output gradient", dz.len(), rows * out_len),
        ],
    )?;
    // Weight and bias gradients: a partial sum per fixed group of samples, then the groups in
    // order.
    let group = rows.div_ceil(GROUPS);
    let partials: Vec<(Vec<T>, Vec<T>)> = dz
        .par_chunks(group * out_len)
        .zip(x.par_chunks(group * in_len))
        .map(|(dz, x)| {
            let mut dw = vec![T::zero(); out_channels * patch];
            let mut db = vec![T::zero(); out_channels];
            let mut cols = vec![T::zero(); patch * positions];
            for (dz, x) in dz.chunks(out_len).zip(x.chunks(in_len)) {
                im2col(x, &g, &mut cols);
                // dW[O × C·k·k] += dZ[O × P] · colsᵀ (cols stored [C·k·k × P]).
                let dims = MatmulDims::new(out_channels, positions, patch);
                gemm_into(MatmulForm::ABt, dims, dz, &cols, &mut dw, true, false);
                for (db, plane) in db.iter_mut().zip(dz.chunks(positions)) {
                    *db = plane.iter().fold(*db, |s, &v| s + v);
                }
            }
            (dw, db)
        })
        .collect();
    dweight.fill(T::zero());
    dbias.fill(T::zero());
    for (dw, db) in &partials {
        dweight.iter_mut().zip(dw).for_each(|(s, &v)| *s = *s + v);
        dbias.iter_mut().zip(db).for_each(|(s, &v)| *s = *s + v);
    }
    if let Some((dx, input_act)) = dx {
        check_len("conv2d_backward", "input gradient", dx.len(), rows * in_len)?;
        dx.par_chunks_mut(in_len)
            .zip(dz.par_chunks(out_len).zip(x.par_chunks(in_len)))
            .for_each_init(
                || vec![T::zero(); patch * positions],
                |dcols, (dx, (dz, x))| {
                    // dcols[C·k·k × P] = Wᵀ · dZ.
                    let dims = MatmulDims::new(patch, out_channels, positions);
                    gemm_into(MatmulForm::AtB, dims, weight, dz, dcols, false, false);
                    dx.fill(T::zero());
                    col2im_add(dcols, &g, dx);
                    if input_act != Activation::Identity {
                        for (d, &a) in dx.iter_mut().zip(x) {
                            *d = *d * input_act.derivative_from_output(a);
                        }
                    }
                },
            );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `inside_columns` is exactly the set of output columns whose input column is in the image,
    /// for every small width, kernel, stride and padding (windows larger than the image included).
    #[test]
    fn inside_columns_match_their_definition() {
        for width in 1usize..9 {
            for kernel in 1..6 {
                for stride in 1..4 {
                    for padding in 0..4 {
                        let Some(span) = (width + 2 * padding).checked_sub(kernel) else {
                            continue;
                        };
                        let out_width = span / stride + 1;
                        let g = ConvGeometry {
                            in_channels: 1,
                            height: 1,
                            width,
                            kernel,
                            stride,
                            padding,
                            out_height: 1,
                            out_width,
                        };
                        for kx in 0..kernel {
                            let want: Vec<usize> = (0..out_width)
                                .filter(|&ox| {
                                    let ix = (ox * stride + kx) as isize - padding as isize;
                                    ix >= 0 && (ix as usize) < width
                                })
                                .collect();
                            let got: Vec<usize> = inside_columns(&g, kx).collect();
                            assert_eq!(got, want, "{g:?} kx {kx}");
                        }
                    }
                }
            }
        }
    }
}
