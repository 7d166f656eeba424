//! How much memory a model needs, counted with overflow-checked arithmetic *before* anything is
//! allocated, so a model that cannot fit is an error naming the layer instead of an abort.

use crate::error::{Error, Result};
use crate::model::{NetworkSpec, ParamKind, TensorRole};

/// Bytes the host can still hand out (Linux: `MemAvailable` of `/proc/meminfo`); `None` where
/// it cannot be read, and then no limit is checked.
pub fn available_host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Checks that `copies` parameter-sized f32 buffers of `spec` (the parameters themselves, plus
/// gradients and optimizer moments for training) and the activations of `batch` rows (at least
/// the CPU's evaluation batch when `batch > 0`) fit
/// in `limit` bytes; the error names the layer at which the running total passes the limit.
pub fn check_fits(spec: &NetworkSpec, copies: u64, batch: usize, limit: u64, limit_name: &'static str) -> Result<()> {
    let too_big = |layer: usize, bytes: Option<u64>| Error::OutOfMemory {
        layer,
        what: "its parameters, gradients, optimizer state and activations (with the layers before it)",
        bytes: bytes.unwrap_or(u64::MAX),
        limit,
        limit_name,
    };
    // Rows whose activations the host holds: the training batch, or the evaluation batch the
    // CPU backend uses when it is larger.
    let rows = if batch == 0 {
        0
    } else {
        batch.max(crate::train::cpu_backend::EVAL_BATCH)
    } as u64;
    // Per-sample floats of the tensors after each layer with tensors: its output, the outputs
    // of the layers without tensors up to the next one (pooling, dropout, activations), and for
    // a conv the im2col matrix (C·k·k per output position).
    let shapes = spec.shapes();
    let owners: Vec<_> = spec.param_layers().collect();
    let mut total: u64 = 0;
    for (i, l) in owners.iter().enumerate() {
        let end = owners.get(i + 1).map_or(spec.layers.len(), |next| next.position);
        let outputs = shapes[l.position + 1..=end]
            .iter()
            .try_fold(0u64, |sum, shape| sum.checked_add(shape.len() as u64));
        let scratch = match l.kind {
            ParamKind::Conv2d { geometry: g, .. } => (g.in_channels as u64)
                .checked_mul((g.kernel * g.kernel) as u64)
                .and_then(|n| n.checked_mul((g.out_height as u64).checked_mul(g.out_width as u64)?)),
            // Batch norm keeps 3 statistics per channel: nothing per sample.
            ParamKind::Dense { .. } | ParamKind::BatchNorm(_) => Some(0),
        };
        // Parameters come in `copies` (with gradients and moments); state once.
        let bytes = |role: TensorRole| {
            l.tensors
                .iter()
                .filter(|t| t.role == role)
                .try_fold(0u64, |sum, t| sum.checked_add((t.len() as u64).checked_mul(4)?))
        };
        let per_copy = bytes(TensorRole::Parameter);
        // Each tensor and its gradient, f32.
        let activations = outputs
            .and_then(|o| o.checked_add(scratch?))
            .and_then(|n| n.checked_mul(rows))
            .and_then(|n| n.checked_mul(4 * 2));
        let layer = per_copy
            .and_then(|b| b.checked_mul(copies))
            .and_then(|b| b.checked_add(bytes(TensorRole::State)?))
            .and_then(|b| b.checked_add(activations?));
        total = match layer.and_then(|b| total.checked_add(b)) {
            Some(t) if t <= limit => t,
            other => return Err(too_big(l.index, other)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LossKind;

    #[test]
    fn conv_activations_and_im2col_scratch_count() {
        // 1.6 M parameters (6.4 MB), but per sample 64×224×224 floats after the conv (and again after its
        // relu), 64×112×112 after pooling and 27 per output position of im2col: about 70 GB for
        // 1,000 rows with their gradients.
        let spec = NetworkSpec::parse(
            "3x224x224,conv64k3p1,relu,maxpool2,flatten,dense2",
            LossKind::MeanSquaredError,
        )
        .unwrap();
        let gib = 1u64 << 30;
        let err = check_fits(&spec, 3, 128, 16 * gib, "of a test limit").unwrap_err();
        assert!(matches!(err, Error::OutOfMemory { layer: 0, .. }), "{err}");
        check_fits(&spec, 3, 128, 128 * gib, "of a test limit").unwrap();
        // Without a batch (the GPU backend's host side) only the parameters count.
        check_fits(&spec, 1, 0, gib / 64, "of a test limit").unwrap();
    }
}
