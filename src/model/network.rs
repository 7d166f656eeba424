//! A network's parameters on the host: initialisation and a readable summary.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::layer::Layer;
use super::spec::NetworkSpec;
use super::tensors::{Init, TensorRole};
use crate::activation::Activation;
use crate::error::{Error, Result};

/// One named tensor of a layer, as `f32` values (row-major, the shape its declaration gives).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Its name after `layers.{i}.` (`weight`, `bias`, `running_mean`, …).
    pub name: &'static str,
    /// Its values.
    pub values: Vec<f32>,
}

/// The tensors one layer owns, in the order its kind declares them ([`crate::model::ParamKind::tensors`]).
/// Optimizer moments use the same type with the parameters only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerTensors {
    /// Its tensors.
    pub tensors: Vec<NamedTensor>,
}

impl LayerTensors {
    /// A dense or conv layer's tensors: its weight and bias.
    pub fn weight_and_bias(weight: Vec<f32>, bias: Vec<f32>) -> Self {
        LayerTensors {
            tensors: vec![
                NamedTensor {
                    name: "weight",
                    values: weight,
                },
                NamedTensor {
                    name: "bias",
                    values: bias,
                },
            ],
        }
    }

    /// The values of tensor `name`, if the layer has it.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.tensors.iter().find(|t| t.name == name).map(|t| &t.values[..])
    }

    /// The values of tensor `name`, to change them.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        self.tensors
            .iter_mut()
            .find(|t| t.name == name)
            .map(|t| &mut t.values[..])
    }

    /// The weight (every layer kind with tensors has one).
    pub fn weight(&self) -> &[f32] {
        self.get("weight").unwrap_or(&[])
    }

    /// The bias (every layer kind with tensors has one).
    pub fn bias(&self) -> &[f32] {
        self.get("bias").unwrap_or(&[])
    }
}

/// A network: its spec and every layer's tensors, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// What the network is.
    pub spec: NetworkSpec,
    /// The tensors of each layer that owns any ([`NetworkSpec::param_layers`]), in order.
    pub layers: Vec<LayerTensors>,
}

impl Network {
    /// Seeded initialisation: He (normal, `σ = √(2/fan_in)`) before ReLU-like activations,
    /// Glorot (uniform, `±√(6/(fan_in+fan_out))`) before sigmoid, tanh and the linear output;
    /// biases start at zero, batch norm as PyTorch's (weight 1, running variance 1). The same
    /// seed gives the same parameters on every machine.
    pub fn init(spec: &NetworkSpec, seed: u64) -> Network {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = spec
            .param_layers()
            .map(|l| LayerTensors {
                tensors: l
                    .tensors
                    .iter()
                    .map(|t| NamedTensor {
                        name: t.name,
                        values: init_values(t.init, t.len(), l.activation_after, &mut rng),
                    })
                    .collect(),
            })
            .collect();
        Network {
            spec: spec.clone(),
            layers,
        }
    }

    /// [`Network::init`] after checking, with overflow-checked arithmetic, that the parameters
    /// fit in the host memory available now: a model too large is an error naming the layer,
    /// the bytes needed and the limit, never an aborted allocation.
    pub fn try_init(spec: &NetworkSpec, seed: u64) -> Result<Network> {
        crate::memory::check_host(spec, 1, 0)?;
        Ok(Self::init(spec, seed))
    }

    /// Builds a network from given parameters, checking every shape against the spec.
    pub fn from_layers(spec: &NetworkSpec, layers: Vec<LayerTensors>) -> Result<Network> {
        check_tensors(spec, &layers, false)?;
        Ok(Network {
            spec: spec.clone(),
            layers,
        })
    }

    /// Whether every value of every tensor is a finite number.
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .flat_map(|l| &l.tensors)
            .all(|t| t.values.iter().all(|v| v.is_finite()))
    }

    /// Trainable values (weights and biases).
    pub fn parameter_count(&self) -> usize {
        self.spec.parameter_count()
    }

    /// One line per layer with its shape and exact parameter count, then the total.
    pub fn summary(&self) -> String {
        let spec = &self.spec;
        let mut out = format!("model {} ({} loss)\n", spec.text(), spec.loss.name());
        let shapes = spec.shapes();
        let mut owners = spec.param_layers().peekable();
        for (position, layer) in spec.layers.iter().enumerate() {
            let (input, output) = (shapes[position], shapes[position + 1]);
            let owner = owners.next_if(|l| l.position == position);
            let (count, tensors) = match &owner {
                Some(l) => (
                    l.parameter_count(),
                    l.tensors
                        .iter()
                        .map(|t| {
                            let dims: Vec<String> = t.shape.iter().map(usize::to_string).collect();
                            format!(
                                "{} {}",
                                t.name,
                                if dims.is_empty() { "[]".into() } else { dims.join("×") }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                None => (0, String::new()),
            };
            let name = match layer {
                Layer::Dense { units } => format!("dense {} → {units}", input.len()),
                Layer::Conv2d { .. } | Layer::BatchNorm => format!("{layer} {input}"),
                Layer::Activation(_) | Layer::Dropout { .. } | Layer::MaxPool2d { .. } | Layer::Flatten => {
                    layer.to_string()
                }
            };
            let mut line = format!("{name:<24} {:>12} parameters", group_thousands(count));
            if !tensors.is_empty() {
                line.push_str(&format!(" ({tensors})"));
            }
            // Layers that change the sample's shape say what comes out.
            let reshapes = match layer {
                Layer::Conv2d { .. } | Layer::MaxPool2d { .. } | Layer::Flatten => true,
                Layer::Dense { .. } | Layer::Activation(_) | Layer::Dropout { .. } | Layer::BatchNorm => false,
            };
            if reshapes {
                line.push_str(&format!(" → {output}"));
            }
            out.push_str(&format!("  {position:>2}: {line}\n"));
        }
        let total = self.parameter_count();
        out.push_str(&format!(
            "  total: {} parameters ({:.2} MiB as f32)",
            group_thousands(total),
            (total * 4) as f64 / (1 << 20) as f64
        ));
        out
    }
}

/// Starting values of a tensor of `len` values.
fn init_values(init: Init, len: usize, activation_after: Activation, rng: &mut ChaCha8Rng) -> Vec<f32> {
    match init {
        Init::Zeros => vec![0.0; len],
        Init::Ones => vec![1.0; len],
        Init::Weight { fan_in, fan_out } => match activation_after {
            Activation::Relu | Activation::LeakyRelu => {
                let normal = Normal::new(0.0, (2.0 / fan_in as f64).sqrt()).expect("positive std");
                (0..len).map(|_| normal.sample(rng) as f32).collect()
            }
            Activation::Sigmoid | Activation::Tanh | Activation::Identity => {
                let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
                let uniform = Uniform::new_inclusive(-a, a).expect("finite bounds");
                (0..len).map(|_| uniform.sample(rng) as f32).collect()
            }
        },
    }
}

/// Checks that `layers` holds, for each layer of `spec` that owns tensors, the tensors it
/// declares (`parameters_only`: just its parameters, as optimizer moments do), by name and size.
pub(crate) fn check_tensors(spec: &NetworkSpec, layers: &[LayerTensors], parameters_only: bool) -> Result<()> {
    let count = spec.param_layer_count();
    if layers.len() != count {
        return Err(Error::InvalidNetwork(format!(
            "model {} has {count} layers with tensors, got tensors for {}",
            spec.text(),
            layers.len()
        )));
    }
    for (l, given) in spec.param_layers().zip(layers) {
        let expected: Vec<_> = l
            .tensors
            .iter()
            .filter(|t| !parameters_only || t.role == TensorRole::Parameter)
            .collect();
        let names = |ts: &mut dyn Iterator<Item = &'static str>| ts.collect::<Vec<_>>().join(", ");
        if expected.len() != given.tensors.len() || expected.iter().zip(&given.tensors).any(|(e, g)| e.name != g.name) {
            return Err(Error::InvalidNetwork(format!(
                "layer {} ({}) should have tensors [{}], got [{}]",
                l.index,
                spec.layers[l.position],
                names(&mut expected.iter().map(|t| t.name)),
                names(&mut given.tensors.iter().map(|t| t.name))
            )));
        }
        for (e, g) in expected.iter().zip(&given.tensors) {
            if g.values.len() != e.len() {
                return Err(Error::InvalidNetwork(format!(
                    "layer {} tensor {} should have shape {:?} ({} values), got {} values",
                    l.index,
                    e.name,
                    e.shape,
                    e.len(),
                    g.values.len()
                )));
            }
        }
    }
    Ok(())
}

/// `109386` → `109,386`.
pub fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
