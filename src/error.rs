//! The crate's one error type: every fallible public function returns [`Result<T>`].

use thiserror::Error;

/// Everything that can go wrong when a user drives shadergrad.
///
/// Variants name the problem and carry the numbers needed to fix it; panics are reserved
/// for broken internal invariants (bugs), never for bad input.
#[derive(Debug, Error)]
pub enum Error {
    /// A tensor had a different number of elements than its stated shape requires.
    #[error("shape mismatch in {op}: {what} has {got} elements, expected {expected}")]
    ShapeMismatch {
        op: &'static str,
        what: &'static str,
        expected: usize,
        got: usize,
    },

    /// A dimension was zero: every size must be at least 1.
    #[error("{op}: dimension `{dim}` is 0; every size must be at least 1")]
    EmptyDimension { op: &'static str, dim: &'static str },

    /// A class label does not name one of the network's output classes.
    #[error("{op}: label {label} at row {row} is out of range for {classes} classes")]
    LabelOutOfRange {
        op: &'static str,
        row: usize,
        label: u32,
        classes: usize,
    },

    /// No adapter matched the request (or the machine has none).
    #[error("no GPU adapter found{request}; available adapters: {available}")]
    NoAdapter { request: String, available: String },

    /// An environment variable held a value shadergrad does not understand.
    #[error("environment variable {var}={value:?} is not valid: expected {expected}")]
    BadEnvVar {
        var: &'static str,
        value: String,
        expected: String,
    },

    /// The adapter refused to create a device.
    #[error("could not open a device on adapter {adapter}: {reason}")]
    DeviceRequest { adapter: String, reason: String },

    /// A buffer would exceed what the device allows.
    #[error("{what} needs {bytes} bytes, over the device's {limit_name} of {limit} bytes")]
    BufferTooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },

    /// A dispatch would need more workgroups than the device allows in one dimension.
    #[error("{kernel}: {workgroups} workgroups exceed the device's limit of {limit} per dimension")]
    DispatchTooLarge {
        kernel: &'static str,
        workgroups: u64,
        limit: u32,
    },

    /// wgpu reported a validation error, out-of-memory or similar while running kernels.
    #[error("GPU error in {context}: {message}")]
    Gpu { context: String, message: String },

    /// Reading a buffer back from the device failed (device lost, mapping error).
    #[error("reading {what} back from the GPU failed: {reason}")]
    Readback { what: String, reason: String },

    /// A file operation failed: `action` says what was being done ("read", "create", "write",
    /// "rename a temporary file onto", …) to `path`.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A data file is not what its name or header promises.
    #[error("corrupt data file {path}: {problem}")]
    CorruptFile { path: std::path::PathBuf, problem: String },

    /// A required data file is not in the folder.
    #[error("{what} not found in {dir}: looked for {tried}")]
    DataNotFound {
        what: &'static str,
        dir: std::path::PathBuf,
        tried: String,
    },

    /// A dataset's parts disagree or hold values a network cannot train on.
    #[error("invalid dataset: {0}")]
    InvalidDataset(String),

    /// A network description that cannot be built.
    #[error("invalid network: {0}")]
    InvalidNetwork(String),

    /// A dataset does not fit the network (input width, class count, target width).
    #[error("dataset does not fit the network: {0}")]
    DatasetMismatch(String),

    /// A layer's tensors exceed what the device allows, even split across bindings.
    #[error("layer {layer} ({what}) needs {bytes} bytes, over the device's {limit_name} of {limit} bytes")]
    LayerTooLarge {
        layer: usize,
        what: &'static str,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },

    /// A checkpoint does not fit the network it is loaded into, or is not a valid checkpoint.
    #[error("checkpoint {path}: {problem}")]
    Checkpoint { path: std::path::PathBuf, problem: String },

    /// A download failed or delivered something other than the expected file.
    #[error("download of {file} failed: {problem}")]
    Download { file: String, problem: String },

    /// A feature, target or input value is NaN or infinite.
    #[error("{what} {index} of sample {sample} is {value}; every value must be finite")]
    NonFiniteInput {
        what: &'static str,
        sample: usize,
        index: usize,
        value: f32,
    },

    /// A binary cross-entropy target outside [0, 1].
    #[error("binary cross-entropy targets must lie in [0, 1]; target {index} of sample {sample} is {value}")]
    TargetOutOfRange { sample: usize, index: usize, value: f32 },

    /// A dataset (or a slice of one) with no samples.
    #[error("{what} has no samples")]
    EmptyDataset { what: String },

    /// A layer of width 0.
    #[error("layer size {position} in {sizes:?} is 0; every layer needs at least one unit")]
    ZeroSizedLayer { position: usize, sizes: Vec<usize> },

    /// A batch size of 0, or a batch larger than the backend was built for.
    #[error("batch of {got} samples: {}", if *max == usize::MAX { "a batch holds at least 1 sample".to_string() } else { format!("batches hold 1 to {max}") })]
    InvalidBatchSize { got: usize, max: usize },

    /// The training loss or gradients became NaN or infinite.
    #[error("the training loss became {value} at epoch {epoch}, step {step}{}", match checkpoint {
        Some(p) => format!("; the last good checkpoint is {} (continue with --resume)", p.display()),
        None => String::new(),
    })]
    NonFiniteLoss {
        epoch: usize,
        step: u64,
        value: f64,
        checkpoint: Option<std::path::PathBuf>,
    },

    /// Training left a parameter NaN or infinite (with a finite loss, e.g. a huge learning
    /// rate): nothing is saved over the last good checkpoint.
    #[error("a parameter became non-finite in epoch {epoch} (lower the learning rate or clip gradients){}", match checkpoint {
        Some(p) => format!("; the last good checkpoint is {} (continue with --resume)", p.display()),
        None => String::new(),
    })]
    NonFiniteParameters {
        epoch: usize,
        checkpoint: Option<std::path::PathBuf>,
    },

    /// The GPU device was lost (driver reset, removal, or destroyed) or ran out of memory.
    #[error("the GPU device was lost: {reason}{}", match checkpoint {
        Some(p) => format!("; the last good checkpoint is {} (continue with --resume)", p.display()),
        None => String::new(),
    })]
    DeviceLost {
        reason: String,
        checkpoint: Option<std::path::PathBuf>,
    },

    /// A path to read or write names something that is not a regular file (a folder, a FIFO,
    /// a device, a loop of symlinks): nothing is written over it, and it is not read (a FIFO
    /// blocks a reader until a writer comes, a device may never end).
    #[error("refusing to {action} {path}: it is {kind}, not a regular file")]
    NotARegularFile {
        action: &'static str,
        path: std::path::PathBuf,
        kind: &'static str,
    },

    /// Another process holds the lock of an output folder or file: two runs writing one place
    /// would interleave their histories and overwrite each other's checkpoints.
    #[error("{path} is in use by another run ({holder}): wait for it to finish, or write elsewhere (--out, --save)")]
    InUse { path: std::path::PathBuf, holder: String },

    /// A new run would replace an earlier run's results.
    #[error(
        "{dir} already holds a run ({found}): --resume {checkpoint} continues it, --overwrite replaces it, --out names another folder"
    )]
    RunExists {
        dir: std::path::PathBuf,
        found: String,
        checkpoint: std::path::PathBuf,
    },

    /// An image cannot be read as a digit.
    #[error("cannot read {path} as a digit image: {problem}")]
    InvalidImage { path: std::path::PathBuf, problem: String },

    /// A model needs more memory than there is: checked before anything is allocated.
    #[error("layer {layer} needs {bytes} bytes for {what}, more than the {limit} bytes {limit_name}")]
    OutOfMemory {
        layer: usize,
        what: &'static str,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },

    /// Training diverged: the epoch's loss grew far beyond the first epoch's or past what the
    /// loss head can sanely reach. The last good checkpoint (written by this run) is named.
    #[error("training diverged in epoch {epoch}: train loss {loss:.4e} ({reason}){}", match checkpoint {
        Some(p) => format!("; the last good checkpoint is {} (lower the learning rate and continue with --resume)", p.display()),
        None => " (lower the learning rate)".to_string(),
    })]
    Diverged {
        epoch: usize,
        loss: f64,
        reason: String,
        checkpoint: Option<std::path::PathBuf>,
    },

    /// A training option that cannot be used (batch size 0, negative learning rate, …).
    #[error("invalid training option: {0}")]
    InvalidOption(String),
}

/// Shorthand for `std::result::Result<T, shadergrad::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that a slice or buffer holds exactly `expected` elements.
pub(crate) fn check_len(op: &'static str, what: &'static str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            what,
            expected,
            got,
        })
    }
}

/// Checks that every named dimension is at least 1.
pub(crate) fn check_nonzero(op: &'static str, dims: &[(&'static str, usize)]) -> Result<()> {
    match dims.iter().find(|(_, size)| *size == 0) {
        Some((dim, _)) => Err(Error::EmptyDimension { op, dim }),
        None => Ok(()),
    }
}
