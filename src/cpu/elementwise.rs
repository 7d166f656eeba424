//! Bias gradient and activations. GPU twin: `shaders/elementwise.wgsl`.

use super::{Real, for_each_element};
use crate::activation::Activation;
use crate::error::{Result, check_len, check_nonzero};

/// `a = act(z)`, elementwise.
pub fn activation_forward<T: Real>(z: &[T], a: &mut [T], act: Activation) -> Result<()> {
    const OP: &str = "activation_forward";
    check_nonzero(OP, &[("len", z.len())])?;
    check_len(OP, "output", a.len(), z.len())?;
    for_each_element(a, |i, o| *o = act.forward(z[i]));
    Ok(())
}

/// `dz = da ⊙ act'(z)`, with the derivative taken from the stored output `a = act(z)`.
pub fn activation_backward<T: Real>(da: &[T], a: &[T], dz: &mut [T], act: Activation) -> Result<()> {
    const OP: &str = "activation_backward";
    check_nonzero(OP, &[("len", da.len())])?;
    check_len(OP, "activation output", a.len(), da.len())?;
    check_len(OP, "dz", dz.len(), da.len())?;
    for_each_element(dz, |i, o| *o = da[i] * act.derivative_from_output(a[i]));
    Ok(())
}

/// `db[j] = Σ_r dz[r,j]`: the bias gradient, summed over the batch in row order.
pub fn bias_grad<T: Real>(dz: &[T], db: &mut [T], rows: usize, cols: usize) -> Result<()> {
    const OP: &str = "bias_grad";
    check_nonzero(OP, &[("rows", rows), ("cols", cols)])?;
    check_len(OP, "dz", dz.len(), rows * cols)?;
    check_len(OP, "db", db.len(), cols)?;
    db.fill(T::zero());
    for row in dz.chunks_exact(cols) {
        for (acc, &g) in db.iter_mut().zip(row) {
            *acc = *acc + g;
        }
    }
    Ok(())
}
