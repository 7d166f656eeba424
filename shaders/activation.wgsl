// Activation prelude: the host prepends this file to every kernel that applies an activation
// (matmul.wgsl, elementwise.wgsl). CPU twin: src/activation.rs.
//
// An activation code selects the function: 0 identity, 1 ReLU, 2 sigmoid, 3 tanh, 4 leaky ReLU.
// Derivatives are written in terms of the output a = act(z), so backward needs only a.
// Elementwise kernels pass their pipeline constant ACT; matmul passes a uniform (the epilogue
// runs once per output, so a pipeline per activation would only cost compilation time).

const LEAKY_RELU_SLOPE: f32 = 0.01;

// Never evaluates exp of a large positive number.
fn stable_sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

// tanh through e^{-2|z|}: finite for any z (a naive (e^{2z}-1)/(e^{2z}+1) is inf/inf).
fn stable_tanh(z: f32) -> f32 {
    let t = exp(-2.0 * abs(z));
    let r = (1.0 - t) / (1.0 + t);
    return select(r, -r, z < 0.0);
}

fn act_forward(code: u32, z: f32) -> f32 {
    switch code {
        case 1u: { return max(z, 0.0); }
        case 2u: { return stable_sigmoid(z); }
        case 3u: { return stable_tanh(z); }
        case 4u: { return select(z * LEAKY_RELU_SLOPE, z, z > 0.0); }
        default: { return z; }
    }
}

fn act_derivative_from_output(code: u32, a: f32) -> f32 {
    switch code {
        case 1u: { return select(0.0, 1.0, a > 0.0); }
        case 2u: { return a * (1.0 - a); }
        case 3u: { return 1.0 - a * a; }
        case 4u: { return select(LEAKY_RELU_SLOPE, 1.0, a > 0.0); }
        default: { return 1.0; }
    }
}
