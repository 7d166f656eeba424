// Loss heads: per-sample loss and dZ (including the batch mean's 1/B) in one pass.
// CPU twin: src/cpu/loss.rs. One invocation per sample (row).

struct Shape {
    rows: u32,
    cols: u32,
    threads_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss_rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<uniform> shape: Shape;

fn row_index(gid: vec3<u32>) -> u32 {
    return gid.y * shape.threads_x + gid.x;
}

// A label the host failed to reject turns into a NaN loss (caught by the non-finite guard)
// instead of an out-of-bounds read.
fn quiet_nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// loss = logsumexp(z) − z[y] (max-subtracted); dz = (softmax(z) − onehot(y)) / B.
@compute @workgroup_size(64)
fn softmax_cross_entropy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = row_index(gid);
    if r >= shape.rows {
        return;
    }
    let base = r * shape.cols;
    var max_z = z[base];
    for (var j = 1u; j < shape.cols; j++) {
        max_z = max(max_z, z[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < shape.cols; j++) {
        sum += exp(z[base + j] - max_z);
    }
    let y = labels[r];
    let inv_b = 1.0 / f32(shape.rows);
    let inv_sum = 1.0 / sum;
    for (var j = 0u; j < shape.cols; j++) {
        let p = exp(z[base + j] - max_z) * inv_sum;
        dz[base + j] = (p - select(0.0, 1.0, j == y)) * inv_b;
    }
    if y < shape.cols {
        loss_rows[r] = log(sum) + max_z - z[base + y];
    } else {
        loss_rows[r] = quiet_nan();
    }
}

// loss = Σ_j max(z,0) − z·y + ln(1 + e^{−|z|}); dz = (σ(z) − y) / B. Stable for any finite z.
@compute @workgroup_size(64)
fn sigmoid_binary_cross_entropy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = row_index(gid);
    if r >= shape.rows {
        return;
    }
    let base = r * shape.cols;
    let inv_b = 1.0 / f32(shape.rows);
    var loss = 0.0;
    for (var j = 0u; j < shape.cols; j++) {
        let v = z[base + j];
        let y = targets[base + j];
        let e = exp(-abs(v));
        loss += max(v, 0.0) - v * y + log(1.0 + e);
        // σ(v) from the same e = e^{−|v|}, so no exp of a large positive number.
        let sigma = select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
        dz[base + j] = (sigma - y) * inv_b;
    }
    loss_rows[r] = loss;
}

// The regression heads, one kernel like the CPU's difference_head: per element of z − y a
// (loss, dz) pair. HEAD 0: squared error, loss = Σ_j (z − y)², dz = 2(z − y) / B;
// HEAD 1: absolute error, loss = Σ_j |z − y|, dz = sign(z − y) / B (0 where equal).
override HEAD: u32 = 0u;

fn difference_terms(diff: f32, inv_b: f32) -> vec2<f32> {
    if HEAD == 1u {
        return vec2<f32>(abs(diff), select(select(0.0, -inv_b, diff < 0.0), inv_b, diff > 0.0));
    }
    return vec2<f32>(diff * diff, diff * (2.0 * inv_b));
}

@compute @workgroup_size(64)
fn difference_head(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = row_index(gid);
    if r >= shape.rows {
        return;
    }
    let base = r * shape.cols;
    let inv_b = 1.0 / f32(shape.rows);
    var loss = 0.0;
    for (var j = 0u; j < shape.cols; j++) {
        let terms = difference_terms(z[base + j] - targets[base + j], inv_b);
        loss += terms.x;
        dz[base + j] = terms.y;
    }
    loss_rows[r] = loss;
}
