//! Per-epoch metrics: appended to `metrics.csv`, drawn as training curves to `curves.svg`.

use std::path::{Path, PathBuf};

use super::trainer::EpochReport;
use crate::error::{Error, Result};

/// The CSV header; one row per epoch follows.
pub const CSV_HEADER: &str = "epoch,learning_rate,train_loss,train_accuracy,test_loss,test_accuracy,seconds";

/// One epoch as recorded in `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used during the epoch.
    pub learning_rate: f64,
    /// Mean training loss per sample.
    pub train_loss: f64,
    /// Fraction of training samples classified correctly (class data only).
    pub train_accuracy: Option<f64>,
    /// Mean test loss per sample, when a test set was evaluated.
    pub test_loss: Option<f64>,
    /// Fraction of test samples classified correctly (class data with a test set only).
    pub test_accuracy: Option<f64>,
    /// Seconds spent training (evaluation excluded).
    pub seconds: f64,
}

impl From<&EpochReport> for EpochRow {
    fn from(r: &EpochReport) -> Self {
        EpochRow {
            epoch: r.epoch,
            learning_rate: f64::from(r.learning_rate),
            train_loss: r.train.mean_loss(),
            train_accuracy: r.train.accuracy(),
            test_loss: r.test.map(|t| t.mean_loss()),
            test_accuracy: r.test.and_then(|t| t.accuracy()),
            seconds: r.train_seconds,
        }
    }
}

/// `metrics.csv` in a run's output folder. Appending keeps earlier epochs, so a resumed run
/// continues the same file.
#[derive(Debug, Clone)]
pub struct MetricsLog {
    path: PathBuf,
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

impl MetricsLog {
    /// Opens (creating the folder and the header if needed) `dir/metrics.csv`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(crate::files::io("create the folder", dir))?;
        Self::at(&dir.join("metrics.csv"))
    }

    /// Opens (creating it with its header if needed) the CSV file `path`.
    pub fn at(path: &Path) -> Result<Self> {
        let target = crate::files::check_destination(path)?;
        if !target.exists() {
            crate::files::write_atomically(path, format!("{CSV_HEADER}\n").as_bytes())?;
        }
        Ok(MetricsLog {
            path: path.to_path_buf(),
        })
    }

    /// The CSV file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one epoch, dropping any rows of this epoch or later first (a resumed run that
    /// repeats epochs after a crash rewrites them rather than listing them twice).
    pub fn append(&self, row: &EpochRow) -> Result<()> {
        let mut rows = self.read()?;
        rows.retain(|r| r.epoch < row.epoch);
        rows.push(row.clone());
        let mut text = format!("{CSV_HEADER}\n");
        for r in &rows {
            text.push_str(&format!(
                "{},{},{},{},{},{},{:.3}\n",
                r.epoch,
                r.learning_rate,
                r.train_loss,
                opt(r.train_accuracy),
                opt(r.test_loss),
                opt(r.test_accuracy),
                r.seconds
            ));
        }
        crate::files::write_atomically(&self.path, text.as_bytes())
    }

    /// Every recorded epoch, in order.
    pub fn read(&self) -> Result<Vec<EpochRow>> {
        let text = std::fs::read_to_string(&self.path).map_err(crate::files::io("read", &self.path))?;
        let corrupt = |line: usize, problem: &str| Error::CorruptFile {
            path: self.path.clone(),
            problem: format!("line {line}: {problem}"),
        };
        let mut rows = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 7 {
                return Err(corrupt(i + 1, "expected 7 fields"));
            }
            let num = |s: &str| s.trim().parse::<f64>().map_err(|_| corrupt(i + 1, "not a number"));
            let maybe = |s: &str| {
                if s.trim().is_empty() {
                    Ok(None)
                } else {
                    num(s).map(Some)
                }
            };
            rows.push(EpochRow {
                epoch: f[0]
                    .trim()
                    .parse()
                    .map_err(|_| corrupt(i + 1, "epoch is not a whole number"))?,
                learning_rate: num(f[1])?,
                train_loss: num(f[2])?,
                train_accuracy: maybe(f[3])?,
                test_loss: maybe(f[4])?,
                test_accuracy: maybe(f[5])?,
                seconds: num(f[6])?,
            });
        }
        Ok(rows)
    }
}
