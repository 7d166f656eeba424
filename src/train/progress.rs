//! A progress bar per epoch with samples per second and ETA; silent when stdout is not a
//! terminal (CI logs get the one line per epoch the caller prints instead).

use std::io::IsTerminal;
use web_time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar of one epoch.
pub struct EpochProgress {
    bar: ProgressBar,
    batch: usize,
    started: Instant,
}

impl EpochProgress {
    /// A bar for epoch `epoch` of `epochs`, `steps` steps of `batch` samples.
    pub fn new(epoch: usize, epochs: usize, steps: usize, batch: usize) -> Self {
        let target = if std::io::stdout().is_terminal() {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(steps as u64), target);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:32.cyan/blue}] {pos}/{len} steps  {msg}  ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        EpochProgress {
            bar,
            batch,
            started: Instant::now(),
        }
    }

    /// Moves the bar to `done` steps, showing samples per second.
    pub fn update(&self, done: usize) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar
            .set_message(format!("{:.0} samples/s", (done * self.batch) as f64 / seconds));
        self.bar.set_position(done as u64);
    }

    /// Removes the bar (the caller prints the epoch's summary line).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
