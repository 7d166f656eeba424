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
    // 1: write labels[r] (class data).
    labels_mode: u32,
    // 0: no targets; 1: one-hot of the label; 2: the sample's float values.
    targets_mode: u32,
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

// One dispatch builds the whole batch: invocation i writes x element i, labels[i] (i < rows) and
// targets element i (i < rows·width), whichever exist.
@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if i < p.rows * p.dim {
        // x[r, j] = feature j of sample indices[r].
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
    if p.labels_mode == 1u && i < p.rows {
        labels[i] = labels_src[sample_of(i)];
    }
    if p.targets_mode != 0u && i < p.rows * p.width {
        let r = i / p.width;
        let c = i - r * p.width;
        if p.targets_mode == 1u {
            // One-hot of the label (BCE/MSE on class labels).
            targets[i] = select(0.0, 1.0, labels_src[sample_of(r)] == c);
        } else {
            targets[i] = values_src[sample_of(r) * p.width + c];
        }
    }
}
