//! Learning-rate schedules, evaluated once per epoch on the host.

use crate::error::{Error, Result};

/// How the learning rate changes from epoch to epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrSchedule {
    /// The optimizer's learning rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays, ≥ 1.
        every: usize,
        /// Factor the rate is multiplied by at each decay, finite and > 0.
        gamma: f32,
    },
    /// Cosine annealing from the base rate down to `min_lr` over the run's epochs.
    Cosine {
        /// The rate annealed towards over the run, finite and ≥ 0.
        min_lr: f32,
    },
}

impl LrSchedule {
    /// The learning rate of `epoch` (0-based) in a run of `epochs` epochs.
    pub fn lr(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            LrSchedule::Cosine { min_lr } => {
                let progress = epoch as f64 / epochs.max(1) as f64;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                (min_lr as f64 + (base - min_lr) as f64 * cosine) as f32
            }
        }
    }
}

impl std::str::FromStr for LrSchedule {
    type Err = Error;

    /// `constant`, `step:EVERY:GAMMA` (e.g. `step:2:0.5`), or `cosine[:MIN_LR]`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidOption(format!(
                "schedule {s:?}: expected constant, step:EVERY:GAMMA or cosine[:MIN_LR]"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let schedule = match parts.as_slice() {
            ["constant"] => LrSchedule::Constant,
            ["step", every, gamma] => LrSchedule::Step {
                every: every.parse().map_err(|_| bad())?,
                gamma: gamma.parse().map_err(|_| bad())?,
            },
            ["cosine"] => LrSchedule::Cosine { min_lr: 0.0 },
            ["cosine", min] => LrSchedule::Cosine {
                min_lr: min.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        schedule.validate()?;
        Ok(schedule)
    }
}

impl LrSchedule {
    /// Checks the schedule's numbers: a step every ≥ 1 epochs by a finite factor > 0, a finite
    /// cosine floor ≥ 0.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidOption(format!("schedule: {what}")));
        match *self {
            LrSchedule::Step { every: 0, .. } => bad("step:EVERY needs EVERY ≥ 1 epoch".into()),
            LrSchedule::Step { gamma, .. } if !(gamma.is_finite() && gamma > 0.0) => {
                bad(format!("step factor {gamma} must be a finite number > 0"))
            }
            LrSchedule::Cosine { min_lr } if !(min_lr.is_finite() && min_lr >= 0.0) => {
                bad(format!("cosine floor {min_lr} must be a finite number ≥ 0"))
            }
            _ => Ok(()),
        }
    }
}
