// Shared by the matmul kernels (matmul.wgsl for GPUs, matmul_cpu.wgsl for CPU adapters):
// C[m×n] = epilogue(op(A)[m×k] · op(B)[k×n] (+ C)), row-major, any sizes ≥ 1.
// CPU twin: src/cpu/matmul.rs. Needs activation.wgsl and matmul_params.wgsl before it.
//
// Operands are strided views: element (i, j) of a view is at offset + i·ld + j, so a kernel can
// read a column block of a wider matrix or write into one (layers split across bindings).
// Transposed operands are read in place (TRANS_A: A stored k×m; TRANS_B: B stored n×k).
// epilogue 0: store; 1: act(acc + bias[extra_offset + col]);
//          2: acc · act'(extra[extra_offset + row·ldc + col]) (the layer's activation output).
// accumulate = 1 adds the existing C before the epilogue (sums over split bindings).
// bias_group: the column of workgroups (wid.x) that, instead of a block of C, writes
// db[db_offset + i] = Σ_kk op(A)[i, kk] for its rows: the bias gradient fused into the weight
// gradient's dispatch (dW = dZᵀ·X, db = Σ_rows dZ), summed in the CPU twin's order. NO_GROUP: none.
// The epilogue and its activation are uniforms, not pipeline constants: they run once per output,
// and every pipeline variant costs up to a second of compilation on a CPU adapter.

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> extra: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(7) var<storage, read_write> db: array<f32>;

const NO_GROUP: u32 = 0xffffffffu;

override TRANS_A: bool = false;
// Whether a column of workgroups computes a bias gradient (bias_group): a constant, so the
// variants without one compile without that branch (on lavapipe it costs half a second each).
override BIAS_GRAD: bool = false;
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

// The bias-gradient workgroup's share: rows row0..row0+rows of op(A), `lanes` invocations each
// summing every `lanes`-th row over all of k (in k order, like the CPU twin).
fn bias_grad_rows(row0: u32, rows: u32, lane: u32, lanes: u32) {
    for (var r = lane; r < rows; r += lanes) {
        let i = row0 + r;
        if i < p.m {
            var sum = 0.0;
            for (var kk = 0u; kk < p.k; kk++) {
                sum += load_a(i, kk);
            }
            db[p.db_offset + i] = sum;
        }
    }
}
