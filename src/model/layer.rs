//! The layers a model is made of, as data, and their text form (`dense512`, `relu`,
//! `dropout0.2`).

use crate::activation::Activation;

/// One layer of a sequential model.
///
/// A model is `input width → [Layer] → loss head`; each layer's output width follows from its
/// input's. The step program ([`crate::train`]) decides how layers run (a dense layer followed
/// by an activation runs as one fused dispatch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layer {
    /// Fully connected: weight `[units × in]` and bias `[units]`, as PyTorch's `nn.Linear`.
    Dense { units: usize },
    /// An elementwise nonlinearity.
    Activation(Activation),
    /// Inverted dropout: in training each element is zeroed with probability `rate` and the
    /// rest are scaled by `1/(1 − rate)`; at evaluation it passes its input through.
    Dropout { rate: f32 },
}

impl Layer {
    /// Parses one token of the text form: `dense512` (or a bare `512`), an activation name
    /// (`relu`, `sigmoid`, `tanh`, `leaky_relu`, `identity`), or `dropout0.2`.
    pub fn parse(token: &str) -> Result<Layer, String> {
        let t = token.trim().to_ascii_lowercase();
        let units = |digits: &str| {
            digits
                .parse::<usize>()
                .map(|units| Layer::Dense { units })
                .map_err(|_| format!("layer {token:?}: {digits:?} is not a whole number of units"))
        };
        if let Some(rest) = t.strip_prefix("dense") {
            return units(rest);
        }
        if t.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return units(&t);
        }
        if let Some(rest) = t.strip_prefix("dropout") {
            let rate = rest
                .parse::<f32>()
                .map_err(|_| format!("layer {token:?}: dropout needs a rate, e.g. dropout0.2"))?;
            return Ok(Layer::Dropout { rate });
        }
        t.parse::<Activation>().map(Layer::Activation).map_err(|_| {
            format!(
                "unknown layer {token:?}; expected denseN (or N), dropoutP, or an activation: {}",
                Activation::ALL.map(|a| a.name()).join(", ")
            )
        })
    }
}

impl Layer {
    /// Checks the layer's own settings (a dropout rate in `[0, 1)`).
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Layer::Dropout { rate } if !(0.0..1.0).contains(&rate) => {
                Err(format!("dropout rate {rate} must be in [0, 1)"))
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for Layer {
    /// The text form [`Layer::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::Dense { units } => write!(f, "dense{units}"),
            Layer::Activation(a) => f.write_str(a.name()),
            Layer::Dropout { rate } => write!(f, "dropout{rate}"),
        }
    }
}
