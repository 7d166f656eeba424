// Convolution and max pooling around the matmul kernels, over NCHW batches (PyTorch's layout).
// CPU twins: src/cpu/conv.rs and src/cpu/pool.rs. Needs the activation prelude (activation.wgsl).
//
// A convolution runs as im2col + matmul: `im2col` lays the batch's patches out as
// cols [C·k·k × B·P] (P = OH·OW output positions), one matmul gives Z' = W·cols [O × B·P], and
// `conv_output` adds the bias, applies the activation and moves Z' to NCHW. Backward:
// `conv_grad_rows` moves dZ (NCHW) back to dZ' [O × B·P]; matmuls give dW = dZ'·colsᵀ (with the
// bias gradient as dZ''s row sums) and dcols = Wᵀ·dZ'; `col2im` sums dcols back onto the input
// pixels and applies the derivative of the activation that produced the input.
//
// One invocation per output element everywhere (each sums what it needs: no atomics, the same
// order on every run). Launches may be 2-D: threads_x says how wide a row of the grid is.

struct ConvParams {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    out_channels: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    out_height: u32,
    out_width: u32,
    act: u32,
    threads_x: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> aux: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> cp: ConvParams;

fn linear_index(gid: vec3<u32>) -> u32 {
    return gid.y * cp.threads_x + gid.x;
}

fn positions() -> u32 {
    return cp.out_height * cp.out_width;
}

// cols[(c·k + ky)·k + kx][b·P + oy·OW + ox] = x[b][c][oy·s − pad + ky][ox·s − pad + kx], 0 in the
// padding. src: x [B × C·H·W]; dst: cols.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let n = cp.batch * positions();
    let patch_rows = cp.channels * cp.kernel * cp.kernel;
    if i >= patch_rows * n {
        return;
    }
    let r = i / n;
    let col = i % n;
    let c = r / (cp.kernel * cp.kernel);
    let ky = (r / cp.kernel) % cp.kernel;
    let kx = r % cp.kernel;
    let b = col / positions();
    let pos = col % positions();
    // Signed, so a position in the top/left padding is negative.
    let iy = i32((pos / cp.out_width) * cp.stride + ky) - i32(cp.padding);
    let ix = i32((pos % cp.out_width) * cp.stride + kx) - i32(cp.padding);
    var v = 0.0;
    if iy >= 0 && iy < i32(cp.height) && ix >= 0 && ix < i32(cp.width) {
        v = src[((b * cp.channels + c) * cp.height + u32(iy)) * cp.width + u32(ix)];
    }
    dst[i] = v;
}

// y[b][o][p] = act(Z'[o][b·P + p] + bias[o]). src: Z' [O × B·P]; aux: bias [O]; dst: y.
@compute @workgroup_size(256)
fn conv_output(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let per_sample = cp.out_channels * positions();
    if i >= cp.batch * per_sample {
        return;
    }
    let b = i / per_sample;
    let o = (i % per_sample) / positions();
    let pos = i % positions();
    dst[i] = act_forward(cp.act, src[(o * cp.batch + b) * positions() + pos] + aux[o]);
}

// dZ'[o][b·P + p] = dZ[b][o][p]. src: dZ (NCHW); dst: dZ'.
@compute @workgroup_size(256)
fn conv_grad_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let n = cp.batch * positions();
    if i >= cp.out_channels * n {
        return;
    }
    let o = i / n;
    let b = (i % n) / positions();
    let pos = i % positions();
    dst[i] = src[(b * cp.out_channels + o) * positions() + pos];
}

// dx[b][c][iy][ix] = act'(x) · Σ dcols[(c·k + ky)·k + kx][b·P + oy·OW + ox] over the (ky, kx)
// whose window covers the pixel: oy·s + ky = iy + pad. src: dcols; aux: x (the stored input,
// for the derivative of the activation fused into its producer); dst: dx.
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let per_sample = cp.channels * cp.height * cp.width;
    if i >= cp.batch * per_sample {
        return;
    }
    let b = i / per_sample;
    let c = (i % per_sample) / (cp.height * cp.width);
    let iy = (i / cp.width) % cp.height + cp.padding;
    let ix = i % cp.width + cp.padding;
    let n = cp.batch * positions();
    var sum = 0.0;
    for (var ky = 0u; ky < cp.kernel; ky++) {
        if ky > iy || (iy - ky) % cp.stride != 0u || (iy - ky) / cp.stride >= cp.out_height {
            continue;
        }
        let oy = (iy - ky) / cp.stride;
        for (var kx = 0u; kx < cp.kernel; kx++) {
            if kx > ix || (ix - kx) % cp.stride != 0u || (ix - kx) / cp.stride >= cp.out_width {
                continue;
            }
            let ox = (ix - kx) / cp.stride;
            let r = (c * cp.kernel + ky) * cp.kernel + kx;
            sum += src[r * n + b * positions() + oy * cp.out_width + ox];
        }
    }
    dst[i] = sum * act_derivative_from_output(cp.act, aux[i]);
}

// Index in x of the first maximum of window (b, c, oy, ox) (`kernel`×`kernel`, stride `stride`).
fn window_argmax(b: u32, c: u32, oy: u32, ox: u32) -> u32 {
    let plane = ((b * cp.channels + c) * cp.height) * cp.width;
    var best = plane + (oy * cp.stride) * cp.width + ox * cp.stride;
    var best_value = src[best];
    for (var ky = 0u; ky < cp.kernel; ky++) {
        for (var kx = 0u; kx < cp.kernel; kx++) {
            let j = plane + (oy * cp.stride + ky) * cp.width + ox * cp.stride + kx;
            let v = src[j];
            if v > best_value {
                best = j;
                best_value = v;
            }
        }
    }
    return best;
}

// y[b][c][oy][ox] = max over the window. src: x; dst: y.
@compute @workgroup_size(256)
fn max_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let per_sample = cp.channels * positions();
    if i >= cp.batch * per_sample {
        return;
    }
    let b = i / per_sample;
    let c = (i % per_sample) / positions();
    let pos = i % positions();
    dst[i] = src[window_argmax(b, c, pos / cp.out_width, pos % cp.out_width)];
}

// dx[b][c][iy][ix] = act'(x) · Σ dy over the windows that cover the pixel and whose first maximum
// it is. src: x; aux: dy; dst: dx.
@compute @workgroup_size(256)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let per_sample = cp.channels * cp.height * cp.width;
    if i >= cp.batch * per_sample {
        return;
    }
    let b = i / per_sample;
    let c = (i % per_sample) / (cp.height * cp.width);
    let iy = (i / cp.width) % cp.height;
    let ix = i % cp.width;
    var sum = 0.0;
    for (var ky = 0u; ky < cp.kernel; ky++) {
        if ky > iy || (iy - ky) % cp.stride != 0u || (iy - ky) / cp.stride >= cp.out_height {
            continue;
        }
        let oy = (iy - ky) / cp.stride;
        for (var kx = 0u; kx < cp.kernel; kx++) {
            if kx > ix || (ix - kx) % cp.stride != 0u || (ix - kx) / cp.stride >= cp.out_width {
                continue;
            }
            let ox = (ix - kx) / cp.stride;
            if window_argmax(b, c, oy, ox) == i {
                sum += aux[((b * cp.channels + c) * cp.out_height + oy) * cp.out_width + ox];
            }
        }
    }
    dst[i] = sum * act_derivative_from_output(cp.act, src[i]);
}
