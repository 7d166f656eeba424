//! The empirical choice of matmul kernel. The first time a device meets a matmul *shape class*
//! (form, size bucket, vec4 alignment) it times every candidate kernel on that shape with
//! timestamp queries (wall clock where the adapter has none), keeps the fastest, and writes the
//! choice to the user's cache folder, keyed by adapter, driver and crate version, so later runs
//! start without timing. `SHADERGRAD_MATMUL=<name>` (or [`crate::gpu::AdapterRequest`]'s
//! `matmul_kernel`) forces one kernel instead.
//!
//! Timing is bounded: once [`TIMING_BUDGET_SECONDS`] of kernel time has been spent on a device,
//! a new class takes the choice of the nearest class already measured (same form and alignment),
//! or the adapter type's default, and is measured on a later run.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::gpu::matmul::MatmulKernel;
use crate::ops::{MatmulDims, MatmulForm};

/// The most kernel time one device spends timing candidates, over all shape classes.
pub const TIMING_BUDGET_SECONDS: f64 = 0.5;

/// How many times each candidate is timed (the fastest run counts).
const TIMING_ROUNDS: usize = 2;

/// The file, in the cache folder, that keeps the choices.
const CACHE_FILE: &str = "matmul-kernels.json";

/// Matmuls that the same kernel should win: same form, same vec4 alignment of A and B, and work
/// `m·k·n` within the same factor-of-8 bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeClass {
    /// Which operands are transposed.
    pub form: MatmulForm,
    /// `⌈log₂(m·k·n) / 3⌉`.
    pub size_bucket: u32,
    /// Whether A's and B's rows can be read as whole vec4s.
    pub aligned: bool,
}

impl ShapeClass {
    /// The class of a `form` product of `dims` (`aligned`: A's and B's rows are whole vec4s).
    pub fn of(form: MatmulForm, dims: MatmulDims, aligned: bool) -> Self {
        let work = (dims.m as u64 * dims.k as u64 * dims.n as u64).max(1);
        let log2 = 64 - (work - 1).leading_zeros();
        ShapeClass {
            form,
            size_bucket: log2.div_ceil(3),
            aligned,
        }
    }

    /// The candidates for this class on a device with (`subgroups`) or without subgroups of 8+
    /// lanes. The row-block kernels run only on aligned operands: on others they would need a
    /// second large scalar variant, seconds of compilation on lavapipe. With subgroups the plain
    /// row-block kernel is not timed: the subgroup one beat it on every aligned class of the
    /// default network on lavapipe (1.1–1.8×), and each candidate costs a compilation (about
    /// 2 s per row-block variant with a cold shader cache). It can still be forced.
    pub fn candidates(self, subgroups: bool) -> Vec<MatmulKernel> {
        MatmulKernel::ALL
            .into_iter()
            .filter(|k| self.aligned || !k.is_row_block())
            .filter(|k| {
                if subgroups {
                    *k != MatmulKernel::RowBlock
                } else {
                    !k.needs_subgroups()
                }
            })
            .collect()
    }

    fn key(self) -> String {
        format!(
            "{:?} work~2^{} {}",
            self.form,
            self.size_bucket * 3,
            if self.aligned { "aligned" } else { "unaligned" }
        )
    }
}

/// A dense layer's backward products as the pairing decision sees them: the kernel both run when
/// paired (the weight gradient's), and the shape classes of `dW = dZᵀ·X` and `dX = dZ·W`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairClass {
    /// The kernel the pair would run (the weight gradient's).
    pub kernel: MatmulKernel,
    /// The class of `dW = dZᵀ·X`.
    pub weight_grad: ShapeClass,
    /// The class of `dX = dZ·W`.
    pub input_grad: ShapeClass,
}

impl PairClass {
    fn key(self) -> String {
        format!(
            "pair {} | {} | {}",
            self.kernel.name(),
            self.weight_grad.key(),
            self.input_grad.key()
        )
    }
}

/// Whether a layer's weight and input gradients run as one launch of the paired kernel
/// (`gpu/matmul_pair.rs`) or as two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pairing {
    /// One launch of the paired kernel.
    Paired,
    /// Two launches, each product on its own kernel.
    Separate,
}

impl Pairing {
    /// Both decisions.
    pub const ALL: [Pairing; 2] = [Pairing::Paired, Pairing::Separate];

    /// The name `SHADERGRAD_PAIRING` takes.
    pub fn name(self) -> &'static str {
        match self {
            Pairing::Paired => "paired",
            Pairing::Separate => "separate",
        }
    }

    /// The pairing called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Pairing::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// How a device decides [`Pairing`] (`SHADERGRAD_PAIRING`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PairingRequest {
    /// Timed on first use, except on a CPU adapter, where it is [`Pairing::Separate`].
    #[default]
    Auto,
    /// Timed on first use on every adapter, CPU ones included.
    Timed,
    /// Always this.
    Forced(Pairing),
}

impl PairingRequest {
    /// The request `SHADERGRAD_PAIRING` names: `auto`, `timed`, `paired` or `separate`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(PairingRequest::Auto),
            "timed" => Some(PairingRequest::Timed),
            _ => Pairing::from_name(name).map(PairingRequest::Forced),
        }
    }
}

/// A decision: the pick, where it came from, and each candidate's timing, fastest first.
type Decision<C> = (C, ChoiceSource, Vec<(C, f64)>);

/// What the tuner chooses between, named in the cache file.
trait Candidate: Copy + PartialEq {
    fn name(self) -> &'static str;
    fn from_name(name: &str) -> Option<Self>;
}

impl Candidate for MatmulKernel {
    fn name(self) -> &'static str {
        MatmulKernel::name(self)
    }
    fn from_name(name: &str) -> Option<Self> {
        MatmulKernel::from_name(name)
    }
}

impl Candidate for Pairing {
    fn name(self) -> &'static str {
        Pairing::name(self)
    }
    fn from_name(name: &str) -> Option<Self> {
        Pairing::from_name(name)
    }
}

/// Where a choice came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceSource {
    /// `SHADERGRAD_MATMUL` named the kernel.
    Forced,
    /// Timed on this device in this run.
    Measured,
    /// Timed on an earlier run, read from the cache file.
    Cached,
    /// The timing budget was spent: the nearest measured class's kernel, or the adapter default.
    Unmeasured,
    /// Not timed, decided by the adapter's type: on a CPU adapter (lavapipe, WARP) a layer's
    /// gradients run as two launches (see `Tuner::choose_pairing`).
    AdapterType,
    /// Not timed: the device cannot run the alternative (a paired kernel binds more storage
    /// buffers per stage than the device allows).
    DeviceLimits,
}

/// The kernel a shape class runs, and the kernel seconds each candidate took when timed.
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulChoice {
    /// The kernel the class runs.
    pub kernel: MatmulKernel,
    /// How it was chosen.
    pub source: ChoiceSource,
    /// `(kernel, seconds per run)` of each candidate timed, fastest first.
    pub timings: Vec<(MatmulKernel, f64)>,
}

/// The kernel choices one program's planning made: each shape class and pair class its matmuls
/// fall in, with what the device runs for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelPlan {
    /// Each matmul shape class and its kernel, in the order the program first needed them.
    pub matmuls: Vec<(ShapeClass, MatmulKernel)>,
    /// Each dense layer's gradient pair and whether it runs as one launch.
    pub pairings: Vec<(PairClass, Pairing)>,
}

/// What the tuner may do on this thread now.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Anything: choose, timing a new class (kernel tests, benches).
    Free,
    /// A program's planning: choose, timing a new class, and note each choice in the plan.
    Planning,
    /// A program's recording: answer from choices already made, or fail. Never times, compiles
    /// a candidate or writes the cache.
    Recording,
}

thread_local! {
    static PHASE: Cell<Phase> = const { Cell::new(Phase::Free) };
    static PLAN: RefCell<KernelPlan> = RefCell::new(KernelPlan::default());
}

/// Runs `f` in `phase` on this thread, restoring the previous phase after (even on a panic).
fn in_phase<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    struct Restore(Phase);
    impl Drop for Restore {
        fn drop(&mut self) {
            PHASE.set(self.0);
        }
    }
    let _restore = Restore(PHASE.replace(phase));
    f()
}

/// Runs `f` as a program's planning: every kernel choice it asks for is made now (timing a shape
/// class the device has not seen on scratch copies, within the budget, and caching the result)
/// and returned as the plan.
pub fn planning<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, KernelPlan)> {
    PLAN.take();
    let out = in_phase(Phase::Planning, f)?;
    Ok((out, PLAN.take()))
}

/// Runs `f` as a program's recording: every kernel choice must have been made by its planning; a
/// class that was not is [`Error::Unplanned`], never timed.
pub fn recording<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    in_phase(Phase::Recording, f)
}

/// Notes a matmul choice in the plan being made on this thread, if one is.
fn note_matmul(class: ShapeClass, kernel: MatmulKernel) {
    if PHASE.get() == Phase::Planning {
        PLAN.with_borrow_mut(|plan| {
            if !plan.matmuls.iter().any(|(c, _)| *c == class) {
                plan.matmuls.push((class, kernel));
            }
        });
    }
}

/// Notes a pairing in the plan being made on this thread, if one is.
fn note_pairing(class: PairClass, pairing: Pairing) {
    if PHASE.get() == Phase::Planning {
        PLAN.with_borrow_mut(|plan| {
            if !plan.pairings.iter().any(|(c, _)| *c == class) {
                plan.pairings.push((class, pairing));
            }
        });
    }
}

/// One device's choices.
pub(crate) struct Tuner {
    forced: Option<MatmulKernel>,
    pairing: PairingRequest,
    /// Whether the adapter is a CPU (each invocation a SIMD lane, a launch a function call).
    cpu_adapter: bool,
    /// Whether the device has subgroups of at least 8 lanes (the subgroup kernel's need).
    subgroups: bool,
    default: MatmulKernel,
    /// Identifies adapter, driver and crate version in the cache file.
    device_key: String,
    cache_path: Option<PathBuf>,
    /// Why the cache file could not be read or written, once it could not (reported once).
    cache_problem: Mutex<Option<String>>,
    state: Mutex<TunerState>,
}

/// The largest cache file read: a real one holds a few KiB; anything past this is not ours.
const MAX_CACHE_BYTES: u64 = 4 << 20;

#[derive(Default)]
struct TunerState {
    choices: BTreeMap<ShapeClass, MatmulChoice>,
    pairings: BTreeMap<PairClass, (Pairing, ChoiceSource)>,
    /// Measured choices of this device read from (and written back to) the cache file.
    cached: Option<HashMap<String, CachedChoice>>,
    spent_seconds: f64,
}

/// One class's entry in the cache file: `{"kernel": "rows", "seconds": {"rows": 0.014, …}}`.
#[derive(Clone)]
struct CachedChoice {
    kernel: String,
    seconds: BTreeMap<String, f64>,
}

impl CachedChoice {
    fn from_json(v: &Value) -> Option<Self> {
        Some(CachedChoice {
            kernel: v.get("kernel")?.as_str()?.to_string(),
            seconds: v
                .get("seconds")?
                .as_object()?
                .iter()
                .filter_map(|(k, s)| Some((k.clone(), s.as_f64()?)))
                .collect(),
        })
    }

    fn to_json(&self) -> Value {
        serde_json::json!({ "kernel": self.kernel, "seconds": self.seconds })
    }
}

impl Tuner {
    /// The tuner of an adapter: `forced` runs one kernel everywhere; choices are cached in
    /// `cache_dir` if given.
    pub fn new(
        info: &wgpu::AdapterInfo,
        subgroups: bool,
        (forced, pairing): (Option<MatmulKernel>, PairingRequest),
        cache_dir: Option<&Path>,
    ) -> Self {
        let default = if info.device_type == wgpu::DeviceType::Cpu {
            if subgroups {
                MatmulKernel::RowBlockSubgroup
            } else {
                MatmulKernel::RowBlock
            }
        } else {
            MatmulKernel::BlockTiled
        };
        Tuner {
            forced,
            pairing,
            cpu_adapter: info.device_type == wgpu::DeviceType::Cpu,
            subgroups,
            default,
            device_key: format!(
                "{} | {:?} | {} {} | shadergrad {}",
                info.name,
                info.backend,
                info.driver,
                info.driver_info,
                env!("CARGO_PKG_VERSION")
            ),
            cache_path: cache_dir.map(|d| d.join(CACHE_FILE)),
            cache_problem: Mutex::default(),
            state: Mutex::default(),
        }
    }

    /// Whether the device runs `kernel`.
    pub fn runs(&self, kernel: MatmulKernel) -> bool {
        self.subgroups || !kernel.needs_subgroups()
    }

    /// The kernel forced on this device, if any.
    pub fn forced(&self) -> Option<MatmulKernel> {
        self.forced
    }

    /// The kernel for `class`: forced, chosen before, cached, or timed now with `time` (which
    /// returns one run's kernel seconds).
    pub fn choose(&self, class: ShapeClass, time: impl FnMut(MatmulKernel) -> Result<f64>) -> Result<MatmulKernel> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(choice) = state.choices.get(&class) {
            note_matmul(class, choice.kernel);
            return Ok(choice.kernel);
        }
        if PHASE.get() == Phase::Recording {
            return Err(Error::Unplanned {
                what: format!("matmul class {}", class.key()),
            });
        }
        let (kernel, source, timings) = match self.forced {
            Some(kernel) => (kernel, ChoiceSource::Forced, Vec::new()),
            None => {
                let fallback = self.nearest(&state, class);
                self.decide(
                    &mut state,
                    class.key(),
                    &class.candidates(self.subgroups),
                    fallback,
                    time,
                )?
            }
        };
        let choice = MatmulChoice {
            kernel,
            source,
            timings,
        };
        state.choices.insert(class, choice);
        note_matmul(class, kernel);
        Ok(kernel)
    }

    /// Whether a dense layer's weight and input gradients of `class` share one launch: forced,
    /// chosen before, cached, or timed now with `time` (kernel seconds of both gradients, paired
    /// or not). Unmeasured (budget spent) means separate launches, the form every adapter runs
    /// well. A CPU adapter is not timed: there a launch is a function call, so pairing saves
    /// nothing, and llvmpipe runs the job branch under an execution mask: the pair measured
    /// 1.2–1.9× slower than two launches on lavapipe (`docs/performance.md`), and timing it
    /// would cost seconds of compilation on a first run.
    pub fn choose_pairing(&self, class: PairClass, time: impl FnMut(Pairing) -> Result<f64>) -> Result<Pairing> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&(pairing, _)) = state.pairings.get(&class) {
            note_pairing(class, pairing);
            return Ok(pairing);
        }
        if PHASE.get() == Phase::Recording {
            return Err(Error::Unplanned { what: class.key() });
        }
        let (pairing, source, _) = match self.pairing {
            PairingRequest::Forced(pairing) => (pairing, ChoiceSource::Forced, Vec::new()),
            PairingRequest::Auto if self.cpu_adapter => (Pairing::Separate, ChoiceSource::AdapterType, Vec::new()),
            PairingRequest::Auto | PairingRequest::Timed => {
                self.decide(&mut state, class.key(), &Pairing::ALL, Pairing::Separate, time)?
            }
        };
        state.pairings.insert(class, (pairing, source));
        note_pairing(class, pairing);
        Ok(pairing)
    }

    /// Records that `class` runs as two launches because the device cannot bind the pair.
    pub fn note_unpairable(&self, class: PairClass) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .pairings
            .entry(class)
            .or_insert((Pairing::Separate, ChoiceSource::DeviceLimits));
        note_pairing(class, Pairing::Separate);
    }

    /// One timed decision among `candidates`, under the cache-file key `key`: cached, or timed
    /// now within the budget, else `fallback` (unmeasured). Returns the pick, where it came from
    /// and the timings, fastest first.
    fn decide<C: Candidate>(
        &self,
        state: &mut TunerState,
        key: String,
        candidates: &[C],
        fallback: C,
        mut time: impl FnMut(C) -> Result<f64>,
    ) -> Result<Decision<C>> {
        if state.cached.is_none() {
            let devices = self.read_cache();
            let mine = devices.get(&self.device_key).and_then(Value::as_object);
            state.cached = Some(
                mine.into_iter()
                    .flatten()
                    .filter_map(|(class, v)| Some((class.clone(), CachedChoice::from_json(v)?)))
                    .collect(),
            );
        }
        // A cached decision stands only if it timed every candidate this device has now: a new
        // kernel (a newer crate, a driver that gained subgroups) is timed, not ignored.
        let cached = state.cached.as_ref().and_then(|c| c.get(&key)).and_then(|c| {
            if !candidates.iter().all(|k| c.seconds.contains_key(k.name())) {
                return None;
            }
            let pick = C::from_name(&c.kernel).filter(|k| candidates.contains(k))?;
            let mut timings: Vec<_> = c
                .seconds
                .iter()
                .filter_map(|(name, s)| Some((C::from_name(name)?, *s)))
                .collect();
            timings.sort_by(|a, b| a.1.total_cmp(&b.1));
            Some((pick, ChoiceSource::Cached, timings))
        });
        if let Some(found) = cached {
            return Ok(found);
        }
        // A browser cannot wait for the device mid-call, so nothing can be timed there.
        if state.spent_seconds >= TIMING_BUDGET_SECONDS || cfg!(target_arch = "wasm32") {
            return Ok((fallback, ChoiceSource::Unmeasured, Vec::new()));
        }
        // Two rounds over the candidates, the faster of each one's two runs kept: a burst of
        // load on a shared machine (or a clock ramping up) then spoils at most one run of each.
        let mut timings: Vec<(C, f64)> = Vec::new();
        for _round in 0..TIMING_ROUNDS {
            for &candidate in candidates {
                // Infinite: the shape was too large to time on scratch copies.
                let seconds = time(candidate)?;
                if !seconds.is_finite() {
                    continue;
                }
                state.spent_seconds += seconds;
                match timings.iter_mut().find(|(c, _)| *c == candidate) {
                    Some((_, best)) => *best = best.min(seconds),
                    None => timings.push((candidate, seconds)),
                }
            }
        }
        timings.sort_by(|a, b| a.1.total_cmp(&b.1));
        Ok(match timings.first() {
            Some(&(pick, _)) => {
                let seconds = timings.iter().map(|(k, s)| (k.name().to_string(), *s)).collect();
                self.remember(state, key, pick.name(), seconds);
                (pick, ChoiceSource::Measured, timings)
            }
            None => (fallback, ChoiceSource::Unmeasured, timings),
        })
    }

    /// Every pairing decision made on this device so far.
    pub fn pairings(&self) -> Vec<(PairClass, Pairing, ChoiceSource)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.pairings.iter().map(|(c, &(p, s))| (*c, p, s)).collect()
    }

    /// Every choice made on this device so far, by class.
    pub fn choices(&self) -> Vec<(ShapeClass, MatmulChoice)> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.choices.iter().map(|(c, m)| (*c, m.clone())).collect()
    }

    /// The kernel of the measured class nearest in size with the same form and alignment, or
    /// the adapter type's default.
    fn nearest(&self, state: &TunerState, class: ShapeClass) -> MatmulKernel {
        state
            .choices
            .iter()
            .filter(|(c, m)| c.form == class.form && c.aligned == class.aligned && m.source != ChoiceSource::Unmeasured)
            .min_by_key(|(c, _)| c.size_bucket.abs_diff(class.size_bucket))
            .map(|(_, m)| m.kernel)
            .unwrap_or(if class.aligned {
                self.default
            } else {
                MatmulKernel::BlockTiled
            })
    }

    /// The cache file's devices: `{"devices": {device key: {class key: choice}}}`.
    fn read_cache(&self) -> serde_json::Map<String, Value> {
        // A missing or corrupt cache only means timing again: it is rewritten whole. One that is
        // not a regular file (a FIFO would block, a device never end) or is too large is not
        // read, and said so once.
        let Some(path) = &self.cache_path else {
            return serde_json::Map::new();
        };
        let bytes = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return serde_json::Map::new(),
            Ok(meta) if meta.is_file() && meta.len() > MAX_CACHE_BYTES => {
                self.report_cache_problem(format!(
                    "{} is {} bytes, more than a kernel cache holds ({MAX_CACHE_BYTES}); not read",
                    path.display(),
                    meta.len()
                ));
                return serde_json::Map::new();
            }
            _ => match crate::files::read_regular(path, "read the kernel cache") {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.report_cache_problem(e.to_string());
                    return serde_json::Map::new();
                }
            },
        };
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|mut v| match v.get_mut("devices").map(Value::take) {
                Some(Value::Object(devices)) => Some(devices),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Keeps the first problem with the cache file and says it once on stderr: the run goes on
    /// (timing again costs seconds, not results), but a user whose every run re-times the
    /// kernels learns why.
    fn report_cache_problem(&self, problem: String) {
        let mut kept = self.cache_problem.lock().unwrap_or_else(|p| p.into_inner());
        if kept.is_none() {
            eprintln!(
                "warning: kernel choices are not cached: {problem} (every run times the kernels again; \
                 set SHADERGRAD_CACHE_DIR to a writable folder, or to empty to turn the cache off)"
            );
            *kept = Some(problem);
        }
    }

    /// Where timed choices are kept, or why they are not.
    pub fn cache_status(&self) -> std::result::Result<&Path, String> {
        if let Some(problem) = self.cache_problem.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(problem);
        }
        self.cache_path
            .as_deref()
            .ok_or_else(|| "SHADERGRAD_CACHE_DIR is empty".to_string())
    }

    /// Adds a measured choice to the cache file (other devices' entries kept). A cache that
    /// cannot be written costs only the timing on the next run: the run goes on, and the
    /// problem is reported once.
    fn remember(&self, state: &mut TunerState, key: String, pick: &str, seconds: BTreeMap<String, f64>) {
        let entry = CachedChoice {
            kernel: pick.to_string(),
            seconds,
        };
        let mine = state.cached.get_or_insert_with(HashMap::new);
        mine.insert(key, entry);
        let Some(path) = &self.cache_path else { return };
        let mut devices = self.read_cache();
        let mine: serde_json::Map<String, Value> = mine.iter().map(|(k, c)| (k.clone(), c.to_json())).collect();
        devices.insert(self.device_key.clone(), Value::Object(mine));
        let json = serde_json::json!({ "devices": devices });
        let written = serde_json::to_vec_pretty(&json)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                crate::files::write_atomically(path, &bytes).map_err(|e| e.to_string())
            });
        if let Err(problem) = written {
            self.report_cache_problem(problem);
        }
    }
}

/// The folder for shadergrad's caches: `SHADERGRAD_CACHE_DIR` if set (empty: no cache), else
/// the platform's user cache folder (`$XDG_CACHE_HOME` or `~/.cache` on Linux,
/// `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows) plus `shadergrad`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SHADERGRAD_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let env_dir = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = if cfg!(windows) {
        env_dir("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        env_dir("HOME").map(|h| h.join("Library/Caches"))
    } else {
        env_dir("XDG_CACHE_HOME").or_else(|| env_dir("HOME").map(|h| h.join(".cache")))
    };
    base.map(|b| b.join("shadergrad"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_classes_bucket_work_by_factors_of_eight() {
        let class = |m, k, n| ShapeClass::of(MatmulForm::ABt, MatmulDims::new(m, k, n), true).size_bucket;
        assert_eq!(class(1, 1, 1), 0);
        assert_eq!(class(2, 2, 2), 1);
        assert_eq!(class(4, 4, 4), 2);
        assert_eq!(class(128, 784, 512), 9, "2^25.6 rounds up to 2^27");
        assert_eq!(class(128, 512, 256), 8);
        let unaligned = ShapeClass::of(MatmulForm::AB, MatmulDims::new(128, 10, 256), false);
        for subgroups in [false, true] {
            assert!(!unaligned.candidates(subgroups).iter().any(|k| k.is_row_block()));
        }
        let aligned = ShapeClass {
            aligned: true,
            ..unaligned
        };
        assert!(aligned.candidates(true).contains(&MatmulKernel::RowBlockSubgroup));
        assert!(!aligned.candidates(true).contains(&MatmulKernel::RowBlock));
        assert!(!aligned.candidates(false).contains(&MatmulKernel::RowBlockSubgroup));
        assert!(aligned.candidates(false).contains(&MatmulKernel::RowBlock));
    }

    #[test]
    fn pairing_requests_and_decisions_have_names() {
        assert_eq!(PairingRequest::from_name("auto"), Some(PairingRequest::Auto));
        assert_eq!(PairingRequest::from_name("timed"), Some(PairingRequest::Timed));
        for p in Pairing::ALL {
            assert_eq!(PairingRequest::from_name(p.name()), Some(PairingRequest::Forced(p)));
            assert_eq!(<Pairing as Candidate>::from_name(Candidate::name(p)), Some(p));
        }
        assert_eq!(PairingRequest::from_name("fused"), None);
    }
}
