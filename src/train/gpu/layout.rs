//! How a model is laid out on a device: the flat parameter buffers split into segments that
//! each fit one buffer, weights into row chunks that each fit one storage binding, and the
//! evaluation batch that fits the bindings. Planned before anything is allocated, so a model
//! the device cannot hold is refused with the layer and the limit named.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext, GpuView};
use crate::model::{ConvGeometry, Layer, NetworkSpec, SampleShape};
use crate::train::cpu_backend::EVAL_BATCH;
use crate::train::params::{ALIGN, ParamLayout, ParamTensor};

/// The device layout of one model.
pub(crate) struct DeviceLayout {
    pub params: ParamLayout,
    /// Flat element ranges, one buffer each, covering `0..params.len` in order.
    pub segments: Vec<Range<usize>>,
    /// Output-row chunks of each dense layer's weight, one storage binding each.
    pub weight_chunks: Vec<Vec<Range<usize>>>,
    /// Flat element ranges the optimizer updates one dispatch at a time (each inside one
    /// segment, binding-sized, 256-byte aligned).
    pub update_chunks: Vec<Range<usize>>,
    pub eval_batch: usize,
    /// The geometry of each layer with parameters that is a convolution.
    pub convs: Vec<Option<ConvGeometry>>,
}

/// The widest per-sample buffer a layer with parameters binds: its input, its output, and for a
/// conv its im2col columns (`C·k·k` per output position).
fn per_sample(d: &crate::model::DenseShape) -> usize {
    let widest = d.fan_in.max(d.output_len());
    match d.conv {
        Some(g) => widest
            .max(d.fan_in * g.out_height * g.out_width)
            .max(g.in_channels * g.height * g.width),
        None => widest,
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl DeviceLayout {
    /// Plans `spec` for batches of at most `max_batch` on `ctx`'s limits.
    pub fn plan(ctx: &GpuContext, spec: &NetworkSpec, max_batch: usize) -> Result<Self> {
        let limits = ctx.limits();
        let binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let align = u64::from(limits.min_storage_buffer_offset_alignment);
        let params = ParamLayout::new(spec);
        let mut weight_chunks = Vec::new();
        for (d, &(w, _)) in spec.dense().zip(&params.layers) {
            let (l, fan_in, fan_out) = (d.index, d.fan_in, d.fan_out);
            let row_bytes = fan_in as u64 * 4;
            let weight_bytes = row_bytes * fan_out as u64;
            if weight_bytes > limits.max_buffer_size {
                return Err(Error::LayerTooLarge {
                    layer: l,
                    what: "weight",
                    bytes: weight_bytes,
                    limit: limits.max_buffer_size,
                    limit_name: "max_buffer_size",
                });
            }
            // Chunk starts must sit on the binding-offset alignment: whole multiples of `step` rows.
            let step = align / gcd(row_bytes, align);
            let rows_per_chunk = (binding / row_bytes) / step * step;
            if weight_bytes <= binding {
                weight_chunks.push(std::iter::once(0..fan_out).collect());
            } else if d.conv.is_some() {
                return Err(Error::LayerTooLarge {
                    layer: l,
                    what: "conv weight (conv weights are not split across bindings)",
                    bytes: weight_bytes,
                    limit: binding,
                    limit_name: "max_storage_buffer_binding_size",
                });
            } else if rows_per_chunk == 0 {
                return Err(Error::LayerTooLarge {
                    layer: l,
                    what: "weight rows (one aligned group of rows)",
                    bytes: row_bytes * step,
                    limit: binding,
                    limit_name: "max_storage_buffer_binding_size",
                });
            } else {
                let per = rows_per_chunk as usize;
                weight_chunks.push((0..fan_out).step_by(per).map(|s| s..(s + per).min(fan_out)).collect());
            }
            debug_assert_eq!(w.len(), fan_in * fan_out);
            let activation_bytes = max_batch as u64 * per_sample(&d) as u64 * 4;
            if activation_bytes > binding {
                return Err(Error::LayerTooLarge {
                    layer: l,
                    what: "batch activations (with a conv's im2col matrix)",
                    bytes: activation_bytes,
                    limit: binding,
                    limit_name: "max_storage_buffer_binding_size",
                });
            }
        }
        // Segments: consecutive tensors while they fit one buffer.
        let max_elems = (limits.max_buffer_size / 4) as usize / ALIGN * ALIGN;
        let mut segments: Vec<Range<usize>> = Vec::new();
        let mut start = 0;
        for t in params.tensors() {
            let end = t.offset + t.len().div_ceil(ALIGN) * ALIGN;
            if end - start > max_elems && t.offset > start {
                segments.push(start..t.offset);
                start = t.offset;
            }
        }
        segments.push(start..params.len);
        let chunk_elems = ((binding / 4) as usize / ALIGN * ALIGN).max(ALIGN);
        let update_chunks = segments
            .iter()
            .flat_map(|s| {
                (s.start..s.end)
                    .step_by(chunk_elems)
                    .map(move |c| c..(c + chunk_elems).min(s.end))
            })
            .collect();
        let widest = spec
            .sizes()
            .into_iter()
            .chain(spec.dense().map(|d| per_sample(&d)))
            .max()
            .expect("sizes") as u64;
        let fits = (binding / (4 * widest)) as usize;
        let eval_batch = EVAL_BATCH.min(fits).max(max_batch);
        // The conv kernels' grids put samples, channels and im2col rows on the y and z axes.
        let limit = limits.max_compute_workgroups_per_dimension;
        let image_layers = spec
            .layers
            .iter()
            .zip(spec.shapes())
            .filter(|(l, _)| matches!(l, Layer::Conv2d { .. } | Layer::MaxPool2d { .. }));
        for (layer, input) in image_layers {
            let channels = match input {
                SampleShape::Image { channels, .. } => channels,
                SampleShape::Flat(_) => continue,
            };
            let (kernel, patch) = match *layer {
                Layer::Conv2d { kernel, .. } => ("im2col", channels.saturating_mul(kernel * kernel)),
                _ => ("max_pool_forward", channels),
            };
            let out_channels = match *layer {
                Layer::Conv2d { out_channels, .. } => out_channels,
                _ => channels,
            };
            for extent in [eval_batch, patch, channels, out_channels] {
                if extent > limit as usize {
                    return Err(Error::DispatchTooLarge {
                        kernel,
                        workgroups: extent as u64,
                        limit,
                    });
                }
            }
        }
        Ok(DeviceLayout {
            params,
            segments,
            weight_chunks,
            update_chunks,
            eval_batch,
            convs: spec.dense().map(|d| d.conv).collect(),
        })
    }

    /// Allocates one parameter-shaped set of segment buffers, zeroed or holding `init` (flat).
    pub fn allocate(&self, ctx: &GpuContext, name: &str, init: Option<&[f32]>) -> Result<FlatBuffers> {
        let segments = self
            .segments
            .iter()
            .enumerate()
            .map(|(i, r)| match init {
                Some(flat) => ctx.upload(&format!("{name} {i}"), &flat[r.clone()]),
                None => ctx.zeros(&format!("{name} {i}"), r.len()),
            })
            .collect::<Result<_>>()?;
        Ok(FlatBuffers {
            starts: self.segments.iter().map(|r| r.start).collect(),
            segments,
        })
    }
}

/// A flat parameter-shaped buffer (parameters, gradients or a moment) as device segments.
pub(crate) struct FlatBuffers {
    starts: Vec<usize>,
    segments: Vec<GpuBuffer<f32>>,
}

impl FlatBuffers {
    /// Flat elements `range` (inside one segment) as a view.
    pub fn view(&self, range: Range<usize>) -> Result<GpuView<'_, f32>> {
        let s = self.starts.partition_point(|&st| st <= range.start) - 1;
        let base = self.starts[s];
        self.segments[s].view(range.start - base..range.end - base)
    }

    /// Rows `rows` of a `[rows × cols]` tensor.
    pub fn rows(&self, tensor: ParamTensor, rows: &Range<usize>) -> Result<GpuView<'_, f32>> {
        let start = tensor.offset + rows.start * tensor.cols;
        self.view(start..tensor.offset + rows.end * tensor.cols)
    }

    /// A whole tensor.
    pub fn tensor(&self, tensor: ParamTensor) -> Result<GpuView<'_, f32>> {
        self.view(tensor.range())
    }

    /// Every segment read back into one flat vector.
    pub fn read(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let mut flat = Vec::new();
        for s in &self.segments {
            flat.extend(ctx.read(s)?);
        }
        Ok(flat)
    }

    /// Overwrites every segment from one flat vector.
    pub fn write(&self, ctx: &GpuContext, flat: &[f32]) -> Result<()> {
        for (s, &start) in self.segments.iter().zip(&self.starts) {
            ctx.write(s, &flat[start..start + s.len()])?;
        }
        Ok(())
    }
}
