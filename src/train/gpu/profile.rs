//! Timing helpers for benchmarks and profiling, kept off the training path: each waits for
//! the device after every step, so use them to measure, not to train.

use std::sync::Arc;

use super::GpuBackend;
use crate::data::Dataset;
use crate::error::Result;
use crate::gpu::profiler::PassTimer;
use crate::train::backend::{check_batches, check_fits};
use crate::train::program::Stage;

/// Trains `backend` on `batches` like [`crate::train::Backend::train_batches`], one submit per
/// batch, timing each pass with timestamp queries: the GPU seconds of all steps, or `None`
/// when the adapter has no timestamps.
pub fn train_batches_timed(backend: &mut GpuBackend, data: &Dataset, batches: &[&[u32]]) -> Result<Option<f64>> {
    check_fits(&backend.spec, data)?;
    check_batches(batches, data.len(), backend.max_batch)?;
    let Some(timer) = PassTimer::new(&backend.ctx) else {
        return Ok(None);
    };
    let mut seconds = 0.0;
    for batch in batches {
        seconds += backend
            .submit_batches(data, &[batch], Stage::Train, Some(&timer))?
            .unwrap_or(0.0);
        backend.train_samples += batch.len() as u64;
    }
    backend.train_has_accuracy = data.classes().is_some();
    Ok(Some(seconds))
}

/// GPU seconds of each dispatch of one training step on `batch`, each timed in a pass of its
/// own (so the sum exceeds a real step by the per-pass overhead). `None` without timestamp
/// queries. Trains on the batch as a side effect.
pub fn profile_step(backend: &mut GpuBackend, data: &Dataset, batch: &[u32]) -> Result<Option<Vec<(String, f64)>>> {
    check_fits(&backend.spec, data)?;
    check_batches(&[batch], data.len(), backend.max_batch)?;
    let Some(timer) = PassTimer::new(&backend.ctx) else {
        return Ok(None);
    };
    let ctx = Arc::clone(&backend.ctx);
    let program = backend.program(data, batch.len(), Stage::Train)?;
    ctx.queue
        .write_buffer(&program.ws.indices.buffer, 0, bytemuck::cast_slice(batch));
    let mut times = Vec::new();
    for d in program.gathers[0].iter().chain(&program.body) {
        times.push((
            format!("{} {:?}", d.name(), d.workgroups()),
            ctx.run_timed(&[d], &timer)?,
        ));
    }
    backend.train_samples += batch.len() as u64;
    Ok(Some(times))
}
