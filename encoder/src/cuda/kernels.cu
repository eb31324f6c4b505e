// quarry's elementwise CUDA kernels (see fused.rs), compiled at run time by NVRTC.
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

// Eight bf16 values (one 16-byte load) as floats, and back (round to nearest even).
__device__ __forceinline__ void unpack8(uint4 v, float* f) {
    unsigned int u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        f[2 * i] = __uint_as_float(u[i] << 16);
        f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
}

__device__ __forceinline__ uint4 pack8(const float* f) {
    unsigned int u[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) u[i] = (unsigned int)f2bf(f[2 * i]) | ((unsigned int)f2bf(f[2 * i + 1]) << 16);
    return make_uint4(u[0], u[1], u[2], u[3]);
}

#define NORM_THREADS 128
#define NORM_MAX_CHUNKS 8

// One block of NORM_THREADS per row of `cols` values (cols % 8 == 0, cols <= 8 * 8 * 128,
// rows 16-byte aligned). With `has_delta`: sum = bf16(x + delta) is written to `sum_out` and
// normalised (the residual add before a pre-norm); without it x itself is normalised.
// out = bf16(bf16(v / sqrt(mean(v^2) + eps)) * w), statistics in f32.
extern "C" __global__ void quarry_add_rms_norm_bf16(
    const bf16_t* __restrict__ x, const bf16_t* __restrict__ delta, const bf16_t* __restrict__ w,
    bf16_t* __restrict__ sum_out, bf16_t* __restrict__ out, unsigned int cols, float eps,
    unsigned int has_delta)
{
    const size_t base = (size_t)blockIdx.x * cols;
    const unsigned int chunks = cols / 8;
    float v[NORM_MAX_CHUNKS][8];
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < NORM_MAX_CHUNKS; ++k) {
        unsigned int c = threadIdx.x + k * NORM_THREADS;
        if (c < chunks) {
            unpack8(reinterpret_cast<const uint4*>(x + base)[c], v[k]);
            if (has_delta) {
                float d[8];
                unpack8(reinterpret_cast<const uint4*>(delta + base)[c], d);
#pragma unroll
                for (int i = 0; i < 8; ++i) v[k][i] = round_bf(v[k][i] + d[i]);
                reinterpret_cast<uint4*>(sum_out + base)[c] = pack8(v[k]);
            }
#pragma unroll
            for (int i = 0; i < 8; ++i) sum += v[k][i] * v[k][i];
        }
    }
    __shared__ float partial[NORM_THREADS / 32];
    for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if ((threadIdx.x & 31u) == 0) partial[threadIdx.x >> 5] = sum;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < NORM_THREADS / 32; ++i) total += partial[i];
    const float denominator = sqrtf(total / (float)cols + eps);
#pragma unroll
    for (int k = 0; k < NORM_MAX_CHUNKS; ++k) {
        unsigned int c = threadIdx.x + k * NORM_THREADS;
        if (c < chunks) {
            float wv[8];
            unpack8(reinterpret_cast<const uint4*>(w)[c], wv);
            float o[8];
#pragma unroll
            for (int i = 0; i < 8; ++i) o[i] = round_bf(v[k][i] / denominator) * wv[i];
            reinterpret_cast<uint4*>(out + base)[c] = pack8(o);
        }
    }
}

__device__ __forceinline__ float silu_times(float g, float u) {
    return round_bf(g / (1.0f + expf(-g))) * u;
}

// out = bf16(bf16(silu(gate)) * up), eight values per 16-byte load; all three buffers 16-byte
// aligned. The last count % 8 values are done one by one.
extern "C" __global__ void quarry_silu_mul_bf16(
    const bf16_t* __restrict__ gate, const bf16_t* __restrict__ up, bf16_t* __restrict__ out,
    unsigned long long count)
{
    const unsigned long long chunks = count / 8;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    const unsigned long long first = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (unsigned long long i = first; i < chunks; i += stride) {
        float g[8], u[8];
        unpack8(reinterpret_cast<const uint4*>(gate)[i], g);
        unpack8(reinterpret_cast<const uint4*>(up)[i], u);
#pragma unroll
        for (int j = 0; j < 8; ++j) g[j] = silu_times(g[j], u[j]);
        reinterpret_cast<uint4*>(out)[i] = pack8(g);
    }
    for (unsigned long long i = chunks * 8 + first; i < count; i += stride)
        out[i] = f2bf(silu_times(bf2f(gate[i]), bf2f(up[i])));
}

// x: [batch * seq, heads * dim] (row stride `ld`), bias: [heads * dim] (read when has_bias);
// cos_t, sin_t: [seq, dim] bf16 tables (transformers' layout, the frequencies twice);
// out: [batch, heads, seq, dim]. Rounding as quarry's burn graph: v = bf16(x + bias);
// out = bf16(bf16(v * cos) + bf16(rotate_half(v) * sin)), rotate_half([a, b]) = [-b, a].
// Without `rotate` the heads are only split (values). One thread per 8 values of the first
// half and the 8 matching ones of the second (dim % 16 == 0, ld % 8 == 0, 16-byte aligned
// buffers), in output order so that a warp writes whole rows.
extern "C" __global__ void quarry_rope_heads_bf16(
    const bf16_t* __restrict__ x, const bf16_t* __restrict__ bias,
    const bf16_t* __restrict__ cos_t, const bf16_t* __restrict__ sin_t, bf16_t* __restrict__ out,
    unsigned int batch, unsigned int seq, unsigned int heads, unsigned int dim, unsigned int ld,
    unsigned int has_bias, unsigned int rotate)
{
    const unsigned int half = dim / 2;
    const unsigned int chunks = half / 8;
    const unsigned int total = batch * heads * seq * chunks;
    for (unsigned int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += gridDim.x * blockDim.x) {
        const unsigned int i = (idx % chunks) * 8;
        unsigned int rest = idx / chunks;
        const unsigned int s = rest % seq;
        rest /= seq;
        const unsigned int h = rest % heads;
        const unsigned int b = rest / heads;
        const bf16_t* src = x + ((size_t)b * seq + s) * ld + h * dim;
        float a[8], c[8];
        unpack8(*reinterpret_cast<const uint4*>(src + i), a);
        unpack8(*reinterpret_cast<const uint4*>(src + half + i), c);
        if (has_bias) {
            float ba[8], bc[8];
            unpack8(*reinterpret_cast<const uint4*>(bias + h * dim + i), ba);
            unpack8(*reinterpret_cast<const uint4*>(bias + h * dim + half + i), bc);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                a[j] = round_bf(a[j] + ba[j]);
                c[j] = round_bf(c[j] + bc[j]);
            }
        }
        bf16_t* dst = out + (((size_t)b * heads + h) * seq + s) * dim;
        if (rotate) {
            const bf16_t* ct = cos_t + (size_t)s * dim;
            const bf16_t* st = sin_t + (size_t)s * dim;
            float ca[8], cc[8], sa[8], sc[8], first[8], second[8];
            unpack8(*reinterpret_cast<const uint4*>(ct + i), ca);
            unpack8(*reinterpret_cast<const uint4*>(ct + half + i), cc);
            unpack8(*reinterpret_cast<const uint4*>(st + i), sa);
            unpack8(*reinterpret_cast<const uint4*>(st + half + i), sc);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                first[j] = round_bf(a[j] * ca[j]) + round_bf(-c[j] * sa[j]);
                second[j] = round_bf(c[j] * cc[j]) + round_bf(a[j] * sc[j]);
            }
            *reinterpret_cast<uint4*>(dst + i) = pack8(first);
            *reinterpret_cast<uint4*>(dst + half + i) = pack8(second);
        } else {
            *reinterpret_cast<uint4*>(dst + i) = pack8(a);
            *reinterpret_cast<uint4*>(dst + half + i) = pack8(c);
        }
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
