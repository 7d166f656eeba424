//! Matrix multiply in the three backprop forms with fused epilogues. Kernel:
//! `shaders/matmul.wgsl`; CPU twin: [`crate::cpu::matmul()`].

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, MATMUL, MATMUL_CPU, Slot};
use crate::gpu::uniforms::MatmulParams;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuView};
use crate::ops::{Epilogue, MatmulDims, MatmulForm};

const TILED: Kernel = Kernel {
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
const ROW_BLOCK: Kernel = Kernel {
    shader: &MATMUL_CPU,
    entry: "matmul_rows",
    slots: &[
        (0, Slot::Read),
        (1, Slot::Read),
        (2, Slot::Read),
        (3, Slot::ReadWrite),
        (4, Slot::Uniform),
        (5, Slot::Read),
        (6, Slot::Read),
    ],
};

/// The most multiply-adds one dispatch may do (2^28 ≈ 268 M). Larger matmuls are split into
/// row and column blocks of C, one dispatch each, so no single dispatch runs long enough to
/// trip an OS GPU watchdog (Windows' TDR fires at 2 s): at 20 GFLOP/s — lavapipe on two cores —
/// a full part takes about 27 ms, on any real GPU far less.
pub const MAX_MACS_PER_DISPATCH: u64 = 1 << 28;

/// The tiled kernel's output block per workgroup (8×8 invocations × 4×4 outputs).
const TILED_BLOCK: usize = 32;
/// The row-block kernel's rows per workgroup and columns per workgroup (8 lanes × 8).
const ROW_BLOCK_ROWS: usize = 16;
const ROW_BLOCK_COLS: usize = 64;

/// Which matmul kernel a device runs, chosen per adapter type: what is fast on a GPU and on a
/// CPU adapter differs (see `shaders/matmul.wgsl` and `shaders/matmul_cpu.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// 8×8 invocations of 4×4 outputs each, loads coalesced along columns: for GPUs.
    Tiled,
    /// 16 shared rows per 8-lane workgroup, 8 columns per lane, vec4 loads: for CPU adapters
    /// (lavapipe, WARP), where each invocation is a SIMD lane.
    RowBlock,
}

impl MatmulKernel {
    /// Both kernels, for tests.
    pub const ALL: [MatmulKernel; 2] = [MatmulKernel::Tiled, MatmulKernel::RowBlock];

    /// The kernel for an adapter type: `RowBlock` on CPU adapters, `Tiled` elsewhere.
    /// `SHADERGRAD_MATMUL=tiled|rows` overrides.
    pub fn for_adapter(device_type: wgpu::DeviceType) -> Result<Self> {
        match std::env::var("SHADERGRAD_MATMUL").ok().as_deref().map(str::trim) {
            None | Some("") => Ok(if device_type == wgpu::DeviceType::Cpu {
                MatmulKernel::RowBlock
            } else {
                MatmulKernel::Tiled
            }),
            Some("tiled") => Ok(MatmulKernel::Tiled),
            Some("rows") => Ok(MatmulKernel::RowBlock),
            Some(other) => Err(Error::BadEnvVar {
                var: "SHADERGRAD_MATMUL",
                value: other.to_string(),
                expected: "tiled or rows",
            }),
        }
    }
}

/// A matrix inside a bound view: element `(i, j)` is at `offset + i·ld + j` of the view.
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    pub view: GpuView<'a, f32>,
    pub offset: usize,
    pub ld: usize,
}

impl<'a> Operand<'a> {
    /// A whole buffer holding a contiguous row-major matrix with `cols` columns.
    pub fn dense(buffer: &'a GpuBuffer<f32>, cols: usize) -> Self {
        Operand {
            view: buffer.into(),
            offset: 0,
            ld: cols,
        }
    }

    /// Checks that a `rows × cols` matrix at this operand lies inside its view.
    fn check(&self, what: &'static str, rows: usize, cols: usize) -> Result<()> {
        let extent = self.offset + (rows - 1) * self.ld + cols;
        if self.ld < cols || extent > self.view.len() {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                what,
                expected: extent.max(rows * cols),
                got: self.view.len(),
            });
        }
        Ok(())
    }
}

/// Prepares `C = epilogue(op(A)·op(B))` on contiguous buffers (shapes as in [`MatmulForm`]).
pub fn matmul(
    ctx: &GpuContext,
    form: MatmulForm,
    dims: MatmulDims,
    a: &GpuBuffer<f32>,
    b: &GpuBuffer<f32>,
    c: &GpuBuffer<f32>,
    epilogue: Epilogue<&GpuBuffer<f32>>,
) -> Result<Dispatch> {
    dims.validate("matmul", a.len(), b.len(), c.len())?;
    let MatmulDims { m, k, n } = dims;
    let a_cols = if form.transposes_a() { m } else { k };
    let b_cols = if form.transposes_b() { k } else { n };
    let epilogue = match epilogue {
        Epilogue::None => Epilogue::None,
        Epilogue::BiasAct { bias, act } => {
            crate::error::check_len("matmul", "bias", bias.len(), n)?;
            Epilogue::BiasAct {
                bias: Operand::dense(bias, n),
                act,
            }
        }
        Epilogue::ActGrad { act_output, act } => {
            crate::error::check_len("matmul", "activation output", act_output.len(), m * n)?;
            Epilogue::ActGrad {
                act_output: Operand::dense(act_output, n),
                act,
            }
        }
    };
    matmul_strided(
        ctx,
        form,
        dims,
        Operand::dense(a, a_cols),
        Operand::dense(b, b_cols),
        Operand::dense(c, n),
        epilogue,
        false,
    )
}

/// Prepares `C = epilogue(op(A)·op(B) (+ C if accumulate))` on strided operands, each bound
/// through its own view: the building block for layers split across bindings. Runs the
/// device's [`MatmulKernel`].
///
/// The `ActGrad` operand must share `C`'s leading dimension.
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided(
    ctx: &GpuContext,
    form: MatmulForm,
    dims: MatmulDims,
    a: Operand<'_>,
    b: Operand<'_>,
    c: Operand<'_>,
    epilogue: Epilogue<Operand<'_>>,
    accumulate: bool,
) -> Result<Dispatch> {
    // The row-block kernel pays off where its vec4 loads apply; an unaligned operand (in training,
    // the dZ of a 10-class output layer) goes to the small tiled kernel instead of a second large
    // pipeline variant that would cost about a second of compilation on a CPU adapter.
    let kernel = match ctx.matmul_kernel() {
        MatmulKernel::RowBlock if !(vec4_aligned(&a) && vec4_aligned(&b)) => MatmulKernel::Tiled,
        kernel => kernel,
    };
    matmul_with_kernel(ctx, kernel, form, dims, a, b, c, epilogue, accumulate)
}

/// Whether an operand's rows can be read as whole vec4s: 16-byte aligned start and stride.
fn vec4_aligned(x: &Operand<'_>) -> bool {
    let binding = x.view.binding();
    x.offset.is_multiple_of(4) && x.ld.is_multiple_of(4) && binding.offset.is_multiple_of(16) && binding.size >= 16
}

/// [`matmul_strided`] with an explicit kernel, so tests can check every kernel on one device.
#[allow(clippy::too_many_arguments)]
pub fn matmul_with_kernel(
    ctx: &GpuContext,
    kernel: MatmulKernel,
    form: MatmulForm,
    dims: MatmulDims,
    a: Operand<'_>,
    b: Operand<'_>,
    c: Operand<'_>,
    epilogue: Epilogue<Operand<'_>>,
    accumulate: bool,
) -> Result<Dispatch> {
    crate::error::check_nonzero("matmul", &[("m", dims.m), ("k", dims.k), ("n", dims.n)])?;
    let MatmulDims { m, k, n } = dims;
    let (a_rows, a_cols) = if form.transposes_a() { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if form.transposes_b() { (n, k) } else { (k, n) };
    a.check("A", a_rows, a_cols)?;
    b.check("B", b_rows, b_cols)?;
    c.check("C", m, n)?;
    let (extra, extra_offset) = match epilogue {
        Epilogue::None => (ctx.placeholder_binding(), 0),
        Epilogue::BiasAct { bias, .. } => {
            bias.check("bias", 1, n)?;
            (bias.view.binding(), bias.offset)
        }
        Epilogue::ActGrad { act_output, .. } => {
            if act_output.ld != c.ld {
                return Err(Error::ShapeMismatch {
                    op: "matmul",
                    what: "activation output stride",
                    expected: c.ld,
                    got: act_output.ld,
                });
            }
            act_output.check("activation output", m, n)?;
            (act_output.view.binding(), act_output.offset)
        }
    };
    // Split into parts that each stay within the work budget (see MAX_MACS_PER_DISPATCH).
    let (row_block, col_block) = match kernel {
        MatmulKernel::Tiled => (TILED_BLOCK, TILED_BLOCK),
        MatmulKernel::RowBlock => (ROW_BLOCK_ROWS, ROW_BLOCK_COLS),
    };
    let budget = MAX_MACS_PER_DISPATCH as usize;
    let rows_per = (budget / (n * k)).max(1).div_ceil(row_block) * row_block;
    let cols_per = if rows_per.min(m) * n * k > budget {
        (budget / (k * rows_per.min(m))).max(1).div_ceil(col_block) * col_block
    } else {
        n
    };
    let mut parts = Vec::new();
    for i0 in (0..m).step_by(rows_per) {
        for j0 in (0..n).step_by(cols_per) {
            let (rows, cols) = (rows_per.min(m - i0), cols_per.min(n - j0));
            // Shift every operand to the part's block of C.
            let a_part = Operand {
                offset: a.offset + if form.transposes_a() { i0 } else { i0 * a.ld },
                ..a
            };
            let b_part = Operand {
                offset: b.offset + if form.transposes_b() { j0 * b.ld } else { j0 },
                ..b
            };
            let c_part = Operand {
                offset: c.offset + i0 * c.ld + j0,
                ..c
            };
            let extra_part = match epilogue {
                Epilogue::None => 0,
                Epilogue::BiasAct { .. } => extra_offset + j0,
                Epilogue::ActGrad { .. } => extra_offset + i0 * c.ld + j0,
            };
            let part_dims = MatmulDims::new(rows, k, cols);
            parts.push(prepare_part(
                ctx,
                kernel,
                form,
                part_dims,
                a_part,
                b_part,
                c_part,
                (extra, extra_part),
                &epilogue,
                accumulate,
            )?);
        }
    }
    Ok(Dispatch::merge(parts))
}

/// One dispatch of a (possibly split) matmul.
#[allow(clippy::too_many_arguments)]
fn prepare_part(
    ctx: &GpuContext,
    kernel: MatmulKernel,
    form: MatmulForm,
    dims: MatmulDims,
    a: Operand<'_>,
    b: Operand<'_>,
    c: Operand<'_>,
    (extra, extra_offset): (crate::gpu::buffer::Binding<'_>, usize),
    epilogue: &Epilogue<Operand<'_>>,
    accumulate: bool,
) -> Result<Dispatch> {
    let MatmulDims { m, k, n } = dims;
    let (epilogue_code, act_code) = epilogue.shader_codes();
    let constants = vec![
        ("TRANS_A", f64::from(u8::from(form.transposes_a()))),
        ("TRANS_B", f64::from(u8::from(form.transposes_b()))),
    ];
    let params = MatmulParams {
        m: m as u32,
        k: k as u32,
        n: n as u32,
        accumulate: u32::from(accumulate),
        lda: a.ld as u32,
        ldb: b.ld as u32,
        ldc: c.ld as u32,
        epilogue: epilogue_code,
        a_offset: a.offset as u32,
        b_offset: b.offset as u32,
        c_offset: c.offset as u32,
        extra_offset: extra_offset as u32,
        act: act_code,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    };
    let mut bindings = vec![a.view.binding(), b.view.binding(), extra, c.view.binding()];
    match kernel {
        MatmulKernel::Tiled => {
            let groups = [n.div_ceil(TILED_BLOCK) as u32, m.div_ceil(TILED_BLOCK) as u32, 1];
            ctx.prepare(&TILED, &constants, &bindings, bytemuck::bytes_of(&params), groups)
        }
        MatmulKernel::RowBlock => {
            let (vec_a, vec_b) = (vec4_aligned(&a), vec4_aligned(&b));
            let mut constants = constants;
            constants.push(("VEC_A", f64::from(u8::from(vec_a))));
            constants.push(("VEC_B", f64::from(u8::from(vec_b))));
            bindings.push(if vec_a {
                a.view.binding()
            } else {
                ctx.placeholder_binding()
            });
            bindings.push(if vec_b {
                b.view.binding()
            } else {
                ctx.placeholder_binding()
            });
            let groups = [n.div_ceil(ROW_BLOCK_COLS) as u32, m.div_ceil(ROW_BLOCK_ROWS) as u32, 1];
            ctx.prepare(&ROW_BLOCK, &constants, &bindings, bytemuck::bytes_of(&params), groups)
        }
    }
}
