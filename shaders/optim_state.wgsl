// The optimizer's state block: hyperparameters, step counter and non-finite bookkeeping.
// Prepended to optim.wgsl and dropout.wgsl. Rust twin: OptimState in src/optimizer.rs
// (the unit test in src/gpu/uniforms.rs checks that both agree field by field).

struct OptimState {
    lr: f32,
    momentum: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step: u32,
    beta1_power: f32,
    beta2_power: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    grad_sq_sum: f32,
    max_grad_norm: f32,
    skip_nonfinite: u32,
    step_nonfinite: u32,
    first_nonfinite_step: u32,
    skipped_steps: u32,
    alpha: f32,
    _pad: u32,
}

