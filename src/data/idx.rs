//! The IDX format of MNIST and Fashion-MNIST (gzip-compressed or raw).
//!
//! Every claim of the header is checked against the data actually present before anything
//! is trusted: a lying header gives an error, never a huge allocation.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// An IDX array of unsigned bytes: its dimensions and data (row-major).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Size of each dimension, outermost first (e.g. `[count, rows, cols]` for images).
    pub dims: Vec<usize>,
    /// The elements, row-major; as many as the product of `dims`.
    pub data: Vec<u8>,
}

/// The type code IDX uses for unsigned bytes, the only one MNIST-style files use.
const UNSIGNED_BYTE: u8 = 0x08;
/// The largest rank we accept: images are rank 3, labels rank 1.
const MAX_RANK: usize = 4;

/// Reads an IDX file, gunzipping it first when it starts with the gzip magic bytes.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let raw = crate::files::read_regular(path, "read")?;
    parse_idx(&raw, path)
}

/// Parses IDX bytes (gzip or raw); `path` only names the source in errors.
pub fn parse_idx(raw: &[u8], path: &Path) -> Result<IdxArray> {
    let corrupt = |problem: String| Error::CorruptFile {
        path: path.to_path_buf(),
        problem,
    };
    let is_gzip = raw.starts_with(&[0x1f, 0x8b]);
    let header_source: &[u8] = raw;
    // For gzip, decode the header first, then exactly as many bytes as it promises plus one
    // (to detect trailing data), so a header cannot make us allocate more than is there.
    let mut decoder: Box<dyn Read> = if is_gzip {
        // Every member of a multi-member file (`cat a.gz b.gz`, bgzip), as `gzip -d` reads it.
        Box::new(flate2::read::MultiGzDecoder::new(header_source))
    } else {
        Box::new(header_source)
    };
    let mut head = [0u8; 4];
    decoder
        .read_exact(&mut head)
        .map_err(|e| corrupt(format!("too short for an IDX header ({e})")))?;
    if head[0] != 0 || head[1] != 0 {
        return Err(corrupt(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x}: an IDX file starts with two zero bytes",
            head[0], head[1], head[2], head[3]
        )));
    }
    if head[2] != UNSIGNED_BYTE {
        return Err(corrupt(format!(
            "element type 0x{:02x} is not unsigned byte (0x08)",
            head[2]
        )));
    }
    let rank = head[3] as usize;
    if rank == 0 || rank > MAX_RANK {
        return Err(corrupt(format!("rank {rank} is not between 1 and {MAX_RANK}")));
    }
    let mut dims = Vec::with_capacity(rank);
    for axis in 0..rank {
        let mut d = [0u8; 4];
        decoder
            .read_exact(&mut d)
            .map_err(|e| corrupt(format!("header ends before dimension {axis} ({e})")))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| corrupt(format!("dimensions {dims:?} overflow")))?;
    if expected == 0 {
        return Err(corrupt(format!("dimensions {dims:?} hold no data")));
    }
    let header_len = 4 + 4 * rank;
    if !is_gzip && raw.len() != header_len + expected {
        return Err(corrupt(format!(
            "header promises {dims:?} = {expected} bytes of data, but the file holds {}",
            raw.len().saturating_sub(header_len)
        )));
    }
    // Compressed data can be at most ~1032x its compressed size: a cheap bound before reading.
    if is_gzip && expected / 1032 > raw.len() {
        return Err(corrupt(format!(
            "header promises {expected} bytes of data, more than {} compressed bytes can hold",
            raw.len()
        )));
    }
    let mut data = Vec::new();
    decoder
        .take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| corrupt(format!("gzip stream is damaged ({e})")))?;
    if data.len() != expected {
        return Err(corrupt(format!(
            "header promises {dims:?} = {expected} bytes of data, but the file holds {}{}",
            if data.len() > expected { "more than " } else { "" },
            data.len().min(expected)
        )));
    }
    Ok(IdxArray { dims, data })
}

/// Encodes an IDX array (raw, uncompressed): for tests and tools that write samples.
pub fn encode_idx(array: &IdxArray) -> Vec<u8> {
    let mut out = vec![0, 0, UNSIGNED_BYTE, array.dims.len() as u8];
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.data);
    out
}
