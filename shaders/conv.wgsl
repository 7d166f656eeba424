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
// order on every run), on 3-D grids whose axes are the tensors' own (position, channel, sample):
// integer division has no vector instruction on CPU adapters (lavapipe runs it lane by lane), so
// indices come from the grid and at most one division by a width remains per invocation.
// Needs conv_params.wgsl before it.

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> aux: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> cp: ConvParams;

fn positions() -> u32 {
    return cp.out_height * cp.out_width;
}

// cols[r = (c·k + ky)·k + kx][b·P + oy·OW + ox] = x[b][c][oy·s − pad + ky][ox·s − pad + kx], 0 in
// the padding. Grid: (output position, sample, patch row r). src: x [B × C·H·W]; dst: cols.
@compute @workgroup_size(64)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pos = gid.x;
    if pos >= positions() {
        return;
    }
    let b = gid.y;
    let r = gid.z;
    let c = r / (cp.kernel * cp.kernel);
    let ky = (r / cp.kernel) % cp.kernel;
    let kx = r % cp.kernel;
    let oy = pos / cp.out_width;
    let ox = pos - oy * cp.out_width;
    // Signed, so a position in the top/left padding is negative.
    let iy = i32(oy * cp.stride + ky) - i32(cp.padding);
    let ix = i32(ox * cp.stride + kx) - i32(cp.padding);
    var v = 0.0;
    if iy >= 0 && iy < i32(cp.height) && ix >= 0 && ix < i32(cp.width) {
        v = src[((b * cp.channels + c) * cp.height + u32(iy)) * cp.width + u32(ix)];
    }
    dst[(r * cp.batch + b) * positions() + pos] = v;
}

// y[b][o][p] = act(Z'[o][b·P + p] + bias[o]). Grid: (position, channel o, sample). src: Z'
// [O × B·P]; aux: bias [O]; dst: y.
@compute @workgroup_size(64)
fn conv_output(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pos = gid.x;
    if pos >= positions() {
        return;
    }
    let o = gid.y;
    let b = gid.z;
    let v = src[(o * cp.batch + b) * positions() + pos] + aux[o];
    dst[(b * cp.out_channels + o) * positions() + pos] = act_forward(cp.act, v);
}

// dZ'[o][b·P + p] = dZ[b][o][p]. Grid: (position, channel o, sample). src: dZ (NCHW); dst: dZ'.
@compute @workgroup_size(64)
fn conv_grad_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pos = gid.x;
    if pos >= positions() {
        return;
    }
    let o = gid.y;
    let b = gid.z;
    dst[(o * cp.batch + b) * positions() + pos] = src[(b * cp.out_channels + o) * positions() + pos];
}

// Whether output row/column `o` = (i + pad − k)/stride exists for input row/column `i` (already
// shifted by the padding) and kernel offset `k`, and which it is.
fn window_of(i: u32, k: u32, count: u32) -> vec2<u32> {
    if k > i {
        return vec2<u32>(0u, 0u);
    }
    if cp.stride == 1u {
        return vec2<u32>(u32(i - k < count), i - k);
    }
    let o = (i - k) / cp.stride;
    return vec2<u32>(u32(o * cp.stride == i - k && o < count), o);
}

// dx[b][c][iy][ix] = act'(x) · Σ dcols[(c·k + ky)·k + kx][b·P + oy·OW + ox] over the (ky, kx)
// whose window covers the pixel: oy·s + ky = iy + pad. Grid: (pixel, channel, sample). src:
// dcols; aux: x (the stored input, for the derivative of the activation fused into its producer);
// dst: dx.
@compute @workgroup_size(64)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixel = gid.x;
    if pixel >= cp.height * cp.width {
        return;
    }
    let c = gid.y;
    let b = gid.z;
    let y = pixel / cp.width;
    let iy = y + cp.padding;
    let ix = pixel - y * cp.width + cp.padding;
    var sum = 0.0;
    for (var ky = 0u; ky < cp.kernel; ky++) {
        let oy = window_of(iy, ky, cp.out_height);
        if oy.x == 0u {
            continue;
        }
        for (var kx = 0u; kx < cp.kernel; kx++) {
            let ox = window_of(ix, kx, cp.out_width);
            if ox.x == 0u {
                continue;
            }
            let r = (c * cp.kernel + ky) * cp.kernel + kx;
            sum += src[(r * cp.batch + b) * positions() + oy.y * cp.out_width + ox.y];
        }
    }
    let i = (b * cp.channels + c) * cp.height * cp.width + pixel;
    dst[i] = sum * act_derivative_from_output(cp.act, aux[i]);
}

// Index in x of the first maximum of window (oy, ox) of plane `plane` (the offset of [b][c]).
fn window_argmax(plane: u32, oy: u32, ox: u32) -> u32 {
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

// y[b][c][oy][ox] = max over the window. Grid: (output position, channel, sample). src: x;
// dst: y.
@compute @workgroup_size(64)
fn max_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pos = gid.x;
    if pos >= positions() {
        return;
    }
    let plane = gid.z * cp.channels + gid.y;
    let oy = pos / cp.out_width;
    let best = window_argmax(plane * cp.height * cp.width, oy, pos - oy * cp.out_width);
    dst[plane * positions() + pos] = src[best];
}

// dx[b][c][iy][ix] = act'(x) · Σ dy over the windows that cover the pixel and whose first maximum
// it is. Grid: (pixel, channel, sample). src: x; aux: dy; dst: dx.
@compute @workgroup_size(64)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixel = gid.x;
    if pixel >= cp.height * cp.width {
        return;
    }
    let plane = gid.z * cp.channels + gid.y;
    let base = plane * cp.height * cp.width;
    let iy = pixel / cp.width;
    let ix = pixel - iy * cp.width;
    let i = base + pixel;
    var sum = 0.0;
    if cp.stride == cp.kernel {
        // Windows that tile the image (the common case): the pixel's only window.
        let oy = iy / cp.kernel;
        let ox = ix / cp.kernel;
        if oy < cp.out_height && ox < cp.out_width && window_argmax(base, oy, ox) == i {
            sum = aux[plane * positions() + oy * cp.out_width + ox];
        }
    } else {
        for (var ky = 0u; ky < cp.kernel; ky++) {
            let oy = window_of(iy, ky, cp.out_height);
            if oy.x == 0u {
                continue;
            }
            for (var kx = 0u; kx < cp.kernel; kx++) {
                let ox = window_of(ix, kx, cp.out_width);
                if ox.x == 0u {
                    continue;
                }
                if window_argmax(base, oy.y, ox.y) == i {
                    sum += aux[plane * positions() + oy.y * cp.out_width + ox.y];
                }
            }
        }
    }
    dst[i] = sum * act_derivative_from_output(cp.act, src[i]);
}
