//! `cargo fuzz run checkpoint`: checkpoint parsing of arbitrary bytes (either format) must give
//! a consistent, finite network that saves and reads back the same, or an error — never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadergrad::model::Checkpoint;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(checkpoint) = Checkpoint::from_bytes(bytes, None) {
        assert_eq!(checkpoint.network.layers.len(), checkpoint.network.spec.param_layer_count());
        assert!(checkpoint.network.is_finite());
        let again = Checkpoint::from_bytes(&checkpoint.to_bytes().unwrap(), None).unwrap();
        assert_eq!(again, checkpoint);
    }
});
