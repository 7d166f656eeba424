//! Inverted dropout with a counter-based mask. GPU twin: `shaders/dropout.wgsl`.
//!
//! Whether element `i` of a batch tensor is kept at optimizer step `step` is a pure function
//! of `(seed, step, i)`: a PCG hash in 32-bit integer arithmetic that the WGSL kernel computes
//! bit for bit, so both backends drop the same elements and backward recomputes the mask
//! instead of storing it.

use super::{Real, for_each_element};
use crate::activation::Activation;
use crate::error::{Result, check_len, check_nonzero};

/// PCG's output permutation of one LCG step (O'Neill's `pcg_hash`, as used for GPU hashing in
/// Jarzynski & Olano, "Hash Functions for GPU Rendering", JCGT 2020).
#[inline]
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The mask's constants for a drop rate: elements whose 24-bit hash is below `threshold` are
/// dropped; the rest are multiplied by `scale = 1/(1 − rate)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutMask {
    pub seed: u32,
    pub threshold: u32,
    pub scale: f32,
}

impl DropoutMask {
    /// The mask of drop probability `rate ∈ [0, 1)` for a layer seeded with `seed`.
    pub fn new(seed: u32, rate: f32) -> Self {
        DropoutMask {
            seed,
            threshold: (f64::from(rate) * f64::from(1u32 << 24)).round() as u32,
            scale: 1.0 / (1.0 - rate),
        }
    }

    /// Whether element `index` is kept at step `step`.
    #[inline]
    pub fn keeps(&self, step: u32, index: u32) -> bool {
        self.keeps_with(self.step_key(step), index)
    }

    /// The part of the hash shared by every element of one step.
    #[inline]
    fn step_key(&self, step: u32) -> u32 {
        pcg_hash(self.seed.wrapping_add(pcg_hash(step)))
    }

    #[inline]
    fn keeps_with(&self, key: u32, index: u32) -> bool {
        (pcg_hash(key.wrapping_add(index)) >> 8) >= self.threshold
    }
}

/// `out[i] = keep(i) ? x[i]·scale : 0`.
pub fn dropout_forward<T: Real>(x: &[T], out: &mut [T], mask: DropoutMask, step: u32) -> Result<()> {
    const OP: &str = "dropout_forward";
    check_nonzero(OP, &[("len", x.len())])?;
    check_len(OP, "output", out.len(), x.len())?;
    let scale = T::from(mask.scale).unwrap();
    for_each_element(out, |i, o| {
        *o = if mask.keeps(step, i as u32) {
            x[i] * scale
        } else {
            T::zero()
        };
    });
    Ok(())
}

/// `dx[i] = keep(i) ? dy[i]·scale·input_act'(x[i]) : 0`, where `x` is the dropout's input and
/// `input_act` the activation fused into the op that produced it.
pub fn dropout_backward<T: Real>(
    dy: &[T],
    x: &[T],
    dx: &mut [T],
    mask: DropoutMask,
    step: u32,
    input_act: Activation,
) -> Result<()> {
    const OP: &str = "dropout_backward";
    check_nonzero(OP, &[("len", dy.len())])?;
    check_len(OP, "input", x.len(), dy.len())?;
    check_len(OP, "dx", dx.len(), dy.len())?;
    let (scale, key) = (T::from(mask.scale).unwrap(), mask.step_key(step));
    for_each_element(dx, |i, o| {
        *o = if mask.keeps_with(key, i as u32) {
            dy[i] * scale * input_act.derivative_from_output(x[i])
        } else {
            T::zero()
        };
    });
    Ok(())
}
