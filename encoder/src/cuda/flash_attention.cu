// quarry's fused causal attention for bf16 (FlashAttention-2's forward pass), compiled at run
// time by NVRTC for compute capability 8.0+ (mma.sync bf16 tensor-core tiles, ldmatrix,
// cp.async). See attention.rs for the contract; every index below is in elements.
//
// One block of 4 warps takes 64 query rows of one (batch, head); each warp owns 16 rows.
// Key/value tiles of 64 rows stream through shared memory, double-buffered with cp.async.
// Scores stay in registers: S = Q K^T (f32), online softmax in base 2, O += P V with P
// rounded to bf16 (as every flash kernel does), O scaled by 1/l at the end and written
// straight into [batch, seq, heads * dim] — the o-projection's input, no transposing copy.
// Grouped-query attention: query head h reads key/value head h / (heads / kv_heads).

typedef unsigned short bf16_t;

#define FA_ROWS 64     // query rows per block, keys per tile
#define FA_THREADS 128 // 4 warps x 16 query rows

__device__ __forceinline__ unsigned int fa_smem(const void* pointer) {
    return (unsigned int)__cvta_generic_to_shared(pointer);
}

__device__ __forceinline__ void fa_ldmatrix_x4(unsigned int* r, unsigned int address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

__device__ __forceinline__ void fa_ldmatrix_x4_trans(unsigned int* r, unsigned int address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
}

// c (16x8 f32) += a (16x16 bf16, row) * b (16x8 bf16, col).
__device__ __forceinline__ void fa_mma(float* c, const unsigned int* a, unsigned int b0,
                                       unsigned int b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as bf16x2 (round to nearest even), `low` in the low half.
__device__ __forceinline__ unsigned int fa_pack(float low, float high) {
    unsigned int r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(high), "f"(low));
    return r;
}

// 16 bytes from global to shared; rows at or past `rows` are filled with zeros.
__device__ __forceinline__ void fa_copy16(unsigned int dst, const bf16_t* src, bool inside) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(dst), "l"(src), "r"(inside ? 16 : 0));
}

__device__ __forceinline__ void fa_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void fa_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }

// A FA_ROWS x DIM tile of rows `row0..` of a [seq, DIM] matrix into shared memory (row stride
// DIM + 8 elements: 16 bytes of padding keep ldmatrix free of bank conflicts).
template <int DIM>
__device__ __forceinline__ void fa_load_tile(bf16_t* tile, const bf16_t* matrix, int row0,
                                             int seq) {
    constexpr int STRIDE = DIM + 8;
    constexpr int CHUNKS = DIM / 8;
#pragma unroll
    for (int c = threadIdx.x; c < FA_ROWS * CHUNKS; c += FA_THREADS) {
        const int r = c / CHUNKS;
        const int col = (c % CHUNKS) * 8;
        const int row = row0 + r;
        const bool inside = row < seq;
        const bf16_t* src = matrix + (size_t)(inside ? row : 0) * DIM + col;
        fa_copy16(fa_smem(tile + r * STRIDE + col), src, inside);
    }
}

template <int DIM>
__device__ __forceinline__ void fa_forward(const bf16_t* __restrict__ q,
                                           const bf16_t* __restrict__ k,
                                           const bf16_t* __restrict__ v, bf16_t* __restrict__ out,
                                           int seq, int heads, int kv_heads, float scale_log2) {
    constexpr int STRIDE = DIM + 8;
    constexpr int TILE = FA_ROWS * STRIDE;
    extern __shared__ __align__(16) unsigned char fa_shared[];
    bf16_t* q_tile = reinterpret_cast<bf16_t*>(fa_shared);
    bf16_t* k_tiles = q_tile + TILE;     // two buffers
    bf16_t* v_tiles = k_tiles + 2 * TILE; // two buffers

    const int head = blockIdx.x;
    const int batch = blockIdx.y;
    // The longest rows (last query tiles, most key tiles) are scheduled first.
    const int query_tile = gridDim.z - 1 - blockIdx.z;
    const int kv_head = head / (heads / kv_heads);
    const bf16_t* q_matrix = q + ((size_t)batch * heads + head) * seq * DIM;
    const bf16_t* k_matrix = k + ((size_t)batch * kv_heads + kv_head) * seq * DIM;
    const bf16_t* v_matrix = v + ((size_t)batch * kv_heads + kv_head) * seq * DIM;

    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int group = lane >> 2;  // accumulator row within the warp's 16 (and +8)
    const int quad = lane & 3;    // accumulator column pair

    fa_load_tile<DIM>(q_tile, q_matrix, query_tile * FA_ROWS, seq);
    fa_load_tile<DIM>(k_tiles, k_matrix, 0, seq);
    fa_load_tile<DIM>(v_tiles, v_matrix, 0, seq);
    fa_commit();

    float o[DIM / 8][4];
#pragma unroll
    for (int t = 0; t < DIM / 8; ++t) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
    // Running maxima (base-2 scaled scores) and partial sums of rows `group` and `group + 8`.
    float max0 = -1e30f, max1 = -1e30f, sum0 = 0.0f, sum1 = 0.0f;
    const int query0 = query_tile * FA_ROWS + warp * 16 + group;
    const int query1 = query0 + 8;
    const int key_tiles = query_tile + 1; // causal: keys up to the tile's last query

    for (int j = 0; j < key_tiles; ++j) {
        const int buffer = j & 1;
        if (j + 1 < key_tiles) {
            fa_load_tile<DIM>(k_tiles + (buffer ^ 1) * TILE, k_matrix, (j + 1) * FA_ROWS, seq);
            fa_load_tile<DIM>(v_tiles + (buffer ^ 1) * TILE, v_matrix, (j + 1) * FA_ROWS, seq);
            fa_commit();
            fa_wait<1>();
        } else {
            fa_wait<0>();
        }
        __syncthreads();
        const bf16_t* k_tile = k_tiles + buffer * TILE;
        const bf16_t* v_tile = v_tiles + buffer * TILE;

        // S = Q K^T for the warp's 16 rows x 64 keys: 8 accumulator tiles of 16 x 8.
        float s[8][4];
#pragma unroll
        for (int t = 0; t < 8; ++t) s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.0f;
        const int matrix = lane >> 3;
#pragma unroll
        for (int kk = 0; kk < DIM / 16; ++kk) {
            unsigned int a[4];
            fa_ldmatrix_x4(a, fa_smem(q_tile + (warp * 16 + (lane & 7) + (matrix & 1) * 8) * STRIDE
                                      + kk * 16 + (matrix >> 1) * 8));
#pragma unroll
            for (int pair = 0; pair < 4; ++pair) {
                unsigned int b[4];
                fa_ldmatrix_x4(b, fa_smem(k_tile + (pair * 16 + (lane & 7) + (matrix >> 1) * 8) * STRIDE
                                          + kk * 16 + (matrix & 1) * 8));
                fa_mma(s[2 * pair], a, b[0], b[1]);
                fa_mma(s[2 * pair + 1], a, b[2], b[3]);
            }
        }

        // Scale into base 2, mask future keys (only the diagonal tile has any), row maxima.
        float tile_max0 = -1e30f, tile_max1 = -1e30f;
        const bool diagonal = j == query_tile;
#pragma unroll
        for (int t = 0; t < 8; ++t) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int key = j * FA_ROWS + t * 8 + 2 * quad + e;
                float x0 = s[t][e] * scale_log2;
                float x1 = s[t][2 + e] * scale_log2;
                if (diagonal && key > query0) x0 = -1e30f;
                if (diagonal && key > query1) x1 = -1e30f;
                s[t][e] = x0;
                s[t][2 + e] = x1;
                tile_max0 = fmaxf(tile_max0, x0);
                tile_max1 = fmaxf(tile_max1, x1);
            }
        }
#pragma unroll
        for (int offset = 1; offset < 4; offset <<= 1) {
            tile_max0 = fmaxf(tile_max0, __shfl_xor_sync(0xffffffffu, tile_max0, offset));
            tile_max1 = fmaxf(tile_max1, __shfl_xor_sync(0xffffffffu, tile_max1, offset));
        }
        const float new_max0 = fmaxf(max0, tile_max0);
        const float new_max1 = fmaxf(max1, tile_max1);
        const float rescale0 = exp2f(max0 - new_max0);
        const float rescale1 = exp2f(max1 - new_max1);
        max0 = new_max0;
        max1 = new_max1;
        float row_sum0 = 0.0f, row_sum1 = 0.0f;
#pragma unroll
        for (int t = 0; t < 8; ++t) {
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                s[t][e] = exp2f(s[t][e] - max0);
                s[t][2 + e] = exp2f(s[t][2 + e] - max1);
                row_sum0 += s[t][e];
                row_sum1 += s[t][2 + e];
            }
        }
        sum0 = sum0 * rescale0 + row_sum0;
        sum1 = sum1 * rescale1 + row_sum1;
#pragma unroll
        for (int t = 0; t < DIM / 8; ++t) {
            o[t][0] *= rescale0;
            o[t][1] *= rescale0;
            o[t][2] *= rescale1;
            o[t][3] *= rescale1;
        }

        // O += P V: P from the score registers (the accumulator layout is the A layout).
#pragma unroll
        for (int kk = 0; kk < FA_ROWS / 16; ++kk) {
            unsigned int a[4];
            a[0] = fa_pack(s[2 * kk][0], s[2 * kk][1]);
            a[1] = fa_pack(s[2 * kk][2], s[2 * kk][3]);
            a[2] = fa_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = fa_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int pair = 0; pair < DIM / 16; ++pair) {
                unsigned int b[4];
                fa_ldmatrix_x4_trans(b, fa_smem(v_tile + (kk * 16 + (lane & 7) + (matrix & 1) * 8) * STRIDE
                                                + pair * 16 + (matrix >> 1) * 8));
                fa_mma(o[2 * pair], a, b[0], b[1]);
                fa_mma(o[2 * pair + 1], a, b[2], b[3]);
            }
        }
        // Every warp is done with this buffer before the next iteration refills it.
        __syncthreads();
    }

#pragma unroll
    for (int offset = 1; offset < 4; offset <<= 1) {
        sum0 += __shfl_xor_sync(0xffffffffu, sum0, offset);
        sum1 += __shfl_xor_sync(0xffffffffu, sum1, offset);
    }
    const float inverse0 = 1.0f / sum0;
    const float inverse1 = 1.0f / sum1;
    const size_t row_width = (size_t)heads * DIM;
    bf16_t* out0 = out + ((size_t)batch * seq + query0) * row_width + head * DIM;
    bf16_t* out1 = out0 + 8 * row_width;
#pragma unroll
    for (int t = 0; t < DIM / 8; ++t) {
        const int col = t * 8 + 2 * quad;
        if (query0 < seq)
            *reinterpret_cast<unsigned int*>(out0 + col) = fa_pack(o[t][0] * inverse0, o[t][1] * inverse0);
        if (query1 < seq)
            *reinterpret_cast<unsigned int*>(out1 + col) = fa_pack(o[t][2] * inverse1, o[t][3] * inverse1);
    }
}

// q: [batch, heads, seq, DIM]; k, v: [batch, kv_heads, seq, DIM]; out: [batch, seq, heads * DIM];
// all contiguous bf16. Grid (heads, batch, ceil(seq / 64)), FA_THREADS threads,
// 5 * 64 * (DIM + 8) * 2 bytes of dynamic shared memory. scale_log2 = log2(e) / sqrt(DIM).
extern "C" __global__ void __launch_bounds__(FA_THREADS)
quarry_flash_attention_d64(const bf16_t* q, const bf16_t* k, const bf16_t* v, bf16_t* out,
                           int seq, int heads, int kv_heads, float scale_log2) {
    fa_forward<64>(q, k, v, out, seq, heads, kv_heads, scale_log2);
}

extern "C" __global__ void __launch_bounds__(FA_THREADS)
quarry_flash_attention_d128(const bf16_t* q, const bf16_t* k, const bf16_t* v, bf16_t* out,
                            int seq, int heads, int kv_heads, float scale_log2) {
    fa_forward<128>(q, k, v, out, seq, heads, kv_heads, scale_log2);
}
