// Parameter updates in place, reading hyperparameters from a device-resident state block.
// CPU twin: src/cpu/optim.rs (and OptimState::tick in src/optimizer.rs).
//
// Weight decay is decoupled for every optimizer: w ← w·(1 − lr·wd) − lr·update.

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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Len {
    n: u32,
    threads_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: OptimState;
@group(0) @binding(5) var<uniform> len: Len;

fn index(gid: vec3<u32>) -> u32 {
    return gid.y * len.threads_x + gid.x;
}

// Once per training step, before the updates: advances t and Adam's bias corrections.
@compute @workgroup_size(1)
fn tick() {
    state.step += 1u;
    // Running products, not pow(): the same f32 multiplications as the CPU twin.
    state.beta1_power *= state.beta1;
    state.beta2_power *= state.beta2;
    state.bias_correction1 = 1.0 - state.beta1_power;
    state.bias_correction2 = 1.0 - state.beta2_power;
    state.grad_sq_sum = 0.0;
}

// Global-norm clipping factor: max_norm / ‖g‖ when ‖g‖ exceeds max_grad_norm (> 0), else 1.
fn clip_scale() -> f32 {
    let norm = sqrt(state.grad_sq_sum);
    if state.max_grad_norm > 0.0 && norm > state.max_grad_norm {
        return state.max_grad_norm / norm;
    }
    return 1.0;
}

const NORM_THREADS: u32 = 256u;
var<workgroup> partial: array<f32, NORM_THREADS>;

// state.grad_sq_sum += Σ g² for one gradient tensor: one workgroup, fixed reduction order.
// Run for every gradient between tick and the updates when clipping is on.
@compute @workgroup_size(256)
fn accumulate_grad_norm(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < len.n; i += NORM_THREADS) {
        s += g[i] * g[i];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = NORM_THREADS / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        state.grad_sq_sum += partial[0];
    }
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n {
        return;
    }
    let decay = 1.0 - state.lr * state.weight_decay;
    w[i] = w[i] * decay - state.lr * g[i] * clip_scale();
}

// m holds the velocity.
@compute @workgroup_size(256)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n {
        return;
    }
    let vel = state.momentum * m[i] + g[i] * clip_scale();
    m[i] = vel;
    let decay = 1.0 - state.lr * state.weight_decay;
    w[i] = w[i] * decay - state.lr * vel;
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n {
        return;
    }
    let grad = g[i] * clip_scale();
    let m1 = state.beta1 * m[i] + (1.0 - state.beta1) * grad;
    let v1 = state.beta2 * v[i] + (1.0 - state.beta2) * grad * grad;
    m[i] = m1;
    v[i] = v1;
    let m_hat = m1 / state.bias_correction1;
    let v_hat = v1 / state.bias_correction2;
    let decay = 1.0 - state.lr * state.weight_decay;
    w[i] = w[i] * decay - state.lr * m_hat / (sqrt(v_hat) + state.eps);
}
