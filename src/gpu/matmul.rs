//! Matrix multiply in the three backprop forms with fused epilogues. Kernel:
//! `shaders/matmul.wgsl`; CPU twin: [`crate::cpu::matmul`].

use crate::error::{Result, check_len};
use crate::gpu::kernels::{Kernel, MATMUL, Slot};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};
use crate::ops::{Epilogue, MatmulDims, MatmulForm};

const KERNEL: Kernel = Kernel {
    shader: &MATMUL,
    entry: "matmul",
    slots: &[
        (0, Slot::Read),
        (1, Slot::Read),
        (2, Slot::Read),
        (3, Slot::ReadWrite),
        (4, Slot::Uniform),
    ],
};

/// Outputs per invocation along each axis and invocations per workgroup along each axis
/// (must match `TILE` and `@workgroup_size` in the kernel).
const TILE: usize = 4;
const WORKGROUP: usize = 8;

/// Prepares `C = epilogue(op(A)·op(B))` (shapes as in [`MatmulForm`]).
pub fn matmul(
    ctx: &GpuContext,
    form: MatmulForm,
    dims: MatmulDims,
    a: &GpuBuffer<f32>,
    b: &GpuBuffer<f32>,
    c: &GpuBuffer<f32>,
    epilogue: Epilogue<&GpuBuffer<f32>>,
) -> Result<Dispatch> {
    const OP: &str = "matmul";
    dims.validate(OP, a.len(), b.len(), c.len())?;
    let MatmulDims { m, k, n } = dims;
    let extra = match epilogue {
        Epilogue::None => &ctx.placeholder,
        Epilogue::BiasAct { bias, .. } => {
            check_len(OP, "bias", bias.len(), n)?;
            &bias.buffer
        }
        Epilogue::ActGrad { act_output, .. } => {
            check_len(OP, "activation output", act_output.len(), m * n)?;
            &act_output.buffer
        }
    };
    let (epilogue_code, act_code) = epilogue.shader_codes();
    let constants = vec![
        ("TRANS_A", f64::from(u8::from(form.transposes_a()))),
        ("TRANS_B", f64::from(u8::from(form.transposes_b()))),
        ("EPILOGUE", f64::from(epilogue_code)),
        ("ACT", f64::from(act_code)),
    ];
    let params = [m as u32, k as u32, n as u32, 0];
    let per_group = TILE * WORKGROUP;
    let groups = [n.div_ceil(per_group) as u32, m.div_ceil(per_group) as u32, 1];
    ctx.prepare(
        &KERNEL,
        &constants,
        &[&a.buffer, &b.buffer, extra, &c.buffer],
        bytemuck::bytes_of(&params),
        groups,
    )
}
