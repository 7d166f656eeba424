//! The layers a model is made of, as data, and their text form (`dense512`, `relu`,
//! `dropout0.2`, `conv32k3p1`, `maxpool2`, `flatten`).

use crate::activation::Activation;

/// One layer of a sequential model.
///
/// A model is `input width → [Layer] → loss head`; each layer's output width follows from its
/// input's. The step program ([`crate::train`]) decides how layers run (a dense layer followed
/// by an activation runs as one fused dispatch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layer {
    /// Fully connected: weight `[units × in]` and bias `[units]`, as PyTorch's `nn.Linear`.
    Dense {
        /// Outputs.
        units: usize,
    },
    /// An elementwise nonlinearity.
    Activation(Activation),
    /// Inverted dropout: in training each element is zeroed with probability `rate` and the
    /// rest are scaled by `1/(1 − rate)`; at evaluation it passes its input through.
    Dropout {
        /// Probability of zeroing an element, in `[0, 1)`.
        rate: f32,
    },
    /// 2-D convolution over `[C × H × W]` images, as PyTorch's `nn.Conv2d`: weight
    /// `[out_channels × in_channels × kernel × kernel]`, bias `[out_channels]`, zero padding.
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Window side.
        kernel: usize,
        /// Step between windows.
        stride: usize,
        /// Zeros added on each side.
        padding: usize,
    },
    /// Max pooling over `kernel × kernel` windows, as PyTorch's `nn.MaxPool2d` (no padding).
    MaxPool2d {
        /// Window side.
        kernel: usize,
        /// Step between windows.
        stride: usize,
    },
    /// `[C × H × W]` to `C·H·W` features, as `torch.flatten(x, 1)`: the layout is already
    /// row-major, so nothing moves.
    Flatten,
    /// Batch normalization, as PyTorch's `nn.BatchNorm1d` after flat features and
    /// `nn.BatchNorm2d` after an image (per channel): learnable weight and bias, running mean
    /// and variance (momentum 0.1, ε 1e-5); batch statistics in training, running ones in
    /// evaluation.
    BatchNorm,
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
        if let Some(rest) = t.strip_prefix("conv") {
            return parse_conv(token, rest);
        }
        if let Some(rest) = t.strip_prefix("maxpool") {
            let (kernel, options) = leading_number(token, rest, "a kernel size, e.g. maxpool2")?;
            let stride = option(token, &options, 's')?.unwrap_or(kernel);
            return Ok(Layer::MaxPool2d { kernel, stride });
        }
        if t == "flatten" {
            return Ok(Layer::Flatten);
        }
        if t == "batchnorm" {
            return Ok(Layer::BatchNorm);
        }
        if let Some(rest) = t.strip_prefix("dropout") {
            let rate = rest
                .parse::<f32>()
                .map_err(|_| format!("layer {token:?}: dropout needs a rate, e.g. dropout0.2"))?;
            return Ok(Layer::Dropout { rate });
        }
        t.parse::<Activation>().map(Layer::Activation).map_err(|_| {
            format!(
                "unknown layer {token:?}; expected denseN (or N), dropoutP, convNkK[sS][pP], maxpoolK[sS], \
                 flatten, batchnorm, or an activation: {}",
                Activation::ALL.map(|a| a.name()).join(", ")
            )
        })
    }
}

/// `conv32k3p1` after `conv`: output channels, then `k` (kernel, required), `s` (stride,
/// default 1) and `p` (padding, default 0) in any order.
fn parse_conv(token: &str, rest: &str) -> Result<Layer, String> {
    let (out_channels, options) = leading_number(token, rest, "output channels and a kernel, e.g. conv32k3p1")?;
    let kernel = option(token, &options, 'k')?
        .ok_or_else(|| format!("layer {token:?}: conv needs a kernel size, e.g. conv32k3p1"))?;
    Ok(Layer::Conv2d {
        out_channels,
        kernel,
        stride: option(token, &options, 's')?.unwrap_or(1),
        padding: option(token, &options, 'p')?.unwrap_or(0),
    })
}

/// The whole number at the start of `rest` and the `letter+number` options after it.
fn leading_number(token: &str, rest: &str, wanted: &str) -> Result<(usize, Vec<(char, usize)>), String> {
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let value = rest[..digits]
        .parse::<usize>()
        .map_err(|_| format!("layer {token:?}: expected {wanted}"))?;
    let mut options = Vec::new();
    let mut tail = &rest[digits..];
    while let Some(letter) = tail.chars().next() {
        let after = &tail[letter.len_utf8()..];
        let n = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let number = after[..n]
            .parse::<usize>()
            .map_err(|_| format!("layer {token:?}: {letter:?} needs a whole number after it (expected {wanted})"))?;
        if options.iter().any(|&(l, _)| l == letter) {
            return Err(format!("layer {token:?}: {letter:?} is given twice"));
        }
        options.push((letter, number));
        tail = &after[n..];
    }
    Ok((value, options))
}

/// The value of option `letter`, erroring on letters the layer does not take.
fn option(token: &str, options: &[(char, usize)], letter: char) -> Result<Option<usize>, String> {
    let known: &[char] = if token.trim().to_ascii_lowercase().starts_with("conv") {
        &['k', 's', 'p']
    } else {
        &['s']
    };
    if let Some(&(bad, _)) = options.iter().find(|(l, _)| !known.contains(l)) {
        return Err(format!(
            "layer {token:?}: unknown option {bad:?}; this layer takes {}",
            known.iter().map(char::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(options.iter().find(|(l, _)| *l == letter).map(|&(_, v)| v))
}

/// The largest kernel, stride (and so padding) a conv or pooling layer takes: far past any real
/// network, and small enough that no shape arithmetic can overflow.
pub const MAX_WINDOW: usize = 1 << 16;
/// The most channels a conv layer takes (as dense widths: 2^30).
pub const MAX_CHANNELS: usize = 1 << 30;

impl Layer {
    /// Checks the layer's own settings (a dropout rate in `[0, 1)`, sizes of at least 1, a
    /// padding smaller than the kernel).
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Layer::Dropout { rate } if !(0.0..1.0).contains(&rate) => {
                Err(format!("dropout rate {rate} must be in [0, 1)"))
            }
            Layer::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                if out_channels == 0 || kernel == 0 || stride == 0 {
                    Err(format!("{self}: channels, kernel and stride must be at least 1"))
                } else if kernel > MAX_WINDOW || stride > MAX_WINDOW || out_channels > MAX_CHANNELS {
                    Err(format!(
                        "{self}: kernel and stride must be at most {MAX_WINDOW}, channels at most {MAX_CHANNELS}"
                    ))
                } else if padding >= kernel {
                    Err(format!(
                        "{self}: padding {padding} must be smaller than the kernel {kernel}"
                    ))
                } else {
                    Ok(())
                }
            }
            Layer::MaxPool2d { kernel, stride } if kernel == 0 || stride == 0 => {
                Err(format!("{self}: kernel and stride must be at least 1"))
            }
            Layer::MaxPool2d { kernel, stride } if kernel > MAX_WINDOW || stride > MAX_WINDOW => {
                Err(format!("{self}: kernel and stride must be at most {MAX_WINDOW}"))
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
            Layer::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                write!(f, "conv{out_channels}k{kernel}")?;
                if *stride != 1 {
                    write!(f, "s{stride}")?;
                }
                if *padding != 0 {
                    write!(f, "p{padding}")?;
                }
                Ok(())
            }
            Layer::MaxPool2d { kernel, stride } => {
                write!(f, "maxpool{kernel}")?;
                if stride != kernel {
                    write!(f, "s{stride}")?;
                }
                Ok(())
            }
            Layer::Flatten => f.write_str("flatten"),
            Layer::BatchNorm => f.write_str("batchnorm"),
        }
    }
}
