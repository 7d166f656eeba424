//! Property tests of the two parsers that read untrusted files (IDX, safetensors checkpoints):
//! on any bytes they return a value or a typed error, never panic, and never allocate what a
//! header merely claims. The cargo-fuzz targets in `fuzz/` search the same space for longer.

mod common;

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use shadergrad::Error;
use shadergrad::Optimizer;
use shadergrad::data::idx::{IdxArray, encode_idx, parse_idx};
use shadergrad::model::{Checkpoint, LossKind, Network, NetworkSpec};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn valid_idx() -> Vec<u8> {
    encode_idx(&IdxArray {
        dims: vec![3, 2, 2],
        data: (0..12).collect(),
    })
}

/// A checkpoint of the current format: a layer list with dropout, Adam's two named moments and
/// its progress in the metadata.
fn valid_checkpoint() -> Vec<u8> {
    let spec = NetworkSpec::parse("3,dense4,tanh,dropout0.5,dense2", LossKind::SoftmaxCrossEntropy).unwrap();
    let mut trainer =
        shadergrad::train::CpuBackend::new(Network::init(&spec, 1), &common::config(Optimizer::adam(1e-3), 4, 0.0))
            .unwrap();
    use shadergrad::train::Backend;
    let checkpoint = Checkpoint {
        network: trainer.network().unwrap(),
        optimizer: Some(trainer.optimizer_snapshot().unwrap()),
        progress: Default::default(),
    };
    checkpoint.to_bytes().unwrap()
}

/// Applies up to a few byte edits, a truncation or an extension to `base`.
fn mutate(base: &[u8], edits: &[(usize, u8)], cut: Option<usize>, extra: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for &(at, value) in edits {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = value;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes.extend_from_slice(extra);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn idx_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        match parse_idx(&bytes, Path::new("fuzz.idx")) {
            Ok(array) => prop_assert_eq!(array.data.len(), array.dims.iter().product::<usize>()),
            Err(e) => prop_assert!(matches!(e, Error::CorruptFile { .. }), "{e}"),
        }
    }

    #[test]
    fn idx_parser_never_panics_on_mutated_files(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
        compress in any::<bool>(),
    ) {
        let base = if compress { gzip(&valid_idx()) } else { valid_idx() };
        let bytes = mutate(&base, &edits, cut, &extra);
        match parse_idx(&bytes, Path::new("fuzz.idx")) {
            Ok(array) => prop_assert_eq!(array.data.len(), array.dims.iter().product::<usize>()),
            Err(e) => prop_assert!(matches!(e, Error::CorruptFile { .. }), "{e}"),
        }
    }

    #[test]
    fn checkpoint_parser_never_panics_on_mutated_files(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let bytes = mutate(&valid_checkpoint(), &edits, cut, &extra);
        if let Ok(c) = Checkpoint::from_bytes(&bytes, None) {
            // Whatever parsed is a consistent, finite network that saves and reads back the same.
            prop_assert_eq!(c.network.layers.len(), c.network.spec.param_layer_count());
            prop_assert!(c.network.is_finite());
            let again = Checkpoint::from_bytes(&c.to_bytes().unwrap(), None).unwrap();
            prop_assert_eq!(again, c);
        }
        // The file path (header-checked read) agrees: never a panic.
        let dir = common::TempDir::new("prop");
        let path = dir.join("c.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let _ = Checkpoint::load(&path);
    }

    #[test]
    fn checkpoint_parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(Checkpoint::from_bytes(&bytes, None).is_err() || bytes.len() > 8);
    }
}
