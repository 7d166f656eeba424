//! MNIST-style folders (MNIST, Fashion-MNIST): four IDX files, gzip-compressed or raw.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::idx::read_idx;
use super::{Dataset, Features, Targets};
use crate::error::{Error, Result};

/// MNIST and Fashion-MNIST both have ten classes.
pub const MNIST_CLASSES: usize = 10;

/// The training and test sets of an MNIST-style folder, pixels scaled to `[0, 1]`.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// The training set (`train-*` files).
    pub train: Dataset,
    /// The test set (`t10k-*` files).
    pub test: Dataset,
    /// The folder the files were loaded from.
    pub dir: PathBuf,
}

impl Mnist {
    /// Loads `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
    /// `t10k-images-idx3-ubyte[.gz]` and `t10k-labels-idx1-ubyte[.gz]` from `dir` (the
    /// `train-images.idx3-ubyte` spelling is accepted too).
    pub fn load(dir: &Path) -> Result<Mnist> {
        Ok(Mnist {
            train: load_split(dir, "train")?,
            test: load_split(dir, "t10k")?,
            dir: dir.to_path_buf(),
        })
    }
}

/// The sample bundled with the repository (10,000 training and 2,000 test images), relative to
/// the crate's root.
pub const BUNDLED_SAMPLE: &str = "examples/data/mnist-sample";

/// Whether `dir` holds the four MNIST files (any accepted spelling).
pub fn has_mnist(dir: &Path) -> bool {
    [
        ("train", "images", "idx3"),
        ("train", "labels", "idx1"),
        ("t10k", "images", "idx3"),
        ("t10k", "labels", "idx1"),
    ]
    .iter()
    .all(|(split, what, kind)| find_file(dir, "file", &format!("{split}-{what}"), &format!("{kind}-ubyte")).is_ok())
}

/// The folder to read MNIST from: the given one, else `$MNIST_DIR`, else `./data/mnist`.
pub fn find_mnist_dir(given: Option<&Path>) -> PathBuf {
    if let Some(dir) = given {
        return dir.to_path_buf();
    }
    match std::env::var_os("MNIST_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("data/mnist"),
    }
}

fn find_file(dir: &Path, what: &'static str, stem: &str, kind: &str) -> Result<PathBuf> {
    let names: Vec<String> = [format!("{stem}-{kind}"), format!("{stem}.{kind}")]
        .into_iter()
        .flat_map(|n| [format!("{n}.gz"), n])
        .collect();
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::DataNotFound {
            what,
            dir: dir.to_path_buf(),
            tried: names.join(", "),
        })
}

fn load_split(dir: &Path, split: &str) -> Result<Dataset> {
    let (images_what, labels_what) = if split == "train" {
        ("training images", "training labels")
    } else {
        ("test images", "test labels")
    };
    let images_path = find_file(dir, images_what, &format!("{split}-images"), "idx3-ubyte")?;
    let labels_path = find_file(dir, labels_what, &format!("{split}-labels"), "idx1-ubyte")?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    split_from_idx(images, labels, (&images_path, &labels_path))
}

impl Mnist {
    /// An MNIST-style set from the bytes of its four IDX files (gzip or raw), as a page fetches
    /// them; `source` names where they came from in errors.
    pub fn from_idx_bytes(
        (train_images, train_labels): (&[u8], &[u8]),
        (test_images, test_labels): (&[u8], &[u8]),
        source: &Path,
    ) -> Result<Mnist> {
        let split = |images: &[u8], labels: &[u8], stem: &str| {
            let (images_path, labels_path) = (
                source.join(format!("{stem}-images-idx3-ubyte.gz")),
                source.join(format!("{stem}-labels-idx1-ubyte.gz")),
            );
            let images = crate::data::idx::parse_idx(images, &images_path)?;
            let labels = crate::data::idx::parse_idx(labels, &labels_path)?;
            split_from_idx(images, labels, (&images_path, &labels_path))
        };
        Ok(Mnist {
            train: split(train_images, train_labels, "train")?,
            test: split(test_images, test_labels, "t10k")?,
            dir: source.to_path_buf(),
        })
    }
}

/// One split's dataset from its parsed images and labels, checked against each other.
fn split_from_idx(
    images: crate::data::idx::IdxArray,
    labels: crate::data::idx::IdxArray,
    (images_path, labels_path): (&Path, &Path),
) -> Result<Dataset> {
    let (images_path, labels_path) = (images_path.to_path_buf(), labels_path.to_path_buf());
    let corrupt = |path: &Path, problem: String| Error::CorruptFile {
        path: path.to_path_buf(),
        problem,
    };
    if images.dims.len() != 3 {
        return Err(corrupt(
            &images_path,
            format!(
                "images must have 3 dimensions (count, rows, cols), found {:?}",
                images.dims
            ),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(corrupt(
            &labels_path,
            format!("labels must have 1 dimension, found {:?}", labels.dims),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(corrupt(
            &labels_path,
            format!(
                "{} labels for {} images in {}",
                labels.dims[0],
                images.dims[0],
                images_path.display()
            ),
        ));
    }
    if let Some((i, l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= MNIST_CLASSES)
    {
        return Err(corrupt(
            &labels_path,
            format!("label {l} of sample {i} is not a digit class 0-9"),
        ));
    }
    let dim = images.dims[1] * images.dims[2];
    Dataset::new(
        Features::U8 {
            data: Arc::new(images.data),
            scale: 1.0 / 255.0,
        },
        dim,
        Targets::Classes {
            labels: Arc::new(labels.data.iter().map(|&l| l as u32).collect()),
            classes: MNIST_CLASSES,
        },
    )
}
