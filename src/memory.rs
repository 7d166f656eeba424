//! How much memory a model needs, counted with overflow-checked arithmetic *before* anything is
//! allocated, so a model that cannot fit is an error naming the layer instead of an abort.

use crate::error::{Error, Result};
use crate::model::NetworkSpec;

/// Bytes the host can still hand out (Linux: `MemAvailable` of `/proc/meminfo`); `None` where
/// it cannot be read, and then no limit is checked.
pub fn available_host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Checks that `copies` parameter-sized f32 buffers of `spec` (the parameters themselves, plus
/// gradients and optimizer moments for training) and the batch activations of `batch` rows fit
/// in `limit` bytes; the error names the layer at which the running total passes the limit.
pub fn check_fits(spec: &NetworkSpec, copies: u64, batch: usize, limit: u64, limit_name: &'static str) -> Result<()> {
    let too_big = |layer: usize, bytes: Option<u64>| Error::OutOfMemory {
        layer,
        what: "its parameters, gradients, optimizer state and activations (with the layers before it)",
        bytes: bytes.unwrap_or(u64::MAX),
        limit,
        limit_name,
    };
    let mut total: u64 = 0;
    for d in spec.dense() {
        let per_copy = (d.fan_in as u64)
            .checked_mul(d.fan_out as u64)
            .and_then(|w| w.checked_add(d.fan_out as u64))
            .and_then(|n| n.checked_mul(4));
        let activations = (batch as u64)
            .checked_mul(d.fan_out as u64)
            .and_then(|n| n.checked_mul(4 * 2));
        let layer = per_copy
            .and_then(|b| b.checked_mul(copies))
            .and_then(|b| b.checked_add(activations?));
        total = match layer.and_then(|b| total.checked_add(b)) {
            Some(t) if t <= limit => t,
            other => return Err(too_big(d.index, other)),
        };
    }
    Ok(())
}

/// [`check_fits`] against the memory this host has available now (no check where unknown).
pub fn check_host(spec: &NetworkSpec, copies: u64, batch: usize) -> Result<()> {
    match available_host_memory() {
        Some(limit) => check_fits(spec, copies, batch, limit, "of available host memory"),
        None => Ok(()),
    }
}
