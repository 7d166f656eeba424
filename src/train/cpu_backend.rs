//! The CPU backend: runs the step program with [`CpuExecutor`] in `f32` on a thread pool.

use super::TrainConfig;
use super::backend::{Backend, Totals, check_batches, check_fits, check_predict_input, check_snapshot};
use super::cpu_exec::{BatchInputs, CpuExecutor};
use super::program::Stage;
use crate::cpu;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{Network, NetworkSpec, OptimizerSnapshot};
use crate::optimizer::OptimProgress;

/// Rows per evaluation chunk.
pub(crate) const EVAL_BATCH: usize = 1000;

/// Trains on the host with the `cpu` ops (gemm on every core for the matmuls).
pub struct CpuBackend {
    exec: CpuExecutor<f32>,
    max_batch: usize,
    totals: Totals,
    /// Threads that flush subnormals (see [`crate::cpu::flush`]); every step runs inside it.
    pool: Option<rayon::ThreadPool>,
}

/// The `Gather` op on the host: a batch of `data`'s samples, with float targets (one-hot for
/// class data) when the loss head trains against them.
fn gather<'a>(
    data: &'a Dataset,
    indices: &'a [u32],
    spec: &NetworkSpec,
) -> impl FnOnce(BatchInputs<'_, f32>) -> Result<()> + 'a {
    let needs_targets = !spec.loss.takes_labels();
    move |b| cpu::gather_batch(data, indices, b.x, b.labels, needs_targets.then_some(b.targets))
}

impl CpuBackend {
    /// A backend training `network` with the optimizer, batch size, clipping, non-finite
    /// handling and seed of `config`.
    pub fn new(network: Network, config: &TrainConfig) -> Result<Self> {
        config.validate()?;
        network.spec.validate()?;
        // Besides `network`: its f32 copy in the executor, gradients, moments, activations.
        let copies = 2 + config.optimizer.state_tensors() as u64;
        crate::memory::check_host(&network.spec, copies, config.batch_size)?;
        Ok(CpuBackend {
            exec: CpuExecutor::new(
                &network,
                config.optimizer,
                config.max_grad_norm,
                config.skip_nonfinite,
                config.seed,
            ),
            max_batch: config.batch_size,
            totals: Totals::default(),
            pool: crate::cpu::flush::flushing_pool(),
        })
    }

    /// Runs `f` on the backend's pool (or here, without one).
    fn in_pool<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        match self.pool.take() {
            Some(pool) => {
                let result = pool.install(|| f(self));
                self.pool = Some(pool);
                result
            }
            None => f(self),
        }
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        let threads = self
            .pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
        format!("cpu ({threads} threads)")
    }

    fn spec(&self) -> &NetworkSpec {
        self.exec.spec()
    }

    fn train_batches(&mut self, data: &Dataset, batches: &[&[u32]]) -> Result<()> {
        check_fits(self.exec.spec(), data)?;
        check_batches(batches, data.len(), self.max_batch)?;
        self.in_pool(|me| {
            for batch in batches {
                let classes = data.classes().is_some();
                let fill = gather(data, batch, me.exec.spec());
                let out = me.exec.run(batch.len(), Stage::Train, classes, fill)?;
                me.totals.loss_sum += out.loss_sum;
                me.totals.correct += out.correct;
                me.totals.samples += batch.len() as u64;
                me.totals.has_accuracy = data.classes().is_some();
            }
            Ok(())
        })
    }

    fn take_train_totals(&mut self) -> Result<Totals> {
        let mut totals = std::mem::take(&mut self.totals);
        let state = self.exec.state();
        totals.nonfinite_step = (state.first_nonfinite_step > 0).then_some(u64::from(state.first_nonfinite_step));
        totals.skipped_steps = u64::from(state.skipped_steps);
        Ok(totals)
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Totals> {
        check_fits(self.exec.spec(), data)?;
        self.in_pool(|me| {
            let mut totals = Totals {
                has_accuracy: data.classes().is_some(),
                ..Totals::default()
            };
            let order: Vec<u32> = (0..data.len() as u32).collect();
            for chunk in order.chunks(EVAL_BATCH) {
                let classes = data.classes().is_some();
                let fill = gather(data, chunk, me.exec.spec());
                let out = me.exec.run(chunk.len(), Stage::Evaluate, classes, fill)?;
                totals.loss_sum += out.loss_sum;
                totals.correct += out.correct;
                totals.samples += chunk.len() as u64;
            }
            Ok(totals)
        })
    }

    fn predict(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        check_predict_input(self.exec.spec(), features, rows)?;
        let mut out = self.exec.forward(features, rows)?;
        let spec = self.exec.spec();
        spec.loss.output_transform(&mut out, spec.outputs());
        Ok(out)
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        super::check_learning_rate(lr)?;
        self.exec.state_mut().lr = lr;
        Ok(())
    }

    fn set_skip_nonfinite(&mut self, skip: bool) -> Result<()> {
        self.exec.state_mut().skip_nonfinite = u32::from(skip);
        Ok(())
    }

    fn network(&mut self) -> Result<Network> {
        self.exec.network()
    }

    fn optimizer_snapshot(&mut self) -> Result<OptimizerSnapshot> {
        Ok(OptimizerSnapshot {
            kind: self.exec_optimizer_kind().to_string(),
            progress: OptimProgress::from(self.exec.state()),
            moments: self.exec.moments(),
        })
    }

    fn restore_optimizer(&mut self, snapshot: &OptimizerSnapshot) -> Result<()> {
        check_snapshot(self.exec_optimizer_kind(), self.exec.spec(), snapshot)?;
        self.exec.restore(&snapshot.progress, &snapshot.moments);
        Ok(())
    }
}

impl CpuBackend {
    fn exec_optimizer_kind(&self) -> &'static str {
        self.exec.optimizer().kind()
    }
}
