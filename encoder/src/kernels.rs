//! The few encoder operations whose composition from burn's tensor ops is
//! slow on a backend, behind one trait so the architectures keep a single
//! model code. `bert` calls [`EncoderBackend::padded_self_attention`] and
//! [`EncoderBackend::gelu_erf`]; every backend gets burn's composition by
//! default, and the CPU backend (burn-ndarray) overrides both with host
//! kernels.
//!
//! Why the CPU needs its own: burn-ndarray 0.21 runs the attention fallback as
//! many separate passes over `[batch, heads, seq, seq]` scores (a matmul per
//! head, scale, mask fill on an expanded mask, max, subtract, a single-threaded
//! `exp`, sum, divide, matmul) and evaluates `erf` one f64 at a time on one
//! thread. On all-MiniLM-L6-v2 over nfcorpus (2 cores) that was over half of
//! the encoding time. The host attention computes each (sequence, head) on
//! its real tokens only: padded keys are skipped instead of masked, and
//! padded query rows, which nothing reads, are left at zero.

use burn::tensor::{
    activation::gelu, backend::Backend, module::attention, ops::AttentionModuleOptions, Bool,
    Tensor, TensorData,
};
use rayon::prelude::*;

/// A burn backend the encoders run on.
pub trait EncoderBackend: Backend {
    /// Multi-head self-attention of a right-padded batch.
    ///
    /// `qkv`: `[batch, seq, 3 * width]`, the query, key and value projections
    /// side by side (each `heads` blocks of `width / heads`); `lengths[i]`:
    /// the real tokens of row `i`. Returns the attention context
    /// `[batch, seq, width]` (heads concatenated), scaled by `1/sqrt(head_dim)`
    /// and with padded keys masked out. Rows at padded positions are unspecified.
    fn padded_self_attention(
        qkv: Tensor<Self, 3>,
        heads: usize,
        lengths: &[usize],
    ) -> Tensor<Self, 3> {
        composed_self_attention(qkv, heads, lengths)
    }

    /// Exact GELU, `x * Φ(x) = x/2 * (1 + erf(x / sqrt 2))`.
    fn gelu_erf<const D: usize>(x: Tensor<Self, D>) -> Tensor<Self, D> {
        gelu(x)
    }
}

/// [`EncoderBackend::padded_self_attention`] from burn's tensor ops: split the
/// heads, mask padded keys, and run burn's attention.
pub fn composed_self_attention<B: Backend>(
    qkv: Tensor<B, 3>,
    heads: usize,
    lengths: &[usize],
) -> Tensor<B, 3> {
    let [batch, seq, fused] = qkv.dims();
    let width = fused / 3;
    let head_dim = width / heads;
    let split = |index: usize| {
        qkv.clone()
            .narrow(2, index * width, width)
            .reshape([batch, seq, heads, head_dim])
            .swap_dims(1, 2)
    };
    let is_padding: Vec<bool> = lengths
        .iter()
        .flat_map(|&length| (0..seq).map(move |position| position >= length))
        .collect();
    let padding = Tensor::<B, 4, Bool>::from_data(
        TensorData::new(is_padding, [batch, 1, 1, seq]),
        &qkv.device(),
    )
    .expand([batch, heads, seq, seq]);
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: false,
    };
    attention(split(0), split(1), split(2), Some(padding), None, options)
        .swap_dims(1, 2)
        .reshape([batch, seq, width])
}

impl EncoderBackend for crate::backend::CpuBackend {
    fn padded_self_attention(
        qkv: Tensor<Self, 3>,
        heads: usize,
        lengths: &[usize],
    ) -> Tensor<Self, 3> {
        let [batch, seq, fused] = qkv.dims();
        let device = qkv.device();
        let values = host_f32(qkv);
        let context = host_attention(&values, [batch, seq, fused], heads, lengths);
        Tensor::from_data(TensorData::new(context, [batch, seq, fused / 3]), &device)
    }

    fn gelu_erf<const D: usize>(x: Tensor<Self, D>) -> Tensor<Self, D> {
        let shape = x.shape();
        let device = x.device();
        let mut values = host_f32(x);
        values.par_chunks_mut(PARALLEL_CHUNK).for_each(|chunk| {
            for value in chunk {
                // As PyTorch's `gelu(approximate='none')`, in f32.
                *value =
                    *value * 0.5 * (1.0 + libm::erff(*value * std::f32::consts::FRAC_1_SQRT_2));
            }
        });
        Tensor::from_data(TensorData::new(values, shape), &device)
    }
}

#[cfg(feature = "cuda")]
impl EncoderBackend for crate::backend::CudaBackend {}

/// Elements per rayon task in element-wise kernels (large enough that task
/// overhead is noise, small enough to balance two to a few dozen threads).
const PARALLEL_CHUNK: usize = 1 << 14;

/// Query rows per block. Keeps each matrixmultiply call below its own
/// threading threshold (the blocks already run in parallel under rayon, and
/// nested GEMM threads would oversubscribe the cores) and the score block in
/// L1/L2 (16 x 512 f32 = 32 KiB at BERT's longest input).
const QUERY_BLOCK: usize = 16;

fn host_f32<const D: usize>(tensor: Tensor<crate::backend::CpuBackend, D>) -> Vec<f32> {
    // The CPU backend is f32 (see `Precision`): the conversion cannot fail.
    tensor
        .into_data()
        .into_vec::<f32>()
        .expect("burn-ndarray<f32> tensors hold f32")
}

/// Attention context `[batch, seq, width]` from fused projections `[batch, seq, 3 * width]`.
fn host_attention(
    qkv: &[f32],
    [batch, seq, fused]: [usize; 3],
    heads: usize,
    lengths: &[usize],
) -> Vec<f32> {
    let width = fused / 3;
    let head_dim = width / heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    // One task per (sequence, head); each returns its `[length, head_dim]` context.
    let contexts: Vec<Vec<f32>> = (0..batch * heads)
        .into_par_iter()
        .map(|task| {
            let (row, head) = (task / heads, task % heads);
            let length = lengths[row].min(seq);
            let base = row * seq * fused + head * head_dim;
            let query = &qkv[base..];
            let key = &qkv[base + width..];
            let value = &qkv[base + 2 * width..];
            let mut context = vec![0.0f32; length * head_dim];
            let mut scores = vec![0.0f32; QUERY_BLOCK * length];
            for block_start in (0..length).step_by(QUERY_BLOCK) {
                let rows = QUERY_BLOCK.min(length - block_start);
                let offset = block_start * fused;
                // SAFETY: every index sgemm touches lies inside the slices:
                // query rows block_start..block_start+rows and key/value rows
                // 0..length of this sequence (stride `fused`, head_dim columns
                // past `base`), `scores` holds rows x length, `context` length x head_dim.
                unsafe {
                    // scores = scale * Q_block · Kᵀ
                    matrixmultiply::sgemm(
                        rows,
                        head_dim,
                        length,
                        scale,
                        query[offset..].as_ptr(),
                        fused as isize,
                        1,
                        key.as_ptr(),
                        1,
                        fused as isize,
                        0.0,
                        scores.as_mut_ptr(),
                        length as isize,
                        1,
                    );
                }
                for scores_row in scores[..rows * length].chunks_exact_mut(length) {
                    softmax_in_place(scores_row);
                }
                unsafe {
                    // context_block = softmax(scores) · V
                    matrixmultiply::sgemm(
                        rows,
                        length,
                        head_dim,
                        1.0,
                        scores.as_ptr(),
                        length as isize,
                        1,
                        value.as_ptr(),
                        fused as isize,
                        1,
                        0.0,
                        context[block_start * head_dim..].as_mut_ptr(),
                        head_dim as isize,
                        1,
                    );
                }
            }
            context
        })
        .collect();
    let mut output = vec![0.0f32; batch * seq * width];
    for (task, context) in contexts.iter().enumerate() {
        let (row, head) = (task / heads, task % heads);
        for (position, values) in context.chunks_exact(head_dim).enumerate() {
            let start = (row * seq + position) * width + head * head_dim;
            output[start..start + head_dim].copy_from_slice(values);
        }
    }
    output
}

/// Numerically stable softmax of one row (max subtracted, then normalised).
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for value in row.iter_mut() {
        *value = (*value - max).exp();
        sum += *value;
    }
    for value in row.iter_mut() {
        *value /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    type Cpu = burn_ndarray::NdArray<f32>;

    #[test]
    fn host_attention_matches_burn_attention_on_real_tokens() {
        let device = Default::default();
        let (batch, seq, heads, head_dim) = (3, 37, 4, 8);
        let width = heads * head_dim;
        // Lengths that cross query blocks and leave padding in all but one row.
        let lengths = [37, 20, 1];
        let qkv = Tensor::<Cpu, 3>::random(
            [batch, seq, 3 * width],
            Distribution::Normal(0.0, 2.0),
            &device,
        );
        let expected = host_f32(composed_self_attention(qkv.clone(), heads, &lengths));
        let actual = host_f32(Cpu::padded_self_attention(qkv, heads, &lengths));
        for (row, &length) in lengths.iter().enumerate() {
            for position in 0..length {
                let start = (row * seq + position) * width;
                for column in start..start + width {
                    let (a, e) = (actual[column], expected[column]);
                    assert!(
                        (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "row {row} position {position}: {a} vs {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn host_gelu_matches_burn_gelu() {
        let device = Default::default();
        let x = Tensor::<Cpu, 2>::random([7, 3001], Distribution::Normal(0.0, 3.0), &device);
        let expected = host_f32(gelu(x.clone()));
        let actual = host_f32(Cpu::gelu_erf(x));
        for (a, e) in actual.iter().zip(&expected) {
            assert!((a - e).abs() <= 1e-6 * (1.0 + e.abs()), "{a} vs {e}");
        }
    }
}
