// The convolution and pooling kernels' parameters: a prelude of conv.wgsl and conv_implicit.wgsl.
// Host twin: `ConvParams` in src/gpu/conv.rs (checked field by field in src/gpu/uniforms.rs).

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
    _pad: u32,
}
