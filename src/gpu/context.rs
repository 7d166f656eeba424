//! The device: adapter choice, limits, error capture, and the pipeline cache.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::kernels::PipelineCache;

/// Which adapter to open: every field narrows the choice; `None` means "any".
///
/// [`AdapterRequest::from_env`] reads `SHADERGRAD_BACKEND` (`vulkan|metal|dx12|gl`),
/// `SHADERGRAD_ADAPTER` (a case-insensitive substring of the adapter name), `SHADERGRAD_MATMUL`
/// (`auto|block|tiled|rows`), `SHADERGRAD_CONV` (`auto|im2col|implicit`),
/// `SHADERGRAD_PAIRING` (`auto|timed|paired|separate`), `SHADERGRAD_CACHE_DIR`,
/// `SHADERGRAD_WGSL_LOG` and `SHADERGRAD_COMPILE_TIMES`: the crate's only reads of the
/// environment besides `MNIST_DIR` (the data's default folder, `data::Mnist`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdapterRequest {
    /// Only adapters of this backend.
    pub backend: Option<wgpu::Backend>,
    /// Only adapters whose name contains this (case-insensitive).
    pub name_contains: Option<String>,
    /// Open the device with at most this `max_storage_buffer_binding_size`: simulates a smaller
    /// GPU (tests use it to exercise layers split across bindings on small layers).
    pub max_storage_binding_bytes: Option<u64>,
    /// Open the device with at most this `max_buffer_size`.
    pub max_buffer_bytes: Option<u64>,
    /// Run this matmul kernel everywhere instead of choosing per shape class by timing.
    pub matmul_kernel: Option<crate::gpu::matmul::MatmulKernel>,
    /// The folder where timed kernel choices are kept between runs; `None`: not kept.
    pub kernel_cache_dir: Option<std::path::PathBuf>,
    /// Run every convolution on this path instead of following the matmul choice.
    pub conv_path: Option<crate::gpu::ConvPath>,
    /// Whether a dense layer's weight and input gradients share one launch: timed (except on a
    /// CPU adapter), timed everywhere, or forced.
    pub pairing: crate::gpu::PairingRequest,
    /// Record every pipeline compiled, with its module's text, in this folder
    /// (`SHADERGRAD_WGSL_LOG`; see `tests/webgpu/check_modules.py`).
    pub wgsl_log_dir: Option<std::path::PathBuf>,
    /// Print how long each pipeline took to compile (`SHADERGRAD_COMPILE_TIMES`, any value).
    pub log_compile_times: bool,
}

impl AdapterRequest {
    /// The request described by the `SHADERGRAD_*` variables (see the type's documentation).
    /// Names are case-insensitive; a value that is not UTF-8 or names nothing is an error that
    /// lists what the variable takes.
    pub fn from_env() -> Result<Self> {
        let backend = env_setting("SHADERGRAD_BACKEND")?
            .map(|v| parse_backend(&v))
            .transpose()?;
        let name_contains = env_setting("SHADERGRAD_ADAPTER")?;
        let kernels: Vec<&str> = crate::gpu::MatmulKernel::ALL.iter().map(|k| k.name()).collect();
        let matmul_kernel = match env_setting("SHADERGRAD_MATMUL")?.map(|v| v.to_ascii_lowercase()) {
            None => None,
            Some(name) if name == "auto" => None,
            Some(name) => Some(crate::gpu::matmul::MatmulKernel::from_name(&name).ok_or_else(|| {
                bad_env_var(
                    "SHADERGRAD_MATMUL",
                    &name,
                    format!("one of auto, {}", kernels.join(", ")),
                )
            })?),
        };
        let conv_path = match env_setting("SHADERGRAD_CONV")?.map(|v| v.to_ascii_lowercase()) {
            None => None,
            Some(name) if name == "auto" => None,
            Some(name) => Some(
                crate::gpu::ConvPath::from_name(&name)
                    .ok_or_else(|| bad_env_var("SHADERGRAD_CONV", &name, "one of auto, im2col, implicit".into()))?,
            ),
        };
        let pairing = match env_setting("SHADERGRAD_PAIRING")?.map(|v| v.to_ascii_lowercase()) {
            None => crate::gpu::PairingRequest::Auto,
            Some(name) => crate::gpu::PairingRequest::from_name(&name).ok_or_else(|| {
                bad_env_var(
                    "SHADERGRAD_PAIRING",
                    &name,
                    "one of auto, timed, paired, separate".into(),
                )
            })?,
        };
        Ok(AdapterRequest {
            backend,
            name_contains,
            matmul_kernel,
            conv_path,
            pairing,
            kernel_cache_dir: crate::gpu::tuning::cache_dir(),
            wgsl_log_dir: std::env::var_os("SHADERGRAD_WGSL_LOG")
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from),
            log_compile_times: std::env::var_os("SHADERGRAD_COMPILE_TIMES").is_some_and(|v| !v.is_empty()),
            ..AdapterRequest::default()
        })
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.backend {
            parts.push(format!("backend {}", b.to_str()));
        }
        if let Some(n) = &self.name_contains {
            parts.push(format!("name containing {n:?}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" matching {}", parts.join(" and "))
        }
    }

    fn matches(&self, info: &wgpu::AdapterInfo) -> bool {
        self.backend.is_none_or(|b| b == info.backend)
            && self
                .name_contains
                .as_ref()
                .is_none_or(|n| info.name.to_lowercase().contains(&n.to_lowercase()))
    }
}

/// Parses a backend name as written in `SHADERGRAD_BACKEND`.
pub fn parse_backend(value: &str) -> Result<wgpu::Backend> {
    match value.trim().to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backend::Vulkan),
        "metal" => Ok(wgpu::Backend::Metal),
        "dx12" | "d3d12" => Ok(wgpu::Backend::Dx12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backend::Gl),
        _ => Err(bad_env_var(
            "SHADERGRAD_BACKEND",
            value,
            "one of vulkan, metal, dx12, gl".into(),
        )),
    }
}

/// A variable's trimmed value; `None` when unset or empty. A value that is not UTF-8 is an
/// error rather than silently ignored.
fn env_setting(var: &'static str) -> Result<Option<String>> {
    match std::env::var(var) {
        Ok(value) => Ok(Some(value.trim().to_string()).filter(|v| !v.is_empty())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(bad_env_var(
            var,
            &raw.to_string_lossy(),
            "UTF-8 text (this value is not)".into(),
        )),
    }
}

/// [`Error::BadEnvVar`], with a long value cut to its first 60 characters.
fn bad_env_var(var: &'static str, value: &str, expected: String) -> Error {
    const SHOWN: usize = 60;
    let chars = value.chars().count();
    let value = if chars > SHOWN {
        format!(
            "{}… ({chars} characters)",
            value.chars().take(SHOWN).collect::<String>()
        )
    } else {
        value.to_string()
    };
    Error::BadEnvVar { var, value, expected }
}

fn backend_bit(b: wgpu::Backend) -> wgpu::Backends {
    match b {
        wgpu::Backend::Vulkan => wgpu::Backends::VULKAN,
        wgpu::Backend::Metal => wgpu::Backends::METAL,
        wgpu::Backend::Dx12 => wgpu::Backends::DX12,
        wgpu::Backend::Gl => wgpu::Backends::GL,
        _ => wgpu::Backends::empty(),
    }
}

/// Hardware first; a software adapter (lavapipe, WARP) only when nothing else is there.
fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The workgroup size of the subgroup kernels (`matmul_cpu_subgroup.wgsl`,
/// `conv_implicit_subgroup.wgsl`), whose lanes share operands with `subgroupBroadcast`.
pub const SUBGROUP_KERNEL_LANES: u32 = 8;

/// The rule that offers the subgroup kernels: the device has subgroups, and its *smallest*
/// subgroup holds a whole workgroup of [`SUBGROUP_KERNEL_LANES`], so every lane of a workgroup
/// is in one subgroup and broadcasts reach all of them. Any larger size (lavapipe: 8, or 16 with
/// `LP_NATIVE_VECTOR_WIDTH=512`; 32 or 64 on GPUs) qualifies: a workgroup then fills part of one
/// subgroup. A smaller one (SwiftShader: 4) would split a workgroup across subgroups, so the
/// plain kernels run there.
fn runs_subgroup_kernels(features: wgpu::Features, info: &wgpu::AdapterInfo) -> bool {
    features.contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= SUBGROUP_KERNEL_LANES
}

/// "subgroups of 8 to 8 lanes", or "none".
fn subgroup_sizes(features: wgpu::Features, info: &wgpu::AdapterInfo) -> String {
    if features.contains(wgpu::Features::SUBGROUP) {
        format!(
            "subgroups of {} to {} lanes",
            info.subgroup_min_size, info.subgroup_max_size
        )
    } else {
        "no subgroups".to_string()
    }
}

/// An open GPU device with its queue, limits and compiled kernels.
///
/// Cheap to share: wrap it in an [`Arc`]; it is `Send + Sync`.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    pub(crate) pipelines: PipelineCache,
    /// Bound where a kernel's layout has a slot the chosen variant does not read.
    pub(crate) placeholder: wgpu::Buffer,
    /// Bound where a kernel's layout has a writable slot the chosen variant does not write (a
    /// buffer may not be bound read-only and writable in one dispatch, so not the placeholder).
    scratch: wgpu::Buffer,
    /// Which matmul kernel each shape class runs, chosen by timing (see `gpu/tuning.rs`).
    pub(crate) tuner: crate::gpu::tuning::Tuner,
    /// The convolution path `SHADERGRAD_CONV` forces, if any.
    conv_path: Option<crate::gpu::ConvPath>,
    /// Bind groups (and uniform buffers) created so far: a steady training loop creates none.
    pub(crate) prepared: std::sync::atomic::AtomicU64,
    /// wgpu errors raised outside an error scope, kept until the next check.
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Why the device was lost, once it has been (driver reset, removal, `destroy`).
    lost: Arc<Mutex<Option<String>>>,
    /// Buffers of this context alive now.
    pub(crate) live: Arc<crate::gpu::buffer::LiveBuffers>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext").field("adapter", &self.describe()).finish()
    }
}

impl GpuContext {
    /// Opens the adapter chosen by the environment (see [`AdapterRequest::from_env`]).
    pub fn new() -> Result<Self> {
        Self::with_request(&AdapterRequest::from_env()?)
    }

    /// Opens the best adapter matching `request`: hardware first, software otherwise. Blocks
    /// until the device is ready; in a browser, which cannot block, use
    /// [`GpuContext::with_request_async`].
    pub fn with_request(request: &AdapterRequest) -> Result<Self> {
        block_on(Self::with_request_async(request))?
    }

    /// [`GpuContext::with_request`] as a future: in a browser the adapter and the device come
    /// from promises, so this is the form a page awaits.
    pub async fn with_request_async(request: &AdapterRequest) -> Result<Self> {
        let backends = request.backend.map_or(wgpu::Backends::all(), backend_bit);
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = instance.enumerate_adapters(backends).await;
        let adapter = adapters
            .iter()
            .filter(|a| request.matches(&a.get_info()))
            .min_by_key(|a| preference(a.get_info().device_type))
            .cloned();
        let Some(adapter) = adapter else {
            return Err(Error::NoAdapter {
                request: request.describe(),
                available: list_adapters(),
            });
        };
        Self::from_adapter(adapter, request).await
    }

    async fn from_adapter(adapter: wgpu::Adapter, request: &AdapterRequest) -> Result<Self> {
        let info = adapter.get_info();
        // The adapter's own limits, not WebGPU's defaults: buffers as large as the device allows.
        let mut limits = adapter.limits();
        if let Some(bytes) = request.max_storage_binding_bytes {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(bytes);
        }
        if let Some(bytes) = request.max_buffer_bytes {
            limits.max_buffer_size = limits.max_buffer_size.min(bytes);
        }
        let features = adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP);
        let subgroups = runs_subgroup_kernels(features, &info);
        if let Some(kernel) = request.matmul_kernel.filter(|k| k.needs_subgroups() && !subgroups) {
            return Err(Error::DeviceRequest {
                adapter: info.name.clone(),
                reason: format!(
                    "the matmul kernel {} needs subgroups of at least {SUBGROUP_KERNEL_LANES} lanes; this adapter has {}",
                    kernel.name(),
                    subgroup_sizes(features, &info)
                ),
            });
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("shadergrad"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::DeviceRequest {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *lost_sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{reason:?}: {message}"));
        });
        let placeholder = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("placeholder"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let scratch = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scratch"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let tuner = crate::gpu::tuning::Tuner::new(
            &info,
            subgroups,
            (request.matmul_kernel, request.pairing),
            request.kernel_cache_dir.as_deref(),
        );
        let backend = info.backend;
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            pipelines: PipelineCache::new(backend, (request.wgsl_log_dir.clone(), request.log_compile_times)),
            placeholder,
            scratch,
            tuner,
            conv_path: request.conv_path,
            prepared: std::sync::atomic::AtomicU64::new(0),
            uncaptured,
            lost,
            live: Arc::default(),
        })
    }

    /// The placeholder bound where a kernel variant does not read a slot.
    pub(crate) fn placeholder_binding(&self) -> crate::gpu::buffer::Binding<'_> {
        (&self.placeholder).into()
    }

    /// The scratch buffer bound where a kernel variant does not write a writable slot.
    pub(crate) fn scratch_binding(&self) -> crate::gpu::buffer::Binding<'_> {
        (&self.scratch).into()
    }

    /// The device's subgroup sizes and whether the subgroup kernels run on it (see
    /// [`SUBGROUP_KERNEL_LANES`]).
    pub fn describe_subgroups(&self) -> String {
        let features = self.device.features();
        let offered = if runs_subgroup_kernels(features, &self.info) {
            "the subgroup kernels run here"
        } else {
            "the subgroup kernels are not offered"
        };
        format!(
            "{} ({offered}: they need subgroups of at least {SUBGROUP_KERNEL_LANES} lanes)",
            subgroup_sizes(features, &self.info)
        )
    }

    /// Whether this device runs `kernel` (the subgroup kernel needs subgroups of 8+ lanes).
    pub fn runs(&self, kernel: crate::gpu::MatmulKernel) -> bool {
        self.tuner.runs(kernel)
    }

    /// The matmul kernels this device runs: the candidates its timing chooses from.
    pub fn matmul_kernels(&self) -> Vec<crate::gpu::MatmulKernel> {
        crate::gpu::MatmulKernel::ALL
            .into_iter()
            .filter(|&k| self.runs(k))
            .collect()
    }

    /// The file timed kernel choices are kept in, or why they are not kept (no cache folder,
    /// or one that cannot be read or written: reported once on stderr when met).
    pub fn kernel_cache(&self) -> std::result::Result<&std::path::Path, String> {
        self.tuner.cache_status()
    }

    /// The matmul kernel each shape class met so far runs, and how it was chosen.
    pub fn matmul_choices(&self) -> Vec<(crate::gpu::ShapeClass, crate::gpu::MatmulChoice)> {
        self.tuner.choices()
    }

    /// Whether each dense layer's gradients met so far share one launch, and how that was chosen.
    pub fn pairing_choices(&self) -> Vec<(crate::gpu::PairClass, crate::gpu::Pairing, crate::gpu::ChoiceSource)> {
        self.tuner.pairings()
    }

    /// The convolution path `SHADERGRAD_CONV` forces on this device, if it names one.
    pub fn forced_conv_path(&self) -> Option<crate::gpu::ConvPath> {
        self.conv_path
    }

    /// The matmul kernel `SHADERGRAD_MATMUL` forces on this device, if it names one.
    pub fn forced_matmul_kernel(&self) -> Option<crate::gpu::matmul::MatmulKernel> {
        self.tuner.forced()
    }

    /// The adapter in use.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Whether this is a software (CPU) adapter such as lavapipe or WARP.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// One line naming the adapter: name, backend, device type and driver.
    pub fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "{} ({}, {:?}, driver {} {})",
            i.name,
            i.backend.to_str(),
            i.device_type,
            if i.driver.is_empty() { "?" } else { &i.driver },
            i.driver_info
        )
        .trim_end()
        .to_string()
    }

    /// The wgpu device, for callers that record their own work beside shadergrad's.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Runs `f` inside error scopes (thread-local in wgpu), so validation errors, out-of-memory
    /// and internal errors it raises come back as an [`Error::Gpu`] for this caller alone.
    pub(crate) fn scoped<R>(&self, context: &str, f: impl FnOnce() -> R) -> Result<R> {
        self.check_lost()?;
        if cfg!(target_arch = "wasm32") {
            // A browser settles error scopes asynchronously, and a page cannot block on them:
            // its errors arrive through the uncaptured-error handler and the next read (or
            // `wait`) reports them.
            let result = f();
            return self.take_errors(context).map(|()| result);
        }
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let result = f();
        // Scopes pop innermost first.
        let errors = [
            pollster::block_on(internal.pop()),
            pollster::block_on(oom.pop()),
            pollster::block_on(validation.pop()),
        ];
        let messages: Vec<String> = errors.into_iter().flatten().map(|e| e.to_string()).collect();
        self.check_lost()?;
        if messages.is_empty() {
            Ok(result)
        } else {
            Err(Error::Gpu {
                context: context.to_string(),
                message: messages.join("; "),
            })
        }
    }

    /// `(buffers, bytes)` of this context's [`crate::gpu::GpuBuffer`]s alive now.
    pub fn live_buffers(&self) -> (i64, i64) {
        self.live.get()
    }

    /// Whether the device has been lost, and why.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// [`Error::DeviceLost`] once the device is gone: every later operation reports it.
    pub(crate) fn check_lost(&self) -> Result<()> {
        match self.lost_reason() {
            Some(reason) => Err(Error::DeviceLost {
                reason,
                checkpoint: None,
            }),
            None => Ok(()),
        }
    }

    /// Destroys the device, as a driver reset or an unplugged GPU would: for testing recovery.
    /// Every later operation on this context returns [`Error::DeviceLost`].
    pub fn simulate_device_loss(&self) {
        self.device.destroy();
        let _ = self.device.poll(wgpu::PollType::Poll);
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        lost.get_or_insert_with(|| "Destroyed: simulated device loss".to_string());
    }

    /// Turns wgpu errors raised outside any scope since the last check into an [`Error::Gpu`].
    pub(crate) fn take_errors(&self, context: &str) -> Result<()> {
        self.check_lost()?;
        let mut errors = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            return Ok(());
        }
        let message = errors.join("; ");
        errors.clear();
        Err(Error::Gpu {
            context: context.to_string(),
            message,
        })
    }

    /// Blocks until all submitted work has finished (a no-op in a browser, where the device is
    /// polled by the page's event loop).
    pub fn wait(&self) -> Result<()> {
        self.check_lost()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                context: "waiting for the device".into(),
                message: e.to_string(),
            })?;
        self.take_errors("waiting for the device")
    }
}

/// Every adapter wgpu can see on this machine, one per line, for error messages.
pub fn list_adapters() -> String {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapters = block_on(instance.enumerate_adapters(wgpu::Backends::all())).unwrap_or_default();
    if adapters.is_empty() {
        return "none (install a Vulkan driver, e.g. `apt-get install mesa-vulkan-drivers` for lavapipe)".to_string();
    }
    adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({}, {:?})", i.name, i.backend.to_str(), i.device_type)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs a future to completion on this thread: the blocking API on native. A browser cannot
/// block (its promises settle only when the page yields), so there the blocking forms are an
/// error that names the awaitable one.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    if cfg!(target_arch = "wasm32") {
        return Err(Error::Unsupported {
            what: "a blocking GPU call in a browser: use the async form (with_request_async, read_async)".into(),
        });
    }
    Ok(pollster::block_on(future))
}
