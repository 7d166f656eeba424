//! Parameter updates, in place. GPU twin: `shaders/optim.wgsl`.
//!
//! Each takes the step's [`OptimState`] (after [`OptimState::tick`]) so both backends read
//! the same hyperparameters and bias corrections.

use super::{PARALLEL_MIN_ELEMENTS, Real};
use rayon::prelude::*;

/// Elements per parallel task of the stateful updates: big enough to amortise rayon, small
/// enough to spread a layer over every core.
const CHUNK: usize = 1 << 14;
use crate::error::{Result, check_len, check_nonzero};
use crate::optimizer::OptimState;

fn check(op: &'static str, w: usize, g: usize) -> Result<()> {
    check_nonzero(op, &[("parameters", w)])?;
    check_len(op, "gradient", g, w)
}

fn cast<T: Real>(x: f32) -> T {
    T::from(x).unwrap()
}

/// `w ← w·(1 − lr·wd) − lr·g`.
pub fn sgd_update<T: Real>(w: &mut [T], g: &[T], s: &OptimState) -> Result<()> {
    check("sgd_update", w.len(), g.len())?;
    let (lr, decay) = (cast::<T>(s.lr), T::one() - cast::<T>(s.lr * s.weight_decay));
    let clip = cast::<T>(s.clip_scale());
    // Chunks zipped with their gradient (not an indexed per-element closure): the inner loop
    // has no bounds checks and vectorises, which made SGD slower than Adam before.
    let run = |(w, g): (&mut [T], &[T])| {
        for (w, &g) in w.iter_mut().zip(g) {
            *w = *w * decay - lr * (g * clip);
        }
    };
    if w.len() >= PARALLEL_MIN_ELEMENTS {
        w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(run);
    } else {
        run((w, g));
    }
    Ok(())
}

/// `v ← μ·v + g`, `w ← w·(1 − lr·wd) − lr·v`.
pub fn momentum_update<T: Real>(w: &mut [T], g: &[T], velocity: &mut [T], s: &OptimState) -> Result<()> {
    const OP: &str = "momentum_update";
    check(OP, w.len(), g.len())?;
    check_len(OP, "velocity", velocity.len(), w.len())?;
    let (lr, mu) = (cast::<T>(s.lr), cast::<T>(s.momentum));
    let decay = T::one() - cast::<T>(s.lr * s.weight_decay);
    let clip = cast::<T>(s.clip_scale());
    with_one_moment(w, g, velocity, |w, g, v| {
        *v = mu * *v + g * clip;
        *w = *w * decay - lr * *v;
    });
    Ok(())
}

/// Runs `rule(w, g, v)` over every element of a parameter, its gradient and one moment, in
/// parallel chunks when the tensor is large.
fn with_one_moment<T: Real>(w: &mut [T], g: &[T], v: &mut [T], rule: impl Fn(&mut T, T, &mut T) + Send + Sync) {
    let run = |(w, (g, v)): (&mut [T], (&[T], &mut [T]))| {
        for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
            rule(w, g, v);
        }
    };
    if w.len() >= PARALLEL_MIN_ELEMENTS {
        w.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(run);
    } else {
        run((w, (g, v)));
    }
}

/// Adam(W): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `w ← w·(1 − lr·wd) − lr·(m/bc₁) / (√(v/bc₂) + ε)`.
pub fn adam_update<T: Real>(w: &mut [T], g: &[T], m: &mut [T], v: &mut [T], s: &OptimState) -> Result<()> {
    const OP: &str = "adam_update";
    check(OP, w.len(), g.len())?;
    check_len(OP, "first moment", m.len(), w.len())?;
    check_len(OP, "second moment", v.len(), w.len())?;
    let (lr, b1, b2, eps) = (
        cast::<T>(s.lr),
        cast::<T>(s.beta1),
        cast::<T>(s.beta2),
        cast::<T>(s.eps),
    );
    let (bc1, bc2) = (cast::<T>(s.bias_correction1), cast::<T>(s.bias_correction2));
    let decay = T::one() - cast::<T>(s.lr * s.weight_decay);
    let clip = cast::<T>(s.clip_scale());
    type Chunk<'a, T> = ((&'a mut [T], &'a [T]), (&'a mut [T], &'a mut [T]));
    let run = |((w, g), (m, v)): Chunk<'_, T>| {
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * clip;
            *m = b1 * *m + (T::one() - b1) * g;
            *v = b2 * *v + (T::one() - b2) * g * g;
            let m_hat = *m / bc1;
            let v_hat = *v / bc2;
            *w = *w * decay - lr * m_hat / (v_hat.sqrt() + eps);
        }
    };
    if w.len() >= PARALLEL_MIN_ELEMENTS {
        let (wg, mv) = (
            w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)),
            m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)),
        );
        wg.zip(mv).for_each(run);
    } else {
        run(((w, g), (m, v)));
    }
    Ok(())
}

/// RMSProp: `v ← α·v + (1−α)·g²`, `w ← w·(1 − lr·wd) − lr·g / (√v + ε)`.
pub fn rmsprop_update<T: Real>(w: &mut [T], g: &[T], v: &mut [T], s: &OptimState) -> Result<()> {
    const OP: &str = "rmsprop_update";
    check(OP, w.len(), g.len())?;
    check_len(OP, "square average", v.len(), w.len())?;
    let (lr, alpha, eps) = (cast::<T>(s.lr), cast::<T>(s.alpha), cast::<T>(s.eps));
    let decay = T::one() - cast::<T>(s.lr * s.weight_decay);
    let clip = cast::<T>(s.clip_scale());
    with_one_moment(w, g, v, |w, g, v| {
        let g = g * clip;
        *v = alpha * *v + (T::one() - alpha) * g * g;
        *w = *w * decay - lr * g / (v.sqrt() + eps);
    });
    Ok(())
}

/// The update of `optimizer` over (flat) parameters `w`, gradients `g` and its moments, in
/// [`crate::Optimizer::moment_names`] order: the one place the CPU picks a rule.
pub fn optimizer_update<T: Real>(
    optimizer: &crate::Optimizer,
    w: &mut [T],
    g: &[T],
    moments: &mut [Vec<T>],
    s: &OptimState,
) -> Result<()> {
    use crate::Optimizer;
    match (optimizer, moments) {
        (Optimizer::Sgd { .. }, []) => sgd_update(w, g, s),
        (Optimizer::Momentum { .. }, [v]) => momentum_update(w, g, v, s),
        (Optimizer::Adam { .. }, [m, v]) => adam_update(w, g, m, v, s),
        (Optimizer::RmsProp { .. }, [v]) => rmsprop_update(w, g, v, s),
        (_, moments) => Err(crate::Error::InvalidOption(format!(
            "{} keeps {} moments, got {}",
            optimizer.kind(),
            optimizer.state_tensors(),
            moments.len()
        ))),
    }
}

/// `state.grad_sq_sum += Σ g²` for one gradient tensor (run for each between `tick` and the
/// updates when clipping is on). GPU twin: `accumulate_grad_norm`.
pub fn accumulate_grad_norm<T: Real>(g: &[T], state: &mut OptimState) {
    let sum: f64 = g.iter().map(|v| v.to_f64().unwrap_or(f64::NAN).powi(2)).sum();
    state.grad_sq_sum += sum as f32;
}
