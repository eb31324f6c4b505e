//! Fused kernels for the Qwen2 layer on burn-cuda in bf16, in CUDA C compiled at run time
//! by NVRTC (as CubeCL compiles its own) and launched on burn's stream like the cuBLAS
//! GEMMs (see `super`).
//!
//! burn 0.21 without its fusion backend (which panics on this graph, docs/gpu.md) runs each
//! tensor op as its own kernel: an RMSNorm with f32 statistics is ~8 passes over the
//! activations, RoPE through narrow/neg/cat/mul/add ~6 per tensor plus the bias add and the
//! key/value head copies, SwiGLU 2, and attention materialises its scores. Here:
//! - [`add_rms_norm`]: the residual add and the next RMSNorm in one pass (kernels.cu);
//! - [`silu_mul`]: `silu(gate) * up`, 16-byte loads (kernels.cu);
//! - [`rope_heads`]: bias add, split into heads (`[B, S, h·D]` to `[B, h, S, D]`) and rotary
//!   embedding from the model's own bf16 tables (kernels.cu);
//! - [`flash_attention`]: causal attention on tensor cores without materialised scores,
//!   grouped key/value heads read in place, output already in `[B, S, H·D]`
//!   (flash_attention.cu, compute capability 8.0+).
//!
//! Rounding follows the unfused burn graph (bf16 after each op it rounds); the attention
//! rounds like every flash kernel (probabilities in bf16, f32 accumulation).
//! `scripts/gpu/kernel_check.py` checks each kernel against PyTorch on the GPU.

use std::collections::HashMap;
use std::ffi::{c_void, CString};

use burn::tensor::{backend::Backend, DType, Tensor};
use burn_cubecl::cubecl::server::Binding;
use cudarc::driver::{result as driver, sys as driver_sys};

use super::{
    dense, empty, from_cube, from_cuda, is_cuda, submit_on_burn_stream, to_cube, to_cuda, Cube,
};

/// Kernel parameter: a tensor's device buffer or a scalar.
enum Arg {
    Buffer(Binding),
    U32(u32),
    U64(u64),
    F32(f32),
}

impl Arg {
    /// The device buffer of `tensor`.
    fn tensor(tensor: &Cube) -> Self {
        Self::Buffer(tensor.handle.clone().binding())
    }
}

/// A CUDA C source compiled as one module, and the kernels looked up in it.
struct KernelModule {
    source: &'static str,
    /// NVRTC's `--gpu-architecture`, where the source needs more than the default.
    arch: Option<&'static str>,
    kernels: &'static [&'static str],
    /// Dynamic shared memory (bytes) each kernel may ask for beyond the default 48 KiB.
    shared_bytes: &'static [usize],
}

const ELEMENTWISE: KernelModule = KernelModule {
    source: include_str!("kernels.cu"),
    arch: None,
    kernels: &[
        "quarry_add_rms_norm_bf16",
        "quarry_silu_mul_bf16",
        "quarry_rope_heads_bf16",
        "quarry_softmax_rows_bf16",
    ],
    shared_bytes: &[0, 0, 0, 0],
};

const FLASH: KernelModule = KernelModule {
    source: include_str!("flash_attention.cu"),
    arch: Some("compute_80"),
    kernels: &["quarry_flash_attention_d64", "quarry_flash_attention_d128"],
    shared_bytes: &[flash_shared_bytes(64), flash_shared_bytes(128)],
};

/// flash_attention.cu's shared memory: a query tile and two key and two value tiles of
/// 64 rows, each row padded by 8 elements.
const fn flash_shared_bytes(head_dim: usize) -> usize {
    5 * 64 * (head_dim + 8) * 2
}

thread_local! {
    /// Functions of the loaded modules, per device-server thread.
    static FUNCTIONS: std::cell::RefCell<HashMap<&'static str, driver_sys::CUfunction>> =
        std::cell::RefCell::new(HashMap::new());
}

fn load_module(module: &KernelModule) -> Result<Vec<driver_sys::CUfunction>, String> {
    let options = cudarc::nvrtc::CompileOptions {
        arch: module.arch,
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(module.source, options)
        .map_err(|err| format!("NVRTC compiling quarry's kernels: {err:?}"))?;
    let image = CString::new(ptx.to_src()).map_err(|err| format!("PTX: {err}"))?;
    // SAFETY: the server thread has the device context current (`raw_stream_and_addresses`
    // ran first); the image is NUL-terminated PTX.
    let loaded = unsafe { driver::module::load_data(image.as_ptr().cast()) }
        .map_err(|err| format!("loading quarry's kernels: {err:?}"))?;
    let mut functions = Vec::new();
    for (kernel, &shared) in module.kernels.iter().zip(module.shared_bytes) {
        let name_c = CString::new(*kernel).expect("no NUL");
        // SAFETY: `loaded` was just loaded and is never unloaded.
        let f = unsafe { driver::module::get_function(loaded, name_c) }
            .map_err(|err| format!("{kernel}: {err:?}"))?;
        if shared > 48 * 1024 {
            // SAFETY: `f` exists; the attribute only raises the kernel's shared-memory cap.
            unsafe {
                driver::function::set_function_attribute(
                    f,
                    driver_sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared as i32,
                )
            }
            .map_err(|err| format!("{kernel}: {shared} bytes of shared memory: {err:?}"))?;
        }
        functions.push(f);
    }
    Ok(functions)
}

pub(super) fn function(name: &'static str) -> Result<driver_sys::CUfunction, String> {
    FUNCTIONS.with(|cell| {
        let mut functions = cell.borrow_mut();
        if let Some(f) = functions.get(name) {
            return Ok(*f);
        }
        let module = [&ELEMENTWISE, &FLASH]
            .into_iter()
            .find(|m| m.kernels.contains(&name))
            .ok_or_else(|| format!("no kernel named {name}"))?;
        for (kernel, f) in module.kernels.iter().zip(load_module(module)?) {
            functions.insert(kernel, f);
        }
        Ok(functions[name])
    })
}

/// Grid, block and dynamic shared memory of one launch.
struct Shape {
    grid: (u32, u32, u32),
    block: u32,
    shared_bytes: u32,
}

impl Shape {
    fn linear(grid: u32, block: u32) -> Self {
        Self {
            grid: (grid, 1, 1),
            block,
            shared_bytes: 0,
        }
    }
}

/// Queues `name` on burn's stream of `device` with `args` (buffers resolved to device
/// addresses on the server thread, in queue order). Every buffer must start on a 16-byte
/// boundary (the kernels load 16 bytes at a time); cubecl allocates on 512-byte ones.
fn launch(
    device: &burn::backend::cuda::CudaDevice,
    name: &'static str,
    shape: Shape,
    args: Vec<Arg>,
) -> Result<(), String> {
    // Each parameter's 8-byte slot; buffers get their address on the server thread.
    let mut bindings = Vec::new();
    let mut slots: Vec<Option<u64>> = Vec::with_capacity(args.len());
    for arg in args {
        slots.push(match arg {
            Arg::Buffer(binding) => {
                bindings.push(binding);
                None
            }
            Arg::U32(v) => Some(u64::from(v)),
            Arg::U64(v) => Some(v),
            Arg::F32(v) => Some(u64::from(v.to_bits())),
        });
    }
    submit_on_burn_stream(device, bindings, move |stream, addresses| {
        if let Some(address) = addresses.iter().find(|&&a| a % 16 != 0) {
            return Err(format!(
                "{name}: buffer at {address:#x} is not 16-byte aligned"
            ));
        }
        let f = function(name)?;
        // CUDA reads each parameter's own size from its slot (little-endian:
        // the low bytes hold a u32/f32).
        let mut addresses = addresses.into_iter();
        let mut slots: Vec<u64> = slots
            .into_iter()
            .map(|slot| slot.unwrap_or_else(|| addresses.next().expect("one address per buffer")))
            .collect();
        let mut params: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|slot| (slot as *mut u64).cast())
            .collect();
        // SAFETY: the parameters match the kernel's signature (same
        // order, u32/f32/u64/pointer sizes); buffers are live bindings.
        unsafe {
            driver::launch_kernel(
                f,
                shape.grid,
                (shape.block, 1, 1),
                shape.shared_bytes,
                stream,
                &mut params,
            )
        }
        .map_err(|err| format!("launching {name}: {err:?}"))
    })
}

/// Whether the fused kernels replace burn's ops for activations of `dtype` on backend `B`.
pub(crate) fn active<B: Backend>(dtype: DType) -> bool {
    is_cuda::<B>() && dtype == DType::BF16 && super::fused_kernels()
}

fn grid_for(count: u64, block: u32) -> u32 {
    // Enough blocks to fill the GPU several times; the kernels loop over the rest.
    count.div_ceil(u64::from(block)).clamp(1, 65_535 * 8) as u32
}

fn cube_of<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Cube {
    dense(to_cube(to_cuda(tensor)))
}

fn tensor_of<B: Backend, const D: usize>(tensor: Cube) -> Tensor<B, D> {
    from_cuda(from_cube::<D>(tensor))
}

/// Hidden sizes [`add_rms_norm`] takes: whole 16-byte chunks, at most 8 per thread of a
/// 128-thread block (kernels.cu's `NORM_MAX_CHUNKS`).
pub(crate) fn norm_applies(hidden: usize) -> bool {
    hidden.is_multiple_of(8) && hidden <= 8 * 8 * 128
}

/// The residual add and the RMSNorm after it, in one pass: with `delta`, returns
/// `(residual + delta, rms_norm(residual + delta))`; without, `(residual, rms_norm(residual))`.
/// Callers check [`active`] and [`norm_applies`] first.
pub(crate) fn add_rms_norm<B: Backend>(
    residual: Tensor<B, 3>,
    delta: Option<Tensor<B, 3>>,
    weight: &Tensor<B, 3>,
    eps: f64,
) -> (Tensor<B, 3>, Tensor<B, 3>) {
    let x = cube_of(residual);
    let delta = delta.map(cube_of);
    let w = cube_of(weight.clone());
    let shape: Vec<usize> = x.meta.shape().to_vec();
    let cols = *shape.last().expect("rank 3");
    assert!(norm_applies(cols), "fused RMSNorm over {cols} values");
    let rows: usize = shape[..shape.len() - 1].iter().product();
    let out = empty(&x, shape.clone(), x.dtype);
    let sum = delta.as_ref().map(|_| empty(&x, shape, x.dtype));
    let device = x.device.clone();
    // Without a delta the kernel reads neither `delta` nor `sum_out`: pass x's buffer.
    let binding = |t: Option<&Cube>| t.unwrap_or(&x).handle.clone().binding();
    launch(
        &device,
        "quarry_add_rms_norm_bf16",
        Shape::linear(rows as u32, 128),
        vec![
            Arg::tensor(&x),
            Arg::Buffer(binding(delta.as_ref())),
            Arg::tensor(&w),
            Arg::Buffer(binding(sum.as_ref())),
            Arg::tensor(&out),
            Arg::U32(cols as u32),
            Arg::F32(eps as f32),
            Arg::U32(u32::from(delta.is_some())),
        ],
    )
    .unwrap_or_else(|err| panic!("fused RMSNorm: {err}"));
    (tensor_of(sum.unwrap_or(x)), tensor_of(out))
}

/// `silu(gate) * up` in one pass; `Err((gate, up))` when not applicable.
#[allow(clippy::type_complexity)]
pub(crate) fn silu_mul<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, D>)> {
    if !active::<B>(gate.dtype()) || up.dtype() != DType::BF16 || gate.dims() != up.dims() {
        return Err((gate, up));
    }
    let gate = cube_of(gate);
    let up = cube_of(up);
    let shape: Vec<usize> = gate.meta.shape().to_vec();
    let count: u64 = shape.iter().product::<usize>() as u64;
    let out = empty(&gate, shape, gate.dtype);
    let device = gate.device.clone();
    launch(
        &device,
        "quarry_silu_mul_bf16",
        Shape::linear(grid_for(count.div_ceil(8), 256), 256),
        vec![
            Arg::tensor(&gate),
            Arg::tensor(&up),
            Arg::tensor(&out),
            Arg::U64(count),
        ],
    )
    .unwrap_or_else(|err| panic!("fused SwiGLU: {err}"));
    Ok(tensor_of(out))
}

/// A projection's output `[batch, seq, heads * dim]` plus its bias, as heads
/// `[batch, heads, seq, dim]`, rotated by position with the model's `cos`/`sin` tables
/// (`[1, 1, seq, dim]`, bf16) when `rotate`. Callers check [`active`] first; `Err(x)` when
/// the shape does not fit the kernel.
pub(crate) fn rope_heads<B: Backend>(
    x: Tensor<B, 3>,
    bias: Option<&Tensor<B, 1>>,
    tables: (&Tensor<B, 4>, &Tensor<B, 4>),
    heads: usize,
    dim: usize,
    rotate: bool,
) -> Result<Tensor<B, 4>, Tensor<B, 3>> {
    let [batch, seq, width] = x.dims();
    let [_, _, table_seq, table_dim] = tables.0.dims();
    // Whole 16-byte chunks in each half of a head.
    let fits = width == heads * dim
        && dim.is_multiple_of(16)
        && (table_seq, table_dim) == (seq, dim)
        && tables.0.dtype() == DType::BF16
        && bias.is_none_or(|b| b.dtype() == DType::BF16)
        && (batch * seq * width) < u32::MAX as usize;
    if !fits {
        return Err(x);
    }
    let x = cube_of(x);
    let bias = bias.map(|b| cube_of(b.clone()));
    let (cos, sin) = (cube_of(tables.0.clone()), cube_of(tables.1.clone()));
    let out = empty(&x, vec![batch, heads, seq, dim], x.dtype);
    let count = (batch * seq * heads * dim / 16) as u64;
    let device = x.device.clone();
    // Without a bias the kernel never reads its pointer: pass x's.
    let bias_binding = bias.as_ref().unwrap_or(&x).handle.clone().binding();
    launch(
        &device,
        "quarry_rope_heads_bf16",
        Shape::linear(grid_for(count, 256), 256),
        vec![
            Arg::tensor(&x),
            Arg::Buffer(bias_binding),
            Arg::tensor(&cos),
            Arg::tensor(&sin),
            Arg::tensor(&out),
            Arg::U32(batch as u32),
            Arg::U32(seq as u32),
            Arg::U32(heads as u32),
            Arg::U32(dim as u32),
            Arg::U32(width as u32),
            Arg::U32(u32::from(bias.is_some())),
            Arg::U32(u32::from(rotate)),
        ],
    )
    .unwrap_or_else(|err| panic!("fused heads/RoPE: {err}"));
    Ok(tensor_of(out))
}

/// Head sizes flash_attention.cu is instantiated for.
pub(crate) fn flash_applies(head_dim: usize) -> bool {
    matches!(head_dim, 64 | 128)
}

/// Causal attention of `q` `[B, H, S, D]` over `k`, `v` `[B, H_kv, S, D]` (bf16, H a
/// multiple of H_kv) with flash_attention.cu, as the o-projection's input `[B, S, H * D]`.
/// Callers check [`active`], [`flash_applies`] and [`super::flash_supported`] first.
pub(crate) fn flash_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> Tensor<B, 3> {
    let [batch, heads, seq, dim] = q.dims();
    let [_, kv_heads, _, _] = k.dims();
    assert!(flash_applies(dim) && heads % kv_heads == 0 && k.dims() == v.dims());
    let (q, k, v) = (cube_of(q), cube_of(k), cube_of(v));
    let out = empty(&q, vec![batch, seq, heads * dim], q.dtype);
    let device = q.device.clone();
    let name = if dim == 64 {
        "quarry_flash_attention_d64"
    } else {
        "quarry_flash_attention_d128"
    };
    let scale_log2 = std::f32::consts::LOG2_E / (dim as f32).sqrt();
    launch(
        &device,
        name,
        Shape {
            grid: (heads as u32, batch as u32, seq.div_ceil(64) as u32),
            block: 128,
            shared_bytes: flash_shared_bytes(dim) as u32,
        },
        vec![
            Arg::tensor(&q),
            Arg::tensor(&k),
            Arg::tensor(&v),
            Arg::tensor(&out),
            Arg::U32(seq as u32),
            Arg::U32(heads as u32),
            Arg::U32(kv_heads as u32),
            Arg::F32(scale_log2),
        ],
    )
    .unwrap_or_else(|err| panic!("fused attention: {err}"));
    tensor_of(out)
}

/// Whether `x` lives on a CUDA device that runs [`flash_attention`] (see
/// [`super::flash_supported`]).
pub(crate) fn on_flash_device<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    is_cuda::<B>() && super::flash_supported(to_cuda(x.clone()).device().index)
}
