// The loss head and the step's bookkeeping in one single-workgroup dispatch: per-sample loss and
// dZ (the batch mean's 1/B included), the batch's loss sum and correct count added to the device
// totals, then the step's tick and non-finite guard, so a training step needs no readback and no
// second dispatch. CPU twins: src/cpu/loss.rs (the heads) and cpu::batch_metrics
// (src/cpu/metrics.rs). Needs the state preludes (optim_state.wgsl, optim_step.wgsl).

struct LossParams {
    rows: u32,
    cols: u32,
    // Bit 0: count correct predictions (the batch has class labels). Bit 1: run the non-finite
    // guard (training). Bit 2: advance the step first (training without dropout).
    flags: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss_rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;
@group(0) @binding(5) var<uniform> params: LossParams;
@group(0) @binding(6) var<storage, read_write> correct: array<u32>;
@group(0) @binding(7) var<storage, read_write> total: array<f32>;
@group(0) @binding(8) var<storage, read_write> state: OptimState;

// The head: 0 softmax + cross-entropy, 1 sigmoid + binary cross-entropy, 2 squared error,
// 3 absolute error.
override HEAD: u32 = 0u;

// A quiet NaN's bits in a private variable: WGSL rejects a NaN const-expression (Tint refuses
// `bitcast<f32>(0x7fc00000u)` at shader creation), a variable's value is a run-time one.
var<private> quiet_nan_bits: u32 = 0x7fc00000u;

// A label the host failed to reject, or a row with a non-finite score, turns into a NaN loss
// (caught by the non-finite guard) instead of an out-of-bounds read.
fn quiet_nan() -> f32 {
    return bitcast<f32>(quiet_nan_bits);
}

// loss = logsumexp(z) − z[y] (max-subtracted); dz = (softmax(z) − onehot(y)) / B.
fn softmax_cross_entropy_row(r: u32, inv_b: f32) -> f32 {
    let base = r * params.cols;
    var max_z = z[base];
    for (var j = 1u; j < params.cols; j++) {
        max_z = max(max_z, z[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        sum += exp(z[base + j] - max_z);
    }
    let y = labels[r];
    let inv_sum = 1.0 / sum;
    for (var j = 0u; j < params.cols; j++) {
        let p = exp(z[base + j] - max_z) * inv_sum;
        dz[base + j] = (p - select(0.0, 1.0, j == y)) * inv_b;
    }
    if y < params.cols {
        return log(sum) + max_z - z[base + y];
    }
    return quiet_nan();
}

// loss = Σ_j max(z,0) − z·y + ln(1 + e^{−|z|}); dz = (σ(z) − y) / B. Stable for any finite z.
fn sigmoid_binary_cross_entropy_row(r: u32, inv_b: f32) -> f32 {
    let base = r * params.cols;
    var loss = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        let v = z[base + j];
        let y = targets[base + j];
        let e = exp(-abs(v));
        loss += max(v, 0.0) - v * y + log(1.0 + e);
        // σ(v) from the same e = e^{−|v|}, so no exp of a large positive number.
        let sigma = select(e / (1.0 + e), 1.0 / (1.0 + e), v >= 0.0);
        dz[base + j] = (sigma - y) * inv_b;
    }
    return loss;
}

// The regression heads, like the CPU's difference_head: per element of z − y a (loss, dz) pair.
// Squared error: loss = Σ_j (z − y)², dz = 2(z − y) / B; absolute error: loss = Σ_j |z − y|,
// dz = sign(z − y) / B (0 where equal).
fn difference_terms(diff: f32, inv_b: f32) -> vec2<f32> {
    if HEAD == 3u {
        return vec2<f32>(abs(diff), select(select(0.0, -inv_b, diff < 0.0), inv_b, diff > 0.0));
    }
    return vec2<f32>(diff * diff, diff * (2.0 * inv_b));
}

fn difference_row(r: u32, inv_b: f32) -> f32 {
    let base = r * params.cols;
    var loss = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        let terms = difference_terms(z[base + j] - targets[base + j], inv_b);
        loss += terms.x;
        dz[base + j] = terms.y;
    }
    return loss;
}

// Row r's loss through the chosen head, writing its dz.
fn head_row(r: u32, inv_b: f32) -> f32 {
    switch HEAD {
        case 0u: { return softmax_cross_entropy_row(r, inv_b); }
        case 1u: { return sigmoid_binary_cross_entropy_row(r, inv_b); }
        default: { return difference_row(r, inv_b); }
    }
}

// Whether x is NaN, from its bits: GPU compilers may fold float comparisons with NaN (GLSL
// leaves them undefined), so they cannot be trusted to detect it.
fn is_nan_bits(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// Whether row r holds a NaN or infinite score. WGSL lets an implementation assume finite math,
// so a NaN need not survive exp, max or a sum (SwiftShader's exp turns it into +inf, another
// driver may turn it into 0): a bad score is found from its bits, not from the loss it makes.
fn row_nonfinite(r: u32) -> bool {
    let base = r * params.cols;
    var bad = false;
    for (var j = 0u; j < params.cols; j++) {
        bad = bad || is_nonfinite(z[base + j]);
    }
    return bad;
}

// Whether row r's first maximum sits at its label (a label outside 0..cols never matches, nor
// does a row with a NaN score: its argmax is undefined).
fn row_correct(r: u32) -> bool {
    let base = r * params.cols;
    var best = 0u;
    var best_value = z[base];
    var nan = is_nan_bits(best_value);
    for (var j = 1u; j < params.cols; j++) {
        let v = z[base + j];
        nan = nan || is_nan_bits(v);
        if v > best_value {
            best = j;
            best_value = v;
        }
    }
    return best == labels[r] && !nan;
}

const THREADS: u32 = 256u;
var<workgroup> part_loss: array<f32, THREADS>;
var<workgroup> part_correct: array<u32, THREADS>;
var<workgroup> part_bad: array<u32, THREADS>;

// One workgroup; invocation t takes rows t, t + 256, …: loss_rows and dz per row, then
// total[0] += Σ loss (strided partial sums, then a fixed tree, so the sum is the same bit for bit
// on every run), correct[0] += the correct count, then [tick] and [guard] on the state block.
@compute @workgroup_size(256)
fn loss_metrics(@builtin(local_invocation_index) lid: u32) {
    let inv_b = 1.0 / f32(params.rows);
    var loss = 0.0;
    var right = 0u;
    var bad = 0u;
    for (var r = lid; r < params.rows; r += THREADS) {
        var v = head_row(r, inv_b);
        if row_nonfinite(r) {
            v = quiet_nan();
        }
        let row_bad = is_nonfinite(v);
        loss_rows[r] = v;
        loss += select(v, 0.0, row_bad);
        bad += u32(row_bad);
        if (params.flags & 1u) != 0u && row_correct(r) {
            right += 1u;
        }
    }
    part_loss[lid] = loss;
    part_correct[lid] = right;
    part_bad[lid] = bad;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            part_loss[lid] += part_loss[lid + stride];
            part_correct[lid] += part_correct[lid + stride];
            part_bad[lid] += part_bad[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        // A batch with a non-finite row makes the total NaN, set from bits rather than left to
        // NaN arithmetic (see row_nonfinite); a total already non-finite stays NaN.
        if part_bad[0] > 0u || is_nonfinite(total[0]) {
            total[0] = quiet_nan();
        } else {
            total[0] += part_loss[0];
        }
        correct[0] += part_correct[0];
        if (params.flags & 4u) != 0u {
            tick_state();
        }
        if (params.flags & 2u) != 0u {
            guard_state(part_bad[0]);
        }
    }
}
