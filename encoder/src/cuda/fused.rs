//! Fused elementwise kernels for the Qwen2 layer on burn-cuda in bf16, in
//! CUDA C compiled at run time by NVRTC (as CubeCL compiles its own) and
//! launched on burn's stream like the cuBLAS GEMMs (see `super`).
//!
//! burn 0.21 without its fusion backend (which panics on this graph,
//! docs/gpu.md) runs each tensor op as its own kernel: an RMSNorm with f32
//! statistics is ~8 passes over the activations, RoPE through narrow/neg/cat/
//! mul/add ~6 per tensor plus the bias add and the key/value head copies,
//! SwiGLU 2. Each kernel here is one pass:
//! - [`rms_norm`]: `bf16(x / sqrt(mean(x²) + eps)) * w`, statistics in f32;
//! - [`silu_mul`]: `silu(gate) * up`;
//! - [`heads_with_rope`]: bias add, split into heads (`[B, S, h·D]` to
//!   `[B, H, S, D]`, repeating grouped key/value heads) and rotary embedding.
//!
//! Rounding follows the unfused burn graph (bf16 after each op it rounds).

use std::collections::HashMap;
use std::ffi::{c_void, CString};

use burn::tensor::{backend::Backend, DType, Tensor};
use burn_cubecl::cubecl::server::Binding;
use cubecl_cuda::CudaRuntime;
use cudarc::driver::{result as driver, sys as driver_sys};

use super::{from_cube, from_cuda, is_cuda, submit_on_burn_stream, to_cube, to_cuda, Cube};

const SOURCE: &str = r#"
typedef unsigned short bf16_t;

__device__ __forceinline__ float bf2f(bf16_t v) {
    return __uint_as_float(((unsigned int)v) << 16);
}

// Round to nearest even, as burn/half's f32 -> bf16 conversion.
__device__ __forceinline__ bf16_t f2bf(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)0x7fc0u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

__device__ __forceinline__ float round_bf(float f) { return bf2f(f2bf(f)); }

// One block per row of `cols` values.
extern "C" __global__ void quarry_rms_norm_bf16(
    const bf16_t* __restrict__ x, const bf16_t* __restrict__ w, bf16_t* __restrict__ out,
    unsigned int cols, float eps)
{
    const bf16_t* row = x + (size_t)blockIdx.x * cols;
    bf16_t* out_row = out + (size_t)blockIdx.x * cols;
    float sum = 0.0f;
    for (unsigned int i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = bf2f(row[i]);
        sum += v * v;
    }
    __shared__ float partial[32];
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if ((threadIdx.x & 31u) == 0) partial[threadIdx.x >> 5] = sum;
    __syncthreads();
    if (threadIdx.x < 32) {
        float s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
        for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
        if (threadIdx.x == 0) partial[0] = s;
    }
    __syncthreads();
    float denominator = sqrtf(partial[0] / (float)cols + eps);
    for (unsigned int i = threadIdx.x; i < cols; i += blockDim.x) {
        float normed = round_bf(bf2f(row[i]) / denominator);
        out_row[i] = f2bf(normed * bf2f(w[i]));
    }
}

extern "C" __global__ void quarry_silu_mul_bf16(
    const bf16_t* __restrict__ gate, const bf16_t* __restrict__ up, bf16_t* __restrict__ out,
    unsigned long long count)
{
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        float g = bf2f(gate[i]);
        float silu = round_bf(g / (1.0f + expf(-g)));
        out[i] = f2bf(silu * bf2f(up[i]));
    }
}

// Row-wise softmax of f32 attention scores (already scaled) into bf16
// probabilities, one warp per row of `seq` keys; with `causal`, row r of each
// [seq, seq] block sees keys 0..=r and the rest get probability 0.
extern "C" __global__ void quarry_softmax_rows_bf16(
    const float* __restrict__ scores, bf16_t* __restrict__ probs,
    unsigned int rows, unsigned int seq, unsigned int causal)
{
    unsigned int row_index = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    unsigned int lane = threadIdx.x & 31u;
    if (row_index >= rows) return;
    unsigned int query = row_index % seq;
    unsigned int valid = causal ? query + 1 : seq;
    const float* row = scores + (unsigned long long)row_index * seq;
    bf16_t* out = probs + (unsigned long long)row_index * seq;
    float largest = __int_as_float(0xff800000);
    for (unsigned int j = lane; j < valid; j += 32) largest = fmaxf(largest, row[j]);
    for (int offset = 16; offset > 0; offset >>= 1)
        largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
    float total = 0.0f;
    for (unsigned int j = lane; j < valid; j += 32) total += expf(row[j] - largest);
    for (int offset = 16; offset > 0; offset >>= 1) total += __shfl_xor_sync(0xffffffffu, total, offset);
    float inverse = 1.0f / total;
    for (unsigned int j = lane; j < seq; j += 32)
        out[j] = j < valid ? f2bf(expf(row[j] - largest) * inverse) : (bf16_t)0;
}

// x: [batch * seq, heads_in * dim] (row stride `ld`), bias: [heads_in * dim] or null;
// out: [batch, heads_out, seq, dim]; heads_out is a multiple of heads_in (grouped
// key/value heads repeat). With `rotate`, rotary embedding of position s:
// out = v * cos + rotate_half(v) * sin, rotate_half([a, b]) = [-b, a], angles in f32
// (s * theta^(-2i/dim)), tables rounded to bf16 as quarry's burn graph does.
extern "C" __global__ void quarry_heads_rope_bf16(
    const bf16_t* __restrict__ x, const bf16_t* __restrict__ bias, bf16_t* __restrict__ out,
    unsigned int batch, unsigned int seq, unsigned int heads_in, unsigned int heads_out,
    unsigned int dim, unsigned int ld, unsigned int has_bias, unsigned int rotate, float theta)
{
    unsigned long long total = (unsigned long long)batch * heads_out * seq * dim;
    unsigned int group = heads_out / heads_in;
    unsigned int half = dim / 2;
    for (unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (unsigned long long)gridDim.x * blockDim.x) {
        unsigned int d = (unsigned int)(idx % dim);
        unsigned long long rest = idx / dim;
        unsigned int s = (unsigned int)(rest % seq);
        rest /= seq;
        unsigned int h = (unsigned int)(rest % heads_out);
        unsigned int b = (unsigned int)(rest / heads_out);
        unsigned int col = (h / group) * dim;
        const bf16_t* src = x + ((unsigned long long)b * seq + s) * ld + col;
        float v = bf2f(src[d]);
        if (has_bias) v = round_bf(v + bf2f(bias[col + d]));
        if (!rotate) {
            out[idx] = f2bf(v);
            continue;
        }
        unsigned int pd = d < half ? d + half : d - half;
        float p = bf2f(src[pd]);
        if (has_bias) p = round_bf(p + bf2f(bias[col + pd]));
        float rotated = d < half ? -p : p;
        unsigned int i = d % half;
        float inverse_frequency = 1.0f / powf(theta, (float)(2 * i) / (float)dim);
        float angle = (float)s * inverse_frequency;
        float c = round_bf(cosf(angle));
        float sn = round_bf(sinf(angle));
        out[idx] = f2bf(round_bf(v * c) + round_bf(rotated * sn));
    }
}
"#;

/// Kernel parameter: a tensor's device buffer or a scalar.
enum Arg {
    Buffer(Binding),
    U32(u32),
    U64(u64),
    F32(f32),
}

thread_local! {
    /// Functions of the compiled module, per device-server thread.
    static FUNCTIONS: std::cell::RefCell<Option<HashMap<&'static str, driver_sys::CUfunction>>> =
        const { std::cell::RefCell::new(None) };
}

pub(super) fn function(name: &'static str) -> Result<driver_sys::CUfunction, String> {
    FUNCTIONS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let ptx = cudarc::nvrtc::compile_ptx(SOURCE)
                .map_err(|err| format!("NVRTC compiling quarry's fused kernels: {err:?}"))?;
            let image = CString::new(ptx.to_src()).map_err(|err| format!("PTX: {err}"))?;
            // SAFETY: the server thread has the device context current
            // (`raw_stream_and_addresses` ran first); the image is NUL-terminated PTX.
            let module = unsafe { driver::module::load_data(image.as_ptr().cast()) }
                .map_err(|err| format!("loading fused kernels: {err:?}"))?;
            let mut functions = HashMap::new();
            for kernel in [
                "quarry_rms_norm_bf16",
                "quarry_silu_mul_bf16",
                "quarry_heads_rope_bf16",
                "quarry_softmax_rows_bf16",
            ] {
                let name_c = CString::new(kernel).expect("no NUL");
                // SAFETY: `module` was just loaded and is never unloaded.
                let f = unsafe { driver::module::get_function(module, name_c) }
                    .map_err(|err| format!("{kernel}: {err:?}"))?;
                functions.insert(kernel, f);
            }
            *slot = Some(functions);
        }
        Ok(slot.as_ref().expect("filled")[name])
    })
}

/// Queues `name` on burn's stream of `device` with `args` (buffers resolved
/// to device addresses on the server thread, in queue order).
fn launch(
    device: &burn::backend::cuda::CudaDevice,
    name: &'static str,
    grid: u32,
    block: u32,
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
        unsafe { driver::launch_kernel(f, (grid, 1, 1), (block, 1, 1), 0, stream, &mut params) }
            .map_err(|err| format!("launching {name}: {err:?}"))
    })
}

/// Whether the fused kernels replace burn's ops for activations of `dtype` on backend `B`.
pub(crate) fn active<B: Backend>(dtype: DType) -> bool {
    is_cuda::<B>() && dtype == DType::BF16 && super::fused_kernels()
}

fn empty_like_shape(reference: &Cube, shape: Vec<usize>) -> Cube {
    burn_cubecl::ops::numeric::empty_device_contiguous_dtype::<CudaRuntime>(
        reference.client.clone(),
        reference.device.clone(),
        shape.into(),
        reference.dtype,
    )
}

fn contiguous(tensor: Cube) -> Cube {
    if tensor.is_contiguous() && tensor.is_contiguous_buffer() {
        tensor
    } else {
        burn_cubecl::kernel::into_contiguous(tensor)
    }
}

fn grid_for(count: u64, block: u32) -> u32 {
    // Enough blocks to fill the GPU several times; the kernels loop over the rest.
    count.div_ceil(u64::from(block)).clamp(1, 65_535 * 8) as u32
}

/// Qwen2's RMSNorm in one pass; `Err(x)` when not on burn-cuda bf16 with fused kernels on.
pub(crate) fn rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    weight: &Tensor<B, 3>,
    eps: f64,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    if !active::<B>(x.dtype()) || weight.dtype() != DType::BF16 {
        return Err(x);
    }
    let x = contiguous(to_cube(to_cuda(x)));
    let w = contiguous(to_cube(to_cuda(weight.clone())));
    let shape: Vec<usize> = x.meta.shape().to_vec();
    let cols = *shape.last().expect("rank 3");
    let rows: usize = shape[..shape.len() - 1].iter().product();
    let out = empty_like_shape(&x, shape);
    let device = x.device.clone();
    launch(
        &device,
        "quarry_rms_norm_bf16",
        rows as u32,
        256,
        vec![
            Arg::Buffer(x.handle.clone().binding()),
            Arg::Buffer(w.handle.clone().binding()),
            Arg::Buffer(out.handle.clone().binding()),
            Arg::U32(cols as u32),
            Arg::F32(eps as f32),
        ],
    )
    .unwrap_or_else(|err| panic!("fused RMSNorm: {err}"));
    Ok(from_cuda(from_cube::<3>(out)))
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
    let gate = contiguous(to_cube(to_cuda(gate)));
    let up = contiguous(to_cube(to_cuda(up)));
    let shape: Vec<usize> = gate.meta.shape().to_vec();
    let count: u64 = shape.iter().product::<usize>() as u64;
    let out = empty_like_shape(&gate, shape);
    let device = gate.device.clone();
    launch(
        &device,
        "quarry_silu_mul_bf16",
        grid_for(count, 256),
        256,
        vec![
            Arg::Buffer(gate.handle.clone().binding()),
            Arg::Buffer(up.handle.clone().binding()),
            Arg::Buffer(out.handle.clone().binding()),
            Arg::U64(count),
        ],
    )
    .unwrap_or_else(|err| panic!("fused SwiGLU: {err}"));
    Ok(from_cuda(from_cube::<D>(out)))
}

/// A projection's output `[batch, seq, heads_in * dim]` plus its bias, as
/// heads `[batch, heads_out, seq, dim]` (grouped heads repeated), rotated by
/// position when `rope_theta` is given. `Err(x)` when not applicable.
pub(crate) fn heads_with_rope<B: Backend>(
    x: Tensor<B, 3>,
    bias: Option<&Tensor<B, 1>>,
    heads_in: usize,
    heads_out: usize,
    dim: usize,
    rope_theta: Option<f64>,
) -> Result<Tensor<B, 4>, Tensor<B, 3>> {
    if !active::<B>(x.dtype())
        || bias.is_some_and(|b| b.dtype() != DType::BF16)
        || heads_out % heads_in != 0
        || dim % 2 != 0
    {
        return Err(x);
    }
    let [batch, seq, width] = x.dims();
    if width != heads_in * dim {
        return Err(x);
    }
    let x = contiguous(to_cube(to_cuda(x)));
    let bias = bias.map(|b| contiguous(to_cube(to_cuda(b.clone()))));
    let out = empty_like_shape(&x, vec![batch, heads_out, seq, dim]);
    let count = (batch * heads_out * seq * dim) as u64;
    let device = x.device.clone();
    // Without a bias the kernel never reads its pointer: pass x's.
    let bias_binding = bias.as_ref().map_or_else(
        || x.handle.clone().binding(),
        |b| b.handle.clone().binding(),
    );
    launch(
        &device,
        "quarry_heads_rope_bf16",
        grid_for(count, 256),
        256,
        vec![
            Arg::Buffer(x.handle.clone().binding()),
            Arg::Buffer(bias_binding),
            Arg::Buffer(out.handle.clone().binding()),
            Arg::U32(batch as u32),
            Arg::U32(seq as u32),
            Arg::U32(heads_in as u32),
            Arg::U32(heads_out as u32),
            Arg::U32(dim as u32),
            Arg::U32(width as u32),
            Arg::U32(u32::from(bias.is_some())),
            Arg::U32(u32::from(rope_theta.is_some())),
            Arg::F32(rope_theta.unwrap_or(1.0) as f32),
        ],
    )
    .unwrap_or_else(|err| panic!("fused heads/RoPE: {err}"));
    Ok(from_cuda(from_cube::<4>(out)))
}
