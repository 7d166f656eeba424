//! Matrix multiply in the three backprop forms, with the dense layer's fused epilogues.
//! GPU twins: `shaders/matmul_block.wgsl`, `shaders/matmul.wgsl`, `shaders/matmul_cpu.wgsl`.

use super::{Real, for_each_row};
use crate::activation::Activation;
use crate::error::{Result, check_len};
use crate::ops::{Epilogue, MatmulDims, MatmulForm};

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

/// `C (+)= op(A)·op(B)` through gemm, on all cores when `parallel` (the callers check the lengths
/// against `dims`; this asserts them). `accumulate` adds to `C` instead of overwriting it.
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
    // Strides (row, column) of op(A) [m×k] and op(B) [k×n] inside their row-major storage.
    let (a_rs, a_cs) = if form.transposes_a() { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if form.transposes_b() { (1, k) } else { (n, 1) };
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the lengths were asserted against dims above, so every index gemm forms from
    // these strides lies inside its slice; `c` is exclusively borrowed and does not alias.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
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
