//! # shadergrad
//!
//! Train neural networks on any GPU through wgpu compute shaders (Vulkan, Metal, DX12, GL),
//! with a CPU backend that implements the same math and serves as the reference every GPU
//! kernel is tested against.
//!
//! ## Layout
//! - [`prelude`]: what a user needs, in one import.
//! - [`model`]: a model as data — an input width or image shape, a list of [`model::Layer`]s
//!   (dense, conv, pooling, flatten, batch norm, activation, dropout) and a loss head — built
//!   with [`model::Model::input`] or parsed from text (`784,dense512,relu,dropout0.2,dense10`);
//!   each layer kind declares the named tensors it owns ([`model::ParamKind::tensors`]); its
//!   tensors on the host ([`model::Network`]); checkpoints under PyTorch's names.
//! - [`train`]: the training step written once (the step program, planned per model and
//!   stage, fusion decided there), its two executors — [`train::CpuBackend`] (over
//!   [`train::CpuExecutor`], generic over `f32`/`f64`) and [`train::GpuBackend`] — the
//!   [`train::Trainer`] loop with schedules, metrics, checkpoints and failure handling, and the
//!   [`train::Predictor`] for inference.
//! - [`gpu`]: the device ([`gpu::GpuContext`]), typed buffers, and the settings and reports of
//!   its kernel choices. The kernels themselves (one module per family, each binding a WGSL
//!   file in `shaders/`) and their CPU twins (module `cpu`, generic over `f32`/`f64`) are
//!   crate-private: the `internals` feature opens them for this crate's tests and benches.
//! - [`data`], [`files`], [`memory`]: datasets, safe writes, memory checks before allocating.
//!
//! An op is found by name on both sides: `shaders/loss.wgsl` ↔ `gpu::loss` ↔ `cpu::loss`.
//!
//! ## Conventions
//! - Numbers are `f32` (the CPU path also runs in `f64` for gradient checks), matrices row-major.
//! - Activations are batch-major: `[B × features]`, one sample per row.
//! - A dense layer's weight is `[out × in]`, as in PyTorch's `nn.Linear`; its bias is `[out]`.
//!   The forward pass is `A = act(X·Wᵀ + b)` ([`ops::MatmulForm::ABt`] with a fused
//!   [`ops::Epilogue::BiasAct`]); backward uses `dW = dZᵀ·X` ([`ops::MatmulForm::AtB`]),
//!   `db = Σ_rows dZ`, and `dX = dZ·W` ([`ops::MatmulForm::AB`]).
//! - The loss is the **mean over the batch** of the per-sample loss; binary cross-entropy and
//!   MSE **sum** over a sample's outputs. The `1/B` of the mean lives in the loss kernel's
//!   `dZ` and nowhere else.
//! - Activation derivatives are computed from the activation's output, so only outputs are kept.
//! - Weight decay is decoupled (AdamW-style) for every optimizer.
//!
//! ## Choosing an adapter
//! [`gpu::GpuContext::new`] picks a hardware GPU first and a software one (lavapipe, WARP) when
//! there is none. `SHADERGRAD_BACKEND=vulkan|metal|dx12|gl` and `SHADERGRAD_ADAPTER=<name part>`
//! narrow the choice; a request that matches nothing is an error listing what exists.
//! [`train::Device::open`] with [`train::BackendChoice::Auto`] falls back to the CPU backend on a
//! machine without any adapter, and says why. `docs/portability.md` lists the GPU
//! implementations the suite runs on and what differs between them.

// Every public item is documented; the kernel modules the `internals` feature opens are not API.
#![cfg_attr(not(feature = "internals"), warn(missing_docs))]

pub mod activation;
/// The CPU twins of the GPU kernels, generic over `f32` and `f64`: public with the `internals`
/// feature (this crate's tests, benches and examples), crate-private otherwise, so the public API
/// is the model, training, data and device, not the kernels under them.
#[cfg(feature = "internals")]
pub mod cpu;
/// The CPU twins of the GPU kernels (crate-private without the `internals` feature).
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod cpu;
pub mod data;
pub mod error;
pub mod files;
pub mod gpu;
pub mod memory;
pub mod model;
pub mod ops;
pub mod optimizer;
pub mod train;

/// What a user of the crate needs, in one import: `use shadergrad::prelude::*;`.
///
/// The model builder and its text form, the network and its checkpoints, datasets and MNIST,
/// the device choice, training (trainer, configuration, schedules, optimizers), inference, and
/// the error type (not `Result`, which would shadow the standard one: use `shadergrad::Result`).
pub mod prelude {
    pub use crate::activation::Activation;
    pub use crate::data::{Dataset, Mnist};
    pub use crate::error::Error;
    pub use crate::gpu::GpuContext;
    pub use crate::model::{Checkpoint, LossKind, Model, Network, NetworkSpec};
    pub use crate::optimizer::Optimizer;
    pub use crate::train::{BackendChoice, Device, EpochReport, LrSchedule, Predictor, TrainConfig, Trainer};
}

pub use activation::Activation;
pub use error::{Error, Result};
pub use optimizer::Optimizer;
/// The README's Rust snippets, compiled as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The wgpu this crate is built against, for callers who record their own work on its device.
pub use wgpu;
