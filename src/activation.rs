//! Activation functions shared by both backends (the GPU twin is `shaders/activation.wgsl`).

use num_traits::Float;

/// Negative-side slope of [`Activation::LeakyRelu`] (PyTorch's default).
pub const LEAKY_RELU_SLOPE: f32 = 0.01;

/// An elementwise nonlinearity applied after a dense layer.
///
/// Every derivative is expressed through the activation's *output* `a = act(z)`, so the
/// backward pass only needs the stored activations, never the pre-activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Activation {
    /// `a = z`: linear output layers.
    #[default]
    Identity,
    /// `a = max(z, 0)`.
    Relu,
    /// `a = 1 / (1 + e^-z)`.
    Sigmoid,
    /// `a = tanh(z)`.
    Tanh,
    /// `a = z` for `z > 0`, else [`LEAKY_RELU_SLOPE`]`·z`.
    LeakyRelu,
}

impl Activation {
    /// Every activation, for tests and command-line parsing.
    pub const ALL: [Activation; 5] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu,
    ];

    /// The code the WGSL kernels select this activation by (`override ACT`).
    pub fn shader_code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Sigmoid => 2,
            Activation::Tanh => 3,
            Activation::LeakyRelu => 4,
        }
    }

    /// Lower-case name, as used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::LeakyRelu => "leaky_relu",
        }
    }

    /// `act(z)`, computed without overflow for any finite `z`.
    #[inline]
    pub fn forward<T: Float>(self, z: T) -> T {
        match self {
            Activation::Identity => z,
            Activation::Relu => z.max(T::zero()),
            Activation::Sigmoid => stable_sigmoid(z),
            Activation::Tanh => stable_tanh(z),
            Activation::LeakyRelu => {
                if z > T::zero() {
                    z
                } else {
                    z * T::from(LEAKY_RELU_SLOPE).unwrap()
                }
            }
        }
    }

    /// `act'(z)` written in terms of the output `a = act(z)`.
    #[inline]
    pub fn derivative_from_output<T: Float>(self, a: T) -> T {
        match self {
            Activation::Identity => T::one(),
            Activation::Relu => {
                if a > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::Sigmoid => a * (T::one() - a),
            Activation::Tanh => T::one() - a * a,
            Activation::LeakyRelu => {
                if a > T::zero() {
                    T::one()
                } else {
                    T::from(LEAKY_RELU_SLOPE).unwrap()
                }
            }
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<_> = Activation::ALL.iter().map(|a| a.name()).collect();
                format!("unknown activation {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// Logistic sigmoid that never evaluates `exp` of a large positive number.
#[inline]
pub(crate) fn stable_sigmoid<T: Float>(z: T) -> T {
    if z >= T::zero() {
        T::one() / (T::one() + (-z).exp())
    } else {
        let e = z.exp();
        e / (T::one() + e)
    }
}

/// `tanh` through `e^{-2|z|}`, finite for any `z` (the GPU twin uses the same formula).
#[inline]
pub(crate) fn stable_tanh<T: Float>(z: T) -> T {
    let two = T::one() + T::one();
    let t = (-two * z.abs()).exp();
    let r = (T::one() - t) / (T::one() + t);
    if z < T::zero() { -r } else { r }
}
