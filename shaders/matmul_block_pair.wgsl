// Generated from matmul_block.wgsl by src/gpu/matmul_pair.rs (pair_source): do not edit.
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













@group(0) @binding(5) var<storage, read> a4_0: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4_0: array<vec4<f32>>;

override VEC_A_0: bool = false;
override VEC_B_0: bool = false;

const BM_0: u32 = 64u;
const BN_0: u32 = 64u;
const BK_0: u32 = 16u;



var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;


fn a_or_zero_0(i: u32, kk: u32) -> f32 {
    return select(0.0, load_a_0(min(i, pp.job0.m - 1u), min(kk, pp.job0.k - 1u)), i < pp.job0.m && kk < pp.job0.k);
}


fn b_or_zero_0(kk: u32, j: u32) -> f32 {
    return select(0.0, load_b_0(min(kk, pp.job0.k - 1u), min(j, pp.job0.n - 1u)), kk < pp.job0.k && j < pp.job0.n);
}



fn stage_a_0(t: u32, row0: u32, k0: u32, inside: bool) {
    if TRANS_A_0 {
        let kr = t / 16u;
        let q = t % 16u;
        var v: vec4<f32>;
        if VEC_A_0 && inside {
            v = a4_0[(pp.job0.a_offset + (k0 + kr) * pp.job0.lda + row0 + 4u * q) / 4u];
        } else {
            let i = row0 + 4u * q;
            let kk = k0 + kr;
            v = vec4<f32>(a_or_zero_0(i, kk), a_or_zero_0(i + 1u, kk), a_or_zero_0(i + 2u, kk), a_or_zero_0(i + 3u, kk));
        }
        tile_a[kr * 16u + q] = v;
    } else {
        let r = t / 4u;
        let q = t % 4u;
        var v: vec4<f32>;
        if VEC_A_0 && inside {
            v = a4_0[(pp.job0.a_offset + (row0 + r) * pp.job0.lda + k0 + 4u * q) / 4u];
        } else {
            let kk = k0 + 4u * q;
            v = vec4<f32>(a_or_zero_0(row0 + r, kk), a_or_zero_0(row0 + r, kk + 1u), a_or_zero_0(row0 + r, kk + 2u), a_or_zero_0(row0 + r, kk + 3u));
        }
        for (var c_0 = 0u; c_0 < 4u; c_0++) {
            tile_a[(4u * q + c_0) * 16u + r / 4u][r % 4u] = v[c_0];
        }
    }
}


fn stage_b_0(t: u32, col0: u32, k0: u32, inside: bool) {
    if TRANS_B_0 {
        let r = t / 4u;
        let q = t % 4u;
        var v: vec4<f32>;
        if VEC_B_0 && inside {
            v = b4_0[(pp.job0.b_offset + (col0 + r) * pp.job0.ldb + k0 + 4u * q) / 4u];
        } else {
            let kk = k0 + 4u * q;
            v = vec4<f32>(b_or_zero_0(kk, col0 + r), b_or_zero_0(kk + 1u, col0 + r), b_or_zero_0(kk + 2u, col0 + r), b_or_zero_0(kk + 3u, col0 + r));
        }
        for (var c_0 = 0u; c_0 < 4u; c_0++) {
            tile_b[(4u * q + c_0) * 16u + r / 4u][r % 4u] = v[c_0];
        }
    } else {
        let kr = t / 16u;
        let q = t % 16u;
        var v: vec4<f32>;
        if VEC_B_0 && inside {
            v = b4_0[(pp.job0.b_offset + (k0 + kr) * pp.job0.ldb + col0 + 4u * q) / 4u];
        } else {
            let j = col0 + 4u * q;
            let kk = k0 + kr;
            v = vec4<f32>(b_or_zero_0(kk, j), b_or_zero_0(kk, j + 1u), b_or_zero_0(kk, j + 2u), b_or_zero_0(kk, j + 3u));
        }
        tile_b[kr * 16u + q] = v;
    }
}

fn matmul_block_0(wid: vec3<u32>, t: u32) {
    let row0 = wid.y * BM_0;
    if BIAS_GRAD_0 && wid.x == pp.job0.bias_group {
        bias_grad_rows_0(row0, BM_0, t, 256u);
        return;
    }
    let col0 = wid.x * BN_0;
    let tx = t % 16u;
    let ty = t / 16u;
    let rows_inside = row0 + BM_0 <= pp.job0.m;
    let cols_inside = col0 + BN_0 <= pp.job0.n;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < pp.job0.k; k0 += BK_0) {
        let k_inside = k0 + BK_0 <= pp.job0.k;
        stage_a_0(t, row0, k0, rows_inside && k_inside);
        stage_b_0(t, col0, k0, cols_inside && k_inside);
        workgroupBarrier();
        for (var kk = 0u; kk < BK_0; kk++) {
            let av = tile_a[kk * 16u + ty];
            let bv = tile_b[kk * 16u + tx];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store_0(row0 + 4u * ty + i, col0 + 4u * tx + j, rows[i][j]);
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













@group(0) @binding(13) var<storage, read> a4_1: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read> b4_1: array<vec4<f32>>;

override VEC_A_1: bool = false;
override VEC_B_1: bool = false;

const BM_1: u32 = 64u;
const BN_1: u32 = 64u;
const BK_1: u32 = 16u;





fn a_or_zero_1(i: u32, kk: u32) -> f32 {
    return select(0.0, load_a_1(min(i, pp.job1.m - 1u), min(kk, pp.job1.k - 1u)), i < pp.job1.m && kk < pp.job1.k);
}


fn b_or_zero_1(kk: u32, j: u32) -> f32 {
    return select(0.0, load_b_1(min(kk, pp.job1.k - 1u), min(j, pp.job1.n - 1u)), kk < pp.job1.k && j < pp.job1.n);
}



fn stage_a_1(t: u32, row0: u32, k0: u32, inside: bool) {
    if TRANS_A_1 {
        let kr = t / 16u;
        let q = t % 16u;
        var v: vec4<f32>;
        if VEC_A_1 && inside {
            v = a4_1[(pp.job1.a_offset + (k0 + kr) * pp.job1.lda + row0 + 4u * q) / 4u];
        } else {
            let i = row0 + 4u * q;
            let kk = k0 + kr;
            v = vec4<f32>(a_or_zero_1(i, kk), a_or_zero_1(i + 1u, kk), a_or_zero_1(i + 2u, kk), a_or_zero_1(i + 3u, kk));
        }
        tile_a[kr * 16u + q] = v;
    } else {
        let r = t / 4u;
        let q = t % 4u;
        var v: vec4<f32>;
        if VEC_A_1 && inside {
            v = a4_1[(pp.job1.a_offset + (row0 + r) * pp.job1.lda + k0 + 4u * q) / 4u];
        } else {
            let kk = k0 + 4u * q;
            v = vec4<f32>(a_or_zero_1(row0 + r, kk), a_or_zero_1(row0 + r, kk + 1u), a_or_zero_1(row0 + r, kk + 2u), a_or_zero_1(row0 + r, kk + 3u));
        }
        for (var c_1 = 0u; c_1 < 4u; c_1++) {
            tile_a[(4u * q + c_1) * 16u + r / 4u][r % 4u] = v[c_1];
        }
    }
}


fn stage_b_1(t: u32, col0: u32, k0: u32, inside: bool) {
    if TRANS_B_1 {
        let r = t / 4u;
        let q = t % 4u;
        var v: vec4<f32>;
        if VEC_B_1 && inside {
            v = b4_1[(pp.job1.b_offset + (col0 + r) * pp.job1.ldb + k0 + 4u * q) / 4u];
        } else {
            let kk = k0 + 4u * q;
            v = vec4<f32>(b_or_zero_1(kk, col0 + r), b_or_zero_1(kk + 1u, col0 + r), b_or_zero_1(kk + 2u, col0 + r), b_or_zero_1(kk + 3u, col0 + r));
        }
        for (var c_1 = 0u; c_1 < 4u; c_1++) {
            tile_b[(4u * q + c_1) * 16u + r / 4u][r % 4u] = v[c_1];
        }
    } else {
        let kr = t / 16u;
        let q = t % 16u;
        var v: vec4<f32>;
        if VEC_B_1 && inside {
            v = b4_1[(pp.job1.b_offset + (k0 + kr) * pp.job1.ldb + col0 + 4u * q) / 4u];
        } else {
            let j = col0 + 4u * q;
            let kk = k0 + kr;
            v = vec4<f32>(b_or_zero_1(kk, j), b_or_zero_1(kk, j + 1u), b_or_zero_1(kk, j + 2u), b_or_zero_1(kk, j + 3u));
        }
        tile_b[kr * 16u + q] = v;
    }
}

fn matmul_block_1(wid: vec3<u32>, t: u32) {
    let row0 = wid.y * BM_1;
    if BIAS_GRAD_1 && wid.x == pp.job1.bias_group {
        bias_grad_rows_1(row0, BM_1, t, 256u);
        return;
    }
    let col0 = wid.x * BN_1;
    let tx = t % 16u;
    let ty = t / 16u;
    let rows_inside = row0 + BM_1 <= pp.job1.m;
    let cols_inside = col0 + BN_1 <= pp.job1.n;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < pp.job1.k; k0 += BK_1) {
        let k_inside = k0 + BK_1 <= pp.job1.k;
        stage_a_1(t, row0, k0, rows_inside && k_inside);
        stage_b_1(t, col0, k0, cols_inside && k_inside);
        workgroupBarrier();
        for (var kk = 0u; kk < BK_1; kk++) {
            let av = tile_a[kk * 16u + ty];
            let bv = tile_b[kk * 16u + tx];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store_1(row0 + 4u * ty + i, col0 + 4u * tx + j, rows[i][j]);
        }
    }
}
@compute @workgroup_size(256, 1, 1)
fn matmul_block_pair(
    @builtin(workgroup_id) pair_wid: vec3<u32>,
    @builtin(local_invocation_index) pair_index: u32,
) {
    if pair_wid.x < pp.split {
        if pair_wid.y < pp.rows0 {
            matmul_block_0(pair_wid, pair_index);
        }
    } else {
        let w = vec3<u32>(pair_wid.x - pp.split, pair_wid.y, pair_wid.z);
        if w.y < pp.rows1 {
            matmul_block_1(w, pair_index);
        }
    }
}
