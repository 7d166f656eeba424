//! A network's parameters on the host: initialisation and a readable summary.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use super::layer::Layer;
use super::spec::NetworkSpec;
use crate::activation::Activation;
use crate::error::{Error, Result};

/// One dense layer's parameters: `weight [out × in]` (as PyTorch's `nn.Linear`), `bias [out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A network: its spec and every layer's parameters, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub spec: NetworkSpec,
    pub layers: Vec<DenseLayer>,
}

impl Network {
    /// Seeded initialisation: He (normal, `σ = √(2/fan_in)`) before ReLU-like activations,
    /// Glorot (uniform, `±√(6/(fan_in+fan_out))`) before sigmoid, tanh and the linear output;
    /// biases start at zero. The same seed gives the same parameters on every machine.
    pub fn init(spec: &NetworkSpec, seed: u64) -> Network {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = spec
            .dense()
            .map(|d| {
                let (fan_in, fan_out) = (d.fan_in, d.fan_out);
                let n = fan_in * fan_out;
                let weight: Vec<f32> = match d.activation_after {
                    Activation::Relu | Activation::LeakyRelu => {
                        let normal = Normal::new(0.0, (2.0 / fan_in as f64).sqrt()).expect("positive std");
                        (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
                    }
                    Activation::Sigmoid | Activation::Tanh | Activation::Identity => {
                        let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
                        let uniform = Uniform::new_inclusive(-a, a).expect("finite bounds");
                        (0..n).map(|_| uniform.sample(&mut rng) as f32).collect()
                    }
                };
                DenseLayer {
                    weight,
                    bias: vec![0.0; fan_out],
                }
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
    pub fn from_layers(spec: &NetworkSpec, layers: Vec<DenseLayer>) -> Result<Network> {
        check_shapes(spec, &layers)?;
        Ok(Network {
            spec: spec.clone(),
            layers,
        })
    }

    /// Whether every weight and bias is a finite number.
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.weight.iter().chain(&l.bias).all(|v| v.is_finite()))
    }

    /// Weights plus biases.
    pub fn parameter_count(&self) -> usize {
        self.spec.parameter_count()
    }

    /// One line per layer with its shape and exact parameter count, then the total.
    pub fn summary(&self) -> String {
        let spec = &self.spec;
        let mut out = format!("model {} ({} loss)\n", spec.text(), spec.loss.name());
        let shapes = spec.shapes();
        let mut params = spec.dense();
        for (position, layer) in spec.layers.iter().enumerate() {
            let (input, output) = (shapes[position], shapes[position + 1]);
            let line = match *layer {
                Layer::Dense { units } => {
                    let width = input.len();
                    params.next();
                    format!(
                        "{:<24} {:>12} parameters (weight {units}×{width}, bias {units})",
                        format!("dense {width} → {units}"),
                        group_thousands(width * units + units)
                    )
                }
                Layer::Conv2d { out_channels, .. } => {
                    let d = params.next().expect("a conv layer has parameters");
                    let g = d.conv.expect("a conv layer has its geometry");
                    format!(
                        "{:<24} {:>12} parameters (weight {out_channels}×{}×{k}×{k}, bias {out_channels}) → {output}",
                        format!("{layer} {input}"),
                        group_thousands(d.fan_in * d.fan_out + d.fan_out),
                        g.in_channels,
                        k = g.kernel,
                    )
                }
                Layer::MaxPool2d { .. } | Layer::Flatten => {
                    format!("{:<24} {:>12} parameters → {output}", layer.to_string(), 0)
                }
                // Layers without parameters print their text form.
                other => format!("{:<24} {:>12} parameters", other.to_string(), 0),
            };
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

/// Checks that `layers` has one weight `[out × in]` and bias `[out]` per dense layer of `spec`.
pub(crate) fn check_shapes(spec: &NetworkSpec, layers: &[DenseLayer]) -> Result<()> {
    if layers.len() != spec.dense_count() {
        return Err(Error::InvalidNetwork(format!(
            "spec has {} dense layers, got {}",
            spec.dense_count(),
            layers.len()
        )));
    }
    for (d, layer) in spec.dense().zip(layers) {
        let (l, fan_in, fan_out) = (d.index, d.fan_in, d.fan_out);
        if layer.weight.len() != fan_in * fan_out || layer.bias.len() != fan_out {
            return Err(Error::InvalidNetwork(format!(
                "layer {l} should have weight [{fan_out}×{fan_in}] and bias [{fan_out}], got {} and {} values",
                layer.weight.len(),
                layer.bias.len()
            )));
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
