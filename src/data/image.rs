//! Turning an image file into MNIST-style input: 28×28 grayscale, white digit on black, [0, 1].

use std::path::Path;

use crate::error::{Error, Result};

/// MNIST's image side.
pub const SIDE: u32 = 28;

/// Reads an image (PNG) of any size and returns 784 features as MNIST expects them: grayscale,
/// resized to 28×28, scaled to [0, 1], and inverted when it is a dark digit on a light
/// background (MNIST digits are light on dark).
pub fn digit_features(path: &Path) -> Result<Vec<f32>> {
    let image = image::open(path).map_err(|e| match e {
        // A missing or unreadable file is an I/O problem, not a corrupt image.
        image::ImageError::IoError(source) => Error::Io {
            action: "read the image",
            path: path.to_path_buf(),
            source,
        },
        other => Error::CorruptFile {
            path: path.to_path_buf(),
            problem: other.to_string(),
        },
    })?;
    let gray = image.to_luma8();
    let gray = if gray.dimensions() == (SIDE, SIDE) {
        gray
    } else {
        image::imageops::resize(&gray, SIDE, SIDE, image::imageops::FilterType::Triangle)
    };
    let mut features: Vec<f32> = gray.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
    let mean = features.iter().sum::<f32>() / features.len() as f32;
    if mean > 0.5 {
        features.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(features)
}
