//! Optimizer choices and the small state block both backends update parameters from.
//!
//! Adding an optimizer: a variant here (with its moment names), its rule in
//! `shaders/optim.wgsl`, its CPU twin in `src/cpu/optim.rs`, and its entry in `src/gpu/optim.rs`.

use bytemuck::{Pod, Zeroable};

/// How parameters move against their gradients.
///
/// Weight decay is *decoupled* (AdamW-style) for every optimizer:
/// `w ← w·(1 − lr·weight_decay) − lr·update`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// `update = g`.
    Sgd {
        /// Learning rate, ≥ 0.
        lr: f32,
        /// Decoupled weight decay, ≥ 0 (0 turns it off).
        weight_decay: f32,
    },
    /// PyTorch-style heavy ball: `v ← μ·v + g`, `update = v`.
    Momentum {
        /// Learning rate, ≥ 0.
        lr: f32,
        /// Momentum factor μ, in [0, 1).
        momentum: f32,
        /// Decoupled weight decay, ≥ 0 (0 turns it off).
        weight_decay: f32,
    },
    /// Adam with bias correction: `update = m̂ / (√v̂ + ε)`; with `weight_decay > 0` it is AdamW.
    Adam {
        /// Learning rate, ≥ 0.
        lr: f32,
        /// Decay rate β₁ of the first moment, in [0, 1).
        beta1: f32,
        /// Decay rate β₂ of the second moment, in [0, 1).
        beta2: f32,
        /// ε added to the denominator for stability, > 0.
        eps: f32,
        /// Decoupled weight decay, ≥ 0 (> 0 makes it AdamW).
        weight_decay: f32,
    },
    /// RMSProp as PyTorch's default: `v ← α·v + (1−α)·g²`, `update = g / (√v + ε)`.
    RmsProp {
        /// Learning rate, ≥ 0.
        lr: f32,
        /// Smoothing constant α of the squared-gradient average, in [0, 1).
        alpha: f32,
        /// ε added to the denominator for stability, > 0.
        eps: f32,
        /// Decoupled weight decay, ≥ 0 (0 turns it off).
        weight_decay: f32,
    },
}

impl Optimizer {
    /// Plain SGD without weight decay.
    pub fn sgd(lr: f32) -> Self {
        Optimizer::Sgd { lr, weight_decay: 0.0 }
    }

    /// SGD with momentum `momentum`, without weight decay.
    pub fn momentum(lr: f32, momentum: f32) -> Self {
        Optimizer::Momentum {
            lr,
            momentum,
            weight_decay: 0.0,
        }
    }

    /// Adam with the usual β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// AdamW: Adam with decoupled weight decay.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }

    /// RMSProp with PyTorch's defaults α = 0.99, ε = 1e-8.
    pub fn rmsprop(lr: f32) -> Self {
        Optimizer::RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// Every optimizer name [`Optimizer::from_name`] takes.
    pub const NAMES: [&'static str; 5] = ["sgd", "momentum", "adam", "adamw", "rmsprop"];

    /// The optimizer called `name` (see [`Optimizer::NAMES`]) with its usual settings, learning
    /// rate `lr` (or the usual one for it: 0.1 for SGD, 0.05 for momentum, 1e-3 otherwise) and
    /// decoupled weight decay `weight_decay`.
    pub fn from_name(name: &str, lr: Option<f32>, weight_decay: f32) -> crate::Result<Self> {
        let lr = |default: f32| lr.unwrap_or(default);
        let optimizer = match name.to_ascii_lowercase().as_str() {
            "sgd" => Optimizer::Sgd {
                lr: lr(0.1),
                weight_decay,
            },
            "momentum" => Optimizer::Momentum {
                lr: lr(0.05),
                momentum: 0.9,
                weight_decay,
            },
            "adam" | "adamw" => Optimizer::adamw(lr(1e-3), weight_decay),
            "rmsprop" => Optimizer::RmsProp {
                lr: lr(1e-3),
                alpha: 0.99,
                eps: 1e-8,
                weight_decay,
            },
            other => {
                return Err(crate::Error::InvalidOption(format!(
                    "unknown optimizer {other:?}; expected one of {}",
                    Self::NAMES.join(", ")
                )));
            }
        };
        optimizer.validate()?;
        Ok(optimizer)
    }

    /// The name used on command lines and in checkpoints.
    pub fn kind(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Momentum { .. } => "momentum",
            Optimizer::Adam { .. } => "adam",
            Optimizer::RmsProp { .. } => "rmsprop",
        }
    }

    /// Names of the state tensors the optimizer keeps per parameter, as PyTorch's optimizers
    /// name them in their `state_dict` (checkpoints store them under `optimizer.{name}.…`).
    pub fn moment_names(&self) -> &'static [&'static str] {
        moment_names(self.kind()).expect("every optimizer kind has moment names")
    }

    /// How many state tensors of a parameter's size the optimizer keeps (0, 1 or 2).
    pub fn state_tensors(&self) -> usize {
        self.moment_names().len()
    }

    /// The learning rate the optimizer was configured with.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Momentum { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::RmsProp { lr, .. } => lr,
        }
    }

    /// Checks every hyperparameter: finite, in range; names the first that is not.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: &str, value: f32, range: &str| {
            Err(crate::Error::InvalidOption(format!(
                "{} {what} {value} must be {range}",
                self.kind()
            )))
        };
        let s = self.initial_state();
        if !(s.lr.is_finite() && s.lr >= 0.0) {
            return bad("learning rate", s.lr, "a finite number ≥ 0");
        }
        if !(s.weight_decay.is_finite() && s.weight_decay >= 0.0) {
            return bad("weight decay", s.weight_decay, "a finite number ≥ 0");
        }
        match *self {
            Optimizer::Momentum { momentum, .. } if !(0.0..1.0).contains(&momentum) => {
                bad("momentum", momentum, "in [0, 1)")
            }
            Optimizer::Adam { beta1, beta2, eps, .. } => {
                if !(0.0..1.0).contains(&beta1) {
                    bad("beta1", beta1, "in [0, 1)")
                } else if !(0.0..1.0).contains(&beta2) {
                    bad("beta2", beta2, "in [0, 1)")
                } else if !(eps.is_finite() && eps > 0.0) {
                    bad("eps", eps, "a finite number > 0")
                } else {
                    Ok(())
                }
            }
            Optimizer::RmsProp { alpha, eps, .. } => {
                if !(0.0..1.0).contains(&alpha) {
                    bad("alpha", alpha, "in [0, 1)")
                } else if !(eps.is_finite() && eps > 0.0) {
                    bad("eps", eps, "a finite number > 0")
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// A fresh state block (step 0) for this optimizer.
    pub fn initial_state(&self) -> OptimState {
        let mut s = OptimState {
            beta1_power: 1.0,
            beta2_power: 1.0,
            ..OptimState::zeroed()
        };
        match *self {
            Optimizer::Sgd { lr, weight_decay } => {
                s.lr = lr;
                s.weight_decay = weight_decay;
            }
            Optimizer::Momentum {
                lr,
                momentum,
                weight_decay,
            } => {
                s.lr = lr;
                s.momentum = momentum;
                s.weight_decay = weight_decay;
            }
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                s.lr = lr;
                s.beta1 = beta1;
                s.beta2 = beta2;
                s.eps = eps;
                s.weight_decay = weight_decay;
            }
            Optimizer::RmsProp {
                lr,
                alpha,
                eps,
                weight_decay,
            } => {
                s.lr = lr;
                s.alpha = alpha;
                s.eps = eps;
                s.weight_decay = weight_decay;
            }
        }
        s
    }

    /// The state block of a run: this optimizer's hyperparameters, the run's clipping and
    /// non-finite settings, and the progress (`step`, β powers) of `progress` if resuming.
    /// The one place settings and restored state meet, for both backends.
    pub fn state_for_run(
        &self,
        max_grad_norm: f32,
        skip_nonfinite: bool,
        progress: Option<&OptimProgress>,
    ) -> OptimState {
        let mut s = OptimState {
            max_grad_norm,
            skip_nonfinite: u32::from(skip_nonfinite),
            ..self.initial_state()
        };
        if let Some(p) = progress {
            s.step = p.step;
            s.beta1_power = p.beta1_power;
            s.beta2_power = p.beta2_power;
        }
        s
    }
}

/// The moment names of an optimizer kind (see [`Optimizer::moment_names`]), `None` if unknown.
pub fn moment_names(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "sgd" => Some(&[]),
        "momentum" => Some(&["momentum_buffer"]),
        "adam" => Some(&["exp_avg", "exp_avg_sq"]),
        "rmsprop" => Some(&["square_avg"]),
        _ => None,
    }
}

/// How far an optimizer has come: the scalar state a checkpoint keeps besides the moments.
/// Hyperparameters are not part of it: they come from the run's configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimProgress {
    /// Updates taken so far (Adam's `t`).
    pub step: u32,
    /// `β₁ᵗ` (Adam's running product).
    pub beta1_power: f32,
    /// `β₂ᵗ`.
    pub beta2_power: f32,
}

impl Default for OptimProgress {
    fn default() -> Self {
        OptimProgress {
            step: 0,
            beta1_power: 1.0,
            beta2_power: 1.0,
        }
    }
}

impl From<&OptimState> for OptimProgress {
    fn from(s: &OptimState) -> Self {
        OptimProgress {
            step: s.step,
            beta1_power: s.beta1_power,
            beta2_power: s.beta2_power,
        }
    }
}

/// Hyperparameters and step counter read by every parameter update of one training step.
///
/// The same 76 bytes live in a GPU storage buffer (`shaders/optim.wgsl`), where a one-thread
/// `tick` kernel advances the step on the device, so no per-step upload is needed.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct OptimState {
    /// Learning rate of the current step.
    pub lr: f32,
    /// Momentum factor μ (momentum SGD only).
    pub momentum: f32,
    /// Adam's β₁.
    pub beta1: f32,
    /// Adam's β₂.
    pub beta2: f32,
    /// ε of Adam and RMSProp.
    pub eps: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Updates taken so far (Adam's `t`).
    pub step: u32,
    /// `β₁ᵗ`, kept as a running product: `1 − pow(β, t)` through a library `pow` differs
    /// between CPU and GPU, and the subtraction magnifies it (β₂ = 0.999).
    pub beta1_power: f32,
    /// `β₂ᵗ`, a running product like `beta1_power`.
    pub beta2_power: f32,
    /// `1 − β₁ᵗ`, valid after [`OptimState::tick`].
    pub bias_correction1: f32,
    /// `1 − β₂ᵗ`, valid after [`OptimState::tick`].
    pub bias_correction2: f32,
    /// Σ g² over every gradient of the step (filled only when clipping is on).
    pub grad_sq_sum: f32,
    /// Clip gradients to this global L2 norm; 0 turns clipping off.
    pub max_grad_norm: f32,
    /// 1: a step whose loss is NaN or infinite leaves the parameters untouched; 0: it is
    /// applied (and training stops at the next readback).
    pub skip_nonfinite: u32,
    /// Whether the current step's loss is non-finite (set by the guard, read by the updates).
    pub step_nonfinite: u32,
    /// The first step (1-based) whose loss was non-finite; 0 if none.
    pub first_nonfinite_step: u32,
    /// Steps skipped because of a non-finite loss.
    pub skipped_steps: u32,
    /// RMSProp's smoothing constant α.
    pub alpha: f32,
    /// Unused padding, matching the WGSL struct in `shaders/optim_state.wgsl`.
    pub _pad: u32,
}

impl OptimState {
    /// This run's state continued from `progress` (a checkpoint's): step count and β powers
    /// from there, every setting (learning rate included) kept; per-run counters restart.
    pub fn resumed(&self, progress: &OptimProgress) -> OptimState {
        OptimState {
            step: progress.step,
            beta1_power: progress.beta1_power,
            beta2_power: progress.beta2_power,
            bias_correction1: 0.0,
            bias_correction2: 0.0,
            grad_sq_sum: 0.0,
            step_nonfinite: 0,
            first_nonfinite_step: 0,
            skipped_steps: 0,
            ..*self
        }
    }

    /// Advances to the next step; call once per training step before the updates.
    /// Twin of `tick` in `shaders/optim.wgsl`.
    pub fn tick(&mut self) {
        self.step += 1;
        self.beta1_power *= self.beta1;
        self.beta2_power *= self.beta2;
        self.bias_correction1 = 1.0 - self.beta1_power;
        self.bias_correction2 = 1.0 - self.beta2_power;
        self.grad_sq_sum = 0.0;
        self.step_nonfinite = 0;
    }

    /// Records whether this step's loss sum is finite (after [`OptimState::tick`]); returns
    /// whether the step's updates must be skipped. Twin of `guard` in `shaders/optim.wgsl`.
    pub fn guard(&mut self, loss_sum_finite: bool) -> bool {
        if loss_sum_finite {
            return false;
        }
        self.step_nonfinite = 1;
        if self.first_nonfinite_step == 0 {
            self.first_nonfinite_step = self.step;
        }
        if self.skip_nonfinite != 0 {
            self.skipped_steps += 1;
        }
        self.skip_nonfinite != 0
    }

    /// The factor every gradient is multiplied by: `max_norm / ‖g‖` when the global norm
    /// exceeds `max_grad_norm`, else 1. Twin of `clip_scale` in `shaders/optim.wgsl`.
    pub fn clip_scale(&self) -> f32 {
        let norm = self.grad_sq_sum.sqrt();
        if self.max_grad_norm > 0.0 && norm > self.max_grad_norm {
            self.max_grad_norm / norm
        } else {
            1.0
        }
    }
}
