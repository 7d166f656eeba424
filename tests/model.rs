//! Network specs, seeded initialisation and the summary.

use shadergrad::model::{LossKind, Network, NetworkSpec};
use shadergrad::{Activation, Error};

#[test]
fn parameter_counts_are_exact() {
    let small = NetworkSpec::new(&[784, 128, 64, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    assert_eq!(small.parameter_count(), 109_386);
    let large = NetworkSpec::new(
        &[784, 2352, 784, 10],
        Activation::Sigmoid,
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap();
    assert_eq!(large.parameter_count(), 3_698_922);
    let summary = Network::init(&small, 0).summary();
    assert!(summary.contains("total: 109,386 parameters"), "{summary}");
    let line = |i: usize| {
        summary
            .lines()
            .nth(i + 1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line(0),
        "0: dense 784 → 128 100,480 parameters (weight 128×784, bias 128)"
    );
    assert_eq!(line(1), "1: relu 0 parameters");
    assert_eq!(line(4), "4: dense 64 → 10 650 parameters (weight 10×64, bias 10)");
    assert_eq!(
        summary.lines().count(),
        7,
        "title, one line per layer, total:\n{summary}"
    );
}

#[test]
fn models_are_built_from_layers_parsed_and_printed() {
    use shadergrad::model::{Layer, Model};
    let built = Model::input(784)
        .dense(512)
        .relu()
        .dropout(0.2)
        .dense(256)
        .tanh()
        .dense(10)
        .softmax_cross_entropy()
        .unwrap();
    assert_eq!(built.text(), "784,dense512,relu,dropout0.2,dense256,tanh,dense10");
    let parsed = NetworkSpec::parse(
        " 784, 512 ,relu,dropout0.2,dense256,TANH,dense10",
        LossKind::SoftmaxCrossEntropy,
    )
    .unwrap();
    assert_eq!(
        parsed, built,
        "bare widths are dense layers; case and spaces do not matter"
    );
    assert_eq!(built.sizes(), [784, 512, 256, 10]);
    assert_eq!(
        built.parameter_count(),
        784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    );
    assert_eq!(built.layers[2], Layer::Dropout { rate: 0.2 });
    assert!(built.has_dropout());
    // The MLP constructor is the same layer list.
    let mlp = NetworkSpec::new(&[4, 8, 2], Activation::Sigmoid, LossKind::MeanSquaredError).unwrap();
    assert_eq!(
        mlp,
        NetworkSpec::parse("4,dense8,sigmoid,dense2", LossKind::MeanSquaredError).unwrap()
    );
    // A sigmoid output layer under an MSE head, as the lecture's binary classifier.
    let binary = Model::input(2).dense(3).sigmoid().dense(1).sigmoid().mse().unwrap();
    assert_eq!(binary.outputs(), 1);
    assert!(Network::init(&binary, 0).summary().lines().count() == 6);
}

#[test]
fn bad_model_text_is_refused_with_a_reason() {
    let loss = LossKind::SoftmaxCrossEntropy;
    for (text, wanted) in [
        ("dense10", "must start with the input width"),
        ("784", "no dense or conv layer"),
        ("784,relu", "no dense or conv layer"),
        ("784,dense", "is not a whole number"),
        ("784,dense0,dense10", "0"),
        ("784,dropout1.0,dense10", "dropout rate 1 must be in [0, 1)"),
        ("784,dropout-0.1,dense10", "must be in [0, 1)"),
        ("784,dropoutx,dense10", "dropout needs a rate"),
        ("784,softmax,dense10", "unknown layer \"softmax\""),
    ] {
        let err = NetworkSpec::parse(text, loss).unwrap_err().to_string();
        assert!(err.contains(wanted), "{text}: {err}");
    }
}

#[test]
fn initialisation_is_seeded_and_scaled_per_activation() {
    let relu = NetworkSpec::new(&[400, 300, 10], Activation::Relu, LossKind::SoftmaxCrossEntropy).unwrap();
    let a = Network::init(&relu, 5);
    assert_eq!(a, Network::init(&relu, 5), "same seed, same parameters");
    assert_ne!(a, Network::init(&relu, 6));
    let std = |w: &[f32]| (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    // He for the ReLU layer: σ = √(2/400) ≈ 0.0707.
    let he = std(a.layers[0].weight());
    assert!((he - (2.0f64 / 400.0).sqrt()).abs() < 0.003, "He std {he}");
    // Glorot uniform for the linear output: σ = √(2/(300+10)) ≈ 0.0803.
    let glorot = std(a.layers[1].weight());
    assert!((glorot - (2.0f64 / 310.0).sqrt()).abs() < 0.004, "Glorot std {glorot}");
    let bound = (6.0f32 / 310.0).sqrt();
    assert!(a.layers[1].weight().iter().all(|w| w.abs() <= bound));
    assert!(a.layers.iter().all(|l| l.bias().iter().all(|&b| b == 0.0)));
    let tanh = NetworkSpec::new(&[400, 300, 10], Activation::Tanh, LossKind::SoftmaxCrossEntropy).unwrap();
    let glorot_hidden = std(Network::init(&tanh, 5).layers[0].weight());
    assert!(
        (glorot_hidden - (2.0f64 / 700.0).sqrt()).abs() < 0.003,
        "Glorot hidden std {glorot_hidden}"
    );
}

#[test]
fn bad_specs_are_errors() {
    let cases: [(&[usize], &str); 2] = [(&[784], "need an input and at least one layer"), (&[], "need an input")];
    for (sizes, message) in cases {
        let err = NetworkSpec::new(sizes, Activation::Relu, LossKind::MeanSquaredError).unwrap_err();
        assert!(
            matches!(err, Error::InvalidNetwork(_)) && err.to_string().contains(message),
            "{err}"
        );
    }
    let err = NetworkSpec::new(&[784, 0, 10], Activation::Relu, LossKind::MeanSquaredError).unwrap_err();
    assert!(matches!(err, Error::ZeroSizedLayer { position: 1, .. }), "{err}");
    let spec = NetworkSpec::new(&[3, 2], Activation::Relu, LossKind::MeanSquaredError).unwrap();
    let mut layers = Network::init(&spec, 0).layers;
    layers[0].tensors[1].values.push(0.0);
    let err = Network::from_layers(&spec, layers).unwrap_err();
    assert!(
        err.to_string()
            .contains("layer 0 tensor bias should have shape [2] (2 values), got 3 values"),
        "{err}"
    );
}

#[test]
fn names_parse() {
    assert_eq!("relu".parse::<Activation>().unwrap(), Activation::Relu);
    assert_eq!("Sigmoid".parse::<Activation>().unwrap(), Activation::Sigmoid);
    assert!(
        "swish"
            .parse::<Activation>()
            .unwrap_err()
            .contains("expected one of identity, relu")
    );
    assert_eq!("mse".parse::<LossKind>().unwrap(), LossKind::MeanSquaredError);
    assert_eq!("bce".parse::<LossKind>().unwrap(), LossKind::SigmoidBinaryCrossEntropy);
}

/// The LeNet-style CNN of the `lenet` preset, as text.
const LENET: &str = "1x28x28,conv32k3p1,relu,maxpool2,conv64k3p1,relu,maxpool2,flatten,dense128,relu,dense10";

#[test]
fn cnn_models_parse_round_trip_and_count_parameters_like_pytorch() {
    use shadergrad::model::{Layer, SampleShape};
    let spec = NetworkSpec::parse(LENET, LossKind::SoftmaxCrossEntropy).unwrap();
    assert_eq!(spec.text(), LENET);
    assert_eq!(spec.inputs, 784);
    assert_eq!(spec.image, Some([1, 28, 28]));
    assert_eq!(
        spec.layers[0],
        Layer::Conv2d {
            out_channels: 32,
            kernel: 3,
            stride: 1,
            padding: 1
        }
    );
    let image = |channels, height, width| SampleShape::Image {
        channels,
        height,
        width,
    };
    let shapes = spec.shapes();
    assert_eq!(shapes[1], image(32, 28, 28));
    assert_eq!(shapes[3], image(32, 14, 14));
    assert_eq!(shapes[6], image(64, 7, 7));
    assert_eq!(shapes[7], SampleShape::Flat(3136));
    assert_eq!(spec.outputs(), 10);
    // torch: sum(p.numel() for p in Net().parameters()) for the same layers.
    assert_eq!(spec.parameter_count(), 320 + 18_496 + 401_536 + 1_290);
    let summary = Network::init(&spec, 0).summary();
    assert!(summary.contains("weight 64×32×3×3, bias 64) → 64x14x14"), "{summary}");
    assert!(summary.contains("total: 421,642 parameters"), "{summary}");
    // The builder makes the same model.
    let built = shadergrad::model::Model::image(1, 28, 28)
        .conv2d(32, 3, 1, 1)
        .relu()
        .max_pool2d(2)
        .conv2d(64, 3, 1, 1)
        .relu()
        .max_pool2d(2)
        .flatten()
        .dense(128)
        .relu()
        .dense(10)
        .softmax_cross_entropy()
        .unwrap();
    assert_eq!(
        built,
        NetworkSpec::preset("lenet", LossKind::SoftmaxCrossEntropy).unwrap()
    );
    // Stride, padding and pooling options, in any order, and their canonical text.
    let spec = NetworkSpec::parse(
        "3x17x9,conv5p2k5s2,tanh,maxpool3s2,flatten,dense4",
        LossKind::MeanSquaredError,
    )
    .unwrap();
    assert_eq!(spec.text(), "3x17x9,conv5k5s2p2,tanh,maxpool3s2,flatten,dense4");
    assert_eq!(spec.shapes()[1], image(5, 9, 5));
    assert_eq!(spec.shapes()[3], image(5, 4, 2));
}

#[test]
fn bad_cnn_models_are_refused_with_the_reason() {
    let cases = [
        ("784,conv8k3,flatten,dense10", "needs an image input"),
        ("1x28x28,conv8k3,dense10", "needs a flatten layer first"),
        ("1x28x28,conv8k3", "ends in a 8x26x26 image"),
        ("1x4x4,conv8k5,flatten,dense2", "does not fit a 1x4x4 input"),
        (
            "1x28x28,conv8k3p3,flatten,dense2",
            "padding 3 must be smaller than the kernel 3",
        ),
        ("1x28x28,conv8,flatten,dense2", "conv needs a kernel size"),
        ("1x28x28,conv8k3q1,flatten,dense2", "unknown option 'q'"),
        ("1x28x28,conv8k3k5,flatten,dense2", "given twice"),
        ("1x28x28,maxpool0,flatten,dense2", "at least 1"),
        ("1x28x28,maxpool2p1,flatten,dense2", "unknown option 'p'"),
        ("2x3,dense4", "must start with the input width or image shape"),
        ("1x28x28x3,dense4", "must start with the input width or image shape"),
        // Sizes whose arithmetic would overflow are refused, not wrapped.
        (
            "1x1x1,conv8k4294967296s4294967296p4294967295,flatten,dense2",
            "at most 65536",
        ),
        (
            "1x1x1,conv1k9223372036854775809p9223372036854775808,flatten,dense2",
            "at most 65536",
        ),
        ("1x28x28,conv1073741825k1,flatten,dense2", "channels at most"),
        (
            "1000000x1000000x1000000,flatten,dense2",
            "more than 1073741824 features per sample",
        ),
        ("1x28x28,maxpool70000,flatten,dense2", "at most 65536"),
    ];
    for (text, want) in cases {
        let err = NetworkSpec::parse(text, LossKind::SoftmaxCrossEntropy).unwrap_err();
        assert!(matches!(err, Error::InvalidNetwork(_)), "{text}: {err:?}");
        assert!(err.to_string().contains(want), "{text}: {err}");
    }
}
