// Builds a training batch from a device-resident dataset, so per step only the batch's sample
// indices travel to the device. CPU twin: src/cpu/data.rs.
//
// Byte features (MNIST pixels) are packed four to a u32, little-endian, and scaled on the way
// out; float features are stored as their bits.

struct Params {
    rows: u32,
    dim: u32,
    width: u32,
    index_offset: u32,
    scale: f32,
    threads_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> features: array<u32>;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read> labels_src: array<u32>;
@group(0) @binding(3) var<storage, read> values_src: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> targets: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

override BYTE_FEATURES: bool = true;

fn linear_index(gid: vec3<u32>) -> u32 {
    return gid.y * p.threads_x + gid.x;
}

fn sample_of(row: u32) -> u32 {
    return indices[p.index_offset + row];
}

// x[r, j] = feature j of sample indices[r].
@compute @workgroup_size(256)
fn gather_features(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if i >= p.rows * p.dim {
        return;
    }
    let r = i / p.dim;
    let j = i - r * p.dim;
    let e = sample_of(r) * p.dim + j;
    if BYTE_FEATURES {
        let byte = (features[e >> 2u] >> ((e & 3u) * 8u)) & 0xffu;
        x[i] = f32(byte) * p.scale;
    } else {
        x[i] = bitcast<f32>(features[e]);
    }
}

// labels[r] = label of sample indices[r].
@compute @workgroup_size(64)
fn gather_labels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = linear_index(gid);
    if r >= p.rows {
        return;
    }
    labels[r] = labels_src[sample_of(r)];
}

// targets[r, c] = 1 if c is the label of sample indices[r], else 0 (BCE/MSE on class labels).
@compute @workgroup_size(256)
fn gather_one_hot(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if i >= p.rows * p.width {
        return;
    }
    let r = i / p.width;
    let c = i - r * p.width;
    targets[i] = select(0.0, 1.0, labels_src[sample_of(r)] == c);
}

// targets[r, c] = target c of sample indices[r].
@compute @workgroup_size(256)
fn gather_values(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if i >= p.rows * p.width {
        return;
    }
    let r = i / p.width;
    let c = i - r * p.width;
    targets[i] = values_src[sample_of(r) * p.width + c];
}
