//! Descriptions of operations that both backends implement, so a CPU call and its GPU twin
//! take the same arguments.

use crate::activation::Activation;

/// Which operands of `C = op(A)·op(B)` are transposed: the three forms backprop needs.
///
/// Matrices are row-major; a transposed operand is read in place, never materialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatmulForm {
    /// `C[m×n] = A[m×k] · B[k×n]`: the input gradient `dX = dZ·W`.
    AB,
    /// `C[m×n] = A[m×k] · B[n×k]ᵀ`: the dense forward `Z = X·Wᵀ`.
    ABt,
    /// `C[m×n] = A[k×m]ᵀ · B[k×n]`: the weight gradient `dW = dZᵀ·X`.
    AtB,
}

impl MatmulForm {
    /// All three forms.
    pub const ALL: [MatmulForm; 3] = [MatmulForm::AB, MatmulForm::ABt, MatmulForm::AtB];

    /// Whether `A` is stored transposed (`k×m`).
    pub fn transposes_a(self) -> bool {
        self == MatmulForm::AtB
    }

    /// Whether `B` is stored transposed (`n×k`).
    pub fn transposes_b(self) -> bool {
        self == MatmulForm::ABt
    }
}

/// Sizes of `C[m×n] = op(A)[m×k] · op(B)[k×n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatmulDims {
    /// Rows of `C`.
    pub m: usize,
    /// The contracted dimension.
    pub k: usize,
    /// Columns of `C`.
    pub n: usize,
}

impl MatmulDims {
    /// `C[m×n] = op(A)[m×k] · op(B)[k×n]`.
    pub fn new(m: usize, k: usize, n: usize) -> Self {
        MatmulDims { m, k, n }
    }

    /// Multiply-adds counted as two floating-point operations.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    pub(crate) fn validate(&self, op: &'static str, a: usize, b: usize, c: usize) -> crate::Result<()> {
        crate::error::check_nonzero(op, &[("m", self.m), ("k", self.k), ("n", self.n)])?;
        crate::error::check_len(op, "A", a, self.m * self.k)?;
        crate::error::check_len(op, "B", b, self.k * self.n)?;
        crate::error::check_len(op, "C", c, self.m * self.n)
    }
}

/// What happens to each element of a matmul's result before it is stored.
///
/// `R` is how the extra operand is referenced: `&[T]` on the CPU, `&GpuBuffer` on the GPU.
#[derive(Debug, Clone, Copy)]
pub enum Epilogue<R> {
    /// Store `C` as is.
    None,
    /// `C[i,j] = act(C[i,j] + bias[j])`: the dense layer's forward pass in one dispatch.
    BiasAct {
        /// The bias, one value per column of `C`.
        bias: R,
        /// The activation applied after adding the bias.
        act: Activation,
    },
    /// `C[i,j] *= act'(·)` from the layer's stored output `act_output[i,j]`: turns the
    /// backward `dA = dZ·W` into the previous layer's `dZ` in the same dispatch.
    ActGrad {
        /// The layer's stored activation output, shaped like `C`.
        act_output: R,
        /// The activation whose derivative is applied.
        act: Activation,
    },
}

impl<R> Epilogue<R> {
    /// Kernel code for the epilogue (`override EPILOGUE`) and its activation.
    pub(crate) fn shader_codes(&self) -> (u32, u32) {
        match self {
            Epilogue::None => (0, Activation::Identity.shader_code()),
            Epilogue::BiasAct { act, .. } => (1, act.shader_code()),
            Epilogue::ActGrad { act, .. } => (2, act.shader_code()),
        }
    }
}
