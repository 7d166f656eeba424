// Device-side metrics and the step's bookkeeping in one dispatch, so accuracy and loss need no
// per-step readback. CPU twin: cpu::batch_metrics in src/cpu/metrics.rs. Needs the state
// preludes (optim_state.wgsl, optim_step.wgsl).

struct MetricsParams {
    rows: u32,
    cols: u32,
    // Bit 0: count correct predictions (the batch has class labels). Bit 1: run the non-finite
    // guard (training). Bit 2: advance the step first (training without dropout).
    flags: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> correct: array<u32>;
@group(0) @binding(3) var<uniform> params: MetricsParams;
@group(0) @binding(4) var<storage, read> loss_rows: array<f32>;
@group(0) @binding(5) var<storage, read_write> total: array<f32>;
@group(0) @binding(6) var<storage, read_write> state: OptimState;

const THREADS: u32 = 256u;
var<workgroup> part_loss: array<f32, THREADS>;
var<workgroup> part_correct: array<u32, THREADS>;
var<workgroup> part_bad: array<u32, THREADS>;

// Whether row r's first maximum sits at its label (a label outside 0..cols never matches).
fn row_correct(r: u32) -> bool {
    let base = r * params.cols;
    var best = 0u;
    var best_value = z[base];
    for (var j = 1u; j < params.cols; j++) {
        let v = z[base + j];
        if v > best_value {
            best = j;
            best_value = v;
        }
    }
    return best == labels[r];
}

// One workgroup: total[0] += Σ loss_rows (strided partial sums, then a fixed tree, so the sum
// is the same bit for bit on every run), correct[0] += the correct count, then [tick] and
// [guard] on the state block.
@compute @workgroup_size(256)
fn batch_metrics(@builtin(local_invocation_index) lid: u32) {
    var loss = 0.0;
    var right = 0u;
    var bad = 0u;
    for (var r = lid; r < params.rows; r += THREADS) {
        let v = loss_rows[r];
        loss += v;
        bad += u32(is_nonfinite(v));
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
        total[0] += part_loss[0];
        correct[0] += part_correct[0];
        if (params.flags & 4u) != 0u {
            tick_state();
        }
        if (params.flags & 2u) != 0u {
            guard_state(part_bad[0]);
        }
    }
}
