//! Generated datasets for benchmarks and examples that must run without any download.

use std::sync::Arc;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Dataset, Features, Targets};

/// `samples` random 28×28 byte images with labels cycling through ten classes: shaped like
/// MNIST (same sizes, same byte features on the device), for timing rather than learning.
pub fn mnist_like(samples: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pixels: Vec<u8> = (0..samples.max(1) * 784).map(|_| rng.random_range(0..=255u8)).collect();
    let labels: Vec<u32> = (0..samples.max(1) as u32).map(|i| i % 10).collect();
    Dataset::new(
        Features::U8 {
            data: Arc::new(pixels),
            scale: 1.0 / 255.0,
        },
        784,
        Targets::Classes {
            labels: Arc::new(labels),
            classes: 10,
        },
    )
    .expect("generated data is consistent")
}
