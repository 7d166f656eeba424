//! Flat parameters: every parameter tensor of a model at a fixed offset in one buffer, and the
//! gradients and each optimizer moment in buffers of the same layout, so an optimizer update
//! is one loop (CPU) or one dispatch per binding-sized chunk (GPU) over the whole model.

use crate::model::{DenseLayer, NetworkSpec};

/// Tensor offsets are multiples of this many elements (256 bytes, the largest storage-binding
/// offset alignment WebGPU allows), so every tensor can be bound on its own on any device.
pub(crate) const ALIGN: usize = 64;

/// One parameter tensor inside the flat buffer: `rows × cols` values at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParamTensor {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
}

impl ParamTensor {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Where each dense layer's weight `[out × in]` and bias `[out]` live in the flat buffer.
/// Padding between tensors holds zeros in parameters, gradients and moments alike, so updating
/// it is harmless (every rule maps a zero weight with a zero gradient and zero state to zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamLayout {
    /// `(weight, bias)` of each dense layer.
    pub layers: Vec<(ParamTensor, ParamTensor)>,
    /// Elements of the flat buffer, padding included.
    pub len: usize,
}

impl ParamLayout {
    pub fn new(spec: &NetworkSpec) -> Self {
        let mut offset = 0;
        let mut place = |rows: usize, cols: usize| {
            let t = ParamTensor { offset, rows, cols };
            offset += (rows * cols).div_ceil(ALIGN) * ALIGN;
            t
        };
        let layers = spec
            .dense()
            .map(|d| (place(d.fan_out, d.fan_in), place(d.fan_out, 1)))
            .collect();
        ParamLayout { layers, len: offset }
    }

    /// Every tensor, weight then bias, layer by layer.
    pub fn tensors(&self) -> impl Iterator<Item = ParamTensor> + '_ {
        self.layers.iter().flat_map(|&(w, b)| [w, b])
    }

    /// The layers' tensors laid out flat (zeros in the padding).
    pub fn flatten<T: Copy>(&self, layers: &[DenseLayer], convert: impl Fn(f32) -> T) -> Vec<T> {
        let mut flat = vec![convert(0.0); self.len];
        for (&(w, b), layer) in self.layers.iter().zip(layers) {
            for (dst, &src) in flat[w.range()].iter_mut().zip(&layer.weight) {
                *dst = convert(src);
            }
            for (dst, &src) in flat[b.range()].iter_mut().zip(&layer.bias) {
                *dst = convert(src);
            }
        }
        flat
    }

    /// The flat buffer cut back into layers.
    pub fn unflatten<T: Copy>(&self, flat: &[T], convert: impl Fn(T) -> f32) -> Vec<DenseLayer> {
        self.layers
            .iter()
            .map(|&(w, b)| DenseLayer {
                weight: flat[w.range()].iter().map(|&v| convert(v)).collect(),
                bias: flat[b.range()].iter().map(|&v| convert(v)).collect(),
            })
            .collect()
    }
}
