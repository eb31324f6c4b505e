//! Where encoders run: the `--device` and `--dtype` values users give,
//! checked against what this build can do, and the GPU settings that must
//! be made before the first GPU use (kernel tuning cache, GEMM engine).
//!
//! The binary shows these types; they come from the encoder crate and are
//! re-exported here so that the binary talks to the engine alone.

use std::path::{Path, PathBuf};

pub use quarry_encoder::{ComputeDevice, Precision};

pub use crate::error::UsageError as DeviceError;

/// Whether this quarry was built with GPU support (`--features cuda`).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// `cpu`, `cuda` (device 0) or `cuda:N`.
pub fn parse_device(text: &str) -> Result<ComputeDevice, DeviceError> {
    let device = match text {
        "cpu" => ComputeDevice::Cpu,
        "cuda" => ComputeDevice::Cuda(0),
        _ => match text.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => ComputeDevice::Cuda(n),
            _ => {
                return Err(DeviceError(format!(
                    "--device `{text}`: use cpu, cuda, cuda:N or cuda:all"
                )))
            }
        },
    };
    if matches!(device, ComputeDevice::Cuda(_)) && !CUDA_BUILT {
        return Err(DeviceError(
            "--device cuda: this quarry was built without GPU support; \
             rebuild with `cargo build --release --features cuda`"
                .into(),
        ));
    }
    Ok(device)
}

/// The devices `--device` names, `cuda:all` meaning every visible GPU; the
/// first also encodes the queries.
pub fn parse_devices(text: &str) -> Result<Vec<ComputeDevice>, DeviceError> {
    if text != "cuda:all" {
        return parse_device(text).map(|device| vec![device]);
    }
    parse_device("cuda")?;
    let count = quarry_encoder::encode::cuda_device_count();
    if count == 0 {
        return Err(DeviceError(
            "--device cuda:all: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)"
                .into(),
        ));
    }
    Ok((0..count).map(ComputeDevice::Cuda).collect())
}

/// Refuses a compute dtype the device cannot run (the CPU backend computes in f32).
pub fn check_precision(precision: Precision, device: ComputeDevice) -> Result<(), DeviceError> {
    if device == ComputeDevice::Cpu && precision != Precision::F32 {
        return Err(DeviceError(format!(
            "--dtype {}: needs --device cuda; the CPU backend computes in f32",
            crate::build::precision_name(precision)
        )));
    }
    Ok(())
}

/// Keeps burn's GPU kernel tuning in `<home>/gpu-tuning`, so the next run
/// starts fast. Must run before the first GPU use. Returns the folder in
/// force when this call set it (`None` without GPU support, or when a
/// `cubecl.toml` chose another place).
pub fn use_gpu_tuning_cache(home: &Path) -> Option<PathBuf> {
    #[cfg(feature = "cuda")]
    {
        quarry_encoder::encode::use_gpu_tuning_cache(&home.join("gpu-tuning"))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = home;
        None
    }
}

/// GPU-only settings: which engines run the projection GEMMs and attention.
#[cfg(feature = "cuda")]
pub mod gpu {
    pub use quarry_encoder::cuda::{
        attention_kernel, attention_ms, bf16_matmul_tflops, cublas_available, flash_supported,
        gemm_engine, set_attention_kernel, set_fused_kernels, set_gemm_engine, AttentionKernel,
        GemmEngine,
    };

    use super::DeviceError;
    use crate::error::EngineError;

    /// `--gemm auto|cublas|burn`: chooses the engine of the projection GEMMs
    /// (auto: cuBLAS when libcublas loads, else burn's matmul).
    pub fn select_gemm(name: &str) -> Result<(), EngineError> {
        let engine = match name {
            "auto" => GemmEngine::Auto,
            "cublas" => GemmEngine::Cublas,
            "burn" => GemmEngine::Burn,
            other => {
                return Err(EngineError::Usage(DeviceError(format!(
                    "--gemm `{other}`: auto, cublas or burn"
                ))))
            }
        };
        if engine == GemmEngine::Cublas && !cublas_available() {
            return Err(EngineError::Build {
                path: "libcublas".into(),
                detail:
                    "--gemm cublas: libcublas cannot be loaded (add its folder to LD_LIBRARY_PATH)"
                        .into(),
            });
        }
        set_gemm_engine(engine);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_or_say_what_to_give() {
        assert_eq!(parse_device("cpu"), Ok(ComputeDevice::Cpu));
        let err = parse_device("gpu").unwrap_err();
        assert!(err.0.contains("cpu, cuda, cuda:N or cuda:all"), "{err}");
        if !CUDA_BUILT {
            let err = parse_devices("cuda:all").unwrap_err();
            assert!(err.0.contains("without GPU support"), "{err}");
        }
        assert!(check_precision(Precision::BF16, ComputeDevice::Cpu).is_err());
        assert!(check_precision(Precision::F32, ComputeDevice::Cpu).is_ok());
    }
}
