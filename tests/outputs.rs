//! What a run leaves behind: metrics.csv, curves.svg; image input for inference.
#![cfg(all(feature = "plot", feature = "png"))]

mod common;

use std::path::Path;

use shadergrad::data::Dataset;
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::train::{Device, EpochRow, MetricsLog, TrainConfig, Trainer};
use shadergrad::{Activation, Error};

/// A folder path for `name`, not created: the code under test makes it.
fn temp(name: &str) -> common::TempDir {
    common::TempDir::unmade(&format!("out-{name}"))
}

#[test]
fn metrics_csv_and_curves_svg_hold_every_epoch() {
    let dir = temp("metrics");
    let mut r = common::rng("metrics");
    let features = common::random_vec(&mut r, 200 * 6, 1.0);
    let labels = features.chunks(6).map(|x| u32::from(x[0] > 0.0)).collect();
    let data = Dataset::classification(features, 6, labels, 2).unwrap();
    let spec = NetworkSpec::new(&[6, 8, 2], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 20,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(Network::init(&spec, 0), &Device::Cpu, config).unwrap();
    let log = MetricsLog::open(&dir).unwrap();
    let svg = dir.join("curves.svg");
    let reports = trainer
        .fit(&data, Some(&data), |r| {
            log.append(&EpochRow::from(r)).unwrap();
            shadergrad::train::draw_curves(&log.read().unwrap(), &svg, "test run").unwrap();
        })
        .unwrap();

    let csv = std::fs::read_to_string(log.path()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,seconds"
    );
    assert_eq!(lines.len(), 4, "header + 3 epochs:\n{csv}");
    let rows = log.read().unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2, 3]);
    for (row, report) in rows.iter().zip(&reports) {
        assert!((row.train_loss - report.train.mean_loss()).abs() < 1e-12);
        assert_eq!(row.test_accuracy, report.test.unwrap().accuracy());
    }

    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.len() > 5_000, "an SVG with content");
    for label in [
        "loss (mean per sample)",
        "accuracy (%)",
        "epoch",
        "train",
        "test",
        "test run",
    ] {
        assert!(text.contains(label), "curves.svg lacks {label:?}");
    }
    // Three points per series: one circle per epoch for train and test, in both panels.
    assert_eq!(text.matches("<circle").count(), 3 * 4);

    // Appending an epoch that exists replaces it (a resumed run repeating epoch 3).
    let mut again = rows[2].clone();
    again.train_loss = 0.125;
    log.append(&again).unwrap();
    let rows = log.read().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2].train_loss, 0.125);
    // A damaged CSV is an error naming the line.
    std::fs::write(
        log.path(),
        "epoch,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n1,2,x,,,,1\n",
    )
    .unwrap();
    let err = log.read().unwrap_err();
    assert!(
        matches!(err, Error::CorruptFile { .. }) && err.to_string().contains("line 2"),
        "{err}"
    );
}

#[test]
fn images_become_mnist_style_features() {
    let dir = temp("images");
    std::fs::create_dir_all(&dir).unwrap();
    // A light bar on a dark 28×28 image, and the same dark-on-light at 56×56.
    let light_on_dark = image::GrayImage::from_fn(28, 28, |x, _| {
        image::Luma([if (10..14).contains(&x) { 255 } else { 0 }])
    });
    let dark_on_light = image::GrayImage::from_fn(56, 56, |x, _| {
        image::Luma([if (20..28).contains(&x) { 0 } else { 255 }])
    });
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    light_on_dark.save(&a).unwrap();
    dark_on_light.save(&b).unwrap();
    let fa = shadergrad::data::image::digit_features(&a).unwrap();
    let fb = shadergrad::data::image::digit_features(&b).unwrap();
    assert_eq!((fa.len(), fb.len()), (784, 784));
    assert_eq!(fa[28 * 5 + 11], 1.0);
    assert_eq!(fa[28 * 5 + 2], 0.0);
    // Inverted and resized: the bar is light, the background dark.
    assert!(
        fb[28 * 5 + 11] > 0.9 && fb[28 * 5 + 2] < 0.1,
        "{} {}",
        fb[28 * 5 + 11],
        fb[28 * 5 + 2]
    );
    std::fs::write(dir.join("c.png"), b"not a png").unwrap();
    let err = shadergrad::data::image::digit_features(&dir.join("c.png")).unwrap_err();
    assert!(matches!(err, Error::InvalidImage { .. }), "{err}");
}

/// A digit drawn on a transparent canvas reads as drawn (dark strokes composited onto white,
/// light ones onto black); a fully transparent or blank image is refused, as is one too large
/// to decode (by its header, before any allocation) and anything but a regular file.
#[test]
fn transparent_blank_huge_and_non_file_images() {
    use image::ImageEncoder;
    use shadergrad::data::image::digit_features;
    let dir = temp("image-edges");
    std::fs::create_dir_all(&dir).unwrap();
    let bar = |x: u32| (10..14).contains(&x);
    // Black strokes on a transparent (black, alpha 0) canvas, and white strokes likewise.
    for (name, ink) in [("black-on-clear.png", 0u8), ("white-on-clear.png", 255u8)] {
        let img = image::RgbaImage::from_fn(28, 28, |x, _| {
            if bar(x) {
                image::Rgba([ink, ink, ink, 255])
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        });
        img.save(dir.join(name)).unwrap();
        let f = digit_features(&dir.join(name)).unwrap();
        assert_eq!(
            (f[28 * 5 + 11], f[28 * 5 + 2]),
            (1.0, 0.0),
            "{name}: the stroke is the digit"
        );
    }
    let clear = image::RgbaImage::from_pixel(28, 28, image::Rgba([0, 0, 0, 0]));
    clear.save(dir.join("clear.png")).unwrap();
    let err = digit_features(&dir.join("clear.png")).unwrap_err().to_string();
    assert!(err.contains("fully transparent"), "{err}");
    image::GrayImage::from_pixel(40, 40, image::Luma([200]))
        .save(dir.join("blank.png"))
        .unwrap();
    let err = digit_features(&dir.join("blank.png")).unwrap_err().to_string();
    assert!(err.contains("blank"), "{err}");
    // A PNG whose header claims 30000×30000 pixels.
    let mut huge = Vec::new();
    image::codecs::png::PngEncoder::new(&mut huge)
        .write_image(&[0u8; 4], 2, 2, image::ExtendedColorType::L8)
        .unwrap();
    huge[16..20].copy_from_slice(&30000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&30000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&huge[12..29]); // the IHDR chunk's type and data
    huge[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    std::fs::write(dir.join("huge.png"), &huge).unwrap();
    let err = digit_features(&dir.join("huge.png")).unwrap_err().to_string();
    assert!(err.contains("larger than 8192×8192 pixels"), "{err}");
    let err = digit_features(&dir).unwrap_err().to_string();
    assert!(
        err.contains("refusing to read") && err.contains("it is a folder"),
        "{err}"
    );
}

/// `classify` on a checkpoint with a regression or sigmoid head does not print its outputs as
/// softmax percentages.
#[test]
fn classify_names_what_each_head_outputs() {
    let dir = temp("classify-heads");
    std::fs::create_dir_all(&dir).unwrap();
    let digit = dir.join("digit.png");
    image::GrayImage::from_fn(28, 28, |x, _| {
        image::Luma([if (12..16).contains(&x) { 255 } else { 0 }])
    })
    .save(&digit)
    .unwrap();
    for (loss, says, percent) in [
        (LossKind::MeanSquaredError, "they are scores, not probabilities", false),
        (LossKind::MeanAbsoluteError, "they are scores, not probabilities", false),
        (LossKind::SigmoidBinaryCrossEntropy, "need not sum to 100%", true),
        (LossKind::SoftmaxCrossEntropy, "", true),
    ] {
        let spec = NetworkSpec::new(&[784, 10], Activation::Relu, loss).unwrap();
        let path = dir.join(format!("{}.safetensors", loss.name()));
        shadergrad::model::Checkpoint {
            network: Network::init(&spec, 0),
            optimizer: None,
            progress: Default::default(),
        }
        .save(&path)
        .unwrap();
        let out = std::process::Command::new(common::example("classify"))
            .args(["--backend", "cpu", "--checkpoint"])
            .arg(&path)
            .arg(&digit)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(says), "{loss:?}: {stdout}");
        let line = stdout.lines().last().unwrap();
        assert_eq!(line.contains('%'), percent, "{loss:?}: {line}");
        assert_eq!(line.contains("score"), !percent, "{loss:?}: {line}");
    }
}

/// A page's canvas pixels (`rgba_digit_features`, what the browser's classify uses) give the
/// very features the PNG of the same pixels gives `classify`: one preprocessing for both.
#[test]
fn canvas_pixels_are_preprocessed_as_a_png_is() {
    use shadergrad::data::image::{digit_features, rgba_digit_features};
    let dir = temp("canvas");
    std::fs::create_dir_all(&dir).unwrap();
    // A 280×280 "canvas": a white ring on black (resized to 28×28), a dark bar on a transparent
    // canvas (alpha compositing), and a 28×28 one (no resize).
    let ring = image::RgbaImage::from_fn(280, 280, |x, y| {
        let r = ((x as f32 - 140.0).powi(2) + (y as f32 - 140.0).powi(2)).sqrt();
        let v = if (70.0..95.0).contains(&r) { 255 } else { 0 };
        image::Rgba([v, v, v, 255])
    });
    let bar = image::RgbaImage::from_fn(280, 280, |x, _| {
        if (120..160).contains(&x) {
            image::Rgba([0, 0, 0, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    });
    let small = image::RgbaImage::from_fn(28, 28, |x, y| {
        let v = ((x * 9 + y * 3) % 256) as u8;
        image::Rgba([v, v, v, 255])
    });
    for (name, img) in [("ring.png", ring), ("bar.png", bar), ("small.png", small)] {
        img.save(dir.join(name)).unwrap();
        let from_png = digit_features(&dir.join(name)).unwrap();
        let (w, h) = img.dimensions();
        let from_canvas = rgba_digit_features(w, h, &img.into_raw(), Path::new("canvas")).unwrap();
        assert_eq!(from_canvas, from_png, "{name}");
    }
    let err = rgba_digit_features(28, 28, &[0; 100], Path::new("canvas"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("100 bytes are not 28×28 RGBA pixels"), "{err}");
    let err = rgba_digit_features(0, 28, &[], Path::new("canvas"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a digit image"), "{err}");
}
