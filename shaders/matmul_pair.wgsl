// Generated from matmul.wgsl by src/gpu/matmul_pair.rs (pair_source): do not edit.
// `cargo test generated_pair_modules` checks it; SHADERGRAD_BLESS=1 rewrites it.

// Two jobs in one launch (gpu/matmul_pair.rs): workgroups with x < split run job 0 on the first
// rows0 rows of workgroups, the others job 1 (x - split) on the first rows1.
struct PairParams {
    job0: Params,
    job1: Params,
    split: u32,
    rows0: u32,
    rows1: u32,
    _pad: u32,
}

@group(0) @binding(4) var<uniform> pp: PairParams;
















@group(0) @binding(0) var<storage, read> a_0: array<f32>;
@group(0) @binding(1) var<storage, read> b_0: array<f32>;
@group(0) @binding(2) var<storage, read> extra_0: array<f32>;
@group(0) @binding(3) var<storage, read_write> c_0: array<f32>;
@group(0) @binding(7) var<storage, read_write> db_0: array<f32>;

const NO_GROUP_0: u32 = 0xffffffffu;

override TRANS_A_0: bool = false;


override BIAS_GRAD_0: bool = false;
override TRANS_B_0: bool = false;


fn load_a_0(i: u32, kk: u32) -> f32 {
    if TRANS_A_0 {
        return a_0[pp.job0.a_offset + kk * pp.job0.lda + i];
    }
    return a_0[pp.job0.a_offset + i * pp.job0.lda + kk];
}


fn load_b_0(kk: u32, j: u32) -> f32 {
    if TRANS_B_0 {
        return b_0[pp.job0.b_offset + j * pp.job0.ldb + kk];
    }
    return b_0[pp.job0.b_offset + kk * pp.job0.ldb + j];
}


fn store_0(i: u32, j: u32, acc: f32) {
    if i >= pp.job0.m || j >= pp.job0.n {
        return;
    }
    let idx = pp.job0.c_offset + i * pp.job0.ldc + j;
    var value = acc;
    if pp.job0.accumulate != 0u {
        value += c_0[idx];
    }
    switch pp.job0.epilogue {
        case 1u: { c_0[idx] = act_forward(pp.job0.act, value + extra_0[pp.job0.extra_offset + j]); }
        case 2u: { c_0[idx] = value * act_derivative_from_output(pp.job0.act, extra_0[pp.job0.extra_offset + i * pp.job0.ldc + j]); }
        default: { c_0[idx] = value; }
    }
}



fn bias_grad_rows_0(row0: u32, rows: u32, lane: u32, lanes: u32) {
    for (var r = lane; r < rows; r += lanes) {
        let i = row0 + r;
        if i < pp.job0.m {
            var sum = 0.0;
            for (var kk = 0u; kk < pp.job0.k; kk++) {
                sum += load_a_0(i, kk);
            }
            db_0[pp.job0.db_offset + i] = sum;
        }
    }
}








const TILE_0: u32 = 4u;

fn matmul_0(gid: vec3<u32>, wid: vec3<u32>, lane: u32) {
    if BIAS_GRAD_0 && wid.x == pp.job0.bias_group {
        bias_grad_rows_0(wid.y * 8u * TILE_0, 8u * TILE_0, lane, 64u);
        return;
    }
    let row0 = gid.y * TILE_0;
    let col0 = gid.x * TILE_0;
    if row0 >= pp.job0.m || col0 >= pp.job0.n {
        return;
    }
    let last_row = pp.job0.m - 1u;
    let last_col = pp.job0.n - 1u;
    let r = vec4<u32>(row0, min(row0 + 1u, last_row), min(row0 + 2u, last_row), min(row0 + 3u, last_row));
    let q = vec4<u32>(col0, min(col0 + 1u, last_col), min(col0 + 2u, last_col), min(col0 + 3u, last_col));

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < pp.job0.k; kk++) {
        let bv = vec4<f32>(load_b_0(kk, q.x), load_b_0(kk, q.y), load_b_0(kk, q.z), load_b_0(kk, q.w));
        acc0 += load_a_0(r.x, kk) * bv;
        acc1 += load_a_0(r.y, kk) * bv;
        acc2 += load_a_0(r.z, kk) * bv;
        acc3 += load_a_0(r.w, kk) * bv;
    }

    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < TILE_0; i++) {
        for (var j = 0u; j < TILE_0; j++) {
            store_0(row0 + i, col0 + j, rows[i][j]);
        }
    }
}















@group(0) @binding(8) var<storage, read> a_1: array<f32>;
@group(0) @binding(9) var<storage, read> b_1: array<f32>;
@group(0) @binding(10) var<storage, read> extra_1: array<f32>;
@group(0) @binding(11) var<storage, read_write> c_1: array<f32>;
@group(0) @binding(15) var<storage, read_write> db_1: array<f32>;

const NO_GROUP_1: u32 = 0xffffffffu;

override TRANS_A_1: bool = false;


override BIAS_GRAD_1: bool = false;
override TRANS_B_1: bool = false;


fn load_a_1(i: u32, kk: u32) -> f32 {
    if TRANS_A_1 {
        return a_1[pp.job1.a_offset + kk * pp.job1.lda + i];
    }
    return a_1[pp.job1.a_offset + i * pp.job1.lda + kk];
}


fn load_b_1(kk: u32, j: u32) -> f32 {
    if TRANS_B_1 {
        return b_1[pp.job1.b_offset + j * pp.job1.ldb + kk];
    }
    return b_1[pp.job1.b_offset + kk * pp.job1.ldb + j];
}


fn store_1(i: u32, j: u32, acc: f32) {
    if i >= pp.job1.m || j >= pp.job1.n {
        return;
    }
    let idx = pp.job1.c_offset + i * pp.job1.ldc + j;
    var value = acc;
    if pp.job1.accumulate != 0u {
        value += c_1[idx];
    }
    switch pp.job1.epilogue {
        case 1u: { c_1[idx] = act_forward(pp.job1.act, value + extra_1[pp.job1.extra_offset + j]); }
        case 2u: { c_1[idx] = value * act_derivative_from_output(pp.job1.act, extra_1[pp.job1.extra_offset + i * pp.job1.ldc + j]); }
        default: { c_1[idx] = value; }
    }
}



fn bias_grad_rows_1(row0: u32, rows: u32, lane: u32, lanes: u32) {
    for (var r = lane; r < rows; r += lanes) {
        let i = row0 + r;
        if i < pp.job1.m {
            var sum = 0.0;
            for (var kk = 0u; kk < pp.job1.k; kk++) {
                sum += load_a_1(i, kk);
            }
            db_1[pp.job1.db_offset + i] = sum;
        }
    }
}








const TILE_1: u32 = 4u;

fn matmul_1(gid: vec3<u32>, wid: vec3<u32>, lane: u32) {
    if BIAS_GRAD_1 && wid.x == pp.job1.bias_group {
        bias_grad_rows_1(wid.y * 8u * TILE_1, 8u * TILE_1, lane, 64u);
        return;
    }
    let row0 = gid.y * TILE_1;
    let col0 = gid.x * TILE_1;
    if row0 >= pp.job1.m || col0 >= pp.job1.n {
        return;
    }
    let last_row = pp.job1.m - 1u;
    let last_col = pp.job1.n - 1u;
    let r = vec4<u32>(row0, min(row0 + 1u, last_row), min(row0 + 2u, last_row), min(row0 + 3u, last_row));
    let q = vec4<u32>(col0, min(col0 + 1u, last_col), min(col0 + 2u, last_col), min(col0 + 3u, last_col));

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < pp.job1.k; kk++) {
        let bv = vec4<f32>(load_b_1(kk, q.x), load_b_1(kk, q.y), load_b_1(kk, q.z), load_b_1(kk, q.w));
        acc0 += load_a_1(r.x, kk) * bv;
        acc1 += load_a_1(r.y, kk) * bv;
        acc2 += load_a_1(r.z, kk) * bv;
        acc3 += load_a_1(r.w, kk) * bv;
    }

    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < TILE_1; i++) {
        for (var j = 0u; j < TILE_1; j++) {
            store_1(row0 + i, col0 + j, rows[i][j]);
        }
    }
}
@compute @workgroup_size(8, 8, 1)
fn matmul_pair(
    @builtin(workgroup_id) pair_wid: vec3<u32>,
    @builtin(local_invocation_id) pair_lid: vec3<u32>,
    @builtin(local_invocation_index) pair_index: u32,
) {
    if pair_wid.x < pp.split {
        if pair_wid.y < pp.rows0 {
            matmul_0(pair_wid * vec3<u32>(8u, 8u, 1u) + pair_lid, pair_wid, pair_index);
        }
    } else {
        let w = vec3<u32>(pair_wid.x - pp.split, pair_wid.y, pair_wid.z);
        if w.y < pp.rows1 {
            matmul_1(w * vec3<u32>(8u, 8u, 1u) + pair_lid, w, pair_index);
        }
    }
}
