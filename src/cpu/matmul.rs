//! Matrix multiply in the three backprop forms, with the dense layer's fused epilogues.
//! GPU twins: `shaders/matmul_block.wgsl`, `shaders/matmul.wgsl`, `shaders/matmul_cpu.wgsl`.

use super::{Real, for_each_row};
use crate::activation::Activation;
use crate::error::{Result, check_len};
use crate::ops::{Epilogue, MatmulDims, MatmulForm};
use rayon::prelude::*;

/// Below this many multiply-adds gemm runs single-threaded (threads cost more than they save).
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// `C = epilogue(op(A)·op(B))` for row-major `A`, `B`, `C` (see [`MatmulForm`] for the shapes).
///
/// Errors if a slice's length does not match `dims` or a dimension is 0.
pub fn matmul<T: Real>(
    form: MatmulForm,
    dims: MatmulDims,
    a: &[T],
    b: &[T],
    c: &mut [T],
    epilogue: Epilogue<&[T]>,
) -> Result<()> {
    const OP: &str = "matmul";
    dims.validate(OP, a.len(), b.len(), c.len())?;
    let MatmulDims { m, k, n } = dims;
    match epilogue {
        Epilogue::None => {}
        Epilogue::BiasAct { bias, .. } => check_len(OP, "bias", bias.len(), n)?,
        Epilogue::ActGrad { act_output, .. } => check_len(OP, "activation output", act_output.len(), m * n)?,
    }

    let parallel = m * n * k >= PARALLEL_MIN_MACS;
    gemm_into(form, dims, a, b, c, false, parallel);

    match epilogue {
        Epilogue::None => {}
        Epilogue::BiasAct { bias, act } => for_each_row(c, n, |_, row| bias_act_row(row, bias, act)),
        Epilogue::ActGrad { act_output, act } => for_each_row(c, n, |r, row| {
            let out = &act_output[r * n..(r + 1) * n];
            match act {
                // The common cases as plain loops the compiler vectorises; the rest per element.
                Activation::Identity => {}
                Activation::Relu => {
                    for (x, &a) in row.iter_mut().zip(out) {
                        *x = if a > T::zero() { *x } else { T::zero() };
                    }
                }
                _ => {
                    for (x, &a) in row.iter_mut().zip(out) {
                        *x = *x * act.derivative_from_output(a);
                    }
                }
            }
        }),
    }
    Ok(())
}

/// `row[j] = act(row[j] + bias[j])`, with the common activations as plain vectorisable loops.
fn bias_act_row<T: Real>(row: &mut [T], bias: &[T], act: Activation) {
    match act {
        Activation::Identity => row.iter_mut().zip(bias).for_each(|(x, &b)| *x = *x + b),
        Activation::Relu => row
            .iter_mut()
            .zip(bias)
            .for_each(|(x, &b)| *x = (*x + b).max(T::zero())),
        _ => row.iter_mut().zip(bias).for_each(|(x, &b)| *x = act.forward(*x + b)),
    }
}

/// Columns of `C` per thread below which splitting `C` by columns does not pay (one AVX-512
/// micro-tile of the transposed problem gemm solves for a row-major `C` is 64 rows of `Bᵀ`).
const MIN_SPLIT_COLUMNS: usize = 64;

/// `C (+)= op(A)·op(B)` through gemm, on all cores when `parallel` (the callers check the lengths
/// against `dims`; this asserts them). `accumulate` adds to `C` instead of overwriting it.
///
/// `A·Bᵀ` (the dense forward pass, `B` = the weights) is split by columns of `C` here, one
/// single-threaded gemm per slice of `B`'s rows, instead of using gemm's own threads: with a
/// transposed `B` gemm packs it (a transposing copy) in every thread, and at batch 128 that
/// packing cost as much as the arithmetic. Split this way each thread packs only its slice:
/// 1.15-1.45x the GFLOP/s of gemm's threading for the MNIST layers' shapes and 512³-1024³ on
/// two cores; the other two forms measured level either way and keep gemm's threading.
pub(crate) fn gemm_into<T: Real>(
    form: MatmulForm,
    dims: MatmulDims,
    a: &[T],
    b: &[T],
    c: &mut [T],
    accumulate: bool,
    parallel: bool,
) {
    let MatmulDims { m, k, n } = dims;
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm_into: operands shorter than {dims:?}"
    );
    let threads = rayon::current_num_threads();
    let columns_per_part = n.div_ceil(threads).next_multiple_of(16).max(MIN_SPLIT_COLUMNS);
    if parallel && form.transposes_b() && n > columns_per_part {
        // Each part writes columns [first, first + width) of every row of C: disjoint, but
        // interleaved in memory, so the parts share C through a raw pointer.
        let c_ptr = SendPtr(c.as_mut_ptr());
        (0..n.div_ceil(columns_per_part)).into_par_iter().for_each(|part| {
            let first = part * columns_per_part;
            let width = columns_per_part.min(n - first);
            let slice = GemmCall {
                m,
                n: width,
                k,
                // The part's rows of B (stored n×k) and its first column of C.
                b: &b[first * k..],
                c: c_ptr.get().wrapping_add(first),
                ..GemmCall::new(form, dims, a, b, c_ptr.get())
            };
            // SAFETY: B's rows [first, first + width) and C's columns [first, first + width)
            // lie inside the asserted lengths; no two parts write the same element of C.
            unsafe { slice.run(accumulate, gemm::Parallelism::None) };
        });
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the lengths were asserted against dims above, so every index gemm forms from
    // these strides lies inside its slice; `c` is exclusively borrowed and does not alias.
    unsafe { GemmCall::new(form, dims, a, b, c.as_mut_ptr()).run(accumulate, parallelism) };
}

/// A raw pointer the column parts of one `C` share (each writes only its own columns).
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: the parts that share it write disjoint elements (see `gemm_into`).
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper, not its field).
    fn get(self) -> *mut T {
        self.0
    }
}

/// One call of gemm on row-major storage: `C[m×n] (+)= op(A)·op(B)`, with `C`'s rows `ldc` apart.
struct GemmCall<'a, T> {
    m: usize,
    n: usize,
    k: usize,
    a: &'a [T],
    b: &'a [T],
    c: *mut T,
    ldc: usize,
    /// Strides (row, column) of op(A) [m×k] and op(B) [k×n] inside their storage.
    a_strides: (usize, usize),
    b_strides: (usize, usize),
}

impl<'a, T: Real> GemmCall<'a, T> {
    fn new(form: MatmulForm, dims: MatmulDims, a: &'a [T], b: &'a [T], c: *mut T) -> Self {
        let MatmulDims { m, k, n } = dims;
        GemmCall {
            m,
            n,
            k,
            a,
            b,
            c,
            ldc: n,
            a_strides: if form.transposes_a() { (1, m) } else { (k, 1) },
            b_strides: if form.transposes_b() { (1, k) } else { (n, 1) },
        }
    }

    /// # Safety
    /// Every element the strides reach for `m`, `n`, `k` lies inside `a`, `b` and the
    /// allocation `c` points into, and nothing else reads or writes those elements of `C`.
    unsafe fn run(&self, accumulate: bool, parallelism: gemm::Parallelism) {
        let ((a_rs, a_cs), (b_rs, b_cs)) = (self.a_strides, self.b_strides);
        unsafe {
            gemm::gemm(
                self.m,
                self.n,
                self.k,
                self.c,
                1,
                self.ldc as isize,
                accumulate,
                self.a.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                self.b.as_ptr(),
                b_cs as isize,
                b_rs as isize,
                T::one(),
                T::one(),
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column split of `A·Bᵀ` adds to `C` when accumulating, and covers uneven parts.
    #[test]
    fn split_transposed_product_accumulates_into_every_column() {
        let (m, k, n) = (7, 300, 211);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
        let b: Vec<f64> = (0..n * k).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
        let start: Vec<f64> = (0..m * n).map(|i| i as f64).collect();
        for threads in [2, 3, 4] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut c = start.clone();
            let dims = MatmulDims::new(m, k, n);
            pool.install(|| gemm_into(MatmulForm::ABt, dims, &a, &b, &mut c, true, true));
            for i in 0..m {
                for j in 0..n {
                    let dot: f64 = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
                    assert_eq!(c[i * n + j], start[i * n + j] + dot, "{threads} threads, C[{i},{j}]");
                }
            }
        }
    }
}
