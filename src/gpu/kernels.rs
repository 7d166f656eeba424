//! The WGSL sources, the kernels (entry point + explicit binding layout) they define, and a
//! cache that compiles each (kernel, specialisation) pipeline once per device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A WGSL module: the text the host hands to the device.
pub(crate) struct Shader {
    pub name: &'static str,
    pub source: &'static str,
    /// Built without wgpu's runtime bounds checks (`create_shader_module_trusted`): only for
    /// modules whose every buffer index is clamped or masked in the shader against extents the
    /// host validated (each such shader says how). Bounds checks cost about a third of a
    /// matmul's speed on some GPUs; lavapipe does its own and shows no difference.
    pub trusted: bool,
    /// Calls subgroup builtins: created only on devices with `Features::SUBGROUP`.
    pub subgroups: bool,
}

impl Shader {
    /// The text handed to a device of `backend`. naga (Vulkan, Metal, DX12, GL) takes subgroup
    /// builtins once the device has `Features::SUBGROUP` and refuses `enable subgroups;` (not
    /// implemented in naga 30); a browser's WGSL compiler (Tint in Chromium) requires the
    /// directive. So the sources never carry it, and it is added here for the browser.
    pub fn wgsl_for(&self, backend: wgpu::Backend) -> std::borrow::Cow<'static, str> {
        if self.subgroups && backend == wgpu::Backend::BrowserWebGpu {
            format!("enable subgroups;\n{}", self.source).into()
        } else {
            self.source.into()
        }
    }
}

pub(crate) static MATMUL: Shader = Shader {
    name: "matmul.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/matmul_params.wgsl"),
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul.wgsl")
    ),
    trusted: true,
    subgroups: false,
};
pub(crate) static MATMUL_BLOCK: Shader = Shader {
    name: "matmul_block.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/matmul_params.wgsl"),
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul_block.wgsl")
    ),
    trusted: true,
    subgroups: false,
};
pub(crate) static MATMUL_CPU: Shader = Shader {
    name: "matmul_cpu.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/matmul_params.wgsl"),
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul_cpu.wgsl")
    ),
    trusted: false,
    subgroups: false,
};
/// [`MATMUL_CPU`] sharing A through `subgroupBroadcast`: only on devices with subgroups of at
/// least 8 lanes (the module does not validate without `Features::SUBGROUP`).
pub(crate) static MATMUL_CPU_SUBGROUP: Shader = Shader {
    name: "matmul_cpu_subgroup.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/matmul_params.wgsl"),
        include_str!("../../shaders/matmul_common.wgsl"),
        include_str!("../../shaders/matmul_cpu_subgroup.wgsl")
    ),
    trusted: false,
    subgroups: true,
};
pub(crate) static ELEMENTWISE: Shader = Shader {
    name: "elementwise.wgsl",
    source: concat!(
        include_str!("../../shaders/activation.wgsl"),
        include_str!("../../shaders/elementwise.wgsl")
    ),
    trusted: false,
    subgroups: false,
};
pub(crate) static DATA: Shader = Shader {
    name: "data.wgsl",
    source: include_str!("../../shaders/data.wgsl"),
    trusted: false,
    subgroups: false,
};
pub(crate) static LOSS: Shader = Shader {
    name: "loss.wgsl",
    source: concat!(
        include_str!("../../shaders/optim_state.wgsl"),
        include_str!("../../shaders/optim_step.wgsl"),
        include_str!("../../shaders/loss.wgsl")
    ),
    trusted: false,
    subgroups: false,
};
pub(crate) static OPTIM: Shader = Shader {
    name: "optim.wgsl",
    source: concat!(
        include_str!("../../shaders/optim_state.wgsl"),
        include_str!("../../shaders/optim_step.wgsl"),
        include_str!("../../shaders/optim.wgsl")
    ),
    trusted: false,
    subgroups: false,
};

/// How a kernel uses one binding slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Read,
    ReadWrite,
    Uniform,
}

/// One compute entry point and the layout of what it binds (group 0).
pub(crate) struct Kernel {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub slots: &'static [(u32, Slot)],
}

/// A compiled kernel: its pipeline and the bind-group layout its bind groups are built for.
pub(crate) struct Compiled {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Pipeline-overridable constants that specialise a kernel (`override` in WGSL).
pub(crate) type Constants = Vec<(&'static str, f64)>;

type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// Compiles each shader module and each specialised pipeline once.
pub(crate) struct PipelineCache {
    /// The device's backend: which form of a module's text it takes ([`Shader::wgsl_for`]).
    backend: wgpu::Backend,
    /// Where each compiled pipeline is recorded (`SHADERGRAD_WGSL_LOG`, see `gpu/wgsl_log.rs`).
    wgsl_log: Option<std::path::PathBuf>,
    /// Print each pipeline's compile time (`SHADERGRAD_COMPILE_TIMES`).
    log_compile_times: bool,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<Key, Arc<Compiled>>>,
}

impl PipelineCache {
    /// An empty cache for a device of `backend`, recording what it compiles in `wgsl_log` and
    /// printing compile times with `log_compile_times`.
    pub fn new(backend: wgpu::Backend, (wgsl_log, log_compile_times): (Option<std::path::PathBuf>, bool)) -> Self {
        PipelineCache {
            backend,
            wgsl_log,
            log_compile_times,
            modules: Mutex::default(),
            pipelines: Mutex::default(),
        }
    }

    /// The pipeline for `kernel` with `constants`, compiled on first use.
    pub fn get(&self, device: &wgpu::Device, kernel: &Kernel, constants: &Constants) -> Arc<Compiled> {
        let key: Key = (
            kernel.shader.name,
            kernel.entry,
            constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        );
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = pipelines.get(&key) {
            return Arc::clone(found);
        }
        let t0 = web_time::Instant::now();
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
            modules
                .entry(kernel.shader.name)
                .or_insert_with(|| {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(kernel.shader.name),
                        source: wgpu::ShaderSource::Wgsl(kernel.shader.wgsl_for(self.backend)),
                    };
                    if kernel.shader.trusted {
                        let checks = wgpu::ShaderRuntimeChecks {
                            bounds_checks: false,
                            ..wgpu::ShaderRuntimeChecks::checked()
                        };
                        // SAFETY: `trusted` is set only on modules whose every buffer access is
                        // clamped or masked in the shader to extents the host validated before
                        // binding (see the comment at the top of each such shader), and whose
                        // loops are bounded by uniform sizes.
                        unsafe { device.create_shader_module_trusted(desc, checks) }
                    } else {
                        device.create_shader_module(desc)
                    }
                })
                .clone()
        };
        let entries: Vec<_> = kernel
            .slots
            .iter()
            .map(|&(binding, slot)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match slot {
                    Slot::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Slot::Read | Slot::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: slot == Slot::Read,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(kernel.entry),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(kernel.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Kernels initialise their own workgroup memory; skipping wgpu's zeroing pass saves
                // a barrier per workgroup.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if self.log_compile_times {
            eprintln!(
                "compile {} {} {:?}: {:?}",
                kernel.shader.name,
                kernel.entry,
                constants,
                t0.elapsed()
            );
        }
        if let Some(dir) = &self.wgsl_log {
            crate::gpu::wgsl_log::record(dir, kernel, constants);
        }
        let compiled = Arc::new(Compiled { pipeline, layout });
        pipelines.insert(key, Arc::clone(&compiled));
        compiled
    }

    /// How many distinct pipelines have been compiled.
    pub fn len(&self) -> usize {
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}
