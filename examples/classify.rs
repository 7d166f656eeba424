//! Classify digit images with a trained checkpoint.
//!
//! `cargo run --release --example classify -- --checkpoint runs/mnist/checkpoint.safetensors digit.png [more.png …]`
//!
//! Images may be any size (resized to 28×28) and either light-on-dark like MNIST or dark-on-light.

use std::path::PathBuf;

use clap::Parser;
use shadergrad::data::image::digit_features;
use shadergrad::prelude::*;

#[derive(Parser, Debug)]
#[command(about = "Classify PNG digits with a shadergrad checkpoint")]
struct Args {
    /// A checkpoint written by the mnist example (--save / OUT/checkpoint.safetensors).
    #[arg(long, default_value = "runs/mnist/checkpoint.safetensors")]
    checkpoint: PathBuf,
    /// auto (the GPU if wgpu finds one, else the CPU with a notice), gpu (fail without one) or cpu.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// PNG images to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (device, fallback) = Device::open(args.backend.parse::<BackendChoice>()?)?;
    if let Some(reason) = fallback {
        eprintln!("notice: {reason}; classifying on the CPU backend instead (--backend gpu requires a GPU)");
    }
    let mut predictor = Predictor::load(&args.checkpoint, &device)?;
    let spec = predictor.spec().clone();
    if spec.inputs() != 784 {
        return Err(format!(
            "the checkpoint's network takes {} inputs, not 28×28 = 784 pixels",
            spec.inputs()
        )
        .into());
    }
    let rows = args.images.len();
    let mut features = Vec::with_capacity(rows * 784);
    for path in &args.images {
        features.extend(digit_features(path)?);
    }
    let outputs = predictor.predict(&features, rows)?;
    // What a prediction is depends on the loss head: softmax probabilities sum to 100 %, a
    // sigmoid head's are each class's own, a regression head's outputs are scores.
    let show: fn(f32) -> String = match spec.loss {
        LossKind::SoftmaxCrossEntropy => |p| format!("{:.1}%", 100.0 * p),
        LossKind::SigmoidBinaryCrossEntropy => |p| format!("{:.1}%", 100.0 * p),
        LossKind::MeanSquaredError | LossKind::MeanAbsoluteError => |v| format!("score {v:.3}"),
    };
    match spec.loss {
        LossKind::SoftmaxCrossEntropy => {}
        LossKind::SigmoidBinaryCrossEntropy => {
            println!("(a sigmoid head: each class's own probability; they need not sum to 100%)")
        }
        LossKind::MeanSquaredError | LossKind::MeanAbsoluteError => println!(
            "(a {} head: the network's outputs, ranked; they are scores, not probabilities)",
            spec.loss.name()
        ),
    }
    for (path, scores) in args.images.iter().zip(outputs.chunks(spec.outputs())) {
        let mut ranked: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = ranked
            .iter()
            .take(args.top)
            .map(|&(class, v)| format!("{class} ({})", show(v)))
            .collect();
        println!("{}: {}", path.display(), top.join(", "));
    }
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
