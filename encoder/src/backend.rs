//! The burn backends quarry computes on, and the choices that pick one: the device
//! ([`ComputeDevice`]) and the floating-point type ([`Precision`]).
//!
//! Everything backend-specific in the crate starts from here: `encode` builds its encoders
//! on these backends, `cuda` recognises burn-cuda tensors by [`CudaBackend`], and `frozen`
//! picks its GEMMs by the inner backend of an autodiff one. This module imports none of
//! them, so the dependencies run one way.

use burn::tensor::{backend::Backend, DType};
use serde::{Deserialize, Serialize};

use crate::EncoderError;

/// CPU backend.
pub type CpuBackend = burn_ndarray::NdArray<f32>;
/// CUDA backend (kernels fused and autotuned; dtype chosen at load time).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;

/// Where an encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComputeDevice {
    /// burn-ndarray on the CPU threads (f32 only).
    Cpu,
    /// burn-cuda on the GPU with this index (needs the `cuda` feature).
    Cuda(usize),
}

/// Floating-point type of weights and activations. Norm statistics are
/// always computed in f32. Half types are meant for CUDA; the CPU backend
/// runs f32 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    F32,
    BF16,
    F16,
}

impl Precision {
    fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::BF16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }
}

/// The burn dtype of `precision`, or an error if `device` cannot compute in it.
pub(crate) fn supported_dtype<B: Backend>(
    precision: Precision,
    device: &B::Device,
) -> Result<DType, EncoderError> {
    let dtype = precision.dtype();
    if !B::supports_dtype(device, dtype) {
        return Err(EncoderError::Backend(format!(
            "{} does not support {precision:?} on {device:?}",
            B::name(device)
        )));
    }
    Ok(dtype)
}

/// The same value under the type the caller has checked it has (by `TypeId`): how the
/// backend-generic layers hand tensors to backend-specific code.
pub(crate) fn retype<From: 'static, To: 'static>(value: From) -> To {
    let boxed: Box<dyn std::any::Any> = Box::new(value);
    *boxed
        .downcast::<To>()
        .expect("caller checked the backend type")
}

/// Points burn-cuda's kernel autotune cache at `directory` so that tuning
/// done by one process is reused by the next (first-pass autotune costs
/// tens of seconds per new shape). cubecl's default puts it under the
/// `target/` folder of whatever Cargo project the current directory is in,
/// which for an installed binary is an accident of where it was started.
/// A `cubecl.toml` naming another cache location wins. Must run before the
/// first GPU use; later calls (or a config already in use) change nothing.
/// Returns the directory in force, if this call set it.
#[cfg(feature = "cuda")]
pub fn use_gpu_tuning_cache(directory: &std::path::Path) -> Option<std::path::PathBuf> {
    use burn::cubecl::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};
    let storage = CubeClRuntimeConfig::storage();
    let mut state = storage.lock();
    if state.is_some() {
        return None;
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if !matches!(config.autotune.cache, CacheConfig::Target) {
        // The user configured a location: respect it.
        *state = Some(std::sync::Arc::new(config));
        return None;
    }
    config.autotune.cache = CacheConfig::File(directory.to_path_buf());
    *state = Some(std::sync::Arc::new(config));
    Some(directory.to_path_buf())
}

/// How many CUDA devices this process can see (0 in a build without the
/// `cuda` feature or on a machine without a driver).
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "cuda")]
    {
        // cubecl's CUDA device type id is 0.
        std::panic::catch_unwind(|| CudaBackend::device_count(0)).unwrap_or(0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        0
    }
}
