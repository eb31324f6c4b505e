//! Qwen2's self-attention: rotary position embeddings computed as transformers does, and
//! grouped-query causal attention with q/k/v biases (burn's kernel, the burn-cuda kernel chosen
//! in `crate::cuda`, or, when differentiating, the softmax written out).

use burn::tensor::{
    backend::Backend, module::attention, ops::AttentionModuleOptions, DType, Tensor, TensorData,
};

use super::model::RandomInit;
use super::Qwen2Config;
use crate::layers::{divide, to_dtype, to_f32, Linear, WeightReader};
use crate::EncoderError;

/// Rotary position embedding tables, computed like transformers' default RoPE
/// (f32 inverse frequencies, f32 angles) so positions match bit for bit.
#[derive(Debug, Clone)]
pub(super) struct RotaryEmbedding {
    inverse_frequencies: Vec<f32>,
    head_dim: usize,
}

impl RotaryEmbedding {
    pub(super) fn new(cfg: &Qwen2Config) -> Self {
        let theta = cfg.rope_theta as f32;
        let inverse_frequencies = (0..cfg.head_dim)
            .step_by(2)
            .map(|i| 1.0f32 / theta.powf(i as f32 / cfg.head_dim as f32))
            .collect();
        Self {
            inverse_frequencies,
            head_dim: cfg.head_dim,
        }
    }

    /// `(cos, sin)`, each `[1, 1, seq_len, head_dim]` in `dtype`.
    pub(super) fn tables<B: Backend>(
        &self,
        seq_len: usize,
        device: &B::Device,
        dtype: DType,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let mut cos = Vec::with_capacity(seq_len * self.head_dim);
        let mut sin = Vec::with_capacity(seq_len * self.head_dim);
        for position in 0..seq_len {
            // transformers concatenates the frequencies with themselves.
            for _half in 0..2 {
                for frequency in &self.inverse_frequencies {
                    let angle = position as f32 * frequency;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let shape = [1, 1, seq_len, self.head_dim];
        (
            Tensor::from_data(TensorData::new(cos, shape), (device, dtype)),
            Tensor::from_data(TensorData::new(sin, shape), (device, dtype)),
        )
    }
}

/// `x * cos + rotate_half(x) * sin` with `rotate_half([a, b]) = [-b, a]`.
fn apply_rotary<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [_, _, _, head_dim] = x.dims();
    let half = head_dim / 2;
    let first = x.clone().narrow(3, 0, half);
    let second = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * cos.clone() + rotated * sin.clone()
}

/// burn's attention, or on burn-cuda the kernel chosen in `crate::cuda`.
pub(super) fn scaled_dot_product_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    options: AttentionModuleOptions,
) -> Tensor<B, 4> {
    #[cfg(feature = "cuda")]
    let (q, k, v) = match crate::cuda::attention(q, k, v, options) {
        Ok(context) => return context,
        Err(inputs) => inputs,
    };
    attention(q, k, v, None, None, options)
}

/// Grouped-query self-attention with q/k/v biases and a causal mask.
#[derive(Debug, Clone)]
pub(super) struct Attention<B: Backend> {
    pub(super) q_proj: Linear<B>,
    pub(super) k_proj: Linear<B>,
    pub(super) v_proj: Linear<B>,
    pub(super) o_proj: Linear<B>,
    pub(super) num_heads: usize,
    pub(super) num_kv_heads: usize,
    pub(super) head_dim: usize,
}

impl<B: Backend> Attention<B> {
    pub(super) fn random(cfg: &Qwen2Config, init: &RandomInit<B>) -> Self {
        let q_width = cfg.num_attention_heads * cfg.head_dim;
        let kv_width = cfg.num_key_value_heads * cfg.head_dim;
        Self {
            q_proj: init.linear(cfg.hidden_size, q_width, true),
            k_proj: init.linear(cfg.hidden_size, kv_width, true),
            v_proj: init.linear(cfg.hidden_size, kv_width, true),
            o_proj: init.linear(q_width, cfg.hidden_size, false),
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
        }
    }

    pub(super) fn new(cfg: &Qwen2Config, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
        let q_width = cfg.num_attention_heads * cfg.head_dim;
        let kv_width = cfg.num_key_value_heads * cfg.head_dim;
        Ok(Self {
            q_proj: weights.linear("q_proj", cfg.hidden_size, q_width, true)?,
            k_proj: weights.linear("k_proj", cfg.hidden_size, kv_width, true)?,
            v_proj: weights.linear("v_proj", cfg.hidden_size, kv_width, true)?,
            o_proj: weights.linear("o_proj", q_width, cfg.hidden_size, false)?,
            num_heads: cfg.num_attention_heads,
            num_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim,
        })
    }

    pub(super) fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
    ) -> Tensor<B, 3> {
        #[cfg(feature = "cuda")]
        if let Some(out) = self.forward_fused(&x, cos, sin) {
            return out;
        }
        let [batch, seq_len, _] = x.dims();
        let heads = |t: Tensor<B, 3>, count: usize| {
            t.reshape([batch, seq_len, count, self.head_dim])
                .swap_dims(1, 2)
        };
        let q = heads(self.q_proj.forward(x.clone()), self.num_heads);
        let k = heads(self.k_proj.forward(x.clone()), self.num_kv_heads);
        let v = heads(self.v_proj.forward(x), self.num_kv_heads);
        let q = apply_rotary(q, cos, sin);
        let k = apply_rotary(k, cos, sin);
        let k = self.repeat_kv(k);
        let v = self.repeat_kv(v);
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let context = if B::ad_enabled(&q.device()) {
            differentiable_causal_attention(q, k, v)
        } else {
            scaled_dot_product_attention(q, k, v, options)
        };
        let context =
            context
                .swap_dims(1, 2)
                .reshape([batch, seq_len, self.num_heads * self.head_dim]);
        self.o_proj.forward(context)
    }

    /// Repeats each key/value head for the query heads of its group.
    pub(super) fn repeat_kv(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let group = self.num_heads / self.num_kv_heads;
        if group == 1 {
            return x;
        }
        let [batch, kv_heads, seq_len, head_dim] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([batch, kv_heads, group, seq_len, head_dim])
            .reshape([batch, kv_heads * group, seq_len, head_dim])
    }
}

/// Causal softmax attention written out for training. burn-autodiff has no attention
/// kernel of its own (it differentiates the same decomposition), and writing it here lets
/// the softmax normalisation use [`divide`] (exact gradients on the CPU backend).
fn differentiable_causal_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [batch, heads, seq_len, head_dim] = q.dims();
    let device = q.device();
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .mul_scalar(1.0 / (head_dim as f64).sqrt());
    let future: Vec<bool> = (0..seq_len)
        .flat_map(|row| (0..seq_len).map(move |col| col > row))
        .collect();
    let future = Tensor::<B, 2, burn::tensor::Bool>::from_data(
        TensorData::new(future, [seq_len, seq_len]),
        &device,
    )
    .reshape([1, 1, seq_len, seq_len])
    .expand([batch, heads, seq_len, seq_len]);
    let scores = scores.mask_fill(future, f32::NEG_INFINITY);
    // Softmax in f32 (as transformers' eager attention), shifted by the (constant) row maximum.
    let dtype = scores.dtype();
    let scores = to_f32(scores);
    let shifted = scores.clone() - scores.max_dim(3).detach();
    let weights = shifted.exp();
    let weights = divide(weights.clone(), weights.sum_dim(3));
    to_dtype(weights, dtype).matmul(v)
}
