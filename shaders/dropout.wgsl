// Inverted dropout with a counter-based mask: element i is kept at step t when
// pcg(pcg(seed + pcg(t)) + i) >> 8 ≥ threshold, and kept elements are scaled by 1/(1 − rate).
// CPU twin: src/cpu/dropout.rs (the same integer hash, bit for bit). Needs the activation and
// optimizer-state preludes: the step counter is read from the device-resident state block, so
// the mask changes every step without an upload, and backward recomputes it instead of storing it.

struct DropoutParams {
    len: u32,
    threads_x: u32,
    seed: u32,
    threshold: u32,
    scale: f32,
    input_act: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: DropoutParams;
@group(0) @binding(4) var<storage, read> state: OptimState;

fn pcg_hash(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let word = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (word >> 22u) ^ word;
}

fn keeps(i: u32) -> bool {
    let h = pcg_hash(pcg_hash(params.seed + pcg_hash(state.step)) + i);
    return (h >> 8u) >= params.threshold;
}

// out = keep ? x·scale : 0.
@compute @workgroup_size(256)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * params.threads_x + gid.x;
    if i >= params.len {
        return;
    }
    out[i] = select(0.0, x[i] * params.scale, keeps(i));
}

// out = keep ? dy·scale·input_act'(input) : 0, with x = dy and y = the dropout's input.
@compute @workgroup_size(256)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * params.threads_x + gid.x;
    if i >= params.len {
        return;
    }
    out[i] = select(0.0, x[i] * params.scale * act_derivative_from_output(params.input_act, y[i]), keeps(i));
}
