//! The one place that names burn backends: crate features map to backend types and devices.
//!
//! Everything else is generic over `B: Backend`. A [`BackendJob`] is run on the backend a
//! [`DeviceSpec`] names (`--device cpu|wgpu[:N]|cuda[:N]`); the generic code is compiled once per
//! backend feature that is on (`flex` always, `wgpu` and `cuda` by feature).

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;

use crate::error::{ModelError, Result};

/// The pure-Rust CPU backend (`flex`), always compiled; tests and doctests use it.
pub type Cpu = burn::backend::Flex;

/// The wgpu backend (Vulkan, Metal, DX12 or WebGPU), with feature `wgpu`.
#[cfg(feature = "wgpu")]
pub type Wgpu = burn::backend::Wgpu;

/// The CUDA backend, with feature `cuda`.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// The CUDA backend without kernel fusion (`--device cuda-raw`), with feature `cuda`: each op is its
/// own kernel. Slower when fusion works; there to tell fusion problems from CUDA ones.
#[cfg(feature = "cuda")]
pub type CudaRaw = burn_cubecl::CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;

/// Which device to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (`flex`).
    #[default]
    Cpu,
    /// GPU number N through wgpu.
    Wgpu(usize),
    /// GPU number N through CUDA.
    Cuda(usize),
    /// GPU number N through CUDA, without kernel fusion.
    CudaRaw(usize),
}

impl FromStr for DeviceSpec {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        let (kind, index) = match s.split_once(':') {
            Some((kind, index)) => (kind, index.parse().map_err(|_| ModelError::UnknownDevice(s.into()))?),
            None => (s, 0),
        };
        match kind {
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" => Ok(Self::Wgpu(index)),
            "cuda" => Ok(Self::Cuda(index)),
            "cuda-raw" => Ok(Self::CudaRaw(index)),
            _ => Err(ModelError::UnknownDevice(s.into())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Wgpu(i) => write!(f, "wgpu:{i}"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::CudaRaw(i) => write!(f, "cuda-raw:{i}"),
        }
    }
}

/// Work that is generic over the backend; [`run_on`] picks the backend.
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Runs on backend `B` and its `device`.
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// The devices this build can run on.
pub fn available() -> Vec<&'static str> {
    let mut devices = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        devices.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        devices.push("cuda");
        devices.push("cuda-raw");
    }
    devices
}

#[cfg(not(all(feature = "wgpu", feature = "cuda")))]
fn unavailable(requested: &str) -> ModelError {
    ModelError::DeviceUnavailable { requested: requested.into(), available: available().join(", ") }
}

/// Runs `job` on the backend and device `spec` names.
pub fn run_on<J: BackendJob>(spec: DeviceSpec, job: J) -> Result<J::Output> {
    match spec {
        DeviceSpec::Cpu => Ok(job.run::<Cpu>(Default::default())),
        #[cfg(feature = "wgpu")]
        DeviceSpec::Wgpu(index) => {
            let device = if index == 0 {
                burn::backend::wgpu::WgpuDevice::DefaultDevice
            } else {
                burn::backend::wgpu::WgpuDevice::DiscreteGpu(index)
            };
            Ok(job.run::<Wgpu>(device))
        }
        #[cfg(not(feature = "wgpu"))]
        DeviceSpec::Wgpu(_) => Err(unavailable("wgpu")),
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(index) => Ok(job.run::<Cuda>(burn::backend::cuda::CudaDevice::new(index))),
        #[cfg(feature = "cuda")]
        DeviceSpec::CudaRaw(index) => Ok(job.run::<CudaRaw>(burn::backend::cuda::CudaDevice::new(index))),
        #[cfg(not(feature = "cuda"))]
        DeviceSpec::Cuda(_) | DeviceSpec::CudaRaw(_) => Err(unavailable("cuda")),
    }
}
