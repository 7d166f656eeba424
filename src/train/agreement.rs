//! How closely the GPU backend trains as the CPU reference does: the measure the GPU-vs-CPU
//! tests (`tests/training.rs`) and the browser page's kernel checks (`web/`) both take, written
//! once. Only with the `internals` feature.

use super::backend::Backend;
use super::cpu_backend::CpuBackend;
use super::gpu::GpuBackend;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::LayerTensors;

/// The largest relative differences between two backends that trained the same network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    /// Of the per-step loss sums (infinite if a step counted different samples).
    pub loss: f64,
    /// Of each layer's tensors at the end, per layer over all its tensors together: a bias right
    /// before a batch norm has a zero gradient in exact arithmetic, so its values are rounding
    /// noise (~1e-9) that differs between the backends; next to its weight it weighs nothing, on
    /// its own it would be all error.
    pub tensors: f64,
}

/// Trains `cpu` and `gpu` (built from the same network) one batch at a time over `batches` of
/// `data`, and measures how far apart they are. Awaitable, so a browser can run it; native
/// callers block on it.
pub async fn training_drift(
    cpu: &mut CpuBackend,
    gpu: &mut GpuBackend,
    data: &Dataset,
    batches: &[&[u32]],
) -> Result<Drift> {
    let mut loss: f64 = 0.0;
    for &batch in batches {
        cpu.train_batches(data, &[batch])?;
        gpu.train_batches(data, &[batch])?;
        let (c, g) = (cpu.take_train_totals()?, gpu.take_train_totals_async().await?);
        let step = if c.samples == g.samples {
            (c.loss_sum - g.loss_sum).abs() / c.loss_sum.abs().max(1e-12)
        } else {
            f64::INFINITY
        };
        loss = loss.max(step);
    }
    let (c, g) = (cpu.network()?, gpu.network_async().await?);
    let flat = |l: &LayerTensors| -> Vec<f64> {
        l.tensors
            .iter()
            .flat_map(|t| t.values.iter().map(|&v| f64::from(v)))
            .collect()
    };
    let tensors = c
        .layers
        .iter()
        .zip(&g.layers)
        .map(|(c, g)| {
            let (c, g) = (flat(c), flat(g));
            if g.iter().any(|v| !v.is_finite()) {
                return f64::NAN;
            }
            let diff: f64 = c.iter().zip(&g).map(|(a, b)| (a - b).powi(2)).sum();
            let norm: f64 = c.iter().map(|a| a * a).sum();
            if norm == 0.0 { diff.sqrt() } else { (diff / norm).sqrt() }
        })
        .fold(0.0, |worst: f64, d| if d.is_nan() { d } else { worst.max(d) });
    Ok(Drift { loss, tensors })
}
