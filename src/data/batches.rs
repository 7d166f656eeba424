//! The order samples are visited in: seeded shuffling per epoch, cut into batches.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Sample indices of one epoch, in batch order. The same (seed, epoch) gives the same order
/// on every machine (ChaCha8), so both backends see identical batches.
pub fn epoch_order(len: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    if shuffle {
        let stream = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(stream));
    }
    order
}

/// Cuts an epoch's order into batches of `batch` samples; the last, partial batch is kept
/// unless `drop_last`.
pub fn batches(order: &[u32], batch: usize, drop_last: bool) -> impl Iterator<Item = &[u32]> + Clone {
    order
        .chunks(batch.max(1))
        .filter(move |b| !drop_last || b.len() == batch)
}
