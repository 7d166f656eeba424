//! Train an MLP or a CNN on MNIST (or Fashion-MNIST) on the GPU or the CPU and print the test accuracy.
//!
//! `cargo run --release --example mnist -- [--data DIR] [--backend auto|gpu|cpu] [--layers 784,512,256,10]
//!  [--activation relu] [--model 784,dense512,relu,dropout0.2,dense10] [--preset mlp|lenet|lenet_bn] [--optimizer adam]
//!  [--lr X] [--epochs N] [--batch B] [--seed S] [--out DIR] [--save FILE] [--resume FILE] [--download]`
//!  (`--help` lists every flag).
//!
//! Data: `--data`, else `$MNIST_DIR`, else `./data/mnist`, else the sample bundled in
//! `examples/data/mnist-sample` (10,000 training and 2,000 test images).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use shadergrad::data::download::download_mnist;
use shadergrad::data::{BUNDLED_SAMPLE, Mnist, find_mnist_dir, has_mnist};
use shadergrad::model::{Checkpoint, LossKind, Network, NetworkSpec};
use shadergrad::train::{
    BackendChoice, Claim, Device, EpochProgress, LrSchedule, MetricsLog, RunFolder, TrainConfig, Trainer, draw_curves,
};
use shadergrad::{Activation, Optimizer};

#[derive(Parser, Debug)]
#[command(about = "Train a model (an MLP or a CNN) on MNIST with shadergrad, on the GPU or the CPU")]
struct Args {
    /// Folder with the four MNIST IDX files (default: $MNIST_DIR, else ./data/mnist, else the bundled sample).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Download the full MNIST (SHA-256 verified) into --data or ./data/mnist first.
    #[arg(long)]
    download: bool,
    /// auto (the GPU if wgpu finds one, else the CPU with a notice), gpu (fail without one) or cpu.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Layer widths from input to output, an MLP with --activation after every hidden layer
    /// [default: 784,512,256,10; with --resume and no model flags: the checkpoint's model].
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    /// Hidden activation: relu, sigmoid, tanh, leaky_relu, identity [default: relu].
    #[arg(long)]
    activation: Option<Activation>,
    /// The full layer list instead of --layers/--activation: the input width (or CxHxW image
    /// shape), then per layer denseN, an activation, dropoutP, convNkK[sS][pP], maxpoolK[sS] or
    /// flatten, e.g. 784,dense512,relu,dropout0.2,dense10 or
    /// 1x28x28,conv32k3p1,relu,maxpool2,flatten,dense10.
    #[arg(long, conflicts_with_all = ["layers", "activation"])]
    model: Option<String>,
    /// A named model instead of the model flags: mlp (784,dense512,relu,dense256,relu,dense10),
    /// lenet (1x28x28,conv32k3p1,relu,maxpool2,conv64k3p1,relu,maxpool2,flatten,dense128,relu,dense10)
    /// or lenet_bn (lenet with a batchnorm after each conv).
    #[arg(long, conflicts_with_all = ["layers", "activation", "model"])]
    preset: Option<String>,
    /// Loss head: softmax_ce, sigmoid_bce, mse or mae [default: softmax_ce].
    #[arg(long)]
    loss: Option<LossKind>,
    /// sgd, momentum, adam, adamw or rmsprop.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Learning rate (default: 1e-3 for adam/adamw/rmsprop, 0.05 for momentum, 0.1 for sgd;
    /// with --preset and adam, the preset's: 2e-3 for lenet and lenet_bn).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    weight_decay: f32,
    /// constant, step:EVERY:GAMMA or cosine[:MIN_LR].
    #[arg(long, default_value = "cosine")]
    schedule: LrSchedule,
    /// Clip gradients to this global norm (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    clip: f32,
    /// Epochs to train in all (a resumed run counts those already trained).
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Samples per training step.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seeds initialisation, shuffling and dropout masks [default: 0; with --resume, the
    /// checkpoint's].
    #[arg(long)]
    seed: Option<u64>,
    /// Train on the first N training images only (quick runs).
    #[arg(long)]
    limit_train: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    limit_test: Option<usize>,
    /// Output folder: metrics.csv, curves.svg and (by default) the checkpoint.
    #[arg(long, default_value = "runs/mnist")]
    out: PathBuf,
    /// Checkpoint written after every epoch (default: OUT/checkpoint.safetensors).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Continue from this checkpoint: its model (model flags, if given, must match), weights,
    /// optimizer state, seed and epoch carry on; every other setting comes from these flags.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Replace the results of an earlier run in --out (without it, a folder that holds a run's
    /// metrics or checkpoint is refused unless --resume continues it).
    #[arg(long, conflicts_with = "resume")]
    overwrite: bool,
    /// Skip steps whose loss is NaN or infinite instead of stopping (the epoch line counts them).
    #[arg(long)]
    skip_nonfinite: bool,
    /// Keep training when the loss diverges (by default the run stops when an epoch's loss
    /// exceeds 1000× the first epoch's or the loss head's sane bound).
    #[arg(long)]
    allow_divergence: bool,
}

/// The data folder, downloading or falling back to the bundled sample as asked.
fn data_dir(args: &Args) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = find_mnist_dir(args.data.as_deref());
    if args.download {
        println!("downloading MNIST into {} (SHA-256 verified) …", dir.display());
        download_mnist(&dir)?;
        return Ok(dir);
    }
    // A folder that was named (--data, MNIST_DIR) or that exists is used as it is: when files are
    // missing, loading it names them, rather than quietly training on the sample instead.
    let named = args.data.is_some() || std::env::var_os("MNIST_DIR").is_some_and(|d| !d.is_empty());
    if has_mnist(&dir) || named || dir.exists() {
        return Ok(dir);
    }
    let sample = [
        Path::new(BUNDLED_SAMPLE).to_path_buf(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(BUNDLED_SAMPLE),
    ]
    .into_iter()
    .find(|d| has_mnist(d))
    .ok_or("no MNIST found and the bundled sample is missing")?;
    println!(
        "no MNIST folder at {} (give --data or MNIST_DIR, or pass --download): using the bundled sample {}",
        dir.display(),
        sample.display()
    );
    Ok(sample)
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = data_dir(&args)?;
    let loading = Instant::now();
    let mut mnist = Mnist::load(&dir)?;
    if let Some(n) = args.limit_train {
        mnist.train = mnist.train.take(n).map_err(|e| format!("--limit-train {n}: {e}"))?;
    }
    if let Some(n) = args.limit_test {
        mnist.test = mnist.test.take(n).map_err(|e| format!("--limit-test {n}: {e}"))?;
    }
    println!(
        "data: {} ({} training, {} test images, loaded in {:.2} s)",
        dir.display(),
        mnist.train.len(),
        mnist.test.len(),
        loading.elapsed().as_secs_f64()
    );

    let device = open_device(&args.backend)?;
    // The model the flags name; none when resuming without model flags (the checkpoint's).
    let loss = args.loss.unwrap_or(LossKind::SoftmaxCrossEntropy);
    let model_flags = args.model.is_some()
        || args.preset.is_some()
        || args.layers.is_some()
        || args.activation.is_some()
        || args.loss.is_some();
    let asked = match (&args.model, &args.preset) {
        (Some(text), _) => Some(NetworkSpec::parse(text, loss)?),
        (None, Some(name)) => Some(NetworkSpec::preset(name, loss)?),
        (None, None) if !model_flags && args.resume.is_some() => None,
        (None, None) => Some(NetworkSpec::new(
            args.layers.as_deref().unwrap_or(&[784, 512, 256, 10]),
            args.activation.unwrap_or(Activation::Relu),
            loss,
        )?),
    };
    // A preset brings the Adam learning rate it was measured with, unless --lr says otherwise.
    let preset_lr = match &args.preset {
        Some(name) if ["adam", "adamw"].contains(&args.optimizer.to_ascii_lowercase().as_str()) => {
            Some(NetworkSpec::find_preset(name)?.adam_lr)
        }
        _ => None,
    };
    let lr = args.lr.or(preset_lr);
    let save = args
        .save
        .clone()
        .unwrap_or_else(|| args.out.join("checkpoint.safetensors"));
    let curves = args.out.join("curves.svg");
    // The output folder is this run's alone (locked until it exits), an earlier run's results
    // are replaced only when asked, and no output is written over another.
    let claim = match (&args.resume, args.overwrite) {
        (Some(_), _) => Claim::Continue,
        (None, true) => Claim::Replace,
        (None, false) => Claim::New,
    };
    let _run = RunFolder::claim(&args.out, &save, claim)?;
    check_distinct_outputs(&[
        ("the metrics file", &args.out.join("metrics.csv")),
        ("the training curves", &curves),
        ("the checkpoint (--save)", &save),
    ])?;
    // The output folder (metrics.csv, curves.svg, the default checkpoint) exists before training.
    let log = MetricsLog::open(&args.out)?;
    let config = TrainConfig {
        optimizer: Optimizer::from_name(&args.optimizer, lr, args.weight_decay)?,
        schedule: args.schedule,
        epochs: args.epochs,
        batch_size: args.batch,
        seed: args.seed.unwrap_or(0),
        max_grad_norm: args.clip,
        skip_nonfinite: args.skip_nonfinite,
        stop_on_divergence: !args.allow_divergence,
        metrics: Some(log.path().to_path_buf()),
        checkpoint: Some(save.clone()),
        ..TrainConfig::default()
    };
    let setup = Instant::now();
    let (mut trainer, spec) = match (&args.resume, asked) {
        (Some(path), asked) => {
            let checkpoint = match &asked {
                Some(spec) => Checkpoint::load_for(path, spec)?,
                None => Checkpoint::load(path)?,
            };
            let spec = checkpoint.network.spec.clone();
            if let Some(seed) = args.seed.filter(|&s| s != checkpoint.progress.seed) {
                eprintln!(
                    "notice: --seed {seed} is not used: a resumed run keeps the checkpoint's seed {} \
                     (its shuffling and dropout masks carry on)",
                    checkpoint.progress.seed
                );
            }
            println!(
                "resuming from {} (epoch {}, step {}, seed {})",
                path.display(),
                checkpoint.progress.epoch,
                checkpoint.progress.step,
                checkpoint.progress.seed
            );
            println!("{}", checkpoint.network.summary());
            (Trainer::resume(checkpoint, &device, config.clone())?, spec)
        }
        (None, asked) => {
            let spec = asked.expect("a model unless resuming");
            // Refuse a model the device or host cannot hold before allocating any of it.
            device.check_model(&spec, &config)?;
            let network = Network::try_init(&spec, args.seed.unwrap_or(0))?;
            println!("{}", network.summary());
            (Trainer::new(network, &device, config.clone())?, spec)
        }
    };
    println!("backend: {}", trainer.backend_name());
    println!(
        "optimizer: {:?}, schedule {:?}, batch {}, {} epochs, seed {} (setup {:.2} s)",
        config.optimizer,
        config.schedule,
        config.batch_size,
        config.epochs,
        trainer.config().seed,
        setup.elapsed().as_secs_f64()
    );

    let mut training_seconds = 0.0;
    let mut last = None;
    while trainer.epochs_done() < config.epochs {
        let steps = mnist.train.len().div_ceil(config.batch_size);
        let bar = EpochProgress::new(trainer.epochs_done() + 1, config.epochs, steps, config.batch_size);
        let report = trainer.train_epoch(&mnist.train, Some(&mnist.test), &mut |done, _| bar.update(done))?;
        bar.finish();
        let test = report.test.expect("test set given");
        let skipped = if config.skip_nonfinite {
            format!("  |  skipped {} of {} steps", report.skipped_steps, report.steps)
        } else {
            String::new()
        };
        println!(
            "epoch {:>2}  lr {:.2e}  train loss {:.4}  acc {:.2}%  |  test loss {:.4}  acc {:.2}%  |  {:.2} s ({:.0} samples/s){skipped}",
            report.epoch,
            report.learning_rate,
            report.train.mean_loss(),
            100.0 * report.train.accuracy().unwrap_or(0.0),
            test.mean_loss(),
            100.0 * test.accuracy().unwrap_or(0.0),
            report.train_seconds,
            report.samples_per_second()
        );
        // The trainer appended the epoch's row (before saving its checkpoint).
        draw_curves(&log.read()?, &curves, &format!("{} on {}", spec.text(), dir.display()))?;
        training_seconds += report.train_seconds;
        last = Some(report);
    }
    let Some(last) = last else {
        println!(
            "nothing to do: the checkpoint has already trained {} epochs and --epochs is {} (raise --epochs)",
            trainer.epochs_done(),
            config.epochs
        );
        return Ok(());
    };
    let test = last.test.expect("test set given");
    println!(
        "final test accuracy: {:.2}% (test loss {:.4}) after {} epochs, {:.1} s training this run",
        100.0 * test.accuracy().unwrap_or(0.0),
        test.mean_loss(),
        last.epoch,
        training_seconds
    );
    println!(
        "wrote {}, {} and {}",
        log.path().display(),
        curves.display(),
        save.display()
    );
    Ok(())
}

fn main() {
    // Ctrl-C or SIGTERM during a save leaves the previous checkpoint and no temporary file.
    let _ = ctrlc::set_handler(|| {
        shadergrad::files::remove_unfinished_temps();
        eprintln!("interrupted: no save was left half-written (continue from the last checkpoint with --resume)");
        std::process::exit(130);
    });
    let args = Args::parse();
    let resumed = args.resume.clone();
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        // A resumed run that fails before writing a checkpoint of its own never touched the
        // file it resumed from: say so, since the error has no checkpoint of this run to name.
        if let (Some(path), Some(shadergrad::Error::NonFiniteLoss { checkpoint: None, .. }))
        | (Some(path), Some(shadergrad::Error::NonFiniteParameters { checkpoint: None, .. }))
        | (Some(path), Some(shadergrad::Error::Diverged { checkpoint: None, .. }))
        | (Some(path), Some(shadergrad::Error::DeviceLost { checkpoint: None, .. })) =
            (resumed, e.downcast_ref::<shadergrad::Error>())
        {
            eprintln!(
                "the --resume file {} is unchanged: resume from it again (with other settings)",
                path.display()
            );
        }
        std::process::exit(1);
    }
}

/// The device `--backend` names; with `auto` on a machine without a GPU adapter, the CPU and a
/// one-line notice saying why.
fn open_device(backend: &str) -> Result<Device, Box<dyn std::error::Error>> {
    let (device, fallback) = Device::open(backend.parse::<BackendChoice>()?)?;
    if let Some(reason) = fallback {
        eprintln!("notice: {reason}; training on the CPU backend instead (--backend gpu requires a GPU)");
    }
    Ok(device)
}

/// Refuses outputs of one run that are the same file (after symlinks): one would overwrite the
/// other after every epoch.
fn check_distinct_outputs(outputs: &[(&str, &Path)]) -> Result<(), Box<dyn std::error::Error>> {
    let resolved: Vec<_> = outputs
        .iter()
        .map(|(what, path)| Ok((*what, *path, shadergrad::files::check_destination(path)?)))
        .collect::<Result<_, shadergrad::Error>>()?;
    for (i, (what, path, target)) in resolved.iter().enumerate() {
        if let Some((other, _, _)) = resolved[..i].iter().find(|(_, _, t)| t == target) {
            return Err(format!("{what} {} would be {other} too: give it another path", path.display()).into());
        }
    }
    Ok(())
}
