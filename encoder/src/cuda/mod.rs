//! CUDA-only fast paths of the encoder (issue #6), reached from the
//! backend-generic layers (`layers::Linear`, `qwen2::Attention`) by a run-time
//! check that the backend is burn-cuda; every other backend never sees them.
//!
//! - Projection GEMMs run in cuBLAS (`cublasGemmEx`, bf16/f16 in and out, f32
//!   accumulation). burn 0.21's own matmul reached ~210-220 TFLOP/s on the
//!   H100 where cuBLAS reaches ~760-790
//!   (docs/gpu-runs/2026-11-26-s6-h100/perf-2/table.md). The call is queued
//!   on the very CUDA stream burn's kernels use (through the
//!   `raw_stream_and_addresses` accessor of the patched cubecl-cuda, see
//!   `vendor/cubecl-cuda/PATCH.md`), inside the device server's task queue, so
//!   it is ordered with burn's work without any host synchronisation.
//! - Attention: quarry's own flash attention ([`fused::flash_attention`], the
//!   default), cuBLAS around a softmax kernel, or burn-cubecl's kernels with a
//!   fixed strategy or autotune (for comparison in `quarry bench encode`).
//! - [`fused`]: one-pass kernels for the rest of the layer (on by default).
//! - [`bf16_matmul_tflops`]: the matmul rate the benchmark divides by (MFU).
//!
//! The choices are process-wide settings ([`set_gemm_engine`],
//! [`set_attention_kernel`]) so a benchmark can compare them in one process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::Instant;

use burn::tensor::{
    backend::Backend, ops::AttentionModuleOptions, DType, Distribution, Tensor, TensorPrimitive,
};
use burn_cubecl::cubecl::server::Binding;
use burn_cubecl::kernel::attention::AttentionStrategy;
use burn_cubecl::tensor::CubeTensor;
use cubecl_common::device::Device as _;
use cubecl_common::device_handle::DeviceHandle;
use cubecl_common::stream_id::StreamId;
use cubecl_cuda::{CudaRuntime, CudaServer};
use cudarc::cublas::{result as cublas, sys as cublas_sys};

use crate::backend::{retype, CudaBackend};
use crate::EncoderError;

mod attention;
pub(crate) mod fused;

pub(crate) type Cube = CubeTensor<CudaRuntime>;

/// Who multiplies the projection matrices on CUDA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmEngine {
    /// cuBLAS when libcublas can be loaded, else burn (the default).
    Auto,
    /// cuBLAS (`cublasGemmEx`); falls back to burn if libcublas is missing.
    Cublas,
    /// burn-cubecl's autotuned matmul.
    Burn,
}

/// Which attention kernel burn-cubecl runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// burn's default: autotune between the fallback and the flash kernels (per shape).
    Autotune,
    /// Flash attention on tensor cores (`blackbox_accelerated`), this many planes (2, 4, 8).
    Flash(u8),
    /// Flash attention with unit (non tensor-core) inner matmuls.
    FlashUnit,
    /// Scores materialised: matmul, softmax, matmul.
    Fallback,
    /// Scores materialised once: cuBLAS `Q Kᵀ`, a one-pass softmax kernel, cuBLAS `P V`.
    Cublas,
    /// quarry's own flash attention on tensor cores (`fused/flash_attention.cu`, bf16,
    /// compute capability 8.0+, head sizes 64 and 128; the default). Elsewhere: `Cublas`
    /// when libcublas loads, else `Autotune`.
    Fused,
}

impl std::str::FromStr for AttentionKernel {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "autotune" => Ok(Self::Autotune),
            "flash2" => Ok(Self::Flash(2)),
            "flash4" => Ok(Self::Flash(4)),
            "flash8" => Ok(Self::Flash(8)),
            "flash-unit" => Ok(Self::FlashUnit),
            "fallback" => Ok(Self::Fallback),
            "cublas" => Ok(Self::Cublas),
            "fused" => Ok(Self::Fused),
            other => Err(format!(
                "attention kernel `{other}`: one of fused, cublas, autotune, flash2, flash4, \
                 flash8, flash-unit, fallback"
            )),
        }
    }
}

impl std::fmt::Display for AttentionKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Autotune => write!(f, "autotune"),
            Self::Flash(planes) => write!(f, "flash{planes}"),
            Self::FlashUnit => write!(f, "flash-unit"),
            Self::Fallback => write!(f, "fallback"),
            Self::Cublas => write!(f, "cublas"),
            Self::Fused => write!(f, "fused"),
        }
    }
}

static GEMM_ENGINE: RwLock<GemmEngine> = RwLock::new(GemmEngine::Auto);
/// [`AttentionKernel::Fused`] unless a benchmark chooses otherwise.
static ATTENTION_KERNEL: RwLock<AttentionKernel> = RwLock::new(AttentionKernel::Fused);
static FUSED_KERNELS: AtomicBool = AtomicBool::new(true);

/// Whether the residual add + RMSNorm, SwiGLU and the bias/head-split/RoPE step run as one
/// kernel each ([`fused`]) instead of burn's op-by-op graph (bf16 only; on by default).
pub fn set_fused_kernels(on: bool) {
    FUSED_KERNELS.store(on, Ordering::Relaxed);
}

pub fn fused_kernels() -> bool {
    FUSED_KERNELS.load(Ordering::Relaxed)
}

pub fn set_gemm_engine(engine: GemmEngine) {
    *GEMM_ENGINE.write().expect("not poisoned") = engine;
}

/// The engine projection GEMMs use now (after resolving `Auto`).
pub fn gemm_engine() -> GemmEngine {
    match *GEMM_ENGINE.read().expect("not poisoned") {
        GemmEngine::Burn => GemmEngine::Burn,
        _ if cublas_available() => GemmEngine::Cublas,
        _ => GemmEngine::Burn,
    }
}

pub fn set_attention_kernel(kernel: AttentionKernel) {
    *ATTENTION_KERNEL.write().expect("not poisoned") = kernel;
}

pub fn attention_kernel() -> AttentionKernel {
    *ATTENTION_KERNEL.read().expect("not poisoned")
}

/// Whether libcublas can be loaded (cudarc looks for `libcublas.so*` on the
/// loader's path, e.g. PyTorch's `nvidia/cu13/lib` or `/usr/local/cuda/lib64`).
pub fn cublas_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to dlopen the library; no symbol is called.
    *PRESENT.get_or_init(|| unsafe { cublas_sys::is_culib_present() })
}

/// Whether CUDA device `index` runs [`AttentionKernel::Fused`] (compute capability 8.0+:
/// bf16 tensor-core `mma`, `ldmatrix`, `cp.async`).
pub fn flash_supported(index: usize) -> bool {
    static MAJORS: Mutex<Vec<(usize, bool)>> = Mutex::new(Vec::new());
    let mut known = MAJORS.lock().expect("not poisoned");
    if let Some(&(_, supported)) = known.iter().find(|(i, _)| *i == index) {
        return supported;
    }
    use cudarc::driver::{result as driver, sys as driver_sys};
    let major = driver::init()
        .and_then(|()| driver::device::get(index as i32))
        .and_then(|device| {
            // SAFETY: `device` is a valid handle just returned by the driver.
            unsafe {
                driver::device::get_attribute(
                    device,
                    driver_sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                )
            }
        })
        .unwrap_or(0);
    known.push((index, major >= 8));
    major >= 8
}

fn is_cuda<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<CudaBackend>()
}

/// `Tensor<B, D>` as the CUDA backend's tensor; callers check [`is_cuda`] first.
fn to_cuda<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Tensor<CudaBackend, D> {
    retype(tensor)
}

fn from_cuda<B: Backend, const D: usize>(tensor: Tensor<CudaBackend, D>) -> Tensor<B, D> {
    retype(tensor)
}

fn to_cube<const D: usize>(tensor: Tensor<CudaBackend, D>) -> Cube {
    tensor.into_primitive().tensor()
}

fn from_cube<const D: usize>(tensor: Cube) -> Tensor<CudaBackend, D> {
    Tensor::from_primitive(TensorPrimitive::Float(tensor))
}

/// A new contiguous tensor of `shape` and `dtype` on `reference`'s device (contents undefined).
pub(crate) fn empty(reference: &Cube, shape: Vec<usize>, dtype: DType) -> Cube {
    burn_cubecl::ops::numeric::empty_device_contiguous_dtype::<CudaRuntime>(
        reference.client.clone(),
        reference.device.clone(),
        shape.into(),
        dtype,
    )
}

/// `tensor` with contiguous strides, starting on a 16-byte boundary (a copy only where
/// needed), for quarry's own kernels and cuBLAS calls that read it as one dense buffer. Its
/// buffer may be longer than the tensor (the pool rounds allocations up).
pub(crate) fn dense(tensor: Cube) -> Cube {
    let tensor = burn_cubecl::kernel::into_contiguous(tensor);
    if tensor.handle.offset_start.unwrap_or(0).is_multiple_of(16) {
        return tensor;
    }
    // A view starting inside its buffer: copy it into a fresh (512-byte aligned) one.
    let (client, device, dtype) = (tensor.client.clone(), tensor.device.clone(), tensor.dtype);
    let output =
        burn_cubecl::cubecl::std::tensor::into_contiguous(&client, tensor.binding(), dtype.into());
    Cube::new(client, output.handle, *output.metadata, device, dtype)
}

/// Whether a GEMM of operands of these dtypes runs in cuBLAS: bf16/f16, one dtype, cuBLAS
/// chosen.
pub(crate) fn cublas_applies(x: DType, w: DType) -> bool {
    gemm_engine() == GemmEngine::Cublas && matches!(x, DType::BF16 | DType::F16) && x == w
}

/// `x W` for `x` `[..., d_in]` and `W` `[d_in, d_out]` in cuBLAS, when the
/// backend is burn-cuda, the dtype bf16/f16 and cuBLAS is chosen; otherwise
/// hands `x` back untouched for burn's own matmul.
pub(crate) fn linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: &Tensor<B, 2>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if !is_cuda::<B>() || !cublas_applies(x.dtype(), weight.dtype()) {
        return Err(x);
    }
    let x = to_cube(to_cuda(x));
    let weight = to_cube(to_cuda(weight.clone()));
    let out = cublas_matmul(x, weight).unwrap_or_else(|err| panic!("cuBLAS GEMM failed: {err}"));
    Ok(from_cuda(from_cube::<D>(out)))
}

/// Row layout of a tensor whose last dimension is contiguous and whose
/// leading dimensions collapse into one evenly strided row index:
/// `(rows, cols, row_stride)` in elements.
fn row_layout(tensor: &Cube) -> Option<(usize, usize, usize)> {
    let shape: &[usize] = tensor.meta.shape();
    let strides: &[usize] = tensor.meta.strides();
    let rank = shape.len();
    if rank == 0 || (strides[rank - 1] != 1 && shape[rank - 1] > 1) {
        return None;
    }
    let cols = shape[rank - 1];
    if rank == 1 {
        return Some((1, cols, cols));
    }
    let row_stride = strides[rank - 2];
    // Every leading dimension must step by whole rows.
    let mut expected = row_stride;
    for dim in (0..rank - 1).rev() {
        if shape[dim] > 1 && strides[dim] != expected {
            return None;
        }
        expected *= shape[dim];
    }
    let rows: usize = shape[..rank - 1].iter().product();
    // Rows closer together than a row's length overlap: a broadcast (stride 0, as burn's
    // `expand` makes) or otherwise aliased tensor, which a GEMM must not read as `rows`
    // distinct rows. Such a tensor is copied to a dense one first.
    if rows > 1 && row_stride < cols {
        return None;
    }
    Some((rows, cols, row_stride.max(cols)))
}

fn cublas_dtype(dtype: DType) -> Result<cublas_sys::cudaDataType, String> {
    match dtype {
        DType::BF16 => Ok(cublas_sys::cudaDataType::CUDA_R_16BF),
        DType::F16 => Ok(cublas_sys::cudaDataType::CUDA_R_16F),
        other => Err(format!("cuBLAS path takes bf16/f16, got {other:?}")),
    }
}

/// Errors of cuBLAS calls queued with `DeviceHandle::submit` (not awaited):
/// the first one is reported by the next call.
static DEFERRED_ERROR: Mutex<Option<String>> = Mutex::new(None);

thread_local! {
    /// One cuBLAS handle per device-server thread (created with the context current).
    static CUBLAS_HANDLE: std::cell::Cell<Option<cublas_sys::cublasHandle_t>> =
        const { std::cell::Cell::new(None) };
}

fn cublas_handle() -> Result<cublas_sys::cublasHandle_t, String> {
    CUBLAS_HANDLE.with(|cell| {
        if let Some(handle) = cell.get() {
            return Ok(handle);
        }
        let handle = cublas::create_handle().map_err(|err| format!("cublasCreate: {err:?}"))?;
        cell.set(Some(handle));
        Ok(handle)
    })
}

/// Queues `work` on the device server of `device`, ordered on burn's CUDA stream of this
/// thread, with the device addresses of `bindings` (in that order). Nothing waits for the
/// task, so an error it meets is kept in [`DEFERRED_ERROR`] and returned by the next call.
/// Every launch of quarry's own (cuBLAS calls, the fused kernels) goes through here.
pub(crate) fn submit_on_burn_stream(
    device: &burn::backend::cuda::CudaDevice,
    bindings: Vec<Binding>,
    work: impl FnOnce(CuStream, Vec<u64>) -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    if let Some(err) = DEFERRED_ERROR.lock().expect("not poisoned").take() {
        return Err(err);
    }
    let stream_id = StreamId::current();
    let handle = DeviceHandle::<CudaServer>::new(device.to_id());
    handle.submit(move |server: &mut CudaServer| {
        let result = server
            .raw_stream_and_addresses(stream_id, bindings)
            .map_err(|err| format!("resolving burn's stream: {err:?}"))
            .and_then(|(stream, addresses)| work(stream, addresses));
        if let Err(err) = result {
            DEFERRED_ERROR
                .lock()
                .expect("not poisoned")
                .get_or_insert(err);
        }
    });
    Ok(())
}

/// [`submit_on_burn_stream`] for cuBLAS work on `tensors` (addresses in that order), with
/// this server thread's cuBLAS handle bound to burn's stream.
pub(crate) fn enqueue_cuda_work(
    tensors: &[&Cube],
    work: impl FnOnce(cublas_sys::cublasHandle_t, CuStream, &[u64]) -> Result<(), String>
        + Send
        + 'static,
) -> Result<(), String> {
    let bindings = tensors.iter().map(|t| t.handle.clone().binding()).collect();
    submit_on_burn_stream(&tensors[0].device, bindings, move |stream, addresses| {
        let blas = cublas_handle()?;
        // SAFETY: binds this thread's handle to burn's live stream.
        unsafe { cublas::set_stream(blas, stream as cublas_sys::cudaStream_t) }
            .map_err(|err| format!("cublasSetStream: {err:?}"))?;
        work(blas, stream, &addresses)
    })
}

/// The raw CUDA stream handed to [`submit_on_burn_stream`]'s closure.
pub(crate) type CuStream = cudarc::driver::sys::CUstream;

/// `out[rows, n] = x[rows, k] · w[k, n]` (row-major, burn's layout) with cuBLAS
/// on burn's stream. Row-major `out = x w` is column-major `outᵀ = wᵀ xᵀ`,
/// i.e. a column-major GEMM with A = w (ld = w's row stride), B = x.
pub(crate) fn cublas_matmul(x: Cube, w: Cube) -> Result<Cube, String> {
    cublas_matmul_with(x, w, false)
}

/// `out[rows, n] = x[rows, k] · wᵀ` for `w` stored `[n, k]` (the input gradient of
/// `x w`): the same GEMM with A transposed, so no transposed copy of `w` is made.
pub(crate) fn cublas_matmul_transposed(x: Cube, w: Cube) -> Result<Cube, String> {
    cublas_matmul_with(x, w, true)
}

fn cublas_matmul_with(x: Cube, w: Cube, transpose_w: bool) -> Result<Cube, String> {
    let x = match row_layout(&x) {
        Some(_) => x,
        None => burn_cubecl::kernel::into_contiguous(x),
    };
    let w = match row_layout(&w) {
        Some(_) => w,
        None => burn_cubecl::kernel::into_contiguous(w),
    };
    let (rows, k, x_ld) = row_layout(&x).ok_or("x has no row layout after copy")?;
    let (w_rows, w_cols, w_ld) = row_layout(&w).ok_or("w has no row layout after copy")?;
    // `w` is `[k, n]`, or `[n, k]` when it enters transposed.
    let (w_k, n) = if transpose_w {
        (w_cols, w_rows)
    } else {
        (w_rows, w_cols)
    };
    if w_k != k {
        return Err(format!(
            "x has {k} columns, w has {w_k} (transposed: {transpose_w})"
        ));
    }
    let dtype = x.dtype;
    let data_type = cublas_dtype(dtype)?;
    let mut out_shape: Vec<usize> = x.meta.shape().to_vec();
    *out_shape.last_mut().expect("rank >= 1") = n;
    let out = empty(&x, out_shape, dtype);
    let dims = [n, rows, k, w_ld, x_ld, n].map(|v| v as i32);
    // Column-major, `w` row-major `[n, k]` reads as `wᵀ` `[k, n]`: op T gives the `n x k` A.
    let op_w = if transpose_w {
        cublas_sys::cublasOperation_t::CUBLAS_OP_T
    } else {
        cublas_sys::cublasOperation_t::CUBLAS_OP_N
    };
    enqueue_cuda_work(&[&w, &x, &out], move |blas, _stream, addresses| {
        let [m, n, k, lda, ldb, ldc] = dims;
        let (alpha, beta) = (1.0f32, 0.0f32);
        // SAFETY: the addresses are live device allocations of the bindings
        // (held until this closure returns, and reused by later work only
        // after it on the same stream); the sizes and leading dimensions
        // come from the tensors' own layouts.
        unsafe {
            cublas::gemm_ex(
                blas,
                op_w,
                cublas_sys::cublasOperation_t::CUBLAS_OP_N,
                m,
                n,
                k,
                (&alpha as *const f32).cast(),
                addresses[0] as *const std::ffi::c_void,
                data_type,
                lda,
                addresses[1] as *const std::ffi::c_void,
                data_type,
                ldb,
                (&beta as *const f32).cast(),
                addresses[2] as *mut std::ffi::c_void,
                data_type,
                ldc,
                cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|err| format!("cublasGemmEx {m}x{n}x{k}: {err:?}"))
    })?;
    // Keep the inputs alive until the task is queued (their bindings are in it).
    drop((x, w));
    Ok(out)
}

/// Query, key and value handed back when [`attention`] does not apply.
pub(crate) type AttentionInputs<B> = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);

/// Scaled dot-product attention with the chosen burn-cubecl kernel; `None`
/// when the backend is not burn-cuda (the caller uses burn's generic op).
pub(crate) fn attention<B: Backend>(
    query: Tensor<B, 4>,
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
    options: AttentionModuleOptions,
) -> Result<Tensor<B, 4>, AttentionInputs<B>> {
    let kernel = match attention_kernel() {
        // Reached only where the fused kernel does not apply (see `qwen2::Attention`).
        AttentionKernel::Fused if cublas_available() => AttentionKernel::Cublas,
        AttentionKernel::Fused => AttentionKernel::Autotune,
        kernel => kernel,
    };
    if !is_cuda::<B>() || kernel == AttentionKernel::Autotune {
        return Err((query, key, value));
    }
    if kernel == AttentionKernel::Cublas
        && (query.dtype() != DType::BF16 || options.scale.is_some() || options.softcap.is_some())
    {
        return Err((query, key, value));
    }
    let [q, k, v] = [query, key, value].map(|t| to_cube(to_cuda(t)));
    let out = run_attention(kernel, q, k, v, options)
        .unwrap_or_else(|err| panic!("attention kernel {kernel} cannot run this shape: {err}"));
    Ok(from_cuda(from_cube::<4>(out)))
}

/// One attention call with a fixed kernel (not autotune).
fn run_attention(
    kernel: AttentionKernel,
    q: Cube,
    k: Cube,
    v: Cube,
    options: AttentionModuleOptions,
) -> Result<Cube, String> {
    let strategy = match kernel {
        AttentionKernel::Cublas => {
            return attention::cublas_attention(q, k, v, options.is_causal);
        }
        AttentionKernel::Fused => {
            // The fused kernel's own layout is [B, S, H·D]; as [B, H, S, D] for comparison.
            let [batch, heads, seq, dim] = q.meta.shape().to_vec()[..] else {
                return Err("attention takes [B, H, S, D]".to_string());
            };
            if !options.is_causal || !fused::flash_applies(dim) || !flash_supported(q.device.index)
            {
                return Err(format!(
                    "the fused kernel takes causal bf16 heads of 64 or 128 on \
                                    compute capability 8.0+, not {dim}"
                ));
            }
            let out =
                fused::flash_attention::<CudaBackend>(from_cube(q), from_cube(k), from_cube(v));
            return Ok(to_cube(
                out.reshape([batch, seq, heads, dim]).swap_dims(1, 2),
            ));
        }
        AttentionKernel::Flash(num_planes) => AttentionStrategy::FlashBlackboxAccelerated(
            cubek::attention::routines::blackbox_accelerated::BlackboxAcceleratedStrategy {
                num_planes,
                seq_q: 1,
                seq_kv: 1,
            },
        ),
        AttentionKernel::FlashUnit => AttentionStrategy::FlashUnit,
        AttentionKernel::Fallback | AttentionKernel::Autotune => AttentionStrategy::Fallback,
    };
    burn_cubecl::kernel::attention::attention(q, k, v, None, None, options, strategy)
        .map_err(|err| format!("{err:?}"))
}

/// bf16 matmul rate (TFLOP/s) of `m x k x n` on CUDA device `index` with the
/// given engine: one untimed call (kernel choice/autotune), then the best of
/// `repeats` timed batches of 10 calls, each ended by a device sync.
pub fn bf16_matmul_tflops(
    index: usize,
    engine: GemmEngine,
    [m, k, n]: [usize; 3],
    repeats: usize,
) -> Result<f64, EncoderError> {
    let device = burn::backend::cuda::CudaDevice::new(index);
    let previous = *GEMM_ENGINE.read().expect("not poisoned");
    set_gemm_engine(engine);
    let options = (&device, DType::BF16);
    let a = Tensor::<CudaBackend, 2>::random([m, k], Distribution::Uniform(-1.0, 1.0), options);
    let b = Tensor::<CudaBackend, 2>::random([k, n], Distribution::Uniform(-1.0, 1.0), options);
    let multiply = |a: &Tensor<CudaBackend, 2>| match linear(a.clone(), &b) {
        Ok(out) => out,
        Err(a) => a.matmul(b.clone()),
    };
    let sync = |t: Tensor<CudaBackend, 2>| -> Result<(), EncoderError> {
        // Reading one value waits for everything queued before it.
        t.slice([0..1, 0..1])
            .into_data()
            .to_vec::<half::bf16>()
            .map(|_| ())
            .map_err(|err| EncoderError::Backend(format!("{err:?}")))
    };
    sync(multiply(&a))?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        let mut last = None;
        for _ in 0..10 {
            last = Some(multiply(&a));
        }
        sync(last.expect("ten calls"))?;
        best = best.min(started.elapsed().as_secs_f64() / 10.0);
    }
    set_gemm_engine(previous);
    if let Some(err) = DEFERRED_ERROR.lock().expect("not poisoned").take() {
        return Err(EncoderError::Backend(err));
    }
    Ok(2.0 * (m * k * n) as f64 / best / 1e12)
}

/// Milliseconds per call of `kernel` on causal self-attention of shape
/// `[batch, heads, seq, head_dim]` (bf16, random inputs) on CUDA device
/// `index`: one untimed call, then the best of `repeats` batches of 5 calls.
/// `Err` when the kernel refuses the shape (or its launch fails).
pub fn attention_ms(
    index: usize,
    kernel: AttentionKernel,
    [batch, heads, seq, head_dim]: [usize; 4],
    repeats: usize,
) -> Result<f64, String> {
    let device = burn::backend::cuda::CudaDevice::new(index);
    let options = (&device, DType::BF16);
    let shape = [batch, heads, seq, head_dim];
    let [q, k, v] = [0; 3].map(|_| {
        Tensor::<CudaBackend, 4>::random(shape, Distribution::Uniform(-1.0, 1.0), options)
    });
    let run_options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    if kernel == AttentionKernel::Cublas && !cublas_available() {
        return Err("libcublas cannot be loaded".to_string());
    }
    let call = || -> Result<Tensor<CudaBackend, 4>, String> {
        if kernel == AttentionKernel::Autotune {
            return Ok(burn::tensor::module::attention(
                q.clone(),
                k.clone(),
                v.clone(),
                None,
                None,
                run_options,
            ));
        }
        let [q, k, v] = [&q, &k, &v].map(|t| to_cube(t.clone()));
        run_attention(kernel, q, k, v, run_options).map(from_cube::<4>)
    };
    let sync = |t: Tensor<CudaBackend, 4>| -> Result<(), String> {
        t.slice([0..1, 0..1, 0..1, 0..1])
            .try_into_data()
            .map(|_| ())
            .map_err(|err| format!("{err:?}"))?;
        match DEFERRED_ERROR.lock().expect("not poisoned").take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sync(call()?)?;
        let mut best = f64::INFINITY;
        for _ in 0..repeats.max(1) {
            let started = Instant::now();
            let mut last = None;
            for _ in 0..5 {
                last = Some(call()?);
            }
            sync(last.expect("five calls"))?;
            best = best.min(started.elapsed().as_secs_f64() / 5.0);
        }
        Ok(best * 1e3)
    }));
    outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".to_string());
        Err(message)
    })
}
