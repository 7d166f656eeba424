//! A network's parameters on the host: initialisation and a readable summary.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

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
        let layers = (0..spec.layers())
            .map(|l| {
                let (fan_in, fan_out) = spec.layer_shape(l);
                let n = fan_in * fan_out;
                let weight: Vec<f32> = match spec.activation(l) {
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

    /// Builds a network from given parameters, checking every shape against the spec.
    pub fn from_layers(spec: &NetworkSpec, layers: Vec<DenseLayer>) -> Result<Network> {
        if layers.len() != spec.layers() {
            return Err(Error::InvalidNetwork(format!(
                "spec has {} layers, got {}",
                spec.layers(),
                layers.len()
            )));
        }
        for (l, layer) in layers.iter().enumerate() {
            let (fan_in, fan_out) = spec.layer_shape(l);
            if layer.weight.len() != fan_in * fan_out || layer.bias.len() != fan_out {
                return Err(Error::InvalidNetwork(format!(
                    "layer {l} should have weight [{fan_out}×{fan_in}] and bias [{fan_out}], got {} and {} values",
                    layer.weight.len(),
                    layer.bias.len()
                )));
            }
        }
        Ok(Network {
            spec: spec.clone(),
            layers,
        })
    }

    /// Weights plus biases.
    pub fn parameter_count(&self) -> usize {
        self.spec.parameter_count()
    }

    /// One line per layer with its shape, activation and exact parameter count.
    pub fn summary(&self) -> String {
        let spec = &self.spec;
        let arrows: Vec<String> = spec.sizes.iter().map(|s| s.to_string()).collect();
        let mut out = format!("network {} ({} loss)\n", arrows.join(" → "), spec.loss.name());
        for l in 0..spec.layers() {
            let (fan_in, fan_out) = spec.layer_shape(l);
            out.push_str(&format!(
                "  layer {l}: dense {fan_in} → {fan_out}, {:<10} {:>12} parameters (weight {fan_out}×{fan_in}, bias {fan_out})\n",
                spec.activation(l).name(),
                group_thousands(fan_in * fan_out + fan_out)
            ));
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
