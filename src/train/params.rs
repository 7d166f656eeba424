//! Flat tensors: every tensor a model's layers declare at a fixed offset in one of two flat
//! buffers — parameters (trained by the optimizer) and state (kept by the layers themselves,
//! such as batch norm's running statistics). The gradients and each optimizer moment are flat
//! buffers of the parameters' layout, so an optimizer update is one loop (CPU) or one dispatch
//! per binding-sized chunk (GPU) over the whole model, and never touches the state.

use crate::model::{LayerTensors, NamedTensor, NetworkSpec, TensorDecl, TensorRole};

/// Tensor offsets are multiples of this many elements (256 bytes, the largest storage-binding
/// offset alignment WebGPU allows), so every tensor can be bound on its own on any device.
pub(crate) const ALIGN: usize = 64;

/// One tensor inside a flat buffer: `rows × cols` values at `offset` (rows: its first
/// dimension; cols: the rest).
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

    /// From the start of `self` to the end of `last` (a layer's consecutive tensors, bound as
    /// one view).
    pub fn through(&self, last: ParamTensor) -> std::ops::Range<usize> {
        self.offset..last.offset + last.len()
    }
}

/// Where one layer's tensors live: its parameters in the parameter buffer and its state in the
/// state buffer, each in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerSlots {
    pub params: Vec<ParamTensor>,
    pub state: Vec<ParamTensor>,
    decls: Vec<TensorDecl>,
}

impl LayerSlots {
    /// The weight and bias, which every layer kind declares as its first two parameters.
    pub fn weight_bias(&self) -> (ParamTensor, ParamTensor) {
        (self.params[0], self.params[1])
    }
}

/// Where every layer's tensors live. Padding between tensors holds zeros in parameters,
/// gradients and moments alike, so updating it is harmless (every rule maps a zero weight with a
/// zero gradient and zero state to zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamLayout {
    /// Each layer with tensors, in [`NetworkSpec::param_layers`] order.
    pub layers: Vec<LayerSlots>,
    /// Elements of the flat parameter buffer, padding included.
    pub len: usize,
    /// Elements of the flat state buffer, padding included.
    pub state_len: usize,
}

impl ParamLayout {
    pub fn new(spec: &NetworkSpec) -> Self {
        let (mut len, mut state_len) = (0, 0);
        let place = |end: &mut usize, decl: &TensorDecl| {
            let t = ParamTensor {
                offset: *end,
                rows: decl.rows(),
                cols: decl.len() / decl.rows().max(1),
            };
            *end += decl.len().div_ceil(ALIGN) * ALIGN;
            t
        };
        let layers = spec
            .param_layers()
            .map(|l| {
                let mut slots = LayerSlots {
                    params: Vec::new(),
                    state: Vec::new(),
                    decls: l.tensors.clone(),
                };
                for decl in &l.tensors {
                    match decl.role {
                        TensorRole::Parameter => slots.params.push(place(&mut len, decl)),
                        TensorRole::State => slots.state.push(place(&mut state_len, decl)),
                    }
                }
                slots
            })
            .collect();
        ParamLayout { layers, len, state_len }
    }

    /// The tensors of `role` laid out flat (zeros in the padding); `layers` may hold every
    /// tensor or, as optimizer moments do, only the parameters.
    fn flatten_role<T: Copy>(&self, layers: &[LayerTensors], role: TensorRole, convert: impl Fn(f32) -> T) -> Vec<T> {
        let len = match role {
            TensorRole::Parameter => self.len,
            TensorRole::State => self.state_len,
        };
        let mut flat = vec![convert(0.0); len];
        for (slots, layer) in self.layers.iter().zip(layers) {
            let placed = match role {
                TensorRole::Parameter => &slots.params,
                TensorRole::State => &slots.state,
            };
            let decls = slots.decls.iter().filter(|d| d.role == role);
            for (decl, t) in decls.zip(placed) {
                let values = layer.get(decl.name).unwrap_or(&[]);
                for (dst, &src) in flat[t.range()].iter_mut().zip(values) {
                    *dst = convert(src);
                }
            }
        }
        flat
    }

    /// The parameters of `layers` laid out flat.
    pub fn flatten<T: Copy>(&self, layers: &[LayerTensors], convert: impl Fn(f32) -> T) -> Vec<T> {
        self.flatten_role(layers, TensorRole::Parameter, convert)
    }

    /// The state tensors of `layers` laid out flat.
    pub fn flatten_state<T: Copy>(&self, layers: &[LayerTensors], convert: impl Fn(f32) -> T) -> Vec<T> {
        self.flatten_role(layers, TensorRole::State, convert)
    }

    /// Flat parameters (and, with `state`, the flat state) cut back into each layer's tensors,
    /// in declaration order.
    pub fn unflatten<T: Copy>(&self, flat: &[T], state: Option<&[T]>, convert: impl Fn(T) -> f32) -> Vec<LayerTensors> {
        self.layers
            .iter()
            .map(|slots| {
                let (mut params, mut kept) = (slots.params.iter(), slots.state.iter());
                let tensors = slots
                    .decls
                    .iter()
                    .filter_map(|decl| {
                        let (buffer, t) = match decl.role {
                            TensorRole::Parameter => (flat, params.next()?),
                            TensorRole::State => (state?, kept.next()?),
                        };
                        Some(NamedTensor {
                            name: decl.name,
                            values: buffer[t.range()].iter().map(|&v| convert(v)).collect(),
                        })
                    })
                    .collect();
                LayerTensors { tensors }
            })
            .collect()
    }
}
