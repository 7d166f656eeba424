// Shared by the matmul kernels (matmul.wgsl for GPUs, matmul_cpu.wgsl for CPU adapters):
// C[m×n] = epilogue(op(A)[m×k] · op(B)[k×n] (+ C)), row-major, any sizes ≥ 1.
// CPU twin: src/cpu/matmul.rs. Needs the activation prelude (activation.wgsl) before it.
//
// Operands are strided views: element (i, j) of a view is at offset + i·ld + j, so a kernel can
// read a column block of a wider matrix or write into one (layers split across bindings).
// Transposed operands are read in place (TRANS_A: A stored k×m; TRANS_B: B stored n×k).
// epilogue 0: store; 1: act(acc + bias[extra_offset + col]);
//          2: acc · act'(extra[extra_offset + row·ldc + col]) (the layer's activation output).
// accumulate = 1 adds the existing C before the epilogue (sums over split bindings).
// The epilogue and its activation are uniforms, not pipeline constants: they run once per output,
// and every pipeline variant costs up to a second of compilation on a CPU adapter.

struct Params {
    m: u32,
    k: u32,
    n: u32,
    accumulate: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    epilogue: u32,
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    extra_offset: u32,
    act: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> extra: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

override TRANS_A: bool = false;
override TRANS_B: bool = false;

// op(A)[i, kk]
fn load_a(i: u32, kk: u32) -> f32 {
    if TRANS_A {
        return a[p.a_offset + kk * p.lda + i];
    }
    return a[p.a_offset + i * p.lda + kk];
}

// op(B)[kk, j]
fn load_b(kk: u32, j: u32) -> f32 {
    if TRANS_B {
        return b[p.b_offset + j * p.ldb + kk];
    }
    return b[p.b_offset + kk * p.ldb + j];
}

// Writes C[i, j] through the epilogue; rows and columns past the edge are skipped.
fn store(i: u32, j: u32, acc: f32) {
    if i >= p.m || j >= p.n {
        return;
    }
    let idx = p.c_offset + i * p.ldc + j;
    var value = acc;
    if p.accumulate != 0u {
        value += c[idx];
    }
    switch p.epilogue {
        case 1u: { c[idx] = act_forward(p.act, value + extra[p.extra_offset + j]); }
        case 2u: { c[idx] = value * act_derivative_from_output(p.act, extra[p.extra_offset + i * p.ldc + j]); }
        default: { c[idx] = value; }
    }
}
