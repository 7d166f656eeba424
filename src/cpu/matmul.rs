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

/// Rows or columns of `C` per thread below which splitting `C` does not pay (one AVX-512
/// micro-tile of the transposed problem gemm solves for a row-major `C` is 64 rows of `Bᵀ`).
const MIN_PART: usize = 64;

/// A product whose smallest dimension is at most this is "batch-sized" (a dense layer at
/// training batch sizes), where splitting `C` ourselves beat gemm's threading for every form.
const BATCH_SIZED: usize = 256;

/// Below this many multiply-adds a product is not split: waking the pool's threads for
/// single-threaded parts cost more than gemm's own choice (which may keep one thread).
const MIN_SPLIT_MACS: usize = 1 << 21;

/// How [`gemm_into`] spreads one product over the threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threading {
    /// One gemm call, gemm's own threads (or none).
    Gemm,
    /// One single-threaded gemm per block of `C`'s columns (and of `op(B)`'s).
    Columns,
    /// One single-threaded gemm per block of `C`'s rows (and of `op(A)`'s).
    Rows,
}

/// The threading of a parallel product, by measurement on two cores (gemm 0.19, AVX-512):
/// - `A·Bᵀ` (the dense forward pass, `B` = the weights) by columns, always: gemm packs a
///   transposed `B` (a transposing copy) in every one of its threads, and at batch 128 that
///   packing cost as much as the arithmetic. Split by columns, each thread packs only its rows
///   of `B`: 1.15-1.45x gemm's threading at the MNIST layers' shapes and at 512³-1024³.
/// - Batch-sized `A·B` (the input gradient) by columns and `Aᵀ·B` (the weight gradient) by
///   rows: 1.05-1.12x per product at the MNIST layers' shapes, 4-6 % of a 784-512-256-10 SGD
///   step (level on 784-2352-784-10).
/// - Larger `A·B` and `Aᵀ·B` with gemm's threading, level with or ahead of either split.
fn threading(form: MatmulForm, dims: MatmulDims) -> Threading {
    let MatmulDims { m, k, n } = dims;
    match form {
        _ if m * k * n < MIN_SPLIT_MACS => Threading::Gemm,
        MatmulForm::ABt => Threading::Columns,
        _ if m.min(k).min(n) > BATCH_SIZED => Threading::Gemm,
        MatmulForm::AB => Threading::Columns,
        MatmulForm::AtB => Threading::Rows,
    }
}

/// `C (+)= op(A)·op(B)` through gemm, on all cores when `parallel` (the callers check the lengths
/// against `dims`; this asserts them). `accumulate` adds to `C` instead of overwriting it.
/// A parallel product runs as [`threading`] decides.
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
    let whole = GemmCall::new(form, dims, a, b, c.as_mut_ptr());
    let split = if parallel {
        threading(form, dims)
    } else {
        Threading::Gemm
    };
    let extent = if split == Threading::Rows { m } else { n };
    let per_part = extent
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(16)
        .max(MIN_PART);
    if split == Threading::Gemm || extent <= per_part {
        let parallelism = if parallel {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the lengths were asserted against dims above, so every index gemm forms from
        // these strides lies inside its slice; `c` is exclusively borrowed and does not alias.
        unsafe { whole.run(accumulate, parallelism) };
        return;
    }
    // The parts write disjoint blocks of C (column blocks interleave in memory), so they share
    // C through a raw pointer.
    let c_ptr = SendPtr(c.as_mut_ptr());
    (0..extent.div_ceil(per_part)).into_par_iter().for_each(|part| {
        let first = part * per_part;
        let size = per_part.min(extent - first);
        let part_call = if split == Threading::Rows {
            // Rows [first, first + size) of op(A) and of C.
            let a_offset = if form.transposes_a() { first } else { first * k };
            GemmCall {
                m: size,
                a: &a[a_offset..],
                c: c_ptr.get().wrapping_add(first * n),
                ..whole
            }
        } else {
            // Columns [first, first + size) of op(B) and of C.
            let b_offset = if form.transposes_b() { first * k } else { first };
            GemmCall {
                n: size,
                b: &b[b_offset..],
                c: c_ptr.get().wrapping_add(first),
                ..whole
            }
        };
        // SAFETY: the part's rows or columns of the operands and of C lie inside the asserted
        // lengths (the strides are the whole product's); no two parts write one element of C.
        unsafe { part_call.run(accumulate, gemm::Parallelism::None) };
    });
}

/// A raw pointer the parts of one `C` share (each writes only its own block).
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
#[derive(Clone, Copy)]
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

    /// Every form split across threads (by columns, or by rows for `Aᵀ·B`) adds to `C` when
    /// accumulating and covers uneven parts, whatever the thread count.
    #[test]
    fn split_products_accumulate_into_every_element() {
        let (m, k, n) = (150, 77, 211);
        let dims = MatmulDims::new(m, k, n);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
        let b: Vec<f64> = (0..n * k).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
        let start: Vec<f64> = (0..m * n).map(|i| i as f64).collect();
        for form in MatmulForm::ALL {
            assert_ne!(
                threading(form, dims),
                Threading::Gemm,
                "{form:?} at {dims:?} should split"
            );
            let at = |i: usize, p: usize| {
                if form.transposes_a() {
                    a[p * m + i]
                } else {
                    a[i * k + p]
                }
            };
            let bt = |p: usize, j: usize| {
                if form.transposes_b() {
                    b[j * k + p]
                } else {
                    b[p * n + j]
                }
            };
            for threads in [2, 3, 4] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut c = start.clone();
                pool.install(|| gemm_into(form, dims, &a, &b, &mut c, true, true));
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                        assert_eq!(
                            c[i * n + j],
                            start[i * n + j] + dot,
                            "{form:?}, {threads} threads, C[{i},{j}]"
                        );
                    }
                }
            }
        }
    }
}
