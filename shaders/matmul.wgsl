// C[m×n] = epilogue(op(A)[m×k] · op(B)[k×n] (+ C)), row-major, any sizes ≥ 1.
// CPU twin: src/cpu/matmul.rs. Needs the activation prelude (activation.wgsl).
//
// Operands are strided views: element (i, j) of a view is at offset + i·ld + j, so a kernel can
// read a column block of a wider matrix or write into one (layers split across bindings).
// Transposed operands are read in place (TRANS_A: A stored k×m; TRANS_B: B stored n×k).
// EPILOGUE 0: store; 1: act(acc + bias[extra_offset + col]);
//          2: acc · act'(extra[extra_offset + row·ldc + col]) (the layer's activation output).
// accumulate = 1 adds the existing C before the epilogue (sums over split bindings).
//
// Register blocking: each invocation owns a 4×4 block of C, a workgroup of 8×8 invocations a
// 32×32 tile. Rows and columns past the edge are clamped for loading and skipped for storing,
// so the inner loop has no branches.

struct Params {
    m: u32,
    k: u32,
    n: u32,
    accumulate: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    _pad0: u32,
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    extra_offset: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> extra: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override EPILOGUE: u32 = 0u;

const TILE: u32 = 4u;

fn load_a(i: u32, kk: u32) -> f32 {
    if TRANS_A {
        return a[p.a_offset + kk * p.lda + i];
    }
    return a[p.a_offset + i * p.lda + kk];
}

fn load_b(kk: u32, j: u32) -> f32 {
    if TRANS_B {
        return b[p.b_offset + j * p.ldb + kk];
    }
    return b[p.b_offset + kk * p.ldb + j];
}

fn store(i: u32, j: u32, acc: f32) {
    if i >= p.m || j >= p.n {
        return;
    }
    let idx = p.c_offset + i * p.ldc + j;
    var value = acc;
    if p.accumulate != 0u {
        value += c[idx];
    }
    switch EPILOGUE {
        case 1u: { c[idx] = act_forward(value + extra[p.extra_offset + j]); }
        case 2u: { c[idx] = value * act_derivative_from_output(extra[p.extra_offset + i * p.ldc + j]); }
        default: { c[idx] = value; }
    }
}

@compute @workgroup_size(8, 8, 1)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * TILE;
    let col0 = gid.x * TILE;
    if row0 >= p.m || col0 >= p.n {
        return;
    }
    let last_row = p.m - 1u;
    let last_col = p.n - 1u;
    let r = vec4<u32>(row0, min(row0 + 1u, last_row), min(row0 + 2u, last_row), min(row0 + 3u, last_row));
    let q = vec4<u32>(col0, min(col0 + 1u, last_col), min(col0 + 2u, last_col), min(col0 + 3u, last_col));

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4<f32>(load_b(kk, q.x), load_b(kk, q.y), load_b(kk, q.z), load_b(kk, q.w));
        acc0 += load_a(r.x, kk) * bv;
        acc1 += load_a(r.y, kk) * bv;
        acc2 += load_a(r.z, kk) * bv;
        acc3 += load_a(r.w, kk) * bv;
    }

    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < TILE; i++) {
        for (var j = 0u; j < TILE; j++) {
            store(row0 + i, col0 + j, rows[i][j]);
        }
    }
}
