//! Where training runs: the CPU backend or a GPU, and how a command-line `--backend` picks one.

use std::sync::Arc;

use super::{Backend, CpuBackend, GpuBackend, TrainConfig};
use crate::error::{Error, Result};
use crate::gpu::{AdapterRequest, GpuContext};
use crate::model::{Network, NetworkSpec};

/// Where training runs.
#[derive(Debug, Clone)]
pub enum Device {
    /// The CPU backend (gemm on every core).
    Cpu,
    /// A GPU through wgpu.
    Gpu(Arc<GpuContext>),
}

impl Device {
    /// The backend that runs `network` with `config` on this device.
    pub(crate) fn backend(&self, network: Network, config: &TrainConfig) -> Result<Box<dyn Backend>> {
        Ok(match self {
            Device::Cpu => Box::new(CpuBackend::new(network, config)?),
            Device::Gpu(ctx) => Box::new(GpuBackend::new(Arc::clone(ctx), &network, config)?),
        })
    }

    /// Checks, before anything is allocated, that training `spec` with `config` fits this
    /// device: host memory for the CPU (parameters, gradients, moments, activations), the
    /// device's buffer and binding limits for a GPU. Errors name the layer and the limit.
    pub fn check_model(&self, spec: &NetworkSpec, config: &TrainConfig) -> Result<()> {
        config.validate()?;
        match self {
            Device::Cpu => {
                crate::memory::check_host(spec, 3 + config.optimizer.state_tensors() as u64, config.batch_size)
            }
            Device::Gpu(ctx) => super::gpu::check_model(ctx, spec, config.batch_size),
        }
    }
}

/// Which backend a user asked for, as `--backend auto|gpu|cpu` spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The GPU when wgpu finds an adapter, else the CPU backend (with the reason).
    #[default]
    Auto,
    /// A GPU, or an error naming the adapters there are.
    Gpu,
    /// The CPU backend.
    Cpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            _ => Err(Error::InvalidOption(format!(
                "unknown backend {:?}; expected auto, gpu or cpu",
                s.chars().take(40).collect::<String>()
            ))),
        }
    }
}

impl Device {
    /// Opens the backend `choice` names, with the adapter the environment selects
    /// ([`AdapterRequest::from_env`]). With [`BackendChoice::Auto`], a machine without a GPU
    /// adapter gets [`Device::Cpu`] and the error that says why, for a one-line notice; an
    /// adapter that exists but fails to open, a `SHADERGRAD_BACKEND`/`SHADERGRAD_ADAPTER` that
    /// matches nothing, or a bad setting is still an error, since a GPU was there or asked for.
    pub fn open(choice: BackendChoice) -> Result<(Device, Option<Error>)> {
        match choice {
            BackendChoice::Cpu => Ok((Device::Cpu, None)),
            BackendChoice::Gpu => Ok((Device::Gpu(Arc::new(GpuContext::new()?)), None)),
            BackendChoice::Auto => {
                let request = AdapterRequest::from_env()?;
                match GpuContext::with_request(&request) {
                    Ok(ctx) => Ok((Device::Gpu(Arc::new(ctx)), None)),
                    Err(e @ Error::NoAdapter { .. })
                        if request.backend.is_none() && request.name_contains.is_none() =>
                    {
                        Ok((Device::Cpu, Some(e)))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}
