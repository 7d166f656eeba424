//! Train an MLP on MNIST (or Fashion-MNIST) on the GPU or the CPU and print the test accuracy.
//!
//! `cargo run --release --example mnist -- [--data DIR] [--backend gpu|cpu] [--layers 784,512,256,10]
//!  [--activation relu] [--optimizer adam] [--lr X] [--epochs N] [--batch B] [--seed S] [--out DIR]`
//!
//! Data: `--data`, else `$MNIST_DIR`, else `./data/mnist`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use shadergrad::data::{Mnist, find_mnist_dir};
use shadergrad::gpu::GpuContext;
use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::train::{Device, LrSchedule, TrainConfig, Trainer};
use shadergrad::{Activation, Optimizer};

#[derive(Parser, Debug)]
#[command(about = "Train an MLP on MNIST with shadergrad")]
struct Args {
    /// Folder with the four MNIST IDX files (default: $MNIST_DIR, else ./data/mnist).
    #[arg(long)]
    data: Option<PathBuf>,
    /// gpu or cpu.
    #[arg(long, default_value = "gpu")]
    backend: String,
    /// Layer widths from input to output.
    #[arg(long, default_value = "784,512,256,10", value_delimiter = ',')]
    layers: Vec<usize>,
    /// Hidden activation: relu, sigmoid, tanh, leaky_relu, identity.
    #[arg(long, default_value = "relu")]
    activation: Activation,
    /// Loss head: softmax_ce, sigmoid_bce or mse.
    #[arg(long, default_value = "softmax_ce")]
    loss: LossKind,
    /// sgd, momentum, adam or adamw.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Learning rate (default: 1e-3 for adam/adamw, 0.05 for momentum, 0.1 for sgd).
    #[arg(long)]
    lr: Option<f32>,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// constant, step:EVERY:GAMMA or cosine[:MIN_LR].
    #[arg(long, default_value = "cosine")]
    schedule: LrSchedule,
    /// Clip gradients to this global norm (0 = off).
    #[arg(long, default_value_t = 0.0)]
    clip: f32,
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on the first N training images only (quick runs).
    #[arg(long)]
    limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    limit_test: Option<usize>,
    /// Folder for outputs (metrics.csv).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn optimizer(args: &Args) -> Result<Optimizer, String> {
    let wd = args.weight_decay;
    Ok(match args.optimizer.as_str() {
        "sgd" => Optimizer::Sgd {
            lr: args.lr.unwrap_or(0.1),
            weight_decay: wd,
        },
        "momentum" => Optimizer::Momentum {
            lr: args.lr.unwrap_or(0.05),
            momentum: 0.9,
            weight_decay: wd,
        },
        "adam" | "adamw" => Optimizer::adamw(args.lr.unwrap_or(1e-3), wd),
        other => {
            return Err(format!(
                "unknown optimizer {other:?}; expected sgd, momentum, adam or adamw"
            ));
        }
    })
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = find_mnist_dir(args.data.as_deref());
    let loading = Instant::now();
    let mut mnist = Mnist::load(&dir)?;
    if let Some(n) = args.limit_train {
        mnist.train = mnist.train.take(n);
    }
    if let Some(n) = args.limit_test {
        mnist.test = mnist.test.take(n);
    }
    println!(
        "data: {} ({} training, {} test images, loaded in {:.2} s)",
        dir.display(),
        mnist.train.len(),
        mnist.test.len(),
        loading.elapsed().as_secs_f64()
    );

    let device = match args.backend.as_str() {
        "gpu" => Device::Gpu(Arc::new(GpuContext::new()?)),
        "cpu" => Device::Cpu,
        other => return Err(format!("unknown backend {other:?}; expected gpu or cpu").into()),
    };
    let spec = NetworkSpec::new(&args.layers, args.activation, args.loss)?;
    let network = Network::init(&spec, args.seed);
    let config = TrainConfig {
        optimizer: optimizer(&args)?,
        schedule: args.schedule,
        epochs: args.epochs,
        batch_size: args.batch,
        seed: args.seed,
        max_grad_norm: args.clip,
        ..TrainConfig::default()
    };
    println!("{}", network.summary());
    let setup = Instant::now();
    let mut trainer = Trainer::new(network, &device, config.clone())?;
    println!("backend: {}", trainer.backend_name());
    println!(
        "optimizer: {:?}, schedule {:?}, batch {}, {} epochs, seed {} (setup {:.2} s)",
        config.optimizer,
        config.schedule,
        config.batch_size,
        config.epochs,
        config.seed,
        setup.elapsed().as_secs_f64()
    );

    let mut csv = String::from("epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,train_seconds\n");
    let reports = trainer.fit(&mnist.train, Some(&mnist.test), |r| {
        let test = r.test.expect("test set given");
        println!(
            "epoch {:>2}  lr {:.2e}  train loss {:.4}  acc {:.2}%  |  test loss {:.4}  acc {:.2}%  |  {:.2} s ({:.0} samples/s)",
            r.epoch,
            r.learning_rate,
            r.train.mean_loss(),
            100.0 * r.train.accuracy().unwrap_or(0.0),
            test.mean_loss(),
            100.0 * test.accuracy().unwrap_or(0.0),
            r.train_seconds,
            r.samples_per_second()
        );
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.epoch,
            r.learning_rate,
            r.train.mean_loss(),
            r.train.accuracy().unwrap_or(f64::NAN),
            test.mean_loss(),
            test.accuracy().unwrap_or(f64::NAN),
            r.train_seconds
        ));
    })?;
    let last = reports.last().and_then(|r| r.test).ok_or("no epochs were trained")?;
    let seconds: f64 = reports.iter().map(|r| r.train_seconds).sum();
    println!(
        "final test accuracy: {:.2}% (test loss {:.4}) after {} epochs, {:.1} s training ({:.2} s/epoch)",
        100.0 * last.accuracy().unwrap_or(0.0),
        last.mean_loss(),
        reports.len(),
        seconds,
        seconds / reports.len() as f64
    );
    if let Some(out) = args.out {
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("metrics.csv"), csv)?;
        println!("wrote {}", out.join("metrics.csv").display());
    }
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
