//! Optimizer choices and the small state block both backends update parameters from.

use bytemuck::{Pod, Zeroable};

/// How parameters move against their gradients.
///
/// Weight decay is *decoupled* (AdamW-style) for every optimizer:
/// `w ← w·(1 − lr·weight_decay) − lr·update`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// `update = g`.
    Sgd { lr: f32, weight_decay: f32 },
    /// PyTorch-style heavy ball: `v ← μ·v + g`, `update = v`.
    Momentum { lr: f32, momentum: f32, weight_decay: f32 },
    /// Adam with bias correction: `update = m̂ / (√v̂ + ε)`; with `weight_decay > 0` it is AdamW.
    Adam {
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
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

    /// How many state tensors of a parameter's size the optimizer keeps (0, 1 or 2).
    pub fn state_tensors(&self) -> usize {
        match self {
            Optimizer::Sgd { .. } => 0,
            Optimizer::Momentum { .. } => 1,
            Optimizer::Adam { .. } => 2,
        }
    }

    /// The learning rate the optimizer was configured with.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. } | Optimizer::Momentum { lr, .. } | Optimizer::Adam { lr, .. } => lr,
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
        }
        s
    }
}

/// Hyperparameters and step counter read by every parameter update of one training step.
///
/// The same 80 bytes live in a GPU storage buffer (`shaders/optim.wgsl`), where a one-thread
/// `tick` kernel advances the step on the device, so no per-step upload is needed.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct OptimState {
    pub lr: f32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
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
    pub _pad: [u32; 2],
}

impl OptimState {
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
