//! How a model is laid out on a device: the flat parameter buffers split into segments that
//! each fit one buffer, weights into row chunks that each fit one storage binding, and the
//! evaluation batch that fits the bindings. Planned before anything is allocated, so a model
//! the device cannot hold is refused with the layer and the limit named.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::{GpuBuffer, GpuContext, GpuView};
use crate::model::{Layer, NetworkSpec, ParamKind, SampleShape};
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
        for (l, slots) in spec.param_layers().zip(&params.layers) {
            let (w, _) = slots.weight_bias();
            let (index, fan_in, fan_out) = (l.index, w.cols, w.rows);
            let row_bytes = fan_in as u64 * 4;
            let weight_bytes = row_bytes * fan_out as u64;
            if weight_bytes > limits.max_buffer_size {
                return Err(Error::LayerTooLarge {
                    layer: index,
                    what: "weight",
                    bytes: weight_bytes,
                    limit: limits.max_buffer_size,
                    limit_name: "max_buffer_size",
                });
            }
            // Chunk starts must sit on the binding-offset alignment: whole multiples of `step` rows.
            let step = align / gcd(row_bytes, align);
            let rows_per_chunk = (binding / row_bytes) / step * step;
            // Only dense weights are split across bindings; every other tensor binds whole.
            let splits = match l.kind {
                ParamKind::Dense { .. } => true,
                ParamKind::Conv2d { .. } | ParamKind::BatchNorm(_) => false,
            };
            let largest = slots
                .params
                .iter()
                .chain(&slots.state)
                .map(|t| t.len() as u64 * 4)
                .max();
            if weight_bytes <= binding && largest.is_some_and(|b| b <= binding) {
                weight_chunks.push(std::iter::once(0..fan_out).collect());
            } else if !splits {
                return Err(Error::LayerTooLarge {
                    layer: index,
                    what: "tensor (only dense weights are split across bindings)",
                    bytes: largest.unwrap_or(weight_bytes).max(weight_bytes),
                    limit: binding,
                    limit_name: "max_storage_buffer_binding_size",
                });
            } else if rows_per_chunk == 0 {
                return Err(Error::LayerTooLarge {
                    layer: index,
                    what: "weight rows (one aligned group of rows)",
                    bytes: row_bytes * step,
                    limit: binding,
                    limit_name: "max_storage_buffer_binding_size",
                });
            } else {
                let per = rows_per_chunk as usize;
                weight_chunks.push((0..fan_out).step_by(per).map(|s| s..(s + per).min(fan_out)).collect());
            }
            let activation_bytes = max_batch as u64 * l.kind.per_sample(l.input, l.output) as u64 * 4;
            if activation_bytes > binding {
                return Err(Error::LayerTooLarge {
                    layer: index,
                    what: "batch activations (with a conv's im2col matrix)",
                    bytes: activation_bytes,
                    limit: binding,
                    limit_name: "max_storage_buffer_binding_size",
                });
            }
        }
        let state_bytes = params.state_len as u64 * 4;
        if state_bytes > binding {
            return Err(Error::LayerTooLarge {
                layer: params.layers.len().saturating_sub(1),
                what: "layer state (running statistics, all layers together)",
                bytes: state_bytes,
                limit: binding,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        // Segments: consecutive tensors while they fit one buffer. A dense layer's weight and
        // bias are bound apart and may fall in different segments; every other kind binds its
        // parameters as one view, so they stay together.
        let max_elems = (limits.max_buffer_size / 4) as usize / ALIGN * ALIGN;
        let mut units: Vec<Range<usize>> = Vec::new();
        for (l, slots) in spec.param_layers().zip(&params.layers) {
            let aligned = |t: &ParamTensor| t.offset..t.offset + t.len().div_ceil(ALIGN) * ALIGN;
            match l.kind {
                ParamKind::Dense { .. } => units.extend(slots.params.iter().map(aligned)),
                ParamKind::Conv2d { .. } | ParamKind::BatchNorm(_) => {
                    let (first, last) = (slots.params[0], slots.params[slots.params.len() - 1]);
                    units.push(aligned(&first).start..aligned(&last).end);
                }
            }
        }
        let mut segments: Vec<Range<usize>> = Vec::new();
        let mut start = 0;
        for unit in units {
            if unit.end - start > max_elems && unit.start > start {
                segments.push(start..unit.start);
                start = unit.start;
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
            .chain(spec.param_layers().map(|l| l.kind.per_sample(l.input, l.output)))
            .max()
            .expect("sizes") as u64;
        let fits = (binding / (4 * widest)) as usize;
        let eval_batch = EVAL_BATCH.min(fits).max(max_batch);
        // The conv and pooling kernels' grids put samples, channels and im2col rows on the y and
        // z axes.
        let limit = limits.max_compute_workgroups_per_dimension;
        for (layer, input) in spec.layers.iter().zip(spec.shapes()) {
            let SampleShape::Image { channels, .. } = input else {
                continue;
            };
            let (kernel, extents) = match *layer {
                Layer::Conv2d {
                    kernel, out_channels, ..
                } => (
                    "im2col",
                    [channels.saturating_mul(kernel * kernel), channels, out_channels],
                ),
                Layer::MaxPool2d { .. } => ("max_pool_forward", [channels; 3]),
                Layer::Dense { .. }
                | Layer::Activation(_)
                | Layer::Dropout { .. }
                | Layer::Flatten
                | Layer::BatchNorm => continue,
            };
            for extent in std::iter::once(eval_batch).chain(extents) {
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
    pub async fn read_async(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let mut flat = Vec::new();
        for s in &self.segments {
            flat.extend(ctx.read_async(s).await?);
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
