//! Matrix multiply in the three backprop forms with fused epilogues. Kernel:
//! `shaders/matmul.wgsl`; CPU twin: [`crate::cpu::matmul()`].

use std::sync::LazyLock;

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::gpu::buffer::Binding;
use crate::gpu::kernels::{Constants, Kernel, MATMUL, MATMUL_BLOCK, MATMUL_CPU, MATMUL_CPU_SUBGROUP, Shader, Slot};
use crate::gpu::matmul_pair::{SECOND_JOB_BINDINGS, job_constant, pair_kernel, pair_slots};
use crate::gpu::tuning::{PairClass, Pairing, ShapeClass};
use crate::gpu::uniforms::{MatmulParams, PairParams};
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
        (7, Slot::ReadWrite),
    ],
};
const BLOCK_TILED: Kernel = Kernel {
    shader: &MATMUL_BLOCK,
    entry: "matmul_block",
    slots: VEC4_SLOTS,
};
const ROW_BLOCK: Kernel = Kernel {
    shader: &MATMUL_CPU,
    entry: "matmul_rows",
    slots: VEC4_SLOTS,
};
const ROW_BLOCK_SUBGROUP: Kernel = Kernel {
    shader: &MATMUL_CPU_SUBGROUP,
    entry: "matmul_rows_subgroup",
    slots: VEC4_SLOTS,
};
/// The slots of the kernels that read A and B through vec4 aliases too (bindings 5 and 6).
const VEC4_SLOTS: &[(u32, Slot)] = &[
    (0, Slot::Read),
    (1, Slot::Read),
    (2, Slot::Read),
    (3, Slot::ReadWrite),
    (4, Slot::Uniform),
    (5, Slot::Read),
    (6, Slot::Read),
    (7, Slot::ReadWrite),
];

/// A paired module's text: the preludes, then the generated file.
macro_rules! pair_shader {
    ($name:literal, $single:expr) => {
        Shader {
            name: $name,
            source: concat!(
                include_str!("../../shaders/activation.wgsl"),
                include_str!("../../shaders/matmul_params.wgsl"),
                include_str!(concat!("../../shaders/", $name))
            ),
            trusted: $single.shader.trusted,
            subgroups: $single.shader.subgroups,
        }
    };
}

// Each kernel's paired form (two jobs per launch, see `gpu/matmul_pair.rs`): a checked-in module
// generated from the kernel's own WGSL, as the other generated kernels are.
static TILED_PAIR_SHADER: Shader = pair_shader!("matmul_pair.wgsl", TILED);
static BLOCK_TILED_PAIR_SHADER: Shader = pair_shader!("matmul_block_pair.wgsl", BLOCK_TILED);
static ROW_BLOCK_PAIR_SHADER: Shader = pair_shader!("matmul_cpu_pair.wgsl", ROW_BLOCK);
static ROW_BLOCK_SUBGROUP_PAIR_SHADER: Shader = pair_shader!("matmul_cpu_subgroup_pair.wgsl", ROW_BLOCK_SUBGROUP);
static TILED_PAIR: LazyLock<Kernel> = LazyLock::new(|| pair_kernel(&TILED, &TILED_PAIR_SHADER, &TILED_PAIR_SLOTS));
static BLOCK_TILED_PAIR: LazyLock<Kernel> =
    LazyLock::new(|| pair_kernel(&BLOCK_TILED, &BLOCK_TILED_PAIR_SHADER, &VEC4_PAIR_SLOTS));
static ROW_BLOCK_PAIR: LazyLock<Kernel> =
    LazyLock::new(|| pair_kernel(&ROW_BLOCK, &ROW_BLOCK_PAIR_SHADER, &VEC4_PAIR_SLOTS));
static ROW_BLOCK_SUBGROUP_PAIR: LazyLock<Kernel> =
    LazyLock::new(|| pair_kernel(&ROW_BLOCK_SUBGROUP, &ROW_BLOCK_SUBGROUP_PAIR_SHADER, &VEC4_PAIR_SLOTS));
static TILED_PAIR_SLOTS: LazyLock<Vec<(u32, Slot)>> = LazyLock::new(|| pair_slots(TILED.slots));
static VEC4_PAIR_SLOTS: LazyLock<Vec<(u32, Slot)>> = LazyLock::new(|| pair_slots(VEC4_SLOTS));

/// Each kernel with its file and its paired module's file: what `gpu/matmul_pair.rs` generates.
#[cfg(test)]
pub(crate) const PAIR_SOURCES: [(Kernel, &str, &str); 4] = [
    (TILED, include_str!("../../shaders/matmul.wgsl"), "matmul_pair.wgsl"),
    (
        BLOCK_TILED,
        include_str!("../../shaders/matmul_block.wgsl"),
        "matmul_block_pair.wgsl",
    ),
    (
        ROW_BLOCK,
        include_str!("../../shaders/matmul_cpu.wgsl"),
        "matmul_cpu_pair.wgsl",
    ),
    (
        ROW_BLOCK_SUBGROUP,
        include_str!("../../shaders/matmul_cpu_subgroup.wgsl"),
        "matmul_cpu_subgroup_pair.wgsl",
    ),
];

/// `NO_GROUP` in `shaders/matmul_common.wgsl`: no workgroup computes a bias gradient.
const NO_GROUP: u32 = u32::MAX;

/// The most multiply-adds one dispatch may do (2^28 ≈ 268 M). Larger matmuls are split into
/// row and column blocks of C, one dispatch each, so no single dispatch runs long enough to
/// trip an OS GPU watchdog (Windows' TDR fires at 2 s): at 20 GFLOP/s — lavapipe on two cores —
/// a full part takes about 27 ms, on any real GPU far less.
pub const MAX_MACS_PER_DISPATCH: u64 = 1 << 28;

/// How a kernel covers C: each workgroup owns `rows × cols` outputs.
struct KernelShape {
    kernel: &'static Kernel,
    rows: usize,
    cols: usize,
    /// Whether it binds vec4 aliases of A and B (`VEC_A`/`VEC_B`).
    vec4_loads: bool,
}

/// Which matmul kernel a device runs: what is fast on a GPU and on a CPU adapter differs (see
/// the shaders named below and `docs/performance.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatmulKernel {
    /// `shaders/matmul_block.wgsl`: 64×64 blocks staged through workgroup memory, 4×4 outputs
    /// per invocation: the classic design for discrete and integrated GPUs.
    BlockTiled,
    /// `shaders/matmul.wgsl`: 8×8 invocations of 4×4 outputs each reading global memory
    /// directly, no workgroup memory: small and quick to compile.
    Tiled,
    /// `shaders/matmul_cpu.wgsl`: 16 shared rows per 8-lane workgroup, 8 columns per lane, vec4
    /// loads: for CPU adapters (lavapipe, WARP), where each invocation is a SIMD lane.
    RowBlock,
    /// `shaders/matmul_cpu_subgroup.wgsl`: [`MatmulKernel::RowBlock`] with each lane loading 2
    /// of the 16 shared A rows and `subgroupBroadcast` handing them to the others. Only where the
    /// device has subgroups of at least 8 lanes (lavapipe: 8).
    RowBlockSubgroup,
}

impl MatmulKernel {
    /// Every kernel, for tests and for the empirical choice.
    pub const ALL: [MatmulKernel; 4] = [
        MatmulKernel::BlockTiled,
        MatmulKernel::Tiled,
        MatmulKernel::RowBlock,
        MatmulKernel::RowBlockSubgroup,
    ];

    /// The name `SHADERGRAD_MATMUL` takes.
    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::BlockTiled => "block",
            MatmulKernel::Tiled => "tiled",
            MatmulKernel::RowBlock => "rows",
            MatmulKernel::RowBlockSubgroup => "rows-subgroup",
        }
    }

    /// Whether the kernel needs subgroups of at least 8 lanes (see [`GpuContext::runs`]).
    pub fn needs_subgroups(self) -> bool {
        self == MatmulKernel::RowBlockSubgroup
    }

    /// Whether the kernel is the row-block design for CPU adapters (with or without subgroups),
    /// whose register blocking the implicit-GEMM convolution shares.
    pub fn is_row_block(self) -> bool {
        matches!(self, MatmulKernel::RowBlock | MatmulKernel::RowBlockSubgroup)
    }

    /// The kernel called `name` (see [`MatmulKernel::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Storage buffers one launch of the kernel's paired form binds (both jobs' operands): a
    /// device whose `max_storage_buffers_per_shader_stage` is smaller runs a layer's gradients
    /// as two launches.
    pub fn pair_storage_buffers(self) -> u32 {
        self.pair_kernel()
            .slots
            .iter()
            .filter(|(_, s)| *s != Slot::Uniform)
            .count() as u32
    }

    /// The kernel's paired form: two independent jobs in one launch (`gpu/matmul_pair.rs`).
    pub(crate) fn pair_kernel(self) -> &'static Kernel {
        match self {
            MatmulKernel::BlockTiled => &BLOCK_TILED_PAIR,
            MatmulKernel::Tiled => &TILED_PAIR,
            MatmulKernel::RowBlock => &ROW_BLOCK_PAIR,
            MatmulKernel::RowBlockSubgroup => &ROW_BLOCK_SUBGROUP_PAIR,
        }
    }

    fn shape(self) -> KernelShape {
        match self {
            MatmulKernel::BlockTiled => KernelShape {
                kernel: &BLOCK_TILED,
                rows: 64,
                cols: 64,
                vec4_loads: true,
            },
            MatmulKernel::Tiled => KernelShape {
                kernel: &TILED,
                rows: 32,
                cols: 32,
                vec4_loads: false,
            },
            MatmulKernel::RowBlock => KernelShape {
                kernel: &ROW_BLOCK,
                rows: 16,
                cols: 64,
                vec4_loads: true,
            },
            MatmulKernel::RowBlockSubgroup => KernelShape {
                kernel: &ROW_BLOCK_SUBGROUP,
                rows: 16,
                cols: 64,
                vec4_loads: true,
            },
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

    /// A row-major matrix with leading dimension `ld` starting at the view's first element (a
    /// parameter tensor inside the flat buffer, say).
    pub fn at_start(view: GpuView<'a, f32>, ld: usize) -> Self {
        Operand { view, offset: 0, ld }
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
    let call = Call::matmul(form, dims, [a, b, c], epilogue, accumulate);
    prepare_call(ctx, pick(ctx, &call)?, call)
}

/// The device's kernel for a call: chosen by timing the candidates the first time its shape
/// class comes up (see `gpu/tuning.rs`).
fn pick(ctx: &GpuContext, call: &Call<'_>) -> Result<MatmulKernel> {
    ctx.tuner.choose(class_of(call), |kernel| time_call(ctx, kernel, call))
}

/// The kernel the device runs for a plain `form` product of `dims` with dense, vec4-aligned
/// operands (timing the candidates first if the class is new). Other kernel families ask it
/// which register blocking suits the device: the convolution's path follows it.
pub(crate) fn chosen_kernel(ctx: &GpuContext, form: MatmulForm, dims: MatmulDims) -> Result<MatmulKernel> {
    let MatmulDims { m, k, n } = dims;
    let (a_cols, b_cols) = (
        if form.transposes_a() { m } else { k },
        if form.transposes_b() { k } else { n },
    );
    let probe = ctx.zeros::<f32>("matmul probe", 4)?;
    let aligned = |cols: usize| Operand {
        view: (&probe).into(),
        offset: 0,
        ld: cols.next_multiple_of(4),
    };
    let call = Call::matmul(
        form,
        dims,
        [aligned(a_cols), aligned(b_cols), aligned(n)],
        Epilogue::None,
        false,
    );
    let class = ShapeClass::of(form, dims, true);
    ctx.tuner.choose(class, |kernel| time_call(ctx, kernel, &call))
}

/// The largest operands (A + B + C, in floats) the tuner copies to time a call: beyond it the
/// shape takes the nearest measured class's kernel (64 MiB of scratch).
const MAX_TIMED_FLOATS: usize = 16 << 20;

/// Kernel seconds of one run of `call` with `kernel`, on zeroed scratch operands of the same
/// shapes and strides (the call's own buffers are never written).
fn time_call(ctx: &GpuContext, kernel: MatmulKernel, call: &Call<'_>) -> Result<f64> {
    with_scratch(ctx, call, |scratch| {
        time_dispatch(ctx, &prepare_call(ctx, kernel, scratch)?)
    })
}

/// Kernel seconds of one run of `dispatch`. The first run compiles its pipelines and is not
/// counted.
fn time_dispatch(ctx: &GpuContext, dispatch: &Dispatch) -> Result<f64> {
    ctx.run(&[dispatch])?;
    match crate::gpu::profiler::PassTimer::new(ctx) {
        Some(timer) => ctx.run_timed(&[dispatch], &timer),
        None => {
            ctx.wait()?;
            let start = web_time::Instant::now();
            ctx.run(&[dispatch])?;
            ctx.wait()?;
            Ok(start.elapsed().as_secs_f64())
        }
    }
}

/// Runs `f` on a copy of `call` whose operands are zeroed scratch buffers of the same shapes and
/// strides; infinite seconds, without running `f`, when they would exceed `MAX_TIMED_FLOATS`.
fn with_scratch(ctx: &GpuContext, call: &Call<'_>, f: impl FnOnce(Call<'_>) -> Result<f64>) -> Result<f64> {
    let MatmulDims { m, k, n } = call.dims;
    let (a_rows, a_cols) = if call.form.transposes_a() { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if call.form.transposes_b() { (n, k) } else { (k, n) };
    let extent = |rows: usize, cols: usize, ld: usize| (rows - 1) * ld + cols;
    let sizes = [
        extent(a_rows, a_cols, call.a.ld),
        extent(b_rows, b_cols, call.b.ld),
        extent(m, n, call.c.ld),
    ];
    if sizes.iter().sum::<usize>() > MAX_TIMED_FLOATS {
        return Ok(f64::INFINITY);
    }
    let a = ctx.zeros::<f32>("matmul timing A", sizes[0])?;
    let b = ctx.zeros::<f32>("matmul timing B", sizes[1])?;
    let c = ctx.zeros::<f32>("matmul timing C", sizes[2])?;
    let extra = ctx.zeros::<f32>("matmul timing epilogue", sizes[2].max(n))?;
    let db = ctx.zeros::<f32>("matmul timing db", m)?;
    let epilogue = match call.epilogue {
        Epilogue::None => Epilogue::None,
        Epilogue::BiasAct { act, .. } => Epilogue::BiasAct {
            bias: Operand::dense(&extra, n),
            act,
        },
        Epilogue::ActGrad { act, .. } => Epilogue::ActGrad {
            act_output: Operand {
                ld: call.c.ld,
                ..Operand::dense(&extra, n)
            },
            act,
        },
    };
    f(Call {
        form: call.form,
        dims: call.dims,
        a: Operand {
            ld: call.a.ld,
            ..Operand::dense(&a, a_cols)
        },
        b: Operand {
            ld: call.b.ld,
            ..Operand::dense(&b, b_cols)
        },
        c: Operand {
            ld: call.c.ld,
            ..Operand::dense(&c, n)
        },
        epilogue,
        accumulate: call.accumulate,
        bias_grad: call.bias_grad.map(|_| Operand::dense(&db, 1)),
    })
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
    let call = Call::matmul(form, dims, [a, b, c], epilogue, accumulate);
    prepare_call(ctx, kernel, call)
}

/// Prepares a dense layer's weight and bias gradients in one dispatch: `dW = dZᵀ·X` and
/// `db = Σ_rows dZ`, with `dims` = (units, batch rows, inputs). `db` receives `units` values
/// from its offset on. Runs the device's [`MatmulKernel`].
pub fn weight_grad(
    ctx: &GpuContext,
    dims: MatmulDims,
    dz: Operand<'_>,
    x: Operand<'_>,
    dw: Operand<'_>,
    db: Operand<'_>,
) -> Result<Dispatch> {
    matmul_and_row_sums(ctx, MatmulForm::AtB, dims, dz, x, dw, db)
}

/// Prepares `C = op(A)·op(B)` and `row_sums[i] = Σ_k op(A)[i, k]` in one dispatch (an `m × 1`
/// operand): a layer's weight and bias gradients (`dZ'·colsᵀ` and `Σ dZ'` for a conv).
pub fn matmul_and_row_sums(
    ctx: &GpuContext,
    form: MatmulForm,
    dims: MatmulDims,
    a: Operand<'_>,
    b: Operand<'_>,
    c: Operand<'_>,
    row_sums: Operand<'_>,
) -> Result<Dispatch> {
    let call = Call::with_row_sums(form, dims, [a, b, c], row_sums);
    prepare_call(ctx, pick(ctx, &call)?, call)
}

/// [`weight_grad`] with an explicit kernel, so tests can check every kernel on one device.
pub fn weight_grad_with_kernel(
    ctx: &GpuContext,
    kernel: MatmulKernel,
    dims: MatmulDims,
    dz: Operand<'_>,
    x: Operand<'_>,
    dw: Operand<'_>,
    db: Operand<'_>,
) -> Result<Dispatch> {
    prepare_call(ctx, kernel, Call::with_row_sums(MatmulForm::AtB, dims, [dz, x, dw], db))
}

/// The operands of a dense layer's backward pass, `dims` = (units, batch rows, inputs): reads
/// `dz` (`rows × units`), `input` (`rows × inputs`) and `weights` (`units × inputs`); writes
/// `dW = dzᵀ·input` into `weight_grad`, `db = Σ_rows dz` into `bias_grad` (`units` values) and
/// `grad[input] = (dz·W) ⊙ act'(input)` into `input_grad`.
pub struct DenseGrads<'a> {
    pub dims: MatmulDims,
    pub dz: Operand<'a>,
    pub input: Operand<'a>,
    pub weights: Operand<'a>,
    pub weight_grad: Operand<'a>,
    pub bias_grad: Operand<'a>,
    pub input_grad: Operand<'a>,
    /// The activation that produced `input`, whose derivative the input gradient applies.
    pub act: Activation,
}

impl<'a> DenseGrads<'a> {
    fn calls(&self) -> [Call<'a>; 2] {
        let MatmulDims {
            m: units,
            k: rows,
            n: inputs,
        } = self.dims;
        [
            Call::with_row_sums(
                MatmulForm::AtB,
                self.dims,
                [self.dz, self.input, self.weight_grad],
                self.bias_grad,
            ),
            Call::matmul(
                MatmulForm::AB,
                MatmulDims::new(rows, units, inputs),
                [self.dz, self.weights, self.input_grad],
                Epilogue::ActGrad {
                    act_output: self.input,
                    act: self.act,
                },
                false,
            ),
        ]
    }
}

/// Prepares a dense layer's weight, bias and input gradients: one launch of the weight gradient
/// kernel's paired form where the pair fits one launch and timing on this device found it faster
/// than two launches of each product's own kernel (see `gpu/tuning.rs`); two launches otherwise.
pub fn dense_grads(ctx: &GpuContext, grads: &DenseGrads<'_>) -> Result<Dispatch> {
    let [weight, input] = grads.calls();
    let kernels = [pick(ctx, &weight)?, pick(ctx, &input)?];
    // Paired, both products run the weight gradient's kernel (the same work as the other).
    let kernel = kernels[0];
    let class = PairClass {
        kernel,
        weight_grad: class_of(&weight),
        input_grad: class_of(&input),
    };
    if !device_binds_pair(ctx, kernel) {
        ctx.tuner.note_unpairable(class);
    } else if pairable(ctx, kernel, &weight, &input) {
        let pairing = ctx.tuner.choose_pairing(class, |pairing| {
            with_scratch(ctx, &weight, |w| {
                with_scratch(ctx, &input, |i| {
                    let dispatch = match pairing {
                        Pairing::Paired => prepare_paired(ctx, kernel, [w, i])?,
                        Pairing::Separate => prepare_separate(ctx, kernels, [w, i])?,
                    };
                    time_dispatch(ctx, &dispatch)
                })
            })
        })?;
        if pairing == Pairing::Paired {
            return prepare_paired(ctx, kernel, [weight, input]);
        }
    }
    prepare_separate(ctx, kernels, [weight, input])
}

/// [`dense_grads`] as one launch of `kernel`'s paired form, so tests can check every kernel's
/// pair on one device (two launches only where the pair cannot be one: see [`dense_grads`]).
pub fn dense_grads_with_kernel(ctx: &GpuContext, kernel: MatmulKernel, grads: &DenseGrads<'_>) -> Result<Dispatch> {
    let [weight, input] = grads.calls();
    if pairable(ctx, kernel, &weight, &input) {
        prepare_paired(ctx, kernel, [weight, input])
    } else {
        prepare_separate(ctx, [kernel; 2], [weight, input])
    }
}

/// The shape class a call is timed and cached under.
fn class_of(call: &Call<'_>) -> ShapeClass {
    ShapeClass::of(call.form, call.dims, vec4_aligned(&call.a) && vec4_aligned(&call.b))
}

/// Whether two calls can share one launch of `kernel`'s paired form: each fits one launch of the
/// work budget, and the device binds both jobs' storage buffers.
fn pairable(ctx: &GpuContext, kernel: MatmulKernel, first: &Call<'_>, second: &Call<'_>) -> bool {
    let one_part = |call: &Call<'_>| {
        let MatmulDims { m, k, n } = call.dims;
        (m * k * n) as u64 <= MAX_MACS_PER_DISPATCH
    };
    one_part(first) && one_part(second) && device_binds_pair(ctx, kernel)
}

/// Whether the device binds as many storage buffers per stage as `kernel`'s paired form needs
/// (wgpu on SwiftShader: 10 against the pair's 14).
fn device_binds_pair(ctx: &GpuContext, kernel: MatmulKernel) -> bool {
    ctx.limits().max_storage_buffers_per_shader_stage >= kernel.pair_storage_buffers()
}

/// Two calls as launches of their own kernels, in order.
fn prepare_separate(ctx: &GpuContext, kernels: [MatmulKernel; 2], calls: [Call<'_>; 2]) -> Result<Dispatch> {
    let mut parts = Vec::new();
    for (kernel, call) in kernels.into_iter().zip(calls) {
        parts.extend(prepare_launches(ctx, kernel, call)?);
    }
    Ok(Dispatch::merge(parts))
}

/// Two [`pairable`] calls as one launch of `kernel`'s paired form: workgroups `x < split` run
/// the first, the others the second (see `gpu/matmul_pair.rs`).
fn prepare_paired(ctx: &GpuContext, kernel: MatmulKernel, [first, second]: [Call<'_>; 2]) -> Result<Dispatch> {
    let (mut l0, mut l1) = (launches(ctx, kernel, first)?, launches(ctx, kernel, second)?);
    assert!(l0.len() == 1 && l1.len() == 1, "a pairable call is one launch");
    let (first, second) = (l0.remove(0), l1.remove(0));
    let pair = kernel.pair_kernel();
    let constants = [(&first, 0), (&second, 1)]
        .into_iter()
        .flat_map(|(l, job)| l.constants.iter().map(move |&(name, v)| (job_constant(name, job), v)))
        .collect();
    let bindings: Vec<_> = first.bindings.iter().chain(&second.bindings).copied().collect();
    debug_assert!(pair.slots.iter().all(|(b, _)| *b < 2 * SECOND_JOB_BINDINGS));
    let params = PairParams {
        job0: first.params,
        job1: second.params,
        split: first.groups[0],
        rows0: first.groups[1],
        rows1: second.groups[1],
        _pad: 0,
    };
    let groups = [
        first.groups[0] + second.groups[0],
        first.groups[1].max(second.groups[1]),
        1,
    ];
    ctx.prepare(pair, &constants, &bindings, bytemuck::bytes_of(&params), groups)
}

/// One matmul as the kernels see it: `C = epilogue(op(A)·op(B) (+ C))`, and with `bias_grad`
/// also `bias_grad[i] = Σ_kk op(A)[i, kk]` (an `m × 1` operand).
struct Call<'a> {
    form: MatmulForm,
    dims: MatmulDims,
    a: Operand<'a>,
    b: Operand<'a>,
    c: Operand<'a>,
    epilogue: Epilogue<Operand<'a>>,
    accumulate: bool,
    bias_grad: Option<Operand<'a>>,
}

impl<'a> Call<'a> {
    /// A plain matmul, `[a, b, c]` its operands.
    fn matmul(
        form: MatmulForm,
        dims: MatmulDims,
        [a, b, c]: [Operand<'a>; 3],
        epilogue: Epilogue<Operand<'a>>,
        accumulate: bool,
    ) -> Self {
        Call {
            form,
            dims,
            a,
            b,
            c,
            epilogue,
            accumulate,
            bias_grad: None,
        }
    }

    /// A plain matmul that also writes `op(A)`'s row sums (a layer's bias gradient).
    fn with_row_sums(form: MatmulForm, dims: MatmulDims, abc: [Operand<'a>; 3], sums: Operand<'a>) -> Self {
        Call {
            bias_grad: Some(sums),
            ..Call::matmul(form, dims, abc, Epilogue::None, false)
        }
    }
}

fn prepare_call(ctx: &GpuContext, kernel: MatmulKernel, call: Call<'_>) -> Result<Dispatch> {
    Ok(Dispatch::merge(prepare_launches(ctx, kernel, call)?))
}

/// One dispatch per launch of a call.
fn prepare_launches(ctx: &GpuContext, kernel: MatmulKernel, call: Call<'_>) -> Result<Vec<Dispatch>> {
    launches(ctx, kernel, call)?
        .iter()
        .map(|l| l.prepare(ctx, kernel.shape().kernel))
        .collect()
}

/// The launches of a call: validates its operands and splits it into parts that each stay
/// within the work budget.
fn launches<'a>(ctx: &'a GpuContext, kernel: MatmulKernel, call: Call<'a>) -> Result<Vec<Launch<'a>>> {
    let Call {
        form,
        dims,
        a,
        b,
        c,
        epilogue,
        accumulate,
        bias_grad,
    } = call;
    crate::error::check_nonzero("matmul", &[("m", dims.m), ("k", dims.k), ("n", dims.n)])?;
    let MatmulDims { m, k, n } = dims;
    let (a_rows, a_cols) = if form.transposes_a() { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if form.transposes_b() { (n, k) } else { (k, n) };
    a.check("A", a_rows, a_cols)?;
    b.check("B", b_rows, b_cols)?;
    c.check("C", m, n)?;
    if let Some(db) = &bias_grad {
        db.check("bias gradient", m, 1)?;
    }
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
    let KernelShape {
        rows: row_block,
        cols: col_block,
        ..
    } = kernel.shape();
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
            // The bias gradient of the part's rows, computed once: by the first column part.
            let db_part = bias_grad.filter(|_| j0 == 0).map(|db| Operand {
                offset: db.offset + i0,
                ..db
            });
            let part = Part {
                dims: MatmulDims::new(rows, k, cols),
                a: a_part,
                b: b_part,
                c: c_part,
                extra: (extra, extra_part),
                db: db_part,
            };
            parts.push(launch_of_part(ctx, kernel, form, part, &epilogue, accumulate));
        }
    }
    Ok(parts)
}

/// One dispatch's share of a [`Call`]: operands shifted to its block of C.
struct Part<'a> {
    dims: MatmulDims,
    a: Operand<'a>,
    b: Operand<'a>,
    c: Operand<'a>,
    extra: (Binding<'a>, usize),
    db: Option<Operand<'a>>,
}

/// What one launch of a matmul kernel binds and sets.
struct Launch<'a> {
    constants: Constants,
    bindings: Vec<Binding<'a>>,
    params: MatmulParams,
    groups: [u32; 3],
}

impl Launch<'_> {
    fn prepare(&self, ctx: &GpuContext, kernel: &Kernel) -> Result<Dispatch> {
        ctx.prepare(
            kernel,
            &self.constants,
            &self.bindings,
            bytemuck::bytes_of(&self.params),
            self.groups,
        )
    }
}

/// The launch of one part of a (possibly split) matmul.
fn launch_of_part<'a>(
    ctx: &'a GpuContext,
    kernel: MatmulKernel,
    form: MatmulForm,
    part: Part<'a>,
    epilogue: &Epilogue<Operand<'_>>,
    accumulate: bool,
) -> Launch<'a> {
    let Part {
        dims,
        a,
        b,
        c,
        extra: (extra, extra_offset),
        db,
    } = part;
    let MatmulDims { m, k, n } = dims;
    let (epilogue_code, act_code) = epilogue.shader_codes();
    let constants = vec![
        ("TRANS_A", f64::from(u8::from(form.transposes_a()))),
        ("TRANS_B", f64::from(u8::from(form.transposes_b()))),
        ("BIAS_GRAD", f64::from(u8::from(db.is_some()))),
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
        bias_group: NO_GROUP,
        db_offset: db.map_or(0, |d| d.offset as u32),
        _pad: 0,
    };
    let db_binding = db.map_or(ctx.scratch_binding(), |d| d.view.binding());
    let shape = kernel.shape();
    let mut constants = constants;
    let mut bindings = vec![a.view.binding(), b.view.binding(), extra, c.view.binding()];
    if shape.vec4_loads {
        // The vec4 aliases of A and B, bound only where their rows are 16-byte aligned.
        for (name, x) in [("VEC_A", &a), ("VEC_B", &b)] {
            let aligned = vec4_aligned(x);
            constants.push((name, f64::from(u8::from(aligned))));
            bindings.push(if aligned {
                x.view.binding()
            } else {
                ctx.placeholder_binding()
            });
        }
    }
    bindings.push(db_binding);
    // With a bias gradient, one more column of workgroups computes it (see matmul_common.wgsl).
    let col_groups = n.div_ceil(shape.cols) as u32;
    let mut params = params;
    if db.is_some() {
        params.bias_group = col_groups;
    }
    let groups = [col_groups + u32::from(db.is_some()), m.div_ceil(shape.rows) as u32, 1];
    Launch {
        constants,
        bindings,
        params,
        groups,
    }
}
