// Batch normalization over a batch of [C × S] samples (S = H·W after a conv, as BatchNorm2d;
// 1 after a dense layer, as BatchNorm1d), with an activation fused after it. CPU twin:
// src/cpu/batchnorm.rs. Needs the activation and optimizer-state preludes.
//
// Training normalizes each channel by its batch mean and (biased) variance over the B·S values,
// keeping them in `stats` for the backward pass; evaluation uses the running statistics. The
// running statistics are updated by the backward pass of a training step, after the loss guard,
// so a skipped step leaves them untouched: running = (1 − m)·running + m·batch, with the
// unbiased variance (as PyTorch).

struct BatchNormParams {
    rows: u32,
    channels: u32,
    spatial: u32,
    // Workgroups along x: channel = wid.y·groups_x + wid.x (one workgroup per channel).
    groups_x: u32,
    // Offset of β in `affine` and of dβ in `grads`.
    bias_at: u32,
    // Offsets of running_var and num_batches_tracked in `running`.
    var_at: u32,
    count_at: u32,
    // The activation fused after the normalization (forward).
    act: u32,
    // The activation fused into the input's producer, differentiated in dx (backward).
    input_act: u32,
    // Bit 0: write dx; bit 1: update the running statistics.
    flags: u32,
    eps: f32,
    momentum: f32,
    // Threads one grid row spans (evaluation: one thread per value).
    threads_x: u32,
    len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> affine: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> running: array<f32>;
@group(0) @binding(6) var<storage, read_write> grads: array<f32>;
@group(0) @binding(7) var<storage, read> state: OptimState;
@group(0) @binding(8) var<uniform> params: BatchNormParams;

const THREADS: u32 = 256u;
var<workgroup> partial_a: array<f32, THREADS>;
var<workgroup> partial_b: array<f32, THREADS>;

// Index of the k-th value (k < B·S) of channel c.
fn at(k: u32, c: u32) -> u32 {
    let s = params.spatial;
    return (k / s) * params.channels * s + c * s + k % s;
}

// Sums partial_a and partial_b over the workgroup in a fixed order; every lane gets the totals.
fn reduce(lid: u32) -> vec2<f32> {
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            partial_a[lid] += partial_a[lid + stride];
            partial_b[lid] += partial_b[lid + stride];
        }
        workgroupBarrier();
    }
    let totals = vec2<f32>(partial_a[0], partial_b[0]);
    workgroupBarrier();
    return totals;
}

// Training: batch mean and variance of channel c (two passes), kept in stats as
// [mean | 1/√(var + ε) | var], then out = act(γ·x̂ + β).
@compute @workgroup_size(256)
fn batch_norm_train(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.y * params.groups_x + wid.x;
    // Uniform control flow: the whole workgroup leaves together.
    if c >= params.channels {
        return;
    }
    let n = params.rows * params.spatial;
    var s = 0.0;
    for (var k = lid; k < n; k += THREADS) {
        s += x[at(k, c)];
    }
    partial_a[lid] = s;
    partial_b[lid] = 0.0;
    let mean = reduce(lid).x / f32(n);
    var q = 0.0;
    for (var k = lid; k < n; k += THREADS) {
        let d = x[at(k, c)] - mean;
        q += d * d;
    }
    partial_a[lid] = q;
    partial_b[lid] = 0.0;
    let variance = reduce(lid).x / f32(n);
    let inv_std = 1.0 / sqrt(variance + params.eps);
    if lid == 0u {
        stats[c] = mean;
        stats[params.channels + c] = inv_std;
        stats[2u * params.channels + c] = variance;
    }
    let gamma = affine[c];
    let beta = affine[params.bias_at + c];
    for (var k = lid; k < n; k += THREADS) {
        let i = at(k, c);
        out[i] = act_forward(params.act, gamma * (x[i] - mean) * inv_std + beta);
    }
}

// Evaluation: out = act(γ·(x − running_mean)/√(running_var + ε) + β), one thread per value.
@compute @workgroup_size(256)
fn batch_norm_eval(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * params.threads_x + gid.x;
    if i >= params.len {
        return;
    }
    let c = (i / params.spatial) % params.channels;
    let scale = affine[c] / sqrt(running[params.var_at + c] + params.eps);
    out[i] = act_forward(params.act, (x[i] - running[c]) * scale + affine[params.bias_at + c]);
}

// Backward of channel c with dy = dL/d(γ·x̂ + β): dγ = Σ dy·x̂, dβ = Σ dy, and
// dx = γ/(N·σ)·(N·dy − Σdy − x̂·Σdy·x̂) ⊙ input_act'(x). In a training step (flag bit 1, step not
// skipped) it also moves the running statistics towards this batch's.
@compute @workgroup_size(256)
fn batch_norm_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.y * params.groups_x + wid.x;
    if c >= params.channels {
        return;
    }
    let n = params.rows * params.spatial;
    let mean = stats[c];
    let inv_std = stats[params.channels + c];
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var k = lid; k < n; k += THREADS) {
        let i = at(k, c);
        let g = dy[i];
        sum_dy += g;
        sum_dy_xhat += g * (x[i] - mean) * inv_std;
    }
    partial_a[lid] = sum_dy;
    partial_b[lid] = sum_dy_xhat;
    let totals = reduce(lid);
    if lid == 0u {
        grads[c] = totals.y;
        grads[params.bias_at + c] = totals.x;
        let skipped = state.step_nonfinite != 0u && state.skip_nonfinite != 0u;
        if (params.flags & 2u) != 0u && !skipped {
            let m = params.momentum;
            let unbiased = stats[2u * params.channels + c] * f32(n) / f32(max(n, 2u) - 1u);
            running[c] = (1.0 - m) * running[c] + m * mean;
            running[params.var_at + c] = (1.0 - m) * running[params.var_at + c] + m * unbiased;
            if c == 0u {
                running[params.count_at] += 1.0;
            }
        }
    }
    if (params.flags & 1u) == 0u {
        return;
    }
    let scale = affine[c] * inv_std / f32(n);
    let nf = f32(n);
    for (var k = lid; k < n; k += THREADS) {
        let i = at(k, c);
        let xhat = (x[i] - mean) * inv_std;
        let d = scale * (nf * dy[i] - totals.x - xhat * totals.y);
        out[i] = d * act_derivative_from_output(params.input_act, x[i]);
    }
}
