// Once-per-step bookkeeping on the state block, shared by the kernels that do it (optim.wgsl's
// tick and guard, loss.wgsl's fused loss_metrics). Needs the state prelude and a
// read_write `state` binding in the including shader. CPU twin: OptimState::tick and
// OptimState::guard in src/optimizer.rs.

// Advances t and Adam's bias corrections.
fn tick_state() {
    state.step += 1u;
    // Running products, not pow(): the same f32 multiplications as the CPU twin.
    state.beta1_power *= state.beta1;
    state.beta2_power *= state.beta2;
    state.bias_correction1 = 1.0 - state.beta1_power;
    state.bias_correction2 = 1.0 - state.beta2_power;
    state.grad_sq_sum = 0.0;
    state.step_nonfinite = 0u;
}

// Flags a step with `bad_rows` non-finite per-sample losses, remembers the first such step,
// and (when asked) makes the updates skip it.
fn guard_state(bad_rows: u32) {
    if bad_rows > 0u {
        state.step_nonfinite = 1u;
        if state.first_nonfinite_step == 0u {
            state.first_nonfinite_step = state.step;
        }
        if state.skip_nonfinite != 0u {
            state.skipped_steps += 1u;
        }
    }
}

// Whether a float is NaN or ±infinity (exponent bits all ones), robust to fast-math folding.
fn is_nonfinite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}
