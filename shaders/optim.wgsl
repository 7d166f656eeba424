// Parameter updates in place, reading hyperparameters from a device-resident state block.
// CPU twin: src/cpu/optim.rs (and OptimState::tick in src/optimizer.rs). Needs the state
// preludes (optim_state.wgsl, optim_step.wgsl).
//
// Weight decay is decoupled for every optimizer: w ← w·(1 − lr·wd) − lr·update.

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

// Once per training step, before anything reads the step: advances t and Adam's bias
// corrections (a dispatch of its own when dropout needs the step before the forward pass;
// otherwise loss_metrics in loss.wgsl does it).
@compute @workgroup_size(1)
fn tick() {
    tick_state();
}

// Whether the updates of this step are to be skipped.
fn skip_step() -> bool {
    return state.step_nonfinite != 0u && state.skip_nonfinite != 0u;
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

// The update rules, written once on vec4 and used by the scalar kernels on splatted values.
struct Updated {
    w: vec4<f32>,
    m: vec4<f32>,
    v: vec4<f32>,
}

fn decay() -> f32 {
    return 1.0 - state.lr * state.weight_decay;
}

fn sgd_rule(w0: vec4<f32>, g0: vec4<f32>) -> vec4<f32> {
    return w0 * decay() - state.lr * (g0 * clip_scale());
}

// m holds the velocity.
fn momentum_rule(w0: vec4<f32>, g0: vec4<f32>, m0: vec4<f32>) -> Updated {
    let vel = state.momentum * m0 + g0 * clip_scale();
    return Updated(w0 * decay() - state.lr * vel, vel, vec4<f32>(0.0));
}

// v holds the square average.
fn rmsprop_rule(w0: vec4<f32>, g0: vec4<f32>, v0: vec4<f32>) -> Updated {
    let grad = g0 * clip_scale();
    let v1 = state.alpha * v0 + (1.0 - state.alpha) * grad * grad;
    return Updated(w0 * decay() - state.lr * grad / (sqrt(v1) + state.eps), vec4<f32>(0.0), v1);
}

fn adam_rule(w0: vec4<f32>, g0: vec4<f32>, m0: vec4<f32>, v0: vec4<f32>) -> Updated {
    let grad = g0 * clip_scale();
    let m1 = state.beta1 * m0 + (1.0 - state.beta1) * grad;
    let v1 = state.beta2 * v0 + (1.0 - state.beta2) * grad * grad;
    let m_hat = m1 / state.bias_correction1;
    let v_hat = v1 / state.bias_correction2;
    return Updated(w0 * decay() - state.lr * m_hat / (sqrt(v_hat) + state.eps), m1, v1);
}

@compute @workgroup_size(256)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n || skip_step() {
        return;
    }
    w[i] = sgd_rule(vec4<f32>(w[i]), vec4<f32>(g[i])).x;
}

@compute @workgroup_size(256)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n || skip_step() {
        return;
    }
    let u = momentum_rule(vec4<f32>(w[i]), vec4<f32>(g[i]), vec4<f32>(m[i]));
    w[i] = u.w.x;
    m[i] = u.m.x;
}

@compute @workgroup_size(256)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n || skip_step() {
        return;
    }
    let u = adam_rule(vec4<f32>(w[i]), vec4<f32>(g[i]), vec4<f32>(m[i]), vec4<f32>(v[i]));
    w[i] = u.w.x;
    m[i] = u.m.x;
    v[i] = u.v.x;
}

@compute @workgroup_size(256)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n || skip_step() {
        return;
    }
    let u = rmsprop_rule(vec4<f32>(w[i]), vec4<f32>(g[i]), vec4<f32>(m[i]));
    w[i] = u.w.x;
    m[i] = u.v.x;
}

// The same updates four elements per invocation, for tensors whose length is a multiple of 4
// and whose views are 16-byte aligned: on a CPU adapter a vec4 load costs what a scalar one does.
// len.n counts vec4s here.
@group(0) @binding(10) var<storage, read_write> w4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> g4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read_write> v4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn sgd4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n || skip_step() {
        return;
    }
    w4[i] = sgd_rule(w4[i], g4[i]);
}

@compute @workgroup_size(256)
fn momentum4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n || skip_step() {
        return;
    }
    let u = momentum_rule(w4[i], g4[i], m4[i]);
    w4[i] = u.w;
    m4[i] = u.m;
}

@compute @workgroup_size(256)
fn adam4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n || skip_step() {
        return;
    }
    let u = adam_rule(w4[i], g4[i], m4[i], v4[i]);
    w4[i] = u.w;
    m4[i] = u.m;
    v4[i] = u.v;
}

@compute @workgroup_size(256)
fn rmsprop4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    if i >= len.n || skip_step() {
        return;
    }
    let u = rmsprop_rule(w4[i], g4[i], m4[i]);
    w4[i] = u.w;
    m4[i] = u.v;
}
