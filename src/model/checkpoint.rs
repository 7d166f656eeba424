//! Checkpoints in safetensors: the network's tensors under PyTorch's names, the optimizer
//! state, and where training stood. Written atomically.
//!
//! Tensors: `layers.{i}.{name}` for each tensor the `i`-th layer with tensors declares
//! ([`crate::model::ParamKind::tensors`]): `weight` `[out, in]` and `bias` `[out]` for a dense
//! layer, `weight` `[out, in, k, k]` and `bias` for a conv, `weight`, `bias`, `running_mean`,
//! `running_var` (f32 `[C]`) and `num_batches_tracked` (i64 scalar) for a batch norm, so
//! `nn.ModuleList([nn.Conv2d(...), nn.BatchNorm2d(...), nn.Linear(...)])` named `layers` loads
//! them unchanged; with an optimizer, its moments of the parameters under PyTorch's names,
//! `optimizer.{exp_avg|exp_avg_sq|momentum_buffer|square_avg}.layers.{i}.{name}`. Metadata: `format`, `layers` (the
//! model's text form), `sizes` (the input width, then the width after each layer with
//! parameters), `loss`, `epoch`, `step`, `seed`, and with an
//! optimizer `optimizer`, `optimizer.step`, `optimizer.beta1_power`, `optimizer.beta2_power`.
//! Hyperparameters are not stored: a resumed run takes them from its configuration.
//!
//! Files of the first format (`shadergrad-checkpoint-1`: `sizes` + `hidden_activation`,
//! `optimizer.moment{j}.…` and the raw `optimizer.state` block) still load.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::{LayerTensors, LossKind, NamedTensor, Network, NetworkSpec, StoredAs, TensorRole};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::optimizer::{OptimProgress, moment_names};

/// Identifies this crate's checkpoint layout.
pub const FORMAT: &str = "shadergrad-checkpoint-2";
/// The first layout, still read.
const FORMAT_1: &str = "shadergrad-checkpoint-1";
/// Metadata key prefix of each tensor's CRC-32 (`crc32.layers.0.weight`: 8 hex digits).
/// Checkpoints written before checksums have none and load unchecked.
const CHECKSUM_PREFIX: &str = "crc32.";

fn crc32_hex(bytes: &[u8]) -> String {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    format!("{:08x}", crc.sum())
}

/// Bytes of the optimizer state block stored by the first format (19 four-byte fields).
const STATE_BYTES: usize = 76;
/// Byte offsets of `step`, `beta1_power` and `beta2_power` in that block.
const STATE_STEP_AT: usize = 24;

/// An optimizer's state: how far it has come and its moment tensors (no hyperparameters:
/// those are settings of the run).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSnapshot {
    /// [`crate::Optimizer::kind`]: `sgd`, `momentum`, `adam` or `rmsprop`.
    pub kind: String,
    /// The step counter and Adam's β powers.
    pub progress: OptimProgress,
    /// `moments[j][layer]`, named by [`crate::Optimizer::moment_names`], shaped like the layer.
    pub moments: Vec<Vec<LayerTensors>>,
}

/// Where training stood when the checkpoint was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// The seed of the run's shuffling.
    pub seed: u64,
}

/// Everything needed to use a trained network, or to resume training it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The model and every tensor of its layers.
    pub network: Network,
    /// The optimizer's state, for resuming (absent in an inference-only file).
    pub optimizer: Option<OptimizerSnapshot>,
    /// Where training stood: epoch, step, seed.
    pub progress: Progress,
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn view(data: &[u8], shape: Vec<usize>, dtype: Dtype) -> std::result::Result<TensorView<'_>, String> {
    TensorView::new(dtype, shape, data).map_err(|e| e.to_string())
}

/// One tensor to write: its name, dtype, shape and bytes (borrowed where they are `f32`).
type Entry<'a> = (String, Dtype, Vec<usize>, Cow<'a, [u8]>);

/// Appends `prefix + layers.{i}.{name}` entries of `layers` (`parameters_only`: just each
/// layer's parameters, as optimizer moments hold; counters are converted to `I64`).
fn add_layers<'a>(
    spec: &NetworkSpec,
    prefix: &str,
    layers: &'a [LayerTensors],
    parameters_only: bool,
    out: &mut Vec<Entry<'a>>,
) -> std::result::Result<(), String> {
    crate::model::check_tensors(spec, layers, parameters_only).map_err(|e| e.to_string())?;
    for (l, layer) in spec.param_layers().zip(layers) {
        let decls = l
            .tensors
            .iter()
            .filter(|t| !parameters_only || t.role == TensorRole::Parameter);
        for (decl, tensor) in decls.zip(&layer.tensors) {
            let name = format!("{prefix}layers.{}.{}", l.index, decl.name);
            let (dtype, bytes) = match decl.stored_as {
                StoredAs::F32 => (Dtype::F32, Cow::Borrowed(f32_bytes(&tensor.values))),
                StoredAs::I64 => (
                    Dtype::I64,
                    Cow::Owned(tensor.values.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect()),
                ),
            };
            out.push((name, dtype, decl.shape.clone(), bytes));
        }
    }
    Ok(())
}

impl Checkpoint {
    /// Writes the checkpoint to `path` atomically: a temporary file in the same folder, fsync,
    /// rename, fsync of the folder. A crash leaves the previous file intact.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes().map_err(|problem| Error::Checkpoint {
            path: path.to_path_buf(),
            problem,
        })?;
        crate::files::write_atomically(path, &bytes)
    }

    /// The checkpoint as safetensors bytes.
    pub fn to_bytes(&self) -> std::result::Result<Vec<u8>, String> {
        let spec = &self.network.spec;
        let mut entries: Vec<Entry<'_>> = Vec::new();
        add_layers(spec, "", &self.network.layers, false, &mut entries)?;
        let mut metadata = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("layers".to_string(), spec.text()),
            (
                "sizes".to_string(),
                spec.sizes().iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","),
            ),
            ("loss".to_string(), spec.loss.name().to_string()),
            ("epoch".to_string(), self.progress.epoch.to_string()),
            ("step".to_string(), self.progress.step.to_string()),
            ("seed".to_string(), self.progress.seed.to_string()),
        ]);
        if let Some(opt) = &self.optimizer {
            let names = moment_names(&opt.kind).ok_or_else(|| format!("unknown optimizer {:?}", opt.kind))?;
            if names.len() != opt.moments.len() {
                return Err(format!(
                    "{} keeps {} moments, the snapshot has {}",
                    opt.kind,
                    names.len(),
                    opt.moments.len()
                ));
            }
            metadata.insert("optimizer".to_string(), opt.kind.clone());
            metadata.insert("optimizer.step".to_string(), opt.progress.step.to_string());
            metadata.insert(
                "optimizer.beta1_power".to_string(),
                opt.progress.beta1_power.to_string(),
            );
            metadata.insert(
                "optimizer.beta2_power".to_string(),
                opt.progress.beta2_power.to_string(),
            );
            for (name, moment) in names.iter().zip(&opt.moments) {
                add_layers(spec, &format!("optimizer.{name}."), moment, true, &mut entries)?;
            }
        }
        let all = entries
            .iter()
            .map(|(name, dtype, shape, bytes)| Ok((name.clone(), view(bytes, shape.clone(), *dtype)?)))
            .collect::<std::result::Result<Vec<_>, String>>()?;
        // A CRC-32 of every tensor's bytes, so a damaged or edited file is named on load rather
        // than silently predicting nonsense (PyTorch ignores metadata it does not know).
        for (name, view) in &all {
            metadata.insert(format!("{CHECKSUM_PREFIX}{name}"), crc32_hex(view.data()));
        }
        safetensors::serialize(all, Some(metadata)).map_err(|e| e.to_string())
    }

    /// Loads a checkpoint, rebuilding the network from its metadata.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = read_checked(path)?;
        Self::from_bytes(&bytes, None).map_err(|problem| Error::Checkpoint {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Loads a checkpoint that must hold exactly `spec`'s network: every name, dtype and shape
    /// is checked and the first mismatch is named.
    pub fn load_for(path: &Path, spec: &NetworkSpec) -> Result<Checkpoint> {
        let bytes = read_checked(path)?;
        Self::from_bytes(&bytes, Some(spec)).map_err(|problem| Error::Checkpoint {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Parses safetensors bytes; with `expected`, the network must match it.
    pub fn from_bytes(bytes: &[u8], expected: Option<&NetworkSpec>) -> std::result::Result<Checkpoint, String> {
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |key: &str| meta.get(key).cloned().ok_or_else(|| format!("metadata has no {key:?}"));
        let first_format = match meta.get("format") {
            Some(f) if f == FORMAT => false,
            Some(f) if f == FORMAT_1 => true,
            Some(f) => return Err(format!("format {f:?} is not {FORMAT:?} (nor the older {FORMAT_1:?})")),
            None => {
                return Err(format!(
                    "metadata has no \"format\" (expected {FORMAT:?}); not a shadergrad checkpoint"
                ));
            }
        };
        let loss: LossKind = get("loss")?.parse()?;
        let spec = if first_format {
            let sizes: Vec<usize> = get("sizes")?
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("metadata sizes {s:?} is not a number"))
                })
                .collect::<std::result::Result<_, _>>()?;
            let hidden: Activation = get("hidden_activation")?.parse()?;
            NetworkSpec::new(&sizes, hidden, loss)
        } else {
            NetworkSpec::parse(&get("layers")?, loss)
        }
        .map_err(|e| e.to_string())?;
        if let Some(expected) = expected
            && &spec != expected
        {
            return Err(format!(
                "holds the model {} ({} loss) but {} ({} loss) was expected",
                spec.text(),
                spec.loss.name(),
                expected.text(),
                expected.loss.name()
            ));
        }
        let parse_num = |key: &str| -> std::result::Result<u64, String> {
            get(key)?
                .parse::<u64>()
                .map_err(|_| format!("metadata {key} is not a whole number"))
        };
        let progress = Progress {
            epoch: parse_num("epoch")? as usize,
            step: parse_num("step")?,
            seed: parse_num("seed")?,
        };

        let mut expected_names: Vec<String> = Vec::new();
        let mut read_layers = |prefix: &str, parameters_only: bool| -> std::result::Result<Vec<LayerTensors>, String> {
            spec.param_layers()
                .map(|l| {
                    let decls = l
                        .tensors
                        .iter()
                        .filter(|t| !parameters_only || t.role == TensorRole::Parameter);
                    let tensors = decls
                        .map(|decl| {
                            let name = format!("{prefix}layers.{}.{}", l.index, decl.name);
                            let values = read_tensor(&tensors, &meta, &name, &decl.shape, decl.stored_as)?;
                            expected_names.push(name);
                            Ok(NamedTensor {
                                name: decl.name,
                                values,
                            })
                        })
                        .collect::<std::result::Result<_, String>>()?;
                    Ok(LayerTensors { tensors })
                })
                .collect()
        };
        let layers = read_layers("", false)?;
        let optimizer = match meta.get("optimizer") {
            None => None,
            Some(kind) => {
                let names = moment_names(kind).ok_or_else(|| format!("unknown optimizer {kind:?} in metadata"))?;
                let moments = names
                    .iter()
                    .enumerate()
                    .map(|(j, name)| {
                        let prefix = if first_format {
                            format!("optimizer.moment{j}.")
                        } else {
                            format!("optimizer.{name}.")
                        };
                        read_layers(&prefix, true)
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let progress = if first_format {
                    let state_view = tensors
                        .tensor("optimizer.state")
                        .map_err(|_| "missing tensor \"optimizer.state\"".to_string())?;
                    if state_view.dtype() != Dtype::U8 || state_view.shape() != [STATE_BYTES] {
                        return Err(format!(
                            "tensor \"optimizer.state\" is {:?} {:?}, expected U8 [{STATE_BYTES}]",
                            state_view.dtype(),
                            state_view.shape()
                        ));
                    }
                    expected_names.push("optimizer.state".to_string());
                    let word = |i: usize| {
                        let at = STATE_STEP_AT + 4 * i;
                        u32::from_le_bytes(state_view.data()[at..at + 4].try_into().expect("4 bytes"))
                    };
                    let progress = OptimProgress {
                        step: word(0),
                        beta1_power: f32::from_bits(word(1)),
                        beta2_power: f32::from_bits(word(2)),
                    };
                    if ![progress.beta1_power, progress.beta2_power]
                        .iter()
                        .all(|p| (0.0..=1.0).contains(p))
                    {
                        return Err(format!("optimizer state holds β powers {progress:?} outside [0, 1]"));
                    }
                    progress
                } else {
                    let number = |key: &str| -> std::result::Result<f32, String> {
                        let v = get(key)?
                            .parse::<f32>()
                            .map_err(|_| format!("metadata {key} is not a number"))?;
                        if (0.0..=1.0).contains(&v) {
                            Ok(v)
                        } else {
                            Err(format!("metadata {key} = {v} is not in [0, 1]"))
                        }
                    };
                    OptimProgress {
                        step: get("optimizer.step")?
                            .parse::<u32>()
                            .map_err(|_| "metadata optimizer.step is not a whole number".to_string())?,
                        beta1_power: number("optimizer.beta1_power")?,
                        beta2_power: number("optimizer.beta2_power")?,
                    }
                };
                Some(OptimizerSnapshot {
                    kind: kind.clone(),
                    progress,
                    moments,
                })
            }
        };
        if let Some(extra) = tensors
            .names()
            .into_iter()
            .find(|n| !expected_names.iter().any(|e| e == n))
        {
            return Err(format!("unexpected tensor {extra:?} for the model {}", spec.text()));
        }
        let network = Network::from_layers(&spec, layers).map_err(|e| e.to_string())?;
        Ok(Checkpoint {
            network,
            optimizer,
            progress,
        })
    }
}

/// The largest header safetensors accepts.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Reads a checkpoint file only after its header's account of the data matches the file's
/// size, so a lying or truncated file is refused before anything large is allocated.
fn read_checked(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let bad = |problem: String| Error::Checkpoint {
        path: path.to_path_buf(),
        problem,
    };
    let mut file = crate::files::open_regular(path, "read")?;
    let size = file.metadata().map_err(io)?.len();
    let mut prefix = [0u8; 8];
    if size < 8 {
        return Err(bad(format!(
            "not a safetensors file: {size} bytes is too short for a header"
        )));
    }
    file.read_exact(&mut prefix).map_err(io)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > size {
        return Err(bad(format!(
            "not a safetensors file: its header claims {header_len} bytes in a {size}-byte file"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors file: header is not JSON ({e})")))?;
    let data_end = json
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.as_str() != "__metadata__")
                .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
                .max()
                .unwrap_or(0)
        })
        .ok_or_else(|| bad("not a safetensors file: header is not a JSON object".into()))?;
    let expected = (8 + header_len).checked_add(data_end);
    if expected != Some(size) {
        let expected = expected.map_or("more than 2^64".to_string(), |e| e.to_string());
        return Err(bad(format!(
            "file is {size} bytes but its header describes {expected}: truncated or padded"
        )));
    }
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(&header);
    bytes.reserve(data_end as usize);
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Tensor `name` as f32 values of `shape` (stored as `stored_as`), its bytes checked against
/// the CRC-32 in `meta` when the checkpoint has checksums (any `crc32.` key: then every tensor
/// must have one).
fn read_tensor(
    tensors: &SafeTensors<'_>,
    meta: &HashMap<String, String>,
    name: &str,
    shape: &[usize],
    stored_as: StoredAs,
) -> std::result::Result<Vec<f32>, String> {
    let dtype = match stored_as {
        StoredAs::F32 => Dtype::F32,
        StoredAs::I64 => Dtype::I64,
    };
    let t = tensors
        .tensor(name)
        .map_err(|_| format!("missing tensor {name:?} (expected {dtype:?} {shape:?})"))?;
    if t.dtype() != dtype {
        return Err(format!("tensor {name:?} has dtype {:?}, expected {dtype:?}", t.dtype()));
    }
    if t.shape() != shape {
        return Err(format!("tensor {name:?} has shape {:?}, expected {shape:?}", t.shape()));
    }
    if meta.keys().any(|k| k.starts_with(CHECKSUM_PREFIX)) {
        let computed = crc32_hex(t.data());
        match meta.get(&format!("{CHECKSUM_PREFIX}{name}")) {
            Some(stored) if *stored == computed => {}
            Some(stored) => {
                return Err(format!(
                    "tensor {name:?} fails its CRC-32 check (stored {stored}, computed {computed}): \
                     the file was damaged or changed after it was written"
                ));
            }
            None => return Err(format!("tensor {name:?} has no CRC-32 while the others do")),
        }
    }
    let values: Vec<f32> = match stored_as {
        StoredAs::F32 => t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        StoredAs::I64 => t
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .map(|v| if v < 0 { f32::NAN } else { v as f32 })
            .collect(),
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor {name:?} holds {} at index {i}: not a usable checkpoint",
            values[i]
        ));
    }
    Ok(values)
}
