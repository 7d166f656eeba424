//! What a training backend does, and the checks every backend makes before it does it.

use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::model::{LossKind, Network, NetworkSpec, OptimizerSnapshot};

/// Loss and accuracy summed over some samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Σ per-sample loss.
    pub loss_sum: f64,
    /// Samples whose argmax matched the label (class data only).
    pub correct: u64,
    /// Samples counted.
    pub samples: u64,
    /// Whether `correct` means anything (the data has class labels).
    pub has_accuracy: bool,
    /// The first training step (1-based, counted over the whole run) whose loss was NaN or
    /// infinite, if any so far.
    pub nonfinite_step: Option<u64>,
    /// Steps skipped so far because of a non-finite loss (when skipping was asked for).
    pub skipped_steps: u64,
}

impl Totals {
    /// Mean per-sample loss (NaN before any sample).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples as f64
    }

    /// Fraction classified correctly, for class data.
    pub fn accuracy(&self) -> Option<f64> {
        self.has_accuracy.then(|| self.correct as f64 / self.samples as f64)
    }
}

/// A device that trains a network: the CPU reference or a GPU.
///
/// Both implementations take the same inputs and produce the same numbers (to float
/// rounding): same init, same batches → the same losses.
pub trait Backend: Send {
    /// What runs the math (e.g. "cpu (2 threads)" or the GPU adapter line).
    fn name(&self) -> String;

    /// The network being trained.
    fn spec(&self) -> &NetworkSpec;

    /// One optimizer step per batch, in order; each batch lists sample indices of `data`.
    fn train_batches(&mut self, data: &Dataset, batches: &[&[u32]]) -> Result<()>;

    /// Loss and accuracy totals of the training steps since the last call.
    fn take_train_totals(&mut self) -> Result<Totals>;

    /// Loss and accuracy over a whole dataset, without training.
    fn evaluate(&mut self, data: &Dataset) -> Result<Totals>;

    /// Outputs for `rows` samples of `features [rows × inputs]`: class probabilities for
    /// softmax-CE, per-output probabilities for sigmoid-BCE, raw outputs for MSE.
    fn predict(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>>;

    /// Sets the learning rate of the following steps.
    fn set_learning_rate(&mut self, lr: f32) -> Result<()>;

    /// Whether a step whose loss is NaN or infinite is skipped (parameters untouched) instead
    /// of applied. Either way the first such step is reported in [`Totals::nonfinite_step`].
    fn set_skip_nonfinite(&mut self, skip: bool) -> Result<()>;

    /// The current parameters, copied to the host.
    fn network(&mut self) -> Result<Network>;

    /// The optimizer's state (step counter, β powers, moments), copied to the host.
    fn optimizer_snapshot(&mut self) -> Result<OptimizerSnapshot>;

    /// Continues from an optimizer state, e.g. a checkpoint's: its step counter, β powers and
    /// moments. It must be of the same optimizer kind and shapes. Every setting (learning
    /// rate, decay, betas, clipping, skipping) stays the one this backend was built with.
    fn restore_optimizer(&mut self, snapshot: &OptimizerSnapshot) -> Result<()>;
}

/// Checks that a snapshot fits an optimizer and network.
pub(crate) fn check_snapshot(kind: &str, spec: &NetworkSpec, snapshot: &OptimizerSnapshot) -> Result<()> {
    if snapshot.kind != kind {
        return Err(Error::InvalidOption(format!(
            "optimizer state is for {}, but this run uses {kind}",
            snapshot.kind
        )));
    }
    let expected = crate::optimizer::moment_names(kind).map_or(0, |n| n.len());
    if snapshot.moments.len() != expected {
        return Err(Error::InvalidOption(format!(
            "{kind} keeps {expected} moment tensors per parameter, the snapshot has {}",
            snapshot.moments.len()
        )));
    }
    for moment in &snapshot.moments {
        crate::model::check_tensors(spec, moment, true)?;
    }
    Ok(())
}

/// Checks that `data` can train or be evaluated by `spec`.
pub(crate) fn check_fits(spec: &NetworkSpec, data: &Dataset) -> Result<()> {
    if data.dim() != spec.inputs() {
        return Err(Error::DatasetMismatch(format!(
            "samples have {} features but the network takes {} inputs",
            data.dim(),
            spec.inputs()
        )));
    }
    if data.target_width() != spec.outputs() {
        let what = if data.classes().is_some() {
            "classes"
        } else {
            "target values per sample"
        };
        return Err(Error::DatasetMismatch(format!(
            "the data has {} {what} but the network has {} outputs",
            data.target_width(),
            spec.outputs()
        )));
    }
    match (spec.loss, data.targets()) {
        (LossKind::SoftmaxCrossEntropy, Targets::Values { .. }) => Err(Error::DatasetMismatch(
            "softmax cross-entropy needs class labels; this dataset has float targets".into(),
        )),
        (LossKind::SigmoidBinaryCrossEntropy, Targets::Values { values, width }) => {
            match values.iter().position(|v| !(0.0..=1.0).contains(v)) {
                Some(i) => Err(Error::TargetOutOfRange {
                    sample: i / width,
                    index: i % width,
                    value: values[i],
                }),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Checks a batch list: non-empty batches of at most `max_batch` indices below `len`.
pub(crate) fn check_batches(batches: &[&[u32]], len: usize, max_batch: usize) -> Result<()> {
    for (b, batch) in batches.iter().enumerate() {
        if batch.is_empty() || batch.len() > max_batch {
            return Err(Error::InvalidBatchSize {
                got: batch.len(),
                max: max_batch,
            });
        }
        if let Some(&i) = batch.iter().find(|&&i| i as usize >= len) {
            return Err(Error::InvalidOption(format!(
                "batch {b} names sample {i} of a {len}-sample dataset"
            )));
        }
    }
    Ok(())
}

/// Checks `predict` input: `rows ≥ 1` rows of `inputs` finite features.
pub(crate) fn check_predict_input(spec: &NetworkSpec, features: &[f32], rows: usize) -> Result<()> {
    crate::error::check_nonzero("predict", &[("rows", rows)])?;
    crate::error::check_len("predict", "features", features.len(), rows * spec.inputs())?;
    if let Some(i) = features.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFiniteInput {
            what: "feature",
            sample: i / spec.inputs(),
            index: i % spec.inputs(),
            value: features[i],
        });
    }
    Ok(())
}
