// Matmul for GPUs (discrete, integrated): tiles of invocations along both axes, so a warp's
// loads of B are coalesced along columns. Needs activation.wgsl, matmul_params.wgsl and
// matmul_common.wgsl before it.
//
// Register blocking: each invocation owns a 4×4 block of C, a workgroup of 8×8 invocations a
// 32×32 tile. Rows and columns past the edge are clamped for loading and skipped for storing,
// so the inner loop has no branches.

const TILE: u32 = 4u;

@compute @workgroup_size(8, 8, 1)
fn matmul(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    if BIAS_GRAD && wid.x == p.bias_group {
        bias_grad_rows(wid.y * 8u * TILE, 8u * TILE, lane, 64u);
        return;
    }
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
