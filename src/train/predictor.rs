//! Inference without a training configuration: a trained network (or a checkpoint) on a device.

use std::path::Path;

use super::{Backend, Device, TrainConfig};
use crate::error::Result;
use crate::model::{Checkpoint, Network, NetworkSpec};
use crate::optimizer::Optimizer;

/// Runs a trained network forward: softmax probabilities for a softmax head, each class's own
/// probability for a sigmoid head, the raw outputs for a regression head (see
/// [`Predictor::predict`]). Any number of rows, on the CPU or a GPU.
///
/// ```no_run
/// use shadergrad::prelude::*;
/// # fn main() -> shadergrad::Result<()> {
/// let mut predictor = Predictor::load("runs/mnist/checkpoint.safetensors".as_ref(), &Device::Cpu)?;
/// let probabilities = predictor.predict(&vec![0.0; 784], 1)?; // one 28×28 image in [0, 1]
/// # Ok(())
/// # }
/// ```
pub struct Predictor {
    backend: Box<dyn Backend>,
}

impl Predictor {
    /// A predictor for `network` on `device`.
    pub fn new(network: Network, device: &Device) -> Result<Predictor> {
        // Plain SGD keeps no optimizer moments: nothing beyond the parameters is allocated for
        // training, and predictions run in chunks of any size.
        let config = TrainConfig {
            optimizer: Optimizer::sgd(0.0),
            batch_size: 1,
            ..TrainConfig::default()
        };
        Ok(Predictor {
            backend: device.backend(network, &config)?,
        })
    }

    /// A predictor for the network a checkpoint holds (its optimizer state is not needed).
    pub fn load(path: &Path, device: &Device) -> Result<Predictor> {
        Self::new(Checkpoint::load(path)?.network, device)
    }

    /// The network's description: input width, layers, loss head.
    pub fn spec(&self) -> &NetworkSpec {
        self.backend.spec()
    }

    /// Predictions for `rows` samples of `features` (row-major, `rows × inputs`), `rows ×
    /// outputs` values.
    pub fn predict(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        self.backend.predict(features, rows)
    }

    /// The backend's one-line description.
    pub fn backend_name(&self) -> String {
        self.backend.name()
    }
}
