//! The training loop: epochs of shuffled batches on a backend, a learning-rate schedule, and
//! per-epoch reports.

use web_time::Instant;

use super::backend::{Backend, Totals};
use super::device::Device;
use super::metrics::{EpochRow, MetricsLog};
use super::schedule::LrSchedule;
use crate::data::{Dataset, batches, epoch_order};
use crate::error::{Error, Result};
use crate::model::{Checkpoint, Network, Progress};
use crate::optimizer::Optimizer;
use std::path::PathBuf;

/// How to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The optimizer and its hyperparameters (its `lr` is the schedule's base rate).
    pub optimizer: Optimizer,
    /// How the learning rate changes from epoch to epoch.
    pub schedule: LrSchedule,
    /// Epochs to train.
    pub epochs: usize,
    /// Samples per optimizer step.
    pub batch_size: usize,
    /// Seeds the per-epoch shuffle.
    pub seed: u64,
    /// Clip gradients to this global L2 norm; 0 turns clipping off.
    pub max_grad_norm: f32,
    /// Shuffle the training set every epoch.
    pub shuffle: bool,
    /// Drop the last batch of an epoch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Skip a step whose loss is NaN or infinite (parameters untouched) instead of stopping
    /// the run with [`Error::NonFiniteLoss`].
    pub skip_nonfinite: bool,
    /// Save a checkpoint here (atomically) after every healthy epoch. Checked before the
    /// first epoch: it must be a regular file or not exist, in a writable folder (a symlink is
    /// written through to its target).
    pub checkpoint: Option<PathBuf>,
    /// Append each epoch's row to this `metrics.csv` — before the epoch's checkpoint is saved,
    /// so after any kill the file has a row for every epoch the checkpoint has trained.
    pub metrics: Option<PathBuf>,
    /// Stop with [`Error::Diverged`] when an epoch's training loss exceeds the first epoch's by
    /// [`DIVERGENCE_FACTOR`] or the loss head's sane bound (on by default).
    pub stop_on_divergence: bool,
}

/// An epoch whose training loss exceeds the first epoch's by this factor has diverged.
pub const DIVERGENCE_FACTOR: f64 = 1e3;
/// The smallest first-epoch loss divergence is measured against for the regression heads
/// (classification heads use 1 % of the loss of a uniform guess).
const DIVERGENCE_FLOOR: f64 = 1e-3;

impl TrainConfig {
    /// Checks every setting (batch size, clipping norm, the optimizer's hyperparameters),
    /// naming the first that cannot be used.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::InvalidBatchSize {
                got: 0,
                max: usize::MAX,
            });
        }
        if self.epochs == 0 {
            return Err(Error::InvalidOption("epochs must be at least 1".into()));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err(Error::InvalidOption(format!(
                "max gradient norm {} must be finite and ≥ 0 (0 = off)",
                self.max_grad_norm
            )));
        }
        self.schedule.validate()?;
        self.optimizer.validate()
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            optimizer: Optimizer::adam(1e-3),
            schedule: LrSchedule::Constant,
            epochs: 5,
            batch_size: 128,
            seed: 0,
            max_grad_norm: 0.0,
            shuffle: true,
            drop_last: false,
            skip_nonfinite: false,
            checkpoint: None,
            metrics: None,
            stop_on_divergence: true,
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used during the epoch.
    pub learning_rate: f32,
    /// Loss and accuracy summed over the training set.
    pub train: Totals,
    /// Loss and accuracy summed over the test set, when one was given.
    pub test: Option<Totals>,
    /// Seconds spent training (evaluation excluded).
    pub train_seconds: f64,
    /// Seconds spent evaluating the test set.
    pub eval_seconds: f64,
    /// Optimizer steps taken this epoch.
    pub steps: usize,
    /// Steps of this epoch skipped for a non-finite loss (with `skip_nonfinite`).
    pub skipped_steps: u64,
}

impl EpochReport {
    /// Training samples per second.
    pub fn samples_per_second(&self) -> f64 {
        self.train.samples as f64 / self.train_seconds
    }
}

/// Progress within an epoch: `(steps done, steps in the epoch)`.
pub type StepProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Says which dataset a mismatch is about: the training and the test set are checked alike.
fn naming_set(set: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::DatasetMismatch(problem) => Error::DatasetMismatch(format!("{set}: {problem}")),
        other => other,
    }
}

/// Steps handed to the backend at once: a GPU records several into one submit, and progress
/// is reported between groups.
const STEPS_PER_CALL: usize = 32;

/// Trains a network on a backend.
pub struct Trainer {
    backend: Box<dyn Backend>,
    config: TrainConfig,
    epochs_done: usize,
    steps_done: u64,
    /// The optimizer's own step count (Adam's `t`, a `u32` on both backends), which must not
    /// wrap: a restored state starts it where the checkpoint left it.
    optimizer_steps: u64,
    /// Skipped steps counted before the current epoch (the backend counts over the run).
    skipped_before: u64,
    /// The first epoch's training loss in this run, the yardstick for divergence.
    first_loss: Option<f64>,
    /// The checkpoint this run last wrote: the only one errors point to.
    written: Option<PathBuf>,
}

impl Trainer {
    /// A trainer for `network` on `device`.
    pub fn new(network: Network, device: &Device, config: TrainConfig) -> Result<Trainer> {
        let backend = device.backend(network, &config)?;
        Self::with_backend(backend, config)
    }

    /// Continues a run from a checkpoint: its parameters, optimizer state (step, β powers,
    /// moments), epoch and step counters, and its seed (which replaces `config.seed`), so the
    /// following epochs see the batches and dropout masks an uninterrupted run would have seen.
    /// Every other setting (learning rate, weight decay, clipping, skipping) comes from `config`.
    pub fn resume(checkpoint: Checkpoint, device: &Device, mut config: TrainConfig) -> Result<Trainer> {
        config.seed = checkpoint.progress.seed;
        let mut trainer = Trainer::new(checkpoint.network, device, config)?;
        if let Some(snapshot) = &checkpoint.optimizer {
            trainer.backend.restore_optimizer(snapshot)?;
            trainer.optimizer_steps = u64::from(snapshot.progress.step);
        }
        trainer.epochs_done = checkpoint.progress.epoch;
        trainer.steps_done = checkpoint.progress.step;
        Ok(trainer)
    }

    /// The current parameters, optimizer state and progress, ready to save.
    pub fn checkpoint(&mut self) -> Result<Checkpoint> {
        Ok(Checkpoint {
            network: self.backend.network()?,
            optimizer: Some(self.backend.optimizer_snapshot()?),
            progress: Progress {
                epoch: self.epochs_done,
                step: self.steps_done,
                seed: self.config.seed,
            },
        })
    }

    /// Optimizer steps taken so far (including those before a resume).
    pub fn steps_done(&self) -> u64 {
        self.steps_done
    }

    /// A trainer on a backend built elsewhere.
    pub fn with_backend(mut backend: Box<dyn Backend>, config: TrainConfig) -> Result<Trainer> {
        config.validate()?;
        // Where results go is checked now, not after the first epoch's work.
        if let Some(path) = &config.checkpoint {
            crate::files::check_destination(path)?;
        }
        if let Some(path) = &config.metrics {
            let same_as_checkpoint = config
                .checkpoint
                .as_ref()
                .is_some_and(|c| crate::files::check_destination(c).ok() == crate::files::check_destination(path).ok());
            if same_as_checkpoint {
                return Err(Error::InvalidOption(format!(
                    "the metrics file {} is also the checkpoint file",
                    path.display()
                )));
            }
            // An existing file must be a metrics CSV: read it now, not after an epoch of work.
            MetricsLog::at(path)?.read()?;
        }
        backend.set_skip_nonfinite(config.skip_nonfinite)?;
        Ok(Trainer {
            backend,
            config,
            epochs_done: 0,
            steps_done: 0,
            optimizer_steps: 0,
            skipped_before: 0,
            first_loss: None,
            written: None,
        })
    }

    /// The backend's one-line description.
    pub fn backend_name(&self) -> String {
        self.backend.name()
    }

    /// The backend itself.
    pub fn backend_mut(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Epochs trained so far.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Trains one epoch (the next one), evaluates on `test` if given, and reports.
    ///
    /// A lost GPU device comes back as [`Error::DeviceLost`] naming the last checkpoint, if
    /// the configuration saves them: build a new context and [`Trainer::resume`] from it.
    pub fn train_epoch(
        &mut self,
        train: &Dataset,
        test: Option<&Dataset>,
        progress: StepProgress<'_>,
    ) -> Result<EpochReport> {
        self.train_epoch_inner(train, test, progress).map_err(|e| match e {
            Error::DeviceLost { reason, .. } => Error::DeviceLost {
                reason,
                checkpoint: self.written.clone(),
            },
            other => other,
        })
    }

    fn train_epoch_inner(
        &mut self,
        train: &Dataset,
        test: Option<&Dataset>,
        progress: StepProgress<'_>,
    ) -> Result<EpochReport> {
        let epoch = self.epochs_done;
        let c = &self.config;
        let lr = c.schedule.lr(c.optimizer.lr(), epoch, c.epochs);
        self.backend.set_learning_rate(lr)?;
        let order = epoch_order(train.len(), c.seed, epoch, c.shuffle);
        let all: Vec<&[u32]> = batches(&order, c.batch_size, c.drop_last).collect();
        self.check_counters(all.len() as u64)?;
        let started = Instant::now();
        let mut done = 0;
        progress(0, all.len());
        for group in all.chunks(STEPS_PER_CALL) {
            self.backend
                .train_batches(train, group)
                .map_err(naming_set("the training set"))?;
            done += group.len();
            progress(done, all.len());
        }
        let train_totals = self.backend.take_train_totals()?;
        let train_seconds = started.elapsed().as_secs_f64();
        // Saturating: a restored optimizer state restarts the backend's count.
        let skipped_steps = train_totals.skipped_steps.saturating_sub(self.skipped_before);
        self.skipped_before = train_totals.skipped_steps;
        self.check_health(epoch + 1, &train_totals, skipped_steps, all.len())?;
        let eval_started = Instant::now();
        let test_totals = test
            .map(|t| self.backend.evaluate(t).map_err(naming_set("the test set")))
            .transpose()?;
        self.epochs_done += 1;
        self.steps_done += all.len() as u64;
        self.optimizer_steps += all.len() as u64;
        let report = EpochReport {
            epoch: self.epochs_done,
            learning_rate: lr,
            train: train_totals,
            test: test_totals,
            train_seconds,
            eval_seconds: eval_started.elapsed().as_secs_f64(),
            steps: all.len(),
            skipped_steps,
        };
        // Parameters first (never save spoiled ones), then the metrics row, then the checkpoint:
        // a kill between the last two leaves a row the resumed run rewrites, never a gap.
        let checkpoint = match &self.config.checkpoint {
            Some(_) => Some(self.checkpoint()?),
            None => None,
        };
        if let Some(c) = &checkpoint
            && !c.network.is_finite()
        {
            return Err(Error::NonFiniteParameters {
                epoch: self.epochs_done,
                checkpoint: self.written.clone(),
            });
        }
        if let Some(path) = &self.config.metrics {
            MetricsLog::at(path)?.append(&EpochRow::from(&report))?;
        }
        if let (Some(c), Some(path)) = (checkpoint, self.config.checkpoint.clone()) {
            c.save(&path)?;
            self.written = Some(path);
        }
        Ok(report)
    }

    /// Stops a run whose epoch went wrong: a non-finite loss (unless skipping), every step
    /// skipped, or divergence.
    fn check_health(&mut self, epoch: usize, totals: &Totals, skipped: u64, steps: usize) -> Result<()> {
        let loss = totals.mean_loss();
        if let Some(step) = totals.nonfinite_step
            && !self.config.skip_nonfinite
        {
            // The parameters are spoiled; the last checkpoint this run saved (only after healthy
            // epochs) is where to continue from.
            return Err(Error::NonFiniteLoss {
                epoch,
                step,
                value: loss,
                checkpoint: self.written.clone(),
            });
        }
        if skipped > 0 && skipped as usize == steps {
            return Err(Error::Diverged {
                epoch,
                loss,
                reason: format!("all {steps} steps had a non-finite loss and were skipped"),
                checkpoint: self.written.clone(),
            });
        }
        if !self.config.stop_on_divergence || !loss.is_finite() {
            return Ok(());
        }
        let spec = self.backend.spec();
        let bound = spec.loss.sane_bound(spec.outputs());
        let first = *self.first_loss.get_or_insert(loss);
        // The yardstick never falls below a floor: a first epoch that already fits (a loss of
        // 0, or a converged model resumed) must not make ordinary noise look like divergence.
        let floor = bound.map_or(DIVERGENCE_FLOOR, |b| b / DIVERGENCE_FACTOR * 1e-2);
        let reference = first.max(floor);
        let reason = if bound.is_some_and(|b| loss > b) {
            format!(
                "above {:.3e}, far beyond what a {} head reaches by chance",
                bound.unwrap_or_default(),
                spec.loss.name()
            )
        } else if loss > DIVERGENCE_FACTOR * reference {
            format!("over {DIVERGENCE_FACTOR:.0e} × the first epoch's {reference:.4}")
        } else {
            return Ok(());
        };
        Err(Error::Diverged {
            epoch,
            loss,
            reason,
            checkpoint: self.written.clone(),
        })
    }

    /// Refuses an epoch of `steps` that would wrap the run's step counter (`u64`) or the
    /// optimizer's (`u32`): wrapped, a resumed run would silently restart its dropout masks and
    /// Adam's bias correction. Only a corrupt or hand-edited checkpoint gets this far.
    fn check_counters(&self, steps: u64) -> Result<()> {
        let check = |what: &str, now: u64, max: u64| {
            if now.checked_add(steps).is_none_or(|end| end > max) {
                Err(Error::InvalidOption(format!(
                    "the {what} counter is at {now}, and epoch {}'s {steps} steps would pass its limit {max}; \
                     a checkpoint this far along is corrupt",
                    self.epochs_done + 1
                )))
            } else {
                Ok(())
            }
        };
        check("run's step", self.steps_done, u64::MAX)?;
        check("optimizer's step", self.optimizer_steps, u64::from(u32::MAX))
    }

    /// Trains the remaining epochs of the configuration, calling `on_epoch` after each.
    pub fn fit(
        &mut self,
        train: &Dataset,
        test: Option<&Dataset>,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> Result<Vec<EpochReport>> {
        let mut reports = Vec::new();
        while self.epochs_done < self.config.epochs {
            let report = self.train_epoch(train, test, &mut |_, _| {})?;
            on_epoch(&report);
            reports.push(report);
        }
        Ok(reports)
    }

    /// Loss and accuracy over `data`.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Totals> {
        self.backend.evaluate(data)
    }

    /// Predictions for `rows` samples (see [`Backend::predict`]).
    pub fn predict(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        self.backend.predict(features, rows)
    }

    /// The current parameters.
    pub fn network(&mut self) -> Result<Network> {
        self.backend.network()
    }
}
