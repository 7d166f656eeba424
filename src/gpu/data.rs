//! Datasets resident on the device and the gather that builds a batch from sample indices.
//! Kernel: `shaders/data.wgsl`; CPU twin: [`crate::cpu::gather_batch`].

use crate::data::{Dataset, Features, Targets};
use crate::error::{Result, check_len};
use crate::gpu::dispatch::grid_1d;
use crate::gpu::kernels::{DATA, Kernel, Slot};
use crate::gpu::uniforms::GatherParams;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};

/// A dataset uploaded once: bytes stay bytes (packed four to a word), so MNIST's 60,000
/// training images take 47 MB instead of 188 MB as floats.
pub struct DeviceDataset {
    features: GpuBuffer<u32>,
    byte_features: bool,
    scale: f32,
    labels: Option<GpuBuffer<u32>>,
    values: Option<GpuBuffer<f32>>,
    len: usize,
    dim: usize,
    width: usize,
}

impl DeviceDataset {
    /// Uploads `data`; errors if it is larger than one storage binding allows.
    pub fn upload(ctx: &GpuContext, data: &Dataset) -> Result<Self> {
        let (words, byte_features, scale) = match data.features() {
            Features::U8 { data, scale } => {
                let mut words = vec![0u32; data.len().div_ceil(4)];
                for (w, chunk) in words.iter_mut().zip(data.chunks(4)) {
                    let mut b = [0u8; 4];
                    b[..chunk.len()].copy_from_slice(chunk);
                    *w = u32::from_le_bytes(b);
                }
                (words, true, *scale)
            }
            Features::F32(data) => (data.iter().map(|v| v.to_bits()).collect(), false, 1.0),
        };
        let features = ctx.upload("dataset features", &words)?;
        let (labels, values) = match data.targets() {
            Targets::Classes { labels, .. } => (Some(ctx.upload("dataset labels", labels)?), None),
            Targets::Values { values, .. } => (None, Some(ctx.upload("dataset targets", values)?)),
        };
        Ok(DeviceDataset {
            features,
            byte_features,
            scale,
            labels,
            values,
            len: data.len(),
            dim: data.dim(),
            width: data.target_width(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: datasets are never empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes on the device.
    pub fn bytes(&self) -> u64 {
        self.features.bytes()
            + self.labels.as_ref().map_or(0, |b| b.bytes())
            + self.values.as_ref().map_or(0, |b| b.bytes())
    }
}

/// Where a gathered batch goes.
pub struct BatchTargets<'a> {
    /// `[rows × dim]` inputs.
    pub x: &'a GpuBuffer<f32>,
    /// `[rows]` class labels (class data only).
    pub labels: Option<&'a GpuBuffer<u32>>,
    /// `[rows × width]` float targets: one-hot for class data, copied values otherwise.
    pub targets: Option<&'a GpuBuffer<f32>>,
}

const SLOTS: &[(u32, Slot)] = &[
    (0, Slot::Read),
    (1, Slot::Read),
    (2, Slot::Read),
    (3, Slot::Read),
    (4, Slot::ReadWrite),
    (5, Slot::ReadWrite),
    (6, Slot::ReadWrite),
    (7, Slot::Uniform),
];

/// Prepares the dispatch (one) that gathers `rows` samples named by
/// `indices[index_offset..index_offset + rows]` into `out`. Indices must be `< data.len()`
/// (checked by the caller on the host).
pub fn gather(
    ctx: &GpuContext,
    data: &DeviceDataset,
    indices: &GpuBuffer<u32>,
    index_offset: usize,
    rows: usize,
    out: BatchTargets<'_>,
) -> Result<Vec<Dispatch>> {
    const OP: &str = "gather";
    check_len(OP, "x", out.x.len(), rows * data.dim)?;
    if index_offset + rows > indices.len() {
        return Err(crate::Error::ShapeMismatch {
            op: OP,
            what: "indices",
            expected: index_offset + rows,
            got: indices.len(),
        });
    }
    let placeholder = &ctx.placeholder;
    let labels_src = data.labels.as_ref().map_or(placeholder, |b| &b.buffer);
    let values_src = data.values.as_ref().map_or(placeholder, |b| &b.buffer);
    let constants = vec![("BYTE_FEATURES", f64::from(u8::from(data.byte_features)))];
    // Output slots the batch does not use are bound to scratch buffers of their own, since one
    // buffer cannot be bound writable twice in one dispatch.
    let scratch_labels: GpuBuffer<u32> = ctx.zeros("gather scratch labels", 1)?;
    let scratch_targets: GpuBuffer<f32> = ctx.zeros("gather scratch targets", 1)?;
    let labels = match out.labels {
        Some(labels) if data.labels.is_some() => {
            check_len(OP, "labels", labels.len(), rows)?;
            Some(labels)
        }
        _ => None,
    };
    if let Some(targets) = out.targets {
        check_len(OP, "targets", targets.len(), rows * data.width)?;
    }
    let targets_mode = match (out.targets, data.labels.is_some()) {
        (None, _) => 0,
        (Some(_), true) => 1,
        (Some(_), false) => 2,
    };
    let threads = (rows * data.dim).max(rows * data.width).max(rows);
    let (groups, threads_x) = grid_1d(ctx, OP, threads, 256)?;
    let params = GatherParams {
        rows: rows as u32,
        dim: data.dim as u32,
        width: data.width as u32,
        index_offset: index_offset as u32,
        scale: data.scale,
        threads_x,
        labels_mode: u32::from(labels.is_some()),
        targets_mode,
    };
    let kernel = Kernel {
        shader: &DATA,
        entry: "gather",
        slots: SLOTS,
    };
    let buffers = [
        &data.features.buffer,
        &indices.buffer,
        labels_src,
        values_src,
        &out.x.buffer,
        labels.map_or(&scratch_labels.buffer, |b| &b.buffer),
        out.targets.map_or(&scratch_targets.buffer, |b| &b.buffer),
    ];
    let dispatches = vec![ctx.prepare(&kernel, &constants, &buffers, bytemuck::bytes_of(&params), groups)?];
    Ok(dispatches)
}
