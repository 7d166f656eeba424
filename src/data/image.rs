//! Turning an image file into MNIST-style input: 28×28 grayscale, white digit on black, [0, 1].

use std::path::Path;

use crate::error::{Error, Result};

/// MNIST's image side.
pub const SIDE: u32 = 28;

/// The largest image side read: larger ones are refused before they are decoded.
pub const MAX_SIDE: u32 = 8192;

/// Reads an image (PNG) of up to [`MAX_SIDE`]² pixels and returns 784 features as MNIST expects
/// them: grayscale, resized to 28×28, scaled to [0, 1], and inverted when it is a dark digit on
/// a light background (MNIST digits are light on dark). Transparency is composited onto the
/// background the strokes stand out from (white behind dark strokes, black behind light ones),
/// so a digit drawn on a transparent canvas reads as drawn. A fully transparent or blank image is
/// an error: there is nothing to classify.
pub fn digit_features(path: &Path) -> Result<Vec<f32>> {
    let invalid = |problem: String| Error::InvalidImage {
        path: path.to_path_buf(),
        problem,
    };
    let file = crate::files::open_regular(path, "read the image")?;
    let mut reader = image::ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|source| Error::Io {
            action: "read the image",
            path: path.to_path_buf(),
            source,
        })?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        // A missing or unreadable file is an I/O problem, not a bad image.
        image::ImageError::IoError(source) => Error::Io {
            action: "read the image",
            path: path.to_path_buf(),
            source,
        },
        image::ImageError::Limits(_) => invalid(format!("it is larger than {MAX_SIDE}×{MAX_SIDE} pixels")),
        other => invalid(other.to_string()),
    })?;
    features_from_rgba(&image.to_rgba32f(), path)
}

/// [`digit_features`] of decoded RGBA pixels (`width × height`, 4 bytes each, row-major), as a
/// page's canvas gives them; `source` names them in errors.
pub fn rgba_digit_features(width: u32, height: u32, rgba: &[u8], source: &Path) -> Result<Vec<f32>> {
    let invalid = |problem: String| Error::InvalidImage {
        path: source.to_path_buf(),
        problem,
    };
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(invalid(format!(
            "{width}×{height} pixels is not a digit image (1 to {MAX_SIDE} per side)"
        )));
    }
    let buffer = image::RgbaImage::from_raw(width, height, rgba.to_vec())
        .ok_or_else(|| invalid(format!("{} bytes are not {width}×{height} RGBA pixels", rgba.len())))?;
    features_from_rgba(&image::DynamicImage::ImageRgba8(buffer).to_rgba32f(), source)
}

/// The preprocessing both forms share.
fn features_from_rgba(rgba: &image::Rgba32FImage, path: &Path) -> Result<Vec<f32>> {
    let invalid = |problem: String| Error::InvalidImage {
        path: path.to_path_buf(),
        problem,
    };
    // Rec. 601 luma, as `to_luma8` computes it; a gray pixel is its own value exactly.
    let luma = |p: &image::Rgba<f32>| {
        let [r, g, b, _] = p.0;
        if r == g && g == b {
            r
        } else {
            0.299 * r + 0.587 * g + 0.114 * b
        }
    };
    let (ink, coverage) = rgba.pixels().fold((0.0f64, 0.0f64), |(i, c), p| {
        (i + f64::from(luma(p) * p.0[3]), c + f64::from(p.0[3]))
    });
    if coverage == 0.0 {
        return Err(invalid("it is fully transparent: there is nothing to classify".into()));
    }
    // The colour behind transparent pixels: the opposite of the mean opaque colour.
    let background = if ink / coverage > 0.5 { 0.0 } else { 1.0 };
    let gray = image::ImageBuffer::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y);
        image::Luma([luma(p) * p.0[3] + background * (1.0 - p.0[3])])
    });
    let gray = if gray.dimensions() == (SIDE, SIDE) {
        gray
    } else {
        image::imageops::resize(&gray, SIDE, SIDE, image::imageops::FilterType::Triangle)
    };
    let mut features: Vec<f32> = gray.pixels().map(|p| p.0[0].clamp(0.0, 1.0)).collect();
    let (lo, hi) = features
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi - lo < 1.0 / 255.0 {
        return Err(invalid(
            "it is blank (every pixel the same shade): there is nothing to classify".into(),
        ));
    }
    let mean = features.iter().sum::<f32>() / features.len() as f32;
    if mean > 0.5 {
        features.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(features)
}
