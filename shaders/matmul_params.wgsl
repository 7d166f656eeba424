// The uniform every matmul kernel reads (matmul_common.wgsl); its own file so a module that
// holds two kernel copies (gpu/matmul_pair.rs) declares it once. Rust twin: MatmulParams.

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
    bias_group: u32,
    db_offset: u32,
    _pad: u32,
}
