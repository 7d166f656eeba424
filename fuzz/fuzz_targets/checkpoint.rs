//! `cargo fuzz run checkpoint`: checkpoint parsing of arbitrary bytes must give a consistent
//! network or an error — never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadergrad::model::Checkpoint;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(checkpoint) = Checkpoint::from_bytes(bytes, None) {
        assert_eq!(checkpoint.network.layers.len(), checkpoint.network.spec.layers());
    }
});
