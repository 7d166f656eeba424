//! Training: the backend abstraction, its CPU and GPU implementations, schedules and the loop.

mod backend;
mod cpu_backend;
mod gpu_backend;
pub mod metrics;
pub mod progress;
mod schedule;
mod trainer;

pub use backend::{Backend, Totals};
pub use cpu_backend::CpuBackend;
pub use gpu_backend::{DEFAULT_STEPS_PER_SUBMIT, GpuBackend};
pub use metrics::{EpochRow, MetricsLog, draw_curves};
pub use progress::EpochProgress;
pub use schedule::LrSchedule;
pub use trainer::{Device, EpochReport, StepProgress, TrainConfig, Trainer};

use crate::error::{Error, Result};
use crate::optimizer::Optimizer;

fn check_learning_rate(lr: f32) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidOption(format!(
            "learning rate {lr} must be a finite number ≥ 0"
        )))
    }
}

fn check_training_options(max_batch: usize, max_grad_norm: f32, optimizer: &Optimizer) -> Result<()> {
    if max_batch == 0 {
        return Err(Error::InvalidBatchSize {
            got: 0,
            max: usize::MAX,
        });
    }
    if !(max_grad_norm.is_finite() && max_grad_norm >= 0.0) {
        return Err(Error::InvalidOption(format!(
            "max gradient norm {max_grad_norm} must be finite and ≥ 0 (0 = off)"
        )));
    }
    check_learning_rate(optimizer.lr())
}
