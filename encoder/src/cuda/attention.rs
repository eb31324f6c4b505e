//! Attention as two cuBLAS strided-batched GEMMs around a one-pass softmax
//! kernel (`--attention cublas`): scores `Q Kᵀ / √D` in f32, causal softmax
//! into bf16 probabilities, then `P V`. The scores are materialised (B·H·S²
//! floats, 0.94 GB for the 7B shape at B32 x S512), but each is written and
//! read once, where burn's fallback runs a matmul, a multi-kernel softmax and
//! a matmul. An alternative to burn-cubecl's flash kernels, chosen by timing
//! (`quarry bench encode --attention best`).

use cudarc::cublas::{result as cublas, sys as cublas_sys};
use cudarc::driver::result as driver;

use burn::tensor::DType;

use super::{dense, empty, enqueue_cuda_work, Cube};

/// `softmax(Q Kᵀ / √D + causal mask) V` for `q`, `k`, `v` `[B, H, S, D]` in
/// bf16 (as many key/value heads as query heads).
pub(crate) fn cublas_attention(q: Cube, k: Cube, v: Cube, causal: bool) -> Result<Cube, String> {
    let shape: Vec<usize> = q.meta.shape().to_vec();
    let [batch, heads, seq, dim] = shape[..] else {
        return Err(format!("attention takes [B, H, S, D], got {shape:?}"));
    };
    if k.meta.shape().to_vec() != shape || v.meta.shape().to_vec() != shape {
        return Err("q, k and v differ in shape".to_string());
    }
    if [q.dtype, k.dtype, v.dtype] != [DType::BF16; 3] {
        return Err("the cuBLAS attention takes bf16".to_string());
    }
    let (q, k, v) = (dense(q), dense(k), dense(v));
    let scores = empty(&q, vec![batch, heads, seq, seq], DType::F32);
    let probs = empty(&q, vec![batch, heads, seq, seq], DType::BF16);
    let out = empty(&q, shape.clone(), DType::BF16);
    let count = (batch * heads) as i32;
    let (s, d) = (seq as i64, dim as i64);
    let rows = (batch * heads * seq) as u32;
    enqueue_cuda_work(
        &[&q, &k, &v, &scores, &probs, &out],
        move |blas, stream, a| {
            let [q, k, v, scores, probs, out] = [a[0], a[1], a[2], a[3], a[4], a[5]]
                .map(|address| address as *mut std::ffi::c_void);
            let bf16 = cublas_sys::cudaDataType::CUDA_R_16BF;
            let f32_type = cublas_sys::cudaDataType::CUDA_R_32F;
            let (scale, one, zero) = (1.0f32 / (dim as f32).sqrt(), 1.0f32, 0.0f32);
            let (si, di) = (s as i32, d as i32);
            // SAFETY: every pointer is a live binding of the right size for
            // these dimensions (allocated above), queued on burn's stream.
            unsafe {
                // Row-major scores[S_q, S_k] = Q Kᵀ is column-major
                // scoresᵀ = K Qᵀ: A = K (stored as column-major D x S, transposed).
                cublas::gemm_strided_batched_ex(
                    blas,
                    cublas_sys::cublasOperation_t::CUBLAS_OP_T,
                    cublas_sys::cublasOperation_t::CUBLAS_OP_N,
                    si,
                    si,
                    di,
                    (&scale as *const f32).cast(),
                    k,
                    bf16,
                    di,
                    s * d,
                    q,
                    bf16,
                    di,
                    s * d,
                    (&zero as *const f32).cast(),
                    scores,
                    f32_type,
                    si,
                    s * s,
                    count,
                    cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
                .map_err(|err| format!("cuBLAS scores: {err:?}"))?;
            }
            let softmax = super::fused::function("quarry_softmax_rows_bf16")?;
            let mut slots: [u64; 5] = [
                scores as u64,
                probs as u64,
                u64::from(rows),
                u64::from(seq as u32),
                u64::from(causal),
            ];
            let mut params: Vec<*mut std::ffi::c_void> = slots
                .iter_mut()
                .map(|slot| (slot as *mut u64).cast())
                .collect();
            let rows_per_block = 8u32;
            // SAFETY: parameters match the kernel's signature (two pointers, three u32).
            unsafe {
                driver::launch_kernel(
                    softmax,
                    (rows.div_ceil(rows_per_block), 1, 1),
                    (32 * rows_per_block, 1, 1),
                    0,
                    stream,
                    &mut params,
                )
            }
            .map_err(|err| format!("softmax kernel: {err:?}"))?;
            // SAFETY: as above.
            unsafe {
                // Row-major out[S_q, D] = P V is column-major outᵀ = Vᵀ Pᵀ.
                cublas::gemm_strided_batched_ex(
                    blas,
                    cublas_sys::cublasOperation_t::CUBLAS_OP_N,
                    cublas_sys::cublasOperation_t::CUBLAS_OP_N,
                    di,
                    si,
                    si,
                    (&one as *const f32).cast(),
                    v,
                    bf16,
                    di,
                    s * d,
                    probs,
                    bf16,
                    si,
                    s * s,
                    (&zero as *const f32).cast(),
                    out,
                    bf16,
                    di,
                    s * d,
                    count,
                    cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
                .map_err(|err| format!("cuBLAS P V: {err:?}"))?;
            }
            Ok(())
        },
    )?;
    // The scores and probabilities are freed once the task is queued; work
    // queued later on the same stream reuses them only after it.
    drop((q, k, v, scores, probs));
    Ok(out)
}
