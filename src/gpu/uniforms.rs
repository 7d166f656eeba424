//! The uniform blocks the host writes for the kernels, one `#[repr(C)]` Pod struct per WGSL
//! struct of the same name (a layer's own kernel module may keep its block next to it, as
//! `gpu::dropout` does). A unit test parses every shader with naga and checks each field's
//! name, offset and size against its Rust twin, so the two cannot drift apart silently.

use bytemuck::{Pod, Zeroable};

/// `Shape` in `shaders/elementwise.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct ElementwiseShape {
    pub rows: u32,
    pub cols: u32,
    pub len: u32,
    pub threads_x: u32,
}

/// `LossParams` in `shaders/loss.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct LossParams {
    pub rows: u32,
    pub cols: u32,
    /// Bit 0: count correct, bit 1: guard, bit 2: tick first.
    pub flags: u32,
    pub _pad: u32,
}

/// `Len` in `shaders/optim.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct Len {
    pub n: u32,
    pub threads_x: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// `Params` in `shaders/data.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct GatherParams {
    pub rows: u32,
    pub dim: u32,
    pub width: u32,
    pub index_offset: u32,
    pub scale: f32,
    pub threads_x: u32,
    /// 1: write the labels.
    pub labels_mode: u32,
    /// 0: no targets, 1: one-hot of the label, 2: float values.
    pub targets_mode: u32,
}

/// `Params` in `shaders/matmul_params.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct MatmulParams {
    pub m: u32,
    pub k: u32,
    pub n: u32,
    pub accumulate: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub epilogue: u32,
    pub a_offset: u32,
    pub b_offset: u32,
    pub c_offset: u32,
    pub extra_offset: u32,
    pub act: u32,
    pub bias_group: u32,
    pub db_offset: u32,
    pub _pad: u32,
}

/// `PairParams` in the paired matmul modules (`gpu/matmul_pair.rs`): two jobs' parameters and
/// how they share the grid.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub(crate) struct PairParams {
    pub job0: MatmulParams,
    pub job1: MatmulParams,
    /// Workgroups with `x < split` run job 0.
    pub split: u32,
    /// Rows of workgroups each job uses (the grid has the larger).
    pub rows0: u32,
    pub rows1: u32,
    pub _pad: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::batchnorm::{BATCH_NORM, BatchNormParams};
    use crate::gpu::conv::{CONV, ConvParams};
    use crate::gpu::conv_implicit::{CONV_IMPLICIT, CONV_IMPLICIT_SUBGROUP};
    use crate::gpu::dropout::{DROPOUT, DropoutParams};
    use crate::gpu::kernels::{DATA, ELEMENTWISE, LOSS, MATMUL, MATMUL_BLOCK, MATMUL_CPU, OPTIM, Shader};
    use crate::optimizer::OptimState;

    /// `(field, offset, size)` of each listed field of a Rust struct, in order.
    macro_rules! fields {
        ($ty:ty { $($field:ident),* $(,)? }) => {{
            let value = <$ty as Zeroable>::zeroed();
            let _ = &value;
            (
                std::mem::size_of::<$ty>(),
                vec![$((stringify!($field), std::mem::offset_of!($ty, $field), std::mem::size_of_val(&value.$field))),*],
            )
        }};
    }

    /// `(field, offset, size)` of the WGSL struct `name` in `shader`, and its size.
    fn wgsl_struct(shader: &Shader, name: &str) -> (usize, Vec<(String, usize, usize)>) {
        let module = naga::front::wgsl::parse_str(shader.source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{} has no struct {name}", shader.name));
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{name} in {} is not a struct", shader.name)
        };
        let fields = members
            .iter()
            .map(|m| {
                (
                    m.name.clone().unwrap_or_default(),
                    m.offset as usize,
                    layouter[m.ty].size as usize,
                )
            })
            .collect();
        assert_eq!(layouter[handle].size, *span);
        (*span as usize, fields)
    }

    fn check(shader: &Shader, name: &str, (size, rust): (usize, Vec<(&str, usize, usize)>)) {
        let (wgsl_size, wgsl) = wgsl_struct(shader, name);
        let rust: Vec<(String, usize, usize)> = rust.into_iter().map(|(n, o, s)| (n.to_string(), o, s)).collect();
        assert_eq!(wgsl, rust, "{name} in {} differs from its Rust twin", shader.name);
        assert_eq!(wgsl_size, size, "{name} in {}: struct size", shader.name);
    }

    #[test]
    fn every_host_struct_matches_its_wgsl_twin_field_by_field() {
        let state = fields!(OptimState {
            lr,
            momentum,
            beta1,
            beta2,
            eps,
            weight_decay,
            step,
            beta1_power,
            beta2_power,
            bias_correction1,
            bias_correction2,
            grad_sq_sum,
            max_grad_norm,
            skip_nonfinite,
            step_nonfinite,
            first_nonfinite_step,
            skipped_steps,
            alpha,
            _pad,
        });
        check(&OPTIM, "OptimState", state.clone());
        check(&DROPOUT, "OptimState", state.clone());
        check(&BATCH_NORM, "OptimState", state.clone());
        check(&OPTIM, "OptimState", state.clone());
        check(
            &OPTIM,
            "Len",
            fields!(Len {
                n,
                threads_x,
                _pad0,
                _pad1
            }),
        );
        check(
            &ELEMENTWISE,
            "Shape",
            fields!(ElementwiseShape {
                rows,
                cols,
                len,
                threads_x
            }),
        );
        check(
            &LOSS,
            "LossParams",
            fields!(LossParams {
                rows,
                cols,
                flags,
                _pad
            }),
        );
        check(&LOSS, "OptimState", state);
        check(
            &DATA,
            "Params",
            fields!(GatherParams {
                rows,
                dim,
                width,
                index_offset,
                scale,
                threads_x,
                labels_mode,
                targets_mode
            }),
        );
        let matmul = fields!(MatmulParams {
            m,
            k,
            n,
            accumulate,
            lda,
            ldb,
            ldc,
            epilogue,
            a_offset,
            b_offset,
            c_offset,
            extra_offset,
            act,
            bias_group,
            db_offset,
            _pad
        });
        check(&MATMUL, "Params", matmul.clone());
        let conv = fields!(ConvParams {
            batch,
            channels,
            height,
            width,
            out_channels,
            kernel,
            stride,
            padding,
            out_height,
            out_width,
            act,
            _pad
        });
        check(&CONV, "ConvParams", conv.clone());
        check(&CONV_IMPLICIT, "ConvParams", conv.clone());
        check(&CONV_IMPLICIT_SUBGROUP, "ConvParams", conv);
        check(&MATMUL_BLOCK, "Params", matmul.clone());
        check(&MATMUL_CPU, "Params", matmul);
        let pair = fields!(PairParams {
            job0,
            job1,
            split,
            rows0,
            rows1,
            _pad
        });
        for kernel in crate::gpu::MatmulKernel::ALL {
            check(kernel.pair_kernel().shader, "PairParams", pair.clone());
        }
        check(
            &DROPOUT,
            "DropoutParams",
            fields!(DropoutParams {
                len,
                threads_x,
                seed,
                threshold,
                scale,
                input_act,
                _pad0,
                _pad1
            }),
        );
        check(
            &BATCH_NORM,
            "BatchNormParams",
            fields!(BatchNormParams {
                rows,
                channels,
                spatial,
                groups_x,
                bias_at,
                var_at,
                count_at,
                act,
                input_act,
                flags,
                eps,
                momentum,
                threads_x,
                len,
                _pad0,
                _pad1
            }),
        );
    }

    #[test]
    fn a_field_out_of_place_is_caught() {
        // The check itself must fail on a mismatch: swap two fields of the Rust side.
        let swapped = (
            16,
            vec![("threads_x", 0, 4), ("n", 4, 4), ("_pad0", 8, 4), ("_pad1", 12, 4)],
        );
        let result = std::panic::catch_unwind(|| check(&OPTIM, "Len", swapped));
        assert!(result.is_err());
    }
}
