//! Training curves drawn from `metrics.csv` rows (loss and accuracy per epoch) as SVG.
//! Behind the `plot` feature (plotters).

use std::path::Path;

use plotters::prelude::*;

use super::metrics::EpochRow;
use crate::error::{Error, Result};

/// One panel of the curves: a caption, a y range and the train and test series.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    y_range: std::ops::Range<f64>,
    train: Vec<(f64, f64)>,
    test: Vec<(f64, f64)>,
    legend: SeriesLabelPosition,
}

/// `(epoch, value)` points of one metric, skipping epochs without it (or with a non-finite one).
fn points(rows: &[EpochRow], pick: impl Fn(&EpochRow) -> Option<f64>) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| pick(r).filter(|v| v.is_finite()).map(|v| (r.epoch as f64, v)))
        .collect()
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    last_epoch: usize,
    panel: Panel<'_>,
) -> std::result::Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(panel.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..(last_epoch as f64 + 0.5), panel.y_range)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(panel.y_desc)
        .x_labels(last_epoch.min(12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(err)?;
    for (label, color, series) in [("train", BLUE, panel.train), ("test", RED, panel.test)] {
        if series.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(series.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(panel.legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Draws loss (left) and accuracy (right) per epoch, train and test, to an SVG file.
pub fn draw_curves(rows: &[EpochRow], path: &Path, title: &str) -> Result<()> {
    let fail = |e: String| Error::Io {
        action: "draw",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| fail(e.to_string()))?;
        let (left, right) = root.split_horizontally(550);
        let last_epoch = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1);

        let (train_loss, test_loss) = (points(rows, |r| Some(r.train_loss)), points(rows, |r| r.test_loss));
        let loss_max = train_loss
            .iter()
            .chain(&test_loss)
            .map(|p| p.1)
            .fold(0.0, f64::max)
            .max(1e-6)
            * 1.1;
        let loss = Panel {
            caption: "loss (mean per sample)",
            y_desc: "loss",
            y_range: 0.0..loss_max,
            train: train_loss,
            test: test_loss,
            legend: SeriesLabelPosition::UpperRight,
        };
        draw_panel(&left, last_epoch, loss).map_err(fail)?;

        let pct = |pick: fn(&EpochRow) -> Option<f64>| points(rows, move |r| pick(r).map(|a| a * 100.0));
        let (train_acc, test_acc) = (pct(|r| r.train_accuracy), pct(|r| r.test_accuracy));
        if !(train_acc.is_empty() && test_acc.is_empty()) {
            let lo = train_acc.iter().chain(&test_acc).map(|p| p.1).fold(100.0, f64::min);
            let y_min = (lo - (100.0 - lo) * 0.2).clamp(0.0, 99.0).floor();
            let accuracy = Panel {
                caption: "accuracy (%)",
                y_desc: "accuracy %",
                y_range: y_min..100.0,
                train: train_acc,
                test: test_acc,
                legend: SeriesLabelPosition::LowerRight,
            };
            draw_panel(&right, last_epoch, accuracy).map_err(fail)?;
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    crate::files::write_atomically(path, svg.as_bytes())
}
