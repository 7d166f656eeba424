// Device-side metrics, so accuracy and loss need no per-step readback.
// CPU twin: src/cpu/metrics.rs.

struct Shape {
    rows: u32,
    cols: u32,
    threads_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> z: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> correct: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> shape: Shape;
@group(0) @binding(4) var<storage, read> values: array<f32>;
@group(0) @binding(5) var<storage, read_write> total: array<f32>;

// correct[0] += number of rows whose first maximum sits at the label. Integer atomics are
// order-independent, so the count is deterministic.
@compute @workgroup_size(64)
fn count_correct(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.y * shape.threads_x + gid.x;
    if r >= shape.rows {
        return;
    }
    let base = r * shape.cols;
    var best = 0u;
    var best_value = z[base];
    for (var j = 1u; j < shape.cols; j++) {
        let v = z[base + j];
        if v > best_value {
            best = j;
            best_value = v;
        }
    }
    if best == labels[r] {
        atomicAdd(&correct[0], 1u);
    }
}

const SUM_THREADS: u32 = 256u;
var<workgroup> partial: array<f32, SUM_THREADS>;

// total[0] += Σ values[0..rows]: one workgroup, strided partial sums, then a fixed tree, so the
// result is the same bit for bit on every run.
@compute @workgroup_size(256)
fn accumulate_sum(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < shape.rows; i += SUM_THREADS) {
        s += values[i];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = SUM_THREADS / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        total[0] += partial[0];
    }
}
