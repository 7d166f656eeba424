//! A run's output folder: locked for the run, and never silently given to a second run.

use std::path::{Path, PathBuf};

use super::MetricsLog;
use crate::error::{Error, Result};
use crate::files::OutputLock;

/// What a run may do with an output folder that already holds an earlier run's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A new run: an earlier run's metrics or checkpoint there is an error ([`Error::RunExists`]).
    New,
    /// The run continues the results there (`--resume`).
    Continue,
    /// The run replaces them (`--overwrite`): the earlier metrics rows and checkpoint are
    /// replaced by this run's first epoch, not before.
    Replace,
}

/// An output folder held by this run: `dir/.shadergrad.lock`, and a lock beside the checkpoint
/// when it is written elsewhere, both released when the run ends however it ends.
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    _locks: Vec<OutputLock>,
}

impl RunFolder {
    /// Creates `dir` if needed and locks it (and `checkpoint`, when outside it) for this
    /// process: another run writing there gets [`Error::InUse`] naming this one's PID. With
    /// [`Claim::New`], an earlier run's `metrics.csv` rows or checkpoint are refused.
    pub fn claim(dir: &Path, checkpoint: &Path, claim: Claim) -> Result<RunFolder> {
        std::fs::create_dir_all(dir).map_err(crate::files::io("create the folder", dir))?;
        let mut locks = vec![OutputLock::acquire(&dir.join(".shadergrad.lock"), dir)?];
        let outside = checkpoint
            .parent()
            .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
            .is_none_or(|folder| !same_folder(folder, dir));
        if outside {
            let name = checkpoint
                .file_name()
                .map_or("checkpoint".into(), |n| n.to_string_lossy());
            let lock = checkpoint.with_file_name(format!(".{name}.lock"));
            locks.push(OutputLock::acquire(&lock, checkpoint)?);
        }
        let metrics = dir.join("metrics.csv");
        match claim {
            // Replacing removes nothing now: a setting refused after this point must not have
            // cost the earlier run its results. Its metrics rows go at this run's first epoch
            // (`MetricsLog::append` drops rows from that epoch on), its checkpoint at the first save.
            Claim::Continue | Claim::Replace => {}
            Claim::New => {
                let epochs = if metrics.exists() {
                    MetricsLog::at(&metrics)?.read()?.len()
                } else {
                    0
                };
                let mut found = Vec::new();
                if epochs > 0 {
                    found.push(format!(
                        "{epochs} epoch{} in metrics.csv",
                        if epochs == 1 { "" } else { "s" }
                    ));
                }
                if checkpoint.exists() {
                    found.push(checkpoint.display().to_string());
                }
                if !found.is_empty() {
                    return Err(Error::RunExists {
                        dir: dir.to_path_buf(),
                        found: found.join(", "),
                        checkpoint: checkpoint.to_path_buf(),
                    });
                }
            }
        }
        Ok(RunFolder {
            dir: dir.to_path_buf(),
            _locks: locks,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
