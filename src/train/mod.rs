//! Training: the step program written once ([`Stage`], planned in `program`), its two
//! executors (the CPU backend and the GPU backend), schedules and the loop.

/// How closely the GPU backend trains as the CPU does (`internals` only).
#[cfg(feature = "internals")]
pub mod agreement;
mod backend;
pub(crate) mod cpu_backend;
mod cpu_exec;
#[cfg(feature = "plot")]
mod curves;
mod device;
mod gpu;
mod layer_ops;
pub mod metrics;
mod params;
mod predictor;
mod program;
#[cfg(feature = "progress")]
pub mod progress;
mod run_folder;
mod schedule;
mod trainer;

pub use crate::cpu::Real;
pub use backend::{Backend, Totals};
pub use cpu_backend::CpuBackend;
pub use cpu_exec::{BatchInputs, CpuExecutor, StepOutcome};
#[cfg(feature = "plot")]
pub use curves::draw_curves;
pub use device::{BackendChoice, Device};
pub use gpu::profile as gpu_profile;
pub use gpu::{DEFAULT_STEPS_PER_SUBMIT, GpuBackend};
pub use metrics::{EpochRow, MetricsLog};
pub use predictor::Predictor;
pub use program::Stage;
#[cfg(feature = "progress")]
pub use progress::EpochProgress;
pub use run_folder::{Claim, RunFolder};
pub use schedule::LrSchedule;
pub use trainer::{DIVERGENCE_FACTOR, EpochReport, StepProgress, TrainConfig, Trainer};

use crate::error::{Error, Result};

fn check_learning_rate(lr: f32) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidOption(format!(
            "learning rate {lr} must be a finite number ≥ 0"
        )))
    }
}
