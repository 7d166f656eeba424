//! In-memory datasets: features (bytes or floats) with class labels or float targets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Sample features, row-major `[len × dim]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// Bytes scaled by `scale` on use (MNIST pixels with `scale = 1/255`): 4× smaller on the device.
    U8 {
        /// The bytes, `len × dim` of them.
        data: Arc<Vec<u8>>,
        /// Factor each byte is multiplied by on use.
        scale: f32,
    },
    /// Floats used as they are.
    F32(Arc<Vec<f32>>),
}

/// What each sample should produce.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// A class index per sample (softmax-CE; one-hot targets for BCE/MSE).
    Classes {
        /// One label per sample, each in `0..classes`.
        labels: Arc<Vec<u32>>,
        /// Number of classes.
        classes: usize,
    },
    /// `width` floats per sample (BCE targets in [0, 1], MSE regression targets).
    Values {
        /// The targets, row-major `[len × width]`.
        values: Arc<Vec<f32>>,
        /// Targets per sample.
        width: usize,
    },
}

/// A dataset of `len` samples held in memory. Cloning is cheap (the arrays are shared).
#[derive(Debug, Clone)]
pub struct Dataset {
    id: u64,
    len: usize,
    dim: usize,
    features: Features,
    targets: Targets,
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Dataset {
    /// Builds a dataset, checking that every part agrees on the number of samples, labels are
    /// within `0..classes`, and every float is finite.
    pub fn new(features: Features, dim: usize, targets: Targets) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidDataset("feature width is 0".into()));
        }
        let values = match &features {
            Features::U8 { data, scale } => {
                if !scale.is_finite() {
                    return Err(Error::InvalidDataset(format!("byte scale {scale} is not finite")));
                }
                data.len()
            }
            Features::F32(data) => {
                if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                    return Err(Error::NonFiniteInput {
                        what: "feature",
                        sample: i / dim,
                        index: i % dim,
                        value: data[i],
                    });
                }
                data.len()
            }
        };
        if values % dim != 0 {
            return Err(Error::InvalidDataset(format!(
                "{values} feature values are not a whole number of {dim}-wide samples"
            )));
        }
        let len = values / dim;
        if len == 0 {
            return Err(Error::EmptyDataset {
                what: "the dataset".into(),
            });
        }
        match &targets {
            Targets::Classes { labels, classes } => {
                if labels.len() != len {
                    return Err(Error::InvalidDataset(format!(
                        "{len} samples but {} labels",
                        labels.len()
                    )));
                }
                if *classes == 0 {
                    return Err(Error::InvalidDataset("0 classes".into()));
                }
                if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= *classes) {
                    return Err(Error::LabelOutOfRange {
                        op: "dataset",
                        row: i,
                        label: l,
                        classes: *classes,
                    });
                }
            }
            Targets::Values { values, width } => {
                if *width == 0 || values.len() != len * width {
                    return Err(Error::InvalidDataset(format!(
                        "{len} samples need {} target values ({width} each), got {}",
                        len * width,
                        values.len()
                    )));
                }
                if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                    return Err(Error::NonFiniteInput {
                        what: "target",
                        sample: i / width,
                        index: i % width,
                        value: values[i],
                    });
                }
            }
        }
        Ok(Dataset {
            id: next_id(),
            len,
            dim,
            features,
            targets,
        })
    }

    /// Float features with class labels.
    pub fn classification(features: Vec<f32>, dim: usize, labels: Vec<u32>, classes: usize) -> Result<Self> {
        Self::new(
            Features::F32(Arc::new(features)),
            dim,
            Targets::Classes {
                labels: Arc::new(labels),
                classes,
            },
        )
    }

    /// Float features with float targets (`width` per sample).
    pub fn regression(features: Vec<f32>, dim: usize, targets: Vec<f32>, width: usize) -> Result<Self> {
        Self::new(
            Features::F32(Arc::new(features)),
            dim,
            Targets::Values {
                values: Arc::new(targets),
                width,
            },
        )
    }

    /// A stable identity for this dataset's contents (backends cache device copies by it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a dataset holds at least one sample.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Features per sample.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The features.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Number of classes, for class-labelled data.
    pub fn classes(&self) -> Option<usize> {
        match self.targets {
            Targets::Classes { classes, .. } => Some(classes),
            Targets::Values { .. } => None,
        }
    }

    /// Width of the target a network must output: classes, or values per sample.
    pub fn target_width(&self) -> usize {
        match self.targets {
            Targets::Classes { classes, .. } => classes,
            Targets::Values { width, .. } => width,
        }
    }

    /// The first `n` samples (all of them if `n ≥ len`), as a new dataset; `n = 0` is an error
    /// (an empty dataset trains nothing and has no accuracy).
    pub fn take(&self, n: usize) -> Result<Dataset> {
        if n == 0 {
            return Err(Error::EmptyDataset {
                what: "the first 0 samples of a dataset".into(),
            });
        }
        let n = n.min(self.len);
        let features = match &self.features {
            Features::U8 { data, scale } => Features::U8 {
                data: Arc::new(data[..n * self.dim].to_vec()),
                scale: *scale,
            },
            Features::F32(data) => Features::F32(Arc::new(data[..n * self.dim].to_vec())),
        };
        let targets = match &self.targets {
            Targets::Classes { labels, classes } => Targets::Classes {
                labels: Arc::new(labels[..n].to_vec()),
                classes: *classes,
            },
            Targets::Values { values, width } => Targets::Values {
                values: Arc::new(values[..n * width].to_vec()),
                width: *width,
            },
        };
        Ok(Dataset {
            id: next_id(),
            len: n,
            dim: self.dim,
            features,
            targets,
        })
    }
}
