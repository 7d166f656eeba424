//! `cargo fuzz run idx`: the IDX reader on arbitrary bytes (raw and gzip) must return an
//! array whose data matches its dimensions, or a CorruptFile error — never panic or
//! allocate what a header only claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadergrad::Error;
use shadergrad::data::idx::parse_idx;

fuzz_target!(|bytes: &[u8]| {
    match parse_idx(bytes, std::path::Path::new("fuzz.idx")) {
        Ok(array) => assert_eq!(array.data.len(), array.dims.iter().product::<usize>()),
        Err(Error::CorruptFile { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other}"),
    }
});
