//! Building a batch from a dataset by sample index. GPU twin: `shaders/data.wgsl`.

use crate::data::{Dataset, Features, Targets};
use crate::error::{Result, check_len};

/// Writes the batch's inputs `x [indices.len() × dim]`, and its targets: `labels` for class
/// data, and `targets [rows × width]` (one-hot for class data, copied values otherwise) when
/// given.
pub fn gather_batch(
    data: &Dataset,
    indices: &[u32],
    x: &mut [f32],
    labels: &mut [u32],
    targets: Option<&mut [f32]>,
) -> Result<()> {
    const OP: &str = "gather_batch";
    let (rows, dim, width) = (indices.len(), data.dim(), data.target_width());
    check_len(OP, "x", x.len(), rows * dim)?;
    if let Some((r, &i)) = indices.iter().enumerate().find(|(_, i)| **i as usize >= data.len()) {
        return Err(crate::Error::InvalidOption(format!(
            "batch row {r} names sample {i} of a {}-sample dataset",
            data.len()
        )));
    }
    for (row, &i) in x.chunks_exact_mut(dim).zip(indices) {
        let start = i as usize * dim;
        match data.features() {
            Features::U8 { data, scale } => {
                for (o, &b) in row.iter_mut().zip(&data[start..start + dim]) {
                    *o = f32::from(b) * scale;
                }
            }
            Features::F32(data) => row.copy_from_slice(&data[start..start + dim]),
        }
    }
    match data.targets() {
        Targets::Classes { labels: src, .. } => {
            check_len(OP, "labels", labels.len(), rows)?;
            for (o, &i) in labels.iter_mut().zip(indices) {
                *o = src[i as usize];
            }
            if let Some(t) = targets {
                check_len(OP, "targets", t.len(), rows * width)?;
                for (row, &label) in t.chunks_exact_mut(width).zip(labels.iter()) {
                    row.iter_mut()
                        .enumerate()
                        .for_each(|(c, v)| *v = if c == label as usize { 1.0 } else { 0.0 });
                }
            }
        }
        Targets::Values { values, .. } => {
            if let Some(t) = targets {
                check_len(OP, "targets", t.len(), rows * width)?;
                for (row, &i) in t.chunks_exact_mut(width).zip(indices) {
                    row.copy_from_slice(&values[i as usize * width..(i as usize + 1) * width]);
                }
            }
        }
    }
    Ok(())
}
