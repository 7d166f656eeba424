// Activations over a row-major [rows × cols] batch.
// CPU twin: src/cpu/elementwise.rs. Needs the activation prelude (activation.wgsl).
//
// One invocation per element. Launches may be 2-D when a tensor
// needs more workgroups than one dimension allows: threads_x says how wide a row of the grid is.

struct Shape {
    rows: u32,
    cols: u32,
    len: u32,
    threads_x: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> shape: Shape;

override ACT: u32 = 0u;

fn linear_index(gid: vec3<u32>) -> u32 {
    return gid.y * shape.threads_x + gid.x;
}

// out = act(x).
@compute @workgroup_size(256)
fn activation_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if i >= shape.len {
        return;
    }
    out[i] = act_forward(ACT, x[i]);
}

// out = x · act'(y), where x is dA and y the stored activation output.
@compute @workgroup_size(256)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if i >= shape.len {
        return;
    }
    out[i] = x[i] * act_derivative_from_output(ACT, y[i]);
}
