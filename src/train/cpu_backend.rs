//! The CPU backend: the reference training step, composed of the `cpu` ops.

use std::collections::HashMap;

use super::backend::{Backend, Totals, check_batches, check_fits, check_predict_input, check_snapshot, optimizer_kind};
use crate::cpu;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{DenseLayer, LossKind, Network, NetworkSpec, OptimizerSnapshot};
use crate::ops::{Epilogue, MatmulDims, MatmulForm};
use crate::optimizer::{OptimState, Optimizer};

/// Rows per evaluation chunk.
pub(crate) const EVAL_BATCH: usize = 1000;

/// Every per-batch array of one batch size, allocated once and reused every step.
struct Workspace {
    x: Vec<f32>,
    labels: Vec<u32>,
    targets: Vec<f32>,
    /// Output of each layer (the last holds the logits).
    acts: Vec<Vec<f32>>,
    /// dLoss/dZ of each layer.
    dz: Vec<Vec<f32>>,
    loss_rows: Vec<f32>,
}

impl Workspace {
    fn new(spec: &NetworkSpec, rows: usize) -> Self {
        Workspace {
            x: vec![0.0; rows * spec.inputs()],
            labels: vec![0; rows],
            targets: vec![0.0; rows * spec.outputs()],
            acts: spec.sizes[1..].iter().map(|&s| vec![0.0; rows * s]).collect(),
            dz: spec.sizes[1..].iter().map(|&s| vec![0.0; rows * s]).collect(),
            loss_rows: vec![0.0; rows],
        }
    }
}

/// Trains on the host with the `cpu` ops (gemm on every core for the matmuls).
pub struct CpuBackend {
    network: Network,
    state: OptimState,
    optimizer: Optimizer,
    grads: Vec<DenseLayer>,
    /// Optimizer state tensors: `moments[i][layer]` (velocity, or Adam's m and v).
    moments: Vec<Vec<DenseLayer>>,
    max_batch: usize,
    workspaces: HashMap<usize, Workspace>,
    totals: Totals,
    /// Threads that flush subnormals (see [`crate::cpu::flush`]); every step runs inside it.
    pool: Option<rayon::ThreadPool>,
}

fn zeros_like(network: &Network) -> Vec<DenseLayer> {
    network
        .layers
        .iter()
        .map(|l| DenseLayer {
            weight: vec![0.0; l.weight.len()],
            bias: vec![0.0; l.bias.len()],
        })
        .collect()
}

impl CpuBackend {
    /// A backend training `network` with `optimizer` on batches of at most `max_batch` samples.
    /// `max_grad_norm > 0` clips gradients to that global norm.
    pub fn new(network: Network, optimizer: Optimizer, max_batch: usize, max_grad_norm: f32) -> Result<Self> {
        super::check_training_options(max_batch, max_grad_norm, &optimizer)?;
        let grads = zeros_like(&network);
        let moments = (0..optimizer.state_tensors()).map(|_| zeros_like(&network)).collect();
        let state = OptimState {
            max_grad_norm,
            ..optimizer.initial_state()
        };
        Ok(CpuBackend {
            network,
            state,
            optimizer,
            grads,
            moments,
            max_batch,
            workspaces: HashMap::new(),
            totals: Totals::default(),
            pool: crate::cpu::flush::flushing_pool(),
        })
    }

    fn workspace(&mut self, rows: usize) -> Workspace {
        let spec = &self.network.spec;
        self.workspaces
            .remove(&rows)
            .unwrap_or_else(|| Workspace::new(spec, rows))
    }
}

/// `acts[l] = act_l(input·W_lᵀ + b_l)` for every layer.
fn forward(network: &Network, ws: &mut Workspace, rows: usize) -> Result<()> {
    let spec = &network.spec;
    for (l, layer) in network.layers.iter().enumerate() {
        let (fan_in, fan_out) = spec.layer_shape(l);
        let (before, after) = ws.acts.split_at_mut(l);
        let input: &[f32] = if l == 0 { &ws.x } else { &before[l - 1] };
        let epilogue = Epilogue::BiasAct {
            bias: &layer.bias[..],
            act: spec.activation(l),
        };
        cpu::matmul(
            MatmulForm::ABt,
            MatmulDims::new(rows, fan_in, fan_out),
            input,
            &layer.weight,
            &mut after[0],
            epilogue,
        )?;
    }
    Ok(())
}

/// The loss head: per-row loss and dZ of the last layer. Returns Σ loss and the correct count.
fn loss(spec: &NetworkSpec, ws: &mut Workspace, rows: usize, classes: bool) -> Result<(f64, u64)> {
    let cols = spec.outputs();
    let last = spec.layers() - 1;
    let z = &ws.acts[last];
    let dz = &mut ws.dz[last];
    match spec.loss {
        LossKind::SoftmaxCrossEntropy => cpu::softmax_cross_entropy(z, &ws.labels, &mut ws.loss_rows, dz, rows, cols)?,
        LossKind::SigmoidBinaryCrossEntropy => {
            cpu::sigmoid_binary_cross_entropy(z, &ws.targets, &mut ws.loss_rows, dz, rows, cols)?
        }
        LossKind::MeanSquaredError => cpu::mse(z, &ws.targets, &mut ws.loss_rows, dz, rows, cols)?,
    }
    let loss_sum = ws.loss_rows.iter().map(|&v| f64::from(v)).sum();
    let correct = if classes {
        cpu::count_correct(z, &ws.labels, rows, cols)?
    } else {
        0
    };
    Ok((loss_sum, u64::from(correct)))
}

fn gather(data: &Dataset, indices: &[u32], ws: &mut Workspace, loss: LossKind) -> Result<()> {
    let targets = (loss != LossKind::SoftmaxCrossEntropy).then_some(&mut ws.targets[..]);
    cpu::gather_batch(data, indices, &mut ws.x, &mut ws.labels, targets)
}

impl CpuBackend {
    fn step(&mut self, data: &Dataset, batch: &[u32]) -> Result<()> {
        let rows = batch.len();
        let mut ws = self.workspace(rows);
        let result = self.step_in(data, batch, &mut ws);
        self.workspaces.insert(rows, ws);
        result
    }

    fn step_in(&mut self, data: &Dataset, batch: &[u32], ws: &mut Workspace) -> Result<()> {
        let rows = batch.len();
        let spec = &self.network.spec;
        gather(data, batch, ws, spec.loss)?;
        forward(&self.network, ws, rows)?;
        let (loss_sum, correct) = loss(spec, ws, rows, data.classes().is_some())?;
        self.totals.loss_sum += loss_sum;
        self.totals.correct += correct;
        self.totals.samples += rows as u64;
        self.totals.has_accuracy = data.classes().is_some();

        // Backward: dW = dZᵀ·A_prev, db = Σ dZ, dZ_prev = (dZ·W) ⊙ act'(A_prev).
        for l in (0..spec.layers()).rev() {
            let (fan_in, fan_out) = spec.layer_shape(l);
            let input: &[f32] = if l == 0 { &ws.x } else { &ws.acts[l - 1] };
            let grad = &mut self.grads[l];
            cpu::matmul(
                MatmulForm::AtB,
                MatmulDims::new(fan_out, rows, fan_in),
                &ws.dz[l],
                input,
                &mut grad.weight,
                Epilogue::None,
            )?;
            cpu::bias_grad(&ws.dz[l], &mut grad.bias, rows, fan_out)?;
            if l > 0 {
                let (before, after) = ws.dz.split_at_mut(l);
                let epilogue = Epilogue::ActGrad {
                    act_output: &ws.acts[l - 1][..],
                    act: spec.activation(l - 1),
                };
                let dims = MatmulDims::new(rows, fan_out, fan_in);
                cpu::matmul(
                    MatmulForm::AB,
                    dims,
                    &after[0],
                    &self.network.layers[l].weight,
                    &mut before[l - 1],
                    epilogue,
                )?;
            }
        }

        self.state.tick();
        if self.state.guard(loss_sum.is_finite()) {
            return Ok(());
        }
        if self.state.max_grad_norm > 0.0 {
            for g in &self.grads {
                cpu::accumulate_grad_norm(&g.weight, &mut self.state);
                cpu::accumulate_grad_norm(&g.bias, &mut self.state);
            }
        }
        for (l, layer) in self.network.layers.iter_mut().enumerate() {
            let g = &self.grads[l];
            match self.optimizer {
                Optimizer::Sgd { .. } => {
                    cpu::sgd_update(&mut layer.weight, &g.weight, &self.state)?;
                    cpu::sgd_update(&mut layer.bias, &g.bias, &self.state)?;
                }
                Optimizer::Momentum { .. } => {
                    let v = &mut self.moments[0][l];
                    cpu::momentum_update(&mut layer.weight, &g.weight, &mut v.weight, &self.state)?;
                    cpu::momentum_update(&mut layer.bias, &g.bias, &mut v.bias, &self.state)?;
                }
                Optimizer::Adam { .. } => {
                    let (m, v) = self.moments.split_at_mut(1);
                    let (m, v) = (&mut m[0][l], &mut v[0][l]);
                    cpu::adam_update(&mut layer.weight, &g.weight, &mut m.weight, &mut v.weight, &self.state)?;
                    cpu::adam_update(&mut layer.bias, &g.bias, &mut m.bias, &mut v.bias, &self.state)?;
                }
            }
        }
        Ok(())
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
        &self.network.spec
    }

    fn train_batches(&mut self, data: &Dataset, batches: &[&[u32]]) -> Result<()> {
        check_fits(&self.network.spec, data)?;
        check_batches(batches, data.len(), self.max_batch)?;
        match self.pool.take() {
            Some(pool) => {
                let result = pool.install(|| batches.iter().try_for_each(|batch| self.step(data, batch)));
                self.pool = Some(pool);
                result
            }
            None => batches.iter().try_for_each(|batch| self.step(data, batch)),
        }
    }

    fn take_train_totals(&mut self) -> Result<Totals> {
        let mut totals = std::mem::take(&mut self.totals);
        totals.nonfinite_step =
            (self.state.first_nonfinite_step > 0).then_some(u64::from(self.state.first_nonfinite_step));
        totals.skipped_steps = u64::from(self.state.skipped_steps);
        Ok(totals)
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Totals> {
        match self.pool.take() {
            Some(pool) => {
                let result = pool.install(|| self.evaluate_here(data));
                self.pool = Some(pool);
                result
            }
            None => self.evaluate_here(data),
        }
    }

    fn predict(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        self.predict_here(features, rows)
    }

    fn set_learning_rate(&mut self, lr: f32) -> Result<()> {
        super::check_learning_rate(lr)?;
        self.state.lr = lr;
        Ok(())
    }

    fn set_skip_nonfinite(&mut self, skip: bool) -> Result<()> {
        self.state.skip_nonfinite = u32::from(skip);
        Ok(())
    }

    fn network(&mut self) -> Result<Network> {
        Ok(self.network.clone())
    }

    fn optimizer_snapshot(&mut self) -> Result<OptimizerSnapshot> {
        Ok(OptimizerSnapshot {
            kind: optimizer_kind(&self.optimizer).to_string(),
            state: self.state,
            moments: self.moments.clone(),
        })
    }

    fn restore_optimizer(&mut self, snapshot: &OptimizerSnapshot) -> Result<()> {
        check_snapshot(&self.optimizer, &self.network.spec, snapshot)?;
        self.state = snapshot.state;
        self.moments = snapshot.moments.clone();
        Ok(())
    }
}

impl CpuBackend {
    fn evaluate_here(&mut self, data: &Dataset) -> Result<Totals> {
        check_fits(&self.network.spec, data)?;
        let spec = self.network.spec.clone();
        let mut totals = Totals {
            has_accuracy: data.classes().is_some(),
            ..Totals::default()
        };
        let order: Vec<u32> = (0..data.len() as u32).collect();
        for chunk in order.chunks(EVAL_BATCH) {
            let rows = chunk.len();
            let mut ws = self.workspace(rows);
            let result = gather(data, chunk, &mut ws, spec.loss)
                .and_then(|_| forward(&self.network, &mut ws, rows))
                .and_then(|_| loss(&spec, &mut ws, rows, totals.has_accuracy));
            self.workspaces.insert(rows, ws);
            let (loss_sum, correct) = result?;
            totals.loss_sum += loss_sum;
            totals.correct += correct;
            totals.samples += rows as u64;
        }
        Ok(totals)
    }

    fn predict_here(&mut self, features: &[f32], rows: usize) -> Result<Vec<f32>> {
        check_predict_input(&self.network.spec, features, rows)?;
        let mut ws = Workspace::new(&self.network.spec, rows);
        ws.x.copy_from_slice(features);
        forward(&self.network, &mut ws, rows)?;
        let mut out = ws.acts.pop().expect("at least one layer");
        self.network
            .spec
            .loss
            .output_transform(&mut out, self.network.spec.outputs());
        Ok(out)
    }
}
