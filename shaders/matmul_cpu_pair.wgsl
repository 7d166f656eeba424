// Generated from matmul_cpu.wgsl by src/gpu/matmul_pair.rs (pair_source): do not edit.
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

const ROWS_0: u32 = 16u;
const LANES_0: u32 = 8u;
const COLS_0: u32 = 8u;


fn fma4_0(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(av.w), b3, fma(vec4<f32>(av.z), b2, fma(vec4<f32>(av.y), b1, fma(vec4<f32>(av.x), b0, acc))));
}


fn b_row_lo_0(kk: u32, jl: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(load_b_0(kk, jl.x), load_b_0(kk, jl.y), load_b_0(kk, jl.z), load_b_0(kk, jl.w));
}


fn a_quad_0(i: u32, kk: u32) -> vec4<f32> {
    if VEC_A_0 {
        return a4_0[(pp.job0.a_offset + i * pp.job0.lda + kk) / 4u];
    }
    return vec4<f32>(load_a_0(i, kk), load_a_0(i, kk + 1u), load_a_0(i, kk + 2u), load_a_0(i, kk + 3u));
}


fn bt_quad_0(kk: u32, j: u32) -> vec4<f32> {
    if VEC_B_0 {
        return b4_0[(pp.job0.b_offset + j * pp.job0.ldb + kk) / 4u];
    }
    return vec4<f32>(load_b_0(kk, j), load_b_0(kk + 1u, j), load_b_0(kk + 2u, j), load_b_0(kk + 3u, j));
}

fn matmul_rows_0(wid: vec3<u32>, lid: vec3<u32>) {
    let row0 = wid.y * ROWS_0;
    if BIAS_GRAD_0 && wid.x == pp.job0.bias_group {
        bias_grad_rows_0(row0, ROWS_0, lid.x, LANES_0);
        return;
    }
    
    
    
    let j0 = (wid.x * LANES_0 + lid.x) * COLS_0;
    let last_row = pp.job0.m - 1u;
    let last_col = vec4<u32>(pp.job0.n - 1u);
    let jl = min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), last_col);
    let jh = min(vec4<u32>(j0) + vec4<u32>(4u, 5u, 6u, 7u), last_col);
    
    let jv = min(j0, (pp.job0.n - 1u) / 8u * 8u);
    let i0 = min(row0 + 0u, last_row);
    let i1 = min(row0 + 1u, last_row);
    let i2 = min(row0 + 2u, last_row);
    let i3 = min(row0 + 3u, last_row);
    let i4 = min(row0 + 4u, last_row);
    let i5 = min(row0 + 5u, last_row);
    let i6 = min(row0 + 6u, last_row);
    let i7 = min(row0 + 7u, last_row);
    let i8 = min(row0 + 8u, last_row);
    let i9 = min(row0 + 9u, last_row);
    let i10 = min(row0 + 10u, last_row);
    let i11 = min(row0 + 11u, last_row);
    let i12 = min(row0 + 12u, last_row);
    let i13 = min(row0 + 13u, last_row);
    let i14 = min(row0 + 14u, last_row);
    let i15 = min(row0 + 15u, last_row);
    var c0l = vec4<f32>(0.0);
    var c0h = vec4<f32>(0.0);
    var c1l = vec4<f32>(0.0);
    var c1h = vec4<f32>(0.0);
    var c2l = vec4<f32>(0.0);
    var c2h = vec4<f32>(0.0);
    var c3l = vec4<f32>(0.0);
    var c3h = vec4<f32>(0.0);
    var c4l = vec4<f32>(0.0);
    var c4h = vec4<f32>(0.0);
    var c5l = vec4<f32>(0.0);
    var c5h = vec4<f32>(0.0);
    var c6l = vec4<f32>(0.0);
    var c6h = vec4<f32>(0.0);
    var c7l = vec4<f32>(0.0);
    var c7h = vec4<f32>(0.0);
    var c8l = vec4<f32>(0.0);
    var c8h = vec4<f32>(0.0);
    var c9l = vec4<f32>(0.0);
    var c9h = vec4<f32>(0.0);
    var c10l = vec4<f32>(0.0);
    var c10h = vec4<f32>(0.0);
    var c11l = vec4<f32>(0.0);
    var c11h = vec4<f32>(0.0);
    var c12l = vec4<f32>(0.0);
    var c12h = vec4<f32>(0.0);
    var c13l = vec4<f32>(0.0);
    var c13h = vec4<f32>(0.0);
    var c14l = vec4<f32>(0.0);
    var c14h = vec4<f32>(0.0);
    var c15l = vec4<f32>(0.0);
    var c15h = vec4<f32>(0.0);

    let quads = pp.job0.k / 4u;
    for (var kq = 0u; kq < quads; kq++) {
        let kk = kq * 4u;
        
        var b0l: vec4<f32>; var b0h: vec4<f32>; var b1l: vec4<f32>; var b1h: vec4<f32>;
        var b2l: vec4<f32>; var b2h: vec4<f32>; var b3l: vec4<f32>; var b3h: vec4<f32>;
        if TRANS_B_0 {
            let v0 = bt_quad_0(kk, jl.x);
            let v1 = bt_quad_0(kk, jl.y);
            let v2 = bt_quad_0(kk, jl.z);
            let v3 = bt_quad_0(kk, jl.w);
            let v4 = bt_quad_0(kk, jh.x);
            let v5 = bt_quad_0(kk, jh.y);
            let v6 = bt_quad_0(kk, jh.z);
            let v7 = bt_quad_0(kk, jh.w);
            b0l = vec4<f32>(v0.x, v1.x, v2.x, v3.x);
            b0h = vec4<f32>(v4.x, v5.x, v6.x, v7.x);
            b1l = vec4<f32>(v0.y, v1.y, v2.y, v3.y);
            b1h = vec4<f32>(v4.y, v5.y, v6.y, v7.y);
            b2l = vec4<f32>(v0.z, v1.z, v2.z, v3.z);
            b2h = vec4<f32>(v4.z, v5.z, v6.z, v7.z);
            b3l = vec4<f32>(v0.w, v1.w, v2.w, v3.w);
            b3h = vec4<f32>(v4.w, v5.w, v6.w, v7.w);
        } else if VEC_B_0 {
            
            
            let base0 = (pp.job0.b_offset + (kk + 0u) * pp.job0.ldb + jv) / 4u;
            b0l = b4_0[base0];
            b0h = b4_0[base0 + 1u];
            let base1 = (pp.job0.b_offset + (kk + 1u) * pp.job0.ldb + jv) / 4u;
            b1l = b4_0[base1];
            b1h = b4_0[base1 + 1u];
            let base2 = (pp.job0.b_offset + (kk + 2u) * pp.job0.ldb + jv) / 4u;
            b2l = b4_0[base2];
            b2h = b4_0[base2 + 1u];
            let base3 = (pp.job0.b_offset + (kk + 3u) * pp.job0.ldb + jv) / 4u;
            b3l = b4_0[base3];
            b3h = b4_0[base3 + 1u];
        } else {
            b0l = b_row_lo_0(kk + 0u, jl);
            b0h = b_row_lo_0(kk + 0u, jh);
            b1l = b_row_lo_0(kk + 1u, jl);
            b1h = b_row_lo_0(kk + 1u, jh);
            b2l = b_row_lo_0(kk + 2u, jl);
            b2h = b_row_lo_0(kk + 2u, jh);
            b3l = b_row_lo_0(kk + 3u, jl);
            b3h = b_row_lo_0(kk + 3u, jh);
        }
        
        if TRANS_A_0 && VEC_A_0 {
            
            
            let base0 = (pp.job0.a_offset + (kk + 0u) * pp.job0.lda + row0) / 4u;
            let t00 = a4_0[base0 + 0u];
            let t01 = a4_0[base0 + 1u];
            let t02 = a4_0[base0 + 2u];
            let t03 = a4_0[base0 + 3u];
            let base1 = (pp.job0.a_offset + (kk + 1u) * pp.job0.lda + row0) / 4u;
            let t10 = a4_0[base1 + 0u];
            let t11 = a4_0[base1 + 1u];
            let t12 = a4_0[base1 + 2u];
            let t13 = a4_0[base1 + 3u];
            let base2 = (pp.job0.a_offset + (kk + 2u) * pp.job0.lda + row0) / 4u;
            let t20 = a4_0[base2 + 0u];
            let t21 = a4_0[base2 + 1u];
            let t22 = a4_0[base2 + 2u];
            let t23 = a4_0[base2 + 3u];
            let base3 = (pp.job0.a_offset + (kk + 3u) * pp.job0.lda + row0) / 4u;
            let t30 = a4_0[base3 + 0u];
            let t31 = a4_0[base3 + 1u];
            let t32 = a4_0[base3 + 2u];
            let t33 = a4_0[base3 + 3u];
            let a0 = vec4<f32>(t00.x, t10.x, t20.x, t30.x);
            c0l = fma4_0(c0l, a0, b0l, b1l, b2l, b3l);
            c0h = fma4_0(c0h, a0, b0h, b1h, b2h, b3h);
            let a1 = vec4<f32>(t00.y, t10.y, t20.y, t30.y);
            c1l = fma4_0(c1l, a1, b0l, b1l, b2l, b3l);
            c1h = fma4_0(c1h, a1, b0h, b1h, b2h, b3h);
            let a2 = vec4<f32>(t00.z, t10.z, t20.z, t30.z);
            c2l = fma4_0(c2l, a2, b0l, b1l, b2l, b3l);
            c2h = fma4_0(c2h, a2, b0h, b1h, b2h, b3h);
            let a3 = vec4<f32>(t00.w, t10.w, t20.w, t30.w);
            c3l = fma4_0(c3l, a3, b0l, b1l, b2l, b3l);
            c3h = fma4_0(c3h, a3, b0h, b1h, b2h, b3h);
            let a4_0 = vec4<f32>(t01.x, t11.x, t21.x, t31.x);
            c4l = fma4_0(c4l, a4_0, b0l, b1l, b2l, b3l);
            c4h = fma4_0(c4h, a4_0, b0h, b1h, b2h, b3h);
            let a5 = vec4<f32>(t01.y, t11.y, t21.y, t31.y);
            c5l = fma4_0(c5l, a5, b0l, b1l, b2l, b3l);
            c5h = fma4_0(c5h, a5, b0h, b1h, b2h, b3h);
            let a6 = vec4<f32>(t01.z, t11.z, t21.z, t31.z);
            c6l = fma4_0(c6l, a6, b0l, b1l, b2l, b3l);
            c6h = fma4_0(c6h, a6, b0h, b1h, b2h, b3h);
            let a7 = vec4<f32>(t01.w, t11.w, t21.w, t31.w);
            c7l = fma4_0(c7l, a7, b0l, b1l, b2l, b3l);
            c7h = fma4_0(c7h, a7, b0h, b1h, b2h, b3h);
            let a8 = vec4<f32>(t02.x, t12.x, t22.x, t32.x);
            c8l = fma4_0(c8l, a8, b0l, b1l, b2l, b3l);
            c8h = fma4_0(c8h, a8, b0h, b1h, b2h, b3h);
            let a9 = vec4<f32>(t02.y, t12.y, t22.y, t32.y);
            c9l = fma4_0(c9l, a9, b0l, b1l, b2l, b3l);
            c9h = fma4_0(c9h, a9, b0h, b1h, b2h, b3h);
            let a10 = vec4<f32>(t02.z, t12.z, t22.z, t32.z);
            c10l = fma4_0(c10l, a10, b0l, b1l, b2l, b3l);
            c10h = fma4_0(c10h, a10, b0h, b1h, b2h, b3h);
            let a11 = vec4<f32>(t02.w, t12.w, t22.w, t32.w);
            c11l = fma4_0(c11l, a11, b0l, b1l, b2l, b3l);
            c11h = fma4_0(c11h, a11, b0h, b1h, b2h, b3h);
            let a12 = vec4<f32>(t03.x, t13.x, t23.x, t33.x);
            c12l = fma4_0(c12l, a12, b0l, b1l, b2l, b3l);
            c12h = fma4_0(c12h, a12, b0h, b1h, b2h, b3h);
            let a13 = vec4<f32>(t03.y, t13.y, t23.y, t33.y);
            c13l = fma4_0(c13l, a13, b0l, b1l, b2l, b3l);
            c13h = fma4_0(c13h, a13, b0h, b1h, b2h, b3h);
            let a14 = vec4<f32>(t03.z, t13.z, t23.z, t33.z);
            c14l = fma4_0(c14l, a14, b0l, b1l, b2l, b3l);
            c14h = fma4_0(c14h, a14, b0h, b1h, b2h, b3h);
            let a15 = vec4<f32>(t03.w, t13.w, t23.w, t33.w);
            c15l = fma4_0(c15l, a15, b0l, b1l, b2l, b3l);
            c15h = fma4_0(c15h, a15, b0h, b1h, b2h, b3h);
        } else {
            let a0 = a_quad_0(i0, kk);
            c0l = fma4_0(c0l, a0, b0l, b1l, b2l, b3l);
            c0h = fma4_0(c0h, a0, b0h, b1h, b2h, b3h);
            let a1 = a_quad_0(i1, kk);
            c1l = fma4_0(c1l, a1, b0l, b1l, b2l, b3l);
            c1h = fma4_0(c1h, a1, b0h, b1h, b2h, b3h);
            let a2 = a_quad_0(i2, kk);
            c2l = fma4_0(c2l, a2, b0l, b1l, b2l, b3l);
            c2h = fma4_0(c2h, a2, b0h, b1h, b2h, b3h);
            let a3 = a_quad_0(i3, kk);
            c3l = fma4_0(c3l, a3, b0l, b1l, b2l, b3l);
            c3h = fma4_0(c3h, a3, b0h, b1h, b2h, b3h);
            let a4_0 = a_quad_0(i4, kk);
            c4l = fma4_0(c4l, a4_0, b0l, b1l, b2l, b3l);
            c4h = fma4_0(c4h, a4_0, b0h, b1h, b2h, b3h);
            let a5 = a_quad_0(i5, kk);
            c5l = fma4_0(c5l, a5, b0l, b1l, b2l, b3l);
            c5h = fma4_0(c5h, a5, b0h, b1h, b2h, b3h);
            let a6 = a_quad_0(i6, kk);
            c6l = fma4_0(c6l, a6, b0l, b1l, b2l, b3l);
            c6h = fma4_0(c6h, a6, b0h, b1h, b2h, b3h);
            let a7 = a_quad_0(i7, kk);
            c7l = fma4_0(c7l, a7, b0l, b1l, b2l, b3l);
            c7h = fma4_0(c7h, a7, b0h, b1h, b2h, b3h);
            let a8 = a_quad_0(i8, kk);
            c8l = fma4_0(c8l, a8, b0l, b1l, b2l, b3l);
            c8h = fma4_0(c8h, a8, b0h, b1h, b2h, b3h);
            let a9 = a_quad_0(i9, kk);
            c9l = fma4_0(c9l, a9, b0l, b1l, b2l, b3l);
            c9h = fma4_0(c9h, a9, b0h, b1h, b2h, b3h);
            let a10 = a_quad_0(i10, kk);
            c10l = fma4_0(c10l, a10, b0l, b1l, b2l, b3l);
            c10h = fma4_0(c10h, a10, b0h, b1h, b2h, b3h);
            let a11 = a_quad_0(i11, kk);
            c11l = fma4_0(c11l, a11, b0l, b1l, b2l, b3l);
            c11h = fma4_0(c11h, a11, b0h, b1h, b2h, b3h);
            let a12 = a_quad_0(i12, kk);
            c12l = fma4_0(c12l, a12, b0l, b1l, b2l, b3l);
            c12h = fma4_0(c12h, a12, b0h, b1h, b2h, b3h);
            let a13 = a_quad_0(i13, kk);
            c13l = fma4_0(c13l, a13, b0l, b1l, b2l, b3l);
            c13h = fma4_0(c13h, a13, b0h, b1h, b2h, b3h);
            let a14 = a_quad_0(i14, kk);
            c14l = fma4_0(c14l, a14, b0l, b1l, b2l, b3l);
            c14h = fma4_0(c14h, a14, b0h, b1h, b2h, b3h);
            let a15 = a_quad_0(i15, kk);
            c15l = fma4_0(c15l, a15, b0l, b1l, b2l, b3l);
            c15h = fma4_0(c15h, a15, b0h, b1h, b2h, b3h);
        }
    }
    
    for (var kk = quads * 4u; kk < pp.job0.k; kk++) {
        let bl = b_row_lo_0(kk, jl);
        let bh = b_row_lo_0(kk, jh);
        let s0 = vec4<f32>(load_a_0(i0, kk));
        c0l = fma(s0, bl, c0l);
        c0h = fma(s0, bh, c0h);
        let s1 = vec4<f32>(load_a_0(i1, kk));
        c1l = fma(s1, bl, c1l);
        c1h = fma(s1, bh, c1h);
        let s2 = vec4<f32>(load_a_0(i2, kk));
        c2l = fma(s2, bl, c2l);
        c2h = fma(s2, bh, c2h);
        let s3 = vec4<f32>(load_a_0(i3, kk));
        c3l = fma(s3, bl, c3l);
        c3h = fma(s3, bh, c3h);
        let s4 = vec4<f32>(load_a_0(i4, kk));
        c4l = fma(s4, bl, c4l);
        c4h = fma(s4, bh, c4h);
        let s5 = vec4<f32>(load_a_0(i5, kk));
        c5l = fma(s5, bl, c5l);
        c5h = fma(s5, bh, c5h);
        let s6 = vec4<f32>(load_a_0(i6, kk));
        c6l = fma(s6, bl, c6l);
        c6h = fma(s6, bh, c6h);
        let s7 = vec4<f32>(load_a_0(i7, kk));
        c7l = fma(s7, bl, c7l);
        c7h = fma(s7, bh, c7h);
        let s8 = vec4<f32>(load_a_0(i8, kk));
        c8l = fma(s8, bl, c8l);
        c8h = fma(s8, bh, c8h);
        let s9 = vec4<f32>(load_a_0(i9, kk));
        c9l = fma(s9, bl, c9l);
        c9h = fma(s9, bh, c9h);
        let s10 = vec4<f32>(load_a_0(i10, kk));
        c10l = fma(s10, bl, c10l);
        c10h = fma(s10, bh, c10h);
        let s11 = vec4<f32>(load_a_0(i11, kk));
        c11l = fma(s11, bl, c11l);
        c11h = fma(s11, bh, c11h);
        let s12 = vec4<f32>(load_a_0(i12, kk));
        c12l = fma(s12, bl, c12l);
        c12h = fma(s12, bh, c12h);
        let s13 = vec4<f32>(load_a_0(i13, kk));
        c13l = fma(s13, bl, c13l);
        c13h = fma(s13, bh, c13h);
        let s14 = vec4<f32>(load_a_0(i14, kk));
        c14l = fma(s14, bl, c14l);
        c14h = fma(s14, bh, c14h);
        let s15 = vec4<f32>(load_a_0(i15, kk));
        c15l = fma(s15, bl, c15l);
        c15h = fma(s15, bh, c15h);
    }

    
    
    var block: array<vec4<f32>, 32>;
    block[0] = c0l;
    block[1] = c0h;
    block[2] = c1l;
    block[3] = c1h;
    block[4] = c2l;
    block[5] = c2h;
    block[6] = c3l;
    block[7] = c3h;
    block[8] = c4l;
    block[9] = c4h;
    block[10] = c5l;
    block[11] = c5h;
    block[12] = c6l;
    block[13] = c6h;
    block[14] = c7l;
    block[15] = c7h;
    block[16] = c8l;
    block[17] = c8h;
    block[18] = c9l;
    block[19] = c9h;
    block[20] = c10l;
    block[21] = c10h;
    block[22] = c11l;
    block[23] = c11h;
    block[24] = c12l;
    block[25] = c12h;
    block[26] = c13l;
    block[27] = c13h;
    block[28] = c14l;
    block[29] = c14h;
    block[30] = c15l;
    block[31] = c15h;
    let rows = min(ROWS_0, pp.job0.m - row0);
    let cols = min(COLS_0, max(pp.job0.n, j0) - j0);
    for (var r = 0u; r < rows; r++) {
        for (var t = 0u; t < cols; t++) {
            store_0(row0 + r, j0 + t, block[2u * r + t / 4u][t % 4u]);
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

const ROWS_1: u32 = 16u;
const LANES_1: u32 = 8u;
const COLS_1: u32 = 8u;


fn fma4_1(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return fma(vec4<f32>(av.w), b3, fma(vec4<f32>(av.z), b2, fma(vec4<f32>(av.y), b1, fma(vec4<f32>(av.x), b0, acc))));
}


fn b_row_lo_1(kk: u32, jl: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(load_b_1(kk, jl.x), load_b_1(kk, jl.y), load_b_1(kk, jl.z), load_b_1(kk, jl.w));
}


fn a_quad_1(i: u32, kk: u32) -> vec4<f32> {
    if VEC_A_1 {
        return a4_1[(pp.job1.a_offset + i * pp.job1.lda + kk) / 4u];
    }
    return vec4<f32>(load_a_1(i, kk), load_a_1(i, kk + 1u), load_a_1(i, kk + 2u), load_a_1(i, kk + 3u));
}


fn bt_quad_1(kk: u32, j: u32) -> vec4<f32> {
    if VEC_B_1 {
        return b4_1[(pp.job1.b_offset + j * pp.job1.ldb + kk) / 4u];
    }
    return vec4<f32>(load_b_1(kk, j), load_b_1(kk + 1u, j), load_b_1(kk + 2u, j), load_b_1(kk + 3u, j));
}

fn matmul_rows_1(wid: vec3<u32>, lid: vec3<u32>) {
    let row0 = wid.y * ROWS_1;
    if BIAS_GRAD_1 && wid.x == pp.job1.bias_group {
        bias_grad_rows_1(row0, ROWS_1, lid.x, LANES_1);
        return;
    }
    
    
    
    let j0 = (wid.x * LANES_1 + lid.x) * COLS_1;
    let last_row = pp.job1.m - 1u;
    let last_col = vec4<u32>(pp.job1.n - 1u);
    let jl = min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u), last_col);
    let jh = min(vec4<u32>(j0) + vec4<u32>(4u, 5u, 6u, 7u), last_col);
    
    let jv = min(j0, (pp.job1.n - 1u) / 8u * 8u);
    let i0 = min(row0 + 0u, last_row);
    let i1 = min(row0 + 1u, last_row);
    let i2 = min(row0 + 2u, last_row);
    let i3 = min(row0 + 3u, last_row);
    let i4 = min(row0 + 4u, last_row);
    let i5 = min(row0 + 5u, last_row);
    let i6 = min(row0 + 6u, last_row);
    let i7 = min(row0 + 7u, last_row);
    let i8 = min(row0 + 8u, last_row);
    let i9 = min(row0 + 9u, last_row);
    let i10 = min(row0 + 10u, last_row);
    let i11 = min(row0 + 11u, last_row);
    let i12 = min(row0 + 12u, last_row);
    let i13 = min(row0 + 13u, last_row);
    let i14 = min(row0 + 14u, last_row);
    let i15 = min(row0 + 15u, last_row);
    var c0l = vec4<f32>(0.0);
    var c0h = vec4<f32>(0.0);
    var c1l = vec4<f32>(0.0);
    var c1h = vec4<f32>(0.0);
    var c2l = vec4<f32>(0.0);
    var c2h = vec4<f32>(0.0);
    var c3l = vec4<f32>(0.0);
    var c3h = vec4<f32>(0.0);
    var c4l = vec4<f32>(0.0);
    var c4h = vec4<f32>(0.0);
    var c5l = vec4<f32>(0.0);
    var c5h = vec4<f32>(0.0);
    var c6l = vec4<f32>(0.0);
    var c6h = vec4<f32>(0.0);
    var c7l = vec4<f32>(0.0);
    var c7h = vec4<f32>(0.0);
    var c8l = vec4<f32>(0.0);
    var c8h = vec4<f32>(0.0);
    var c9l = vec4<f32>(0.0);
    var c9h = vec4<f32>(0.0);
    var c10l = vec4<f32>(0.0);
    var c10h = vec4<f32>(0.0);
    var c11l = vec4<f32>(0.0);
    var c11h = vec4<f32>(0.0);
    var c12l = vec4<f32>(0.0);
    var c12h = vec4<f32>(0.0);
    var c13l = vec4<f32>(0.0);
    var c13h = vec4<f32>(0.0);
    var c14l = vec4<f32>(0.0);
    var c14h = vec4<f32>(0.0);
    var c15l = vec4<f32>(0.0);
    var c15h = vec4<f32>(0.0);

    let quads = pp.job1.k / 4u;
    for (var kq = 0u; kq < quads; kq++) {
        let kk = kq * 4u;
        
        var b0l: vec4<f32>; var b0h: vec4<f32>; var b1l: vec4<f32>; var b1h: vec4<f32>;
        var b2l: vec4<f32>; var b2h: vec4<f32>; var b3l: vec4<f32>; var b3h: vec4<f32>;
        if TRANS_B_1 {
            let v0 = bt_quad_1(kk, jl.x);
            let v1 = bt_quad_1(kk, jl.y);
            let v2 = bt_quad_1(kk, jl.z);
            let v3 = bt_quad_1(kk, jl.w);
            let v4 = bt_quad_1(kk, jh.x);
            let v5 = bt_quad_1(kk, jh.y);
            let v6 = bt_quad_1(kk, jh.z);
            let v7 = bt_quad_1(kk, jh.w);
            b0l = vec4<f32>(v0.x, v1.x, v2.x, v3.x);
            b0h = vec4<f32>(v4.x, v5.x, v6.x, v7.x);
            b1l = vec4<f32>(v0.y, v1.y, v2.y, v3.y);
            b1h = vec4<f32>(v4.y, v5.y, v6.y, v7.y);
            b2l = vec4<f32>(v0.z, v1.z, v2.z, v3.z);
            b2h = vec4<f32>(v4.z, v5.z, v6.z, v7.z);
            b3l = vec4<f32>(v0.w, v1.w, v2.w, v3.w);
            b3h = vec4<f32>(v4.w, v5.w, v6.w, v7.w);
        } else if VEC_B_1 {
            
            
            let base0 = (pp.job1.b_offset + (kk + 0u) * pp.job1.ldb + jv) / 4u;
            b0l = b4_1[base0];
            b0h = b4_1[base0 + 1u];
            let base1 = (pp.job1.b_offset + (kk + 1u) * pp.job1.ldb + jv) / 4u;
            b1l = b4_1[base1];
            b1h = b4_1[base1 + 1u];
            let base2 = (pp.job1.b_offset + (kk + 2u) * pp.job1.ldb + jv) / 4u;
            b2l = b4_1[base2];
            b2h = b4_1[base2 + 1u];
            let base3 = (pp.job1.b_offset + (kk + 3u) * pp.job1.ldb + jv) / 4u;
            b3l = b4_1[base3];
            b3h = b4_1[base3 + 1u];
        } else {
            b0l = b_row_lo_1(kk + 0u, jl);
            b0h = b_row_lo_1(kk + 0u, jh);
            b1l = b_row_lo_1(kk + 1u, jl);
            b1h = b_row_lo_1(kk + 1u, jh);
            b2l = b_row_lo_1(kk + 2u, jl);
            b2h = b_row_lo_1(kk + 2u, jh);
            b3l = b_row_lo_1(kk + 3u, jl);
            b3h = b_row_lo_1(kk + 3u, jh);
        }
        
        if TRANS_A_1 && VEC_A_1 {
            
            
            let base0 = (pp.job1.a_offset + (kk + 0u) * pp.job1.lda + row0) / 4u;
            let t00 = a4_1[base0 + 0u];
            let t01 = a4_1[base0 + 1u];
            let t02 = a4_1[base0 + 2u];
            let t03 = a4_1[base0 + 3u];
            let base1 = (pp.job1.a_offset + (kk + 1u) * pp.job1.lda + row0) / 4u;
            let t10 = a4_1[base1 + 0u];
            let t11 = a4_1[base1 + 1u];
            let t12 = a4_1[base1 + 2u];
            let t13 = a4_1[base1 + 3u];
            let base2 = (pp.job1.a_offset + (kk + 2u) * pp.job1.lda + row0) / 4u;
            let t20 = a4_1[base2 + 0u];
            let t21 = a4_1[base2 + 1u];
            let t22 = a4_1[base2 + 2u];
            let t23 = a4_1[base2 + 3u];
            let base3 = (pp.job1.a_offset + (kk + 3u) * pp.job1.lda + row0) / 4u;
            let t30 = a4_1[base3 + 0u];
            let t31 = a4_1[base3 + 1u];
            let t32 = a4_1[base3 + 2u];
            let t33 = a4_1[base3 + 3u];
            let a0 = vec4<f32>(t00.x, t10.x, t20.x, t30.x);
            c0l = fma4_1(c0l, a0, b0l, b1l, b2l, b3l);
            c0h = fma4_1(c0h, a0, b0h, b1h, b2h, b3h);
            let a1 = vec4<f32>(t00.y, t10.y, t20.y, t30.y);
            c1l = fma4_1(c1l, a1, b0l, b1l, b2l, b3l);
            c1h = fma4_1(c1h, a1, b0h, b1h, b2h, b3h);
            let a2 = vec4<f32>(t00.z, t10.z, t20.z, t30.z);
            c2l = fma4_1(c2l, a2, b0l, b1l, b2l, b3l);
            c2h = fma4_1(c2h, a2, b0h, b1h, b2h, b3h);
            let a3 = vec4<f32>(t00.w, t10.w, t20.w, t30.w);
            c3l = fma4_1(c3l, a3, b0l, b1l, b2l, b3l);
            c3h = fma4_1(c3h, a3, b0h, b1h, b2h, b3h);
            let a4_1 = vec4<f32>(t01.x, t11.x, t21.x, t31.x);
            c4l = fma4_1(c4l, a4_1, b0l, b1l, b2l, b3l);
            c4h = fma4_1(c4h, a4_1, b0h, b1h, b2h, b3h);
            let a5 = vec4<f32>(t01.y, t11.y, t21.y, t31.y);
            c5l = fma4_1(c5l, a5, b0l, b1l, b2l, b3l);
            c5h = fma4_1(c5h, a5, b0h, b1h, b2h, b3h);
            let a6 = vec4<f32>(t01.z, t11.z, t21.z, t31.z);
            c6l = fma4_1(c6l, a6, b0l, b1l, b2l, b3l);
            c6h = fma4_1(c6h, a6, b0h, b1h, b2h, b3h);
            let a7 = vec4<f32>(t01.w, t11.w, t21.w, t31.w);
            c7l = fma4_1(c7l, a7, b0l, b1l, b2l, b3l);
            c7h = fma4_1(c7h, a7, b0h, b1h, b2h, b3h);
            let a8 = vec4<f32>(t02.x, t12.x, t22.x, t32.x);
            c8l = fma4_1(c8l, a8, b0l, b1l, b2l, b3l);
            c8h = fma4_1(c8h, a8, b0h, b1h, b2h, b3h);
            let a9 = vec4<f32>(t02.y, t12.y, t22.y, t32.y);
            c9l = fma4_1(c9l, a9, b0l, b1l, b2l, b3l);
            c9h = fma4_1(c9h, a9, b0h, b1h, b2h, b3h);
            let a10 = vec4<f32>(t02.z, t12.z, t22.z, t32.z);
            c10l = fma4_1(c10l, a10, b0l, b1l, b2l, b3l);
            c10h = fma4_1(c10h, a10, b0h, b1h, b2h, b3h);
            let a11 = vec4<f32>(t02.w, t12.w, t22.w, t32.w);
            c11l = fma4_1(c11l, a11, b0l, b1l, b2l, b3l);
            c11h = fma4_1(c11h, a11, b0h, b1h, b2h, b3h);
            let a12 = vec4<f32>(t03.x, t13.x, t23.x, t33.x);
            c12l = fma4_1(c12l, a12, b0l, b1l, b2l, b3l);
            c12h = fma4_1(c12h, a12, b0h, b1h, b2h, b3h);
            let a13 = vec4<f32>(t03.y, t13.y, t23.y, t33.y);
            c13l = fma4_1(c13l, a13, b0l, b1l, b2l, b3l);
            c13h = fma4_1(c13h, a13, b0h, b1h, b2h, b3h);
            let a14 = vec4<f32>(t03.z, t13.z, t23.z, t33.z);
            c14l = fma4_1(c14l, a14, b0l, b1l, b2l, b3l);
            c14h = fma4_1(c14h, a14, b0h, b1h, b2h, b3h);
            let a15 = vec4<f32>(t03.w, t13.w, t23.w, t33.w);
            c15l = fma4_1(c15l, a15, b0l, b1l, b2l, b3l);
            c15h = fma4_1(c15h, a15, b0h, b1h, b2h, b3h);
        } else {
            let a0 = a_quad_1(i0, kk);
            c0l = fma4_1(c0l, a0, b0l, b1l, b2l, b3l);
            c0h = fma4_1(c0h, a0, b0h, b1h, b2h, b3h);
            let a1 = a_quad_1(i1, kk);
            c1l = fma4_1(c1l, a1, b0l, b1l, b2l, b3l);
            c1h = fma4_1(c1h, a1, b0h, b1h, b2h, b3h);
            let a2 = a_quad_1(i2, kk);
            c2l = fma4_1(c2l, a2, b0l, b1l, b2l, b3l);
            c2h = fma4_1(c2h, a2, b0h, b1h, b2h, b3h);
            let a3 = a_quad_1(i3, kk);
            c3l = fma4_1(c3l, a3, b0l, b1l, b2l, b3l);
            c3h = fma4_1(c3h, a3, b0h, b1h, b2h, b3h);
            let a4_1 = a_quad_1(i4, kk);
            c4l = fma4_1(c4l, a4_1, b0l, b1l, b2l, b3l);
            c4h = fma4_1(c4h, a4_1, b0h, b1h, b2h, b3h);
            let a5 = a_quad_1(i5, kk);
            c5l = fma4_1(c5l, a5, b0l, b1l, b2l, b3l);
            c5h = fma4_1(c5h, a5, b0h, b1h, b2h, b3h);
            let a6 = a_quad_1(i6, kk);
            c6l = fma4_1(c6l, a6, b0l, b1l, b2l, b3l);
            c6h = fma4_1(c6h, a6, b0h, b1h, b2h, b3h);
            let a7 = a_quad_1(i7, kk);
            c7l = fma4_1(c7l, a7, b0l, b1l, b2l, b3l);
            c7h = fma4_1(c7h, a7, b0h, b1h, b2h, b3h);
            let a8 = a_quad_1(i8, kk);
            c8l = fma4_1(c8l, a8, b0l, b1l, b2l, b3l);
            c8h = fma4_1(c8h, a8, b0h, b1h, b2h, b3h);
            let a9 = a_quad_1(i9, kk);
            c9l = fma4_1(c9l, a9, b0l, b1l, b2l, b3l);
            c9h = fma4_1(c9h, a9, b0h, b1h, b2h, b3h);
            let a10 = a_quad_1(i10, kk);
            c10l = fma4_1(c10l, a10, b0l, b1l, b2l, b3l);
            c10h = fma4_1(c10h, a10, b0h, b1h, b2h, b3h);
            let a11 = a_quad_1(i11, kk);
            c11l = fma4_1(c11l, a11, b0l, b1l, b2l, b3l);
            c11h = fma4_1(c11h, a11, b0h, b1h, b2h, b3h);
            let a12 = a_quad_1(i12, kk);
            c12l = fma4_1(c12l, a12, b0l, b1l, b2l, b3l);
            c12h = fma4_1(c12h, a12, b0h, b1h, b2h, b3h);
            let a13 = a_quad_1(i13, kk);
            c13l = fma4_1(c13l, a13, b0l, b1l, b2l, b3l);
            c13h = fma4_1(c13h, a13, b0h, b1h, b2h, b3h);
            let a14 = a_quad_1(i14, kk);
            c14l = fma4_1(c14l, a14, b0l, b1l, b2l, b3l);
            c14h = fma4_1(c14h, a14, b0h, b1h, b2h, b3h);
            let a15 = a_quad_1(i15, kk);
            c15l = fma4_1(c15l, a15, b0l, b1l, b2l, b3l);
            c15h = fma4_1(c15h, a15, b0h, b1h, b2h, b3h);
        }
    }
    
    for (var kk = quads * 4u; kk < pp.job1.k; kk++) {
        let bl = b_row_lo_1(kk, jl);
        let bh = b_row_lo_1(kk, jh);
        let s0 = vec4<f32>(load_a_1(i0, kk));
        c0l = fma(s0, bl, c0l);
        c0h = fma(s0, bh, c0h);
        let s1 = vec4<f32>(load_a_1(i1, kk));
        c1l = fma(s1, bl, c1l);
        c1h = fma(s1, bh, c1h);
        let s2 = vec4<f32>(load_a_1(i2, kk));
        c2l = fma(s2, bl, c2l);
        c2h = fma(s2, bh, c2h);
        let s3 = vec4<f32>(load_a_1(i3, kk));
        c3l = fma(s3, bl, c3l);
        c3h = fma(s3, bh, c3h);
        let s4 = vec4<f32>(load_a_1(i4, kk));
        c4l = fma(s4, bl, c4l);
        c4h = fma(s4, bh, c4h);
        let s5 = vec4<f32>(load_a_1(i5, kk));
        c5l = fma(s5, bl, c5l);
        c5h = fma(s5, bh, c5h);
        let s6 = vec4<f32>(load_a_1(i6, kk));
        c6l = fma(s6, bl, c6l);
        c6h = fma(s6, bh, c6h);
        let s7 = vec4<f32>(load_a_1(i7, kk));
        c7l = fma(s7, bl, c7l);
        c7h = fma(s7, bh, c7h);
        let s8 = vec4<f32>(load_a_1(i8, kk));
        c8l = fma(s8, bl, c8l);
        c8h = fma(s8, bh, c8h);
        let s9 = vec4<f32>(load_a_1(i9, kk));
        c9l = fma(s9, bl, c9l);
        c9h = fma(s9, bh, c9h);
        let s10 = vec4<f32>(load_a_1(i10, kk));
        c10l = fma(s10, bl, c10l);
        c10h = fma(s10, bh, c10h);
        let s11 = vec4<f32>(load_a_1(i11, kk));
        c11l = fma(s11, bl, c11l);
        c11h = fma(s11, bh, c11h);
        let s12 = vec4<f32>(load_a_1(i12, kk));
        c12l = fma(s12, bl, c12l);
        c12h = fma(s12, bh, c12h);
        let s13 = vec4<f32>(load_a_1(i13, kk));
        c13l = fma(s13, bl, c13l);
        c13h = fma(s13, bh, c13h);
        let s14 = vec4<f32>(load_a_1(i14, kk));
        c14l = fma(s14, bl, c14l);
        c14h = fma(s14, bh, c14h);
        let s15 = vec4<f32>(load_a_1(i15, kk));
        c15l = fma(s15, bl, c15l);
        c15h = fma(s15, bh, c15h);
    }

    
    
    var block: array<vec4<f32>, 32>;
    block[0] = c0l;
    block[1] = c0h;
    block[2] = c1l;
    block[3] = c1h;
    block[4] = c2l;
    block[5] = c2h;
    block[6] = c3l;
    block[7] = c3h;
    block[8] = c4l;
    block[9] = c4h;
    block[10] = c5l;
    block[11] = c5h;
    block[12] = c6l;
    block[13] = c6h;
    block[14] = c7l;
    block[15] = c7h;
    block[16] = c8l;
    block[17] = c8h;
    block[18] = c9l;
    block[19] = c9h;
    block[20] = c10l;
    block[21] = c10h;
    block[22] = c11l;
    block[23] = c11h;
    block[24] = c12l;
    block[25] = c12h;
    block[26] = c13l;
    block[27] = c13h;
    block[28] = c14l;
    block[29] = c14h;
    block[30] = c15l;
    block[31] = c15h;
    let rows = min(ROWS_1, pp.job1.m - row0);
    let cols = min(COLS_1, max(pp.job1.n, j0) - j0);
    for (var r = 0u; r < rows; r++) {
        for (var t = 0u; t < cols; t++) {
            store_1(row0 + r, j0 + t, block[2u * r + t / 4u][t % 4u]);
        }
    }
}
@compute @workgroup_size(8, 1, 1)
fn matmul_rows_pair(
    @builtin(workgroup_id) pair_wid: vec3<u32>,
    @builtin(local_invocation_id) pair_lid: vec3<u32>,
) {
    if pair_wid.x < pp.split {
        if pair_wid.y < pp.rows0 {
            matmul_rows_0(pair_wid, pair_lid);
        }
    } else {
        let w = vec3<u32>(pair_wid.x - pp.split, pair_wid.y, pair_wid.z);
        if w.y < pp.rows1 {
            matmul_rows_1(w, pair_lid);
        }
    }
}
