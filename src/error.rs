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
        /// The operation that checked the length.
        op: &'static str,
        /// Which tensor or slice was checked.
        what: &'static str,
        /// Elements the shape requires.
        expected: usize,
        /// Elements actually supplied.
        got: usize,
    },

    /// A dimension was zero: every size must be at least 1.
    #[error("{op}: dimension `{dim}` is 0; every size must be at least 1")]
    EmptyDimension {
        /// The operation that checked the dimensions.
        op: &'static str,
        /// Name of the dimension that was 0.
        dim: &'static str,
    },

    /// A class label does not name one of the network's output classes.
    #[error("{op}: label {label} at row {row} is out of range for {classes} classes")]
    LabelOutOfRange {
        /// The operation that checked the labels.
        op: &'static str,
        /// Row (sample) holding the bad label.
        row: usize,
        /// The offending label.
        label: u32,
        /// Number of classes; valid labels are `0..classes`.
        classes: usize,
    },

    /// No adapter matched the request (or the machine has none).
    #[error("no GPU adapter found{request}; available adapters: {available}")]
    NoAdapter {
        /// What was asked for (" matching …"), or empty for any adapter.
        request: String,
        /// The adapters the machine offers, for the message.
        available: String,
    },

    /// An environment variable held a value shadergrad does not understand.
    #[error("environment variable {var}={value:?} is not valid: expected {expected}")]
    BadEnvVar {
        /// Name of the variable.
        var: &'static str,
        /// The value it held.
        value: String,
        /// What values are accepted.
        expected: String,
    },

    /// The adapter refused to create a device.
    #[error("could not open a device on adapter {adapter}: {reason}")]
    DeviceRequest {
        /// Name of the adapter.
        adapter: String,
        /// Why wgpu refused.
        reason: String,
    },

    /// A buffer would exceed what the device allows.
    #[error("{what} needs {bytes} bytes, over the device's {limit_name} of {limit} bytes")]
    BufferTooLarge {
        /// What the buffer would hold.
        what: String,
        /// Size the buffer needs, in bytes.
        bytes: u64,
        /// The device's limit, in bytes.
        limit: u64,
        /// Name of the wgpu limit exceeded (e.g. `max_buffer_size`).
        limit_name: &'static str,
    },

    /// A dispatch would need more workgroups than the device allows in one dimension.
    #[error("{kernel}: {workgroups} workgroups exceed the device's limit of {limit} per dimension")]
    DispatchTooLarge {
        /// Name of the kernel being dispatched.
        kernel: &'static str,
        /// Workgroups the dispatch would need in one dimension.
        workgroups: u64,
        /// The device's maximum workgroups per dimension.
        limit: u32,
    },

    /// wgpu reported a validation error, out-of-memory or similar while running kernels.
    #[error("GPU error in {context}: {message}")]
    Gpu {
        /// What shadergrad was doing when the error was reported.
        context: String,
        /// wgpu's error message.
        message: String,
    },

    /// Reading a buffer back from the device failed (device lost, mapping error).
    #[error("reading {what} back from the GPU failed: {reason}")]
    Readback {
        /// The buffer being read back.
        what: String,
        /// Why the read failed.
        reason: String,
    },

    /// A file operation failed: `action` says what was being done ("read", "create", "write",
    /// "rename a temporary file onto", …) to `path`.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done to the file ("read", "create", …).
        action: &'static str,
        /// The file or folder involved.
        path: std::path::PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A data file is not what its name or header promises.
    #[error("corrupt data file {path}: {problem}")]
    CorruptFile {
        /// The corrupt file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A required data file is not in the folder.
    #[error("{what} not found in {dir}: looked for {tried}")]
    DataNotFound {
        /// Which data file is missing.
        what: &'static str,
        /// The folder searched.
        dir: std::path::PathBuf,
        /// The file names looked for.
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
        /// Index of the layer.
        layer: usize,
        /// Which of its tensors is too large (e.g. "weight").
        what: &'static str,
        /// Size the tensor needs, in bytes.
        bytes: u64,
        /// The device's limit, in bytes.
        limit: u64,
        /// Name of the wgpu limit exceeded.
        limit_name: &'static str,
    },

    /// A checkpoint does not fit the network it is loaded into, or is not a valid checkpoint.
    #[error("checkpoint {path}: {problem}")]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A download failed or delivered something other than the expected file.
    #[error("download of {file} failed: {problem}")]
    Download {
        /// The file being downloaded.
        file: String,
        /// What went wrong.
        problem: String,
    },

    /// A feature, target or input value is NaN or infinite.
    #[error("{what} {index} of sample {sample} is {value}; every value must be finite")]
    NonFiniteInput {
        /// Kind of value ("feature", "target", …).
        what: &'static str,
        /// Index of the sample.
        sample: usize,
        /// Index of the value within the sample.
        index: usize,
        /// The non-finite value.
        value: f32,
    },

    /// A binary cross-entropy target outside [0, 1].
    #[error("binary cross-entropy targets must lie in [0, 1]; target {index} of sample {sample} is {value}")]
    TargetOutOfRange {
        /// Index of the sample.
        sample: usize,
        /// Index of the target within the sample.
        index: usize,
        /// The out-of-range target.
        value: f32,
    },

    /// A dataset (or a slice of one) with no samples.
    #[error("{what} has no samples")]
    EmptyDataset {
        /// The dataset or slice that is empty.
        what: String,
    },

    /// A layer of width 0.
    #[error("layer size {position} in {sizes:?} is 0; every layer needs at least one unit")]
    ZeroSizedLayer {
        /// Index of the zero size in `sizes`.
        position: usize,
        /// The layer sizes given.
        sizes: Vec<usize>,
    },

    /// A batch size of 0, or a batch larger than the backend was built for.
    #[error("batch of {got} samples: {}", if *max == usize::MAX { "a batch holds at least 1 sample".to_string() } else { format!("batches hold 1 to {max}") })]
    InvalidBatchSize {
        /// The batch size asked for.
        got: usize,
        /// The largest batch allowed (`usize::MAX` when unbounded).
        max: usize,
    },

    /// The training loss or gradients became NaN or infinite.
    #[error("the training loss became {value} at epoch {epoch}, step {step}{}", match checkpoint {
        Some(p) => format!("; the last good checkpoint is {} (continue with --resume)", p.display()),
        None => String::new(),
    })]
    NonFiniteLoss {
        /// Epoch in which the loss became non-finite.
        epoch: usize,
        /// The run's step at which it happened.
        step: u64,
        /// The non-finite loss.
        value: f64,
        /// The last good checkpoint this run wrote, if any.
        checkpoint: Option<std::path::PathBuf>,
    },

    /// Training left a parameter NaN or infinite (with a finite loss, e.g. a huge learning
    /// rate): nothing is saved over the last good checkpoint.
    #[error("a parameter became non-finite in epoch {epoch} (lower the learning rate or clip gradients){}", match checkpoint {
        Some(p) => format!("; the last good checkpoint is {} (continue with --resume)", p.display()),
        None => String::new(),
    })]
    NonFiniteParameters {
        /// Epoch after which a parameter was non-finite.
        epoch: usize,
        /// The last good checkpoint this run wrote, if any.
        checkpoint: Option<std::path::PathBuf>,
    },

    /// The GPU device was lost (driver reset, removal, or destroyed) or ran out of memory.
    #[error("the GPU device was lost: {reason}{}", match checkpoint {
        Some(p) => format!("; the last good checkpoint is {} (continue with --resume)", p.display()),
        None => String::new(),
    })]
    DeviceLost {
        /// Why the device was lost, as wgpu reports it.
        reason: String,
        /// The last good checkpoint this run wrote, if any.
        checkpoint: Option<std::path::PathBuf>,
    },

    /// A path to read or write names something that is not a regular file (a folder, a FIFO,
    /// a device, a loop of symlinks): nothing is written over it, and it is not read (a FIFO
    /// blocks a reader until a writer comes, a device may never end).
    #[error("refusing to {action} {path}: it is {kind}, not a regular file")]
    NotARegularFile {
        /// What was about to be done ("read", "write", …).
        action: &'static str,
        /// The offending path.
        path: std::path::PathBuf,
        /// What it is instead ("a folder", "a FIFO", …).
        kind: &'static str,
    },

    /// Another process holds the lock of an output folder or file: two runs writing one place
    /// would interleave their histories and overwrite each other's checkpoints.
    #[error("{path} is in use by another run ({holder}): wait for it to finish, or write elsewhere (--out, --save)")]
    InUse {
        /// The locked folder or file.
        path: std::path::PathBuf,
        /// Who holds the lock (e.g. "process 1234").
        holder: String,
    },

    /// A new run would replace an earlier run's results.
    #[error(
        "{dir} already holds a run ({found}): --resume {checkpoint} continues it, --overwrite replaces it, --out names another folder"
    )]
    RunExists {
        /// The run folder.
        dir: std::path::PathBuf,
        /// What earlier results were found there.
        found: String,
        /// The checkpoint `--resume` would continue from.
        checkpoint: std::path::PathBuf,
    },

    /// An image cannot be read as a digit.
    #[error("cannot read {path} as a digit image: {problem}")]
    InvalidImage {
        /// The image file.
        path: std::path::PathBuf,
        /// Why it cannot be read as a digit.
        problem: String,
    },

    /// A model needs more memory than there is: checked before anything is allocated.
    #[error("layer {layer} needs {bytes} bytes for {what}, more than the {limit} bytes {limit_name}")]
    OutOfMemory {
        /// Index of the first layer that does not fit.
        layer: usize,
        /// What the memory is needed for.
        what: &'static str,
        /// Bytes needed, in total up to this layer.
        bytes: u64,
        /// Bytes available.
        limit: u64,
        /// Where the limit comes from, for the message.
        limit_name: &'static str,
    },

    /// Training diverged: the epoch's loss grew far beyond the first epoch's or past what the
    /// loss head can sanely reach. The last good checkpoint (written by this run) is named.
    #[error("training diverged in epoch {epoch}: train loss {loss:.4e} ({reason}){}", match checkpoint {
        Some(p) => format!("; the last good checkpoint is {} (lower the learning rate and continue with --resume)", p.display()),
        None => " (lower the learning rate)".to_string(),
    })]
    Diverged {
        /// Epoch whose loss diverged.
        epoch: usize,
        /// That epoch's mean training loss.
        loss: f64,
        /// Why the loss counts as diverged.
        reason: String,
        /// The last good checkpoint this run wrote, if any.
        checkpoint: Option<std::path::PathBuf>,
    },

    /// A training option that cannot be used (batch size 0, negative learning rate, …).
    #[error("invalid training option: {0}")]
    InvalidOption(String),
    /// An operation this platform cannot do (a blocking GPU call in a browser).
    #[error("not supported here: {what}")]
    Unsupported {
        /// What was asked.
        what: String,
    },
    /// A program's recording asked for a kernel choice its planning did not make (a bug in
    /// this crate: recording never times kernels).
    #[error("internal error: recording needed a kernel choice the plan did not make ({what})")]
    Unplanned {
        /// The shape class or pair class.
        what: String,
    },
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
