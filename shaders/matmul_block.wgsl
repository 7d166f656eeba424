// Matmul for GPUs through workgroup memory: the classic 2-D block tiling (S. Boehm, "How to
// Optimize a CUDA Matmul Kernel for cuBLAS-like Performance", kernel 5 "2D blocktiling"; the
// same structure in WGSL is what Z. Nussbaum's "Optimizing a WebGPU Matmul Kernel for 1TFLOP+
// Performance" measures on an Apple M2). Needs activation.wgsl, matmul_params.wgsl and
// matmul_common.wgsl before it.
//
// A workgroup of 16×16 invocations owns a 64×64 block of C. For each 16-wide step of k it stages
// op(A)[64×16] and op(B)[16×64] in workgroup memory (one vec4 global load per invocation and
// operand when the tile lies inside the matrix and the rows are 16-byte aligned, VEC_A/VEC_B;
// clamped scalar loads that read 0 past the edges otherwise), then every invocation accumulates
// its 4×4 outputs in registers from vec4 reads of the staged tiles. Rows and columns past the
// edge are skipped when storing.

@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;

override VEC_A: bool = false;
override VEC_B: bool = false;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// Staged tiles, k-major: tile_a[kk·16 + r] holds op(A) rows 4r..4r+4 at k step kk, tile_b[kk·16 + c]
// op(B) columns 4c..4c+4.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// op(A)[i, kk], or 0 outside the matrix (the index is clamped, so nothing is read out of bounds).
fn a_or_zero(i: u32, kk: u32) -> f32 {
    return select(0.0, load_a(min(i, p.m - 1u), min(kk, p.k - 1u)), i < p.m && kk < p.k);
}

// op(B)[kk, j], or 0 outside the matrix.
fn b_or_zero(kk: u32, j: u32) -> f32 {
    return select(0.0, load_b(min(kk, p.k - 1u), min(j, p.n - 1u)), kk < p.k && j < p.n);
}

// Stages op(A)[row0..row0+64, k0..k0+16]: invocation t loads the 4 elements contiguous in A's
// storage at its position (along k for A m×k, along m for A stored k×m).
fn stage_a(t: u32, row0: u32, k0: u32, inside: bool) {
    if TRANS_A {
        let kr = t / 16u;
        let q = t % 16u;
        var v: vec4<f32>;
        if VEC_A && inside {
            v = a4[(p.a_offset + (k0 + kr) * p.lda + row0 + 4u * q) / 4u];
        } else {
            let i = row0 + 4u * q;
            let kk = k0 + kr;
            v = vec4<f32>(a_or_zero(i, kk), a_or_zero(i + 1u, kk), a_or_zero(i + 2u, kk), a_or_zero(i + 3u, kk));
        }
        tile_a[kr * 16u + q] = v;
    } else {
        let r = t / 4u;
        let q = t % 4u;
        var v: vec4<f32>;
        if VEC_A && inside {
            v = a4[(p.a_offset + (row0 + r) * p.lda + k0 + 4u * q) / 4u];
        } else {
            let kk = k0 + 4u * q;
            v = vec4<f32>(a_or_zero(row0 + r, kk), a_or_zero(row0 + r, kk + 1u), a_or_zero(row0 + r, kk + 2u), a_or_zero(row0 + r, kk + 3u));
        }
        for (var c = 0u; c < 4u; c++) {
            tile_a[(4u * q + c) * 16u + r / 4u][r % 4u] = v[c];
        }
    }
}

// Stages op(B)[k0..k0+16, col0..col0+64], like stage_a.
fn stage_b(t: u32, col0: u32, k0: u32, inside: bool) {
    if TRANS_B {
        let r = t / 4u;
        let q = t % 4u;
        var v: vec4<f32>;
        if VEC_B && inside {
            v = b4[(p.b_offset + (col0 + r) * p.ldb + k0 + 4u * q) / 4u];
        } else {
            let kk = k0 + 4u * q;
            v = vec4<f32>(b_or_zero(kk, col0 + r), b_or_zero(kk + 1u, col0 + r), b_or_zero(kk + 2u, col0 + r), b_or_zero(kk + 3u, col0 + r));
        }
        for (var c = 0u; c < 4u; c++) {
            tile_b[(4u * q + c) * 16u + r / 4u][r % 4u] = v[c];
        }
    } else {
        let kr = t / 16u;
        let q = t % 16u;
        var v: vec4<f32>;
        if VEC_B && inside {
            v = b4[(p.b_offset + (k0 + kr) * p.ldb + col0 + 4u * q) / 4u];
        } else {
            let j = col0 + 4u * q;
            let kk = k0 + kr;
            v = vec4<f32>(b_or_zero(kk, j), b_or_zero(kk, j + 1u), b_or_zero(kk, j + 2u), b_or_zero(kk, j + 3u));
        }
        tile_b[kr * 16u + q] = v;
    }
}

@compute @workgroup_size(256)
fn matmul_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row0 = wid.y * BM;
    if BIAS_GRAD && wid.x == p.bias_group {
        bias_grad_rows(row0, BM, t, 256u);
        return;
    }
    let col0 = wid.x * BN;
    let tx = t % 16u;
    let ty = t / 16u;
    let rows_inside = row0 + BM <= p.m;
    let cols_inside = col0 + BN <= p.n;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        let k_inside = k0 + BK <= p.k;
        stage_a(t, row0, k0, rows_inside && k_inside);
        stage_b(t, col0, k0, cols_inside && k_inside);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
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
            store(row0 + 4u * ty + i, col0 + 4u * tx + j, rows[i][j]);
        }
    }
}
