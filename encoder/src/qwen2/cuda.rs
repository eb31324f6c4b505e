//! The burn-cuda forward of Qwen2 in bf16 with fused kernels on (`crate::cuda::fused`): every
//! residual add fused into the RMSNorm after it, and bias add, head split and RoPE as one kernel
//! per projection ahead of quarry's flash attention. Each entry hands its input back when it
//! does not apply, and the layers run burn's graph instead.

use burn::tensor::{backend::Backend, ops::AttentionModuleOptions, Tensor};

use super::attention::{scaled_dot_product_attention, Attention};
use super::model::{DecoderLayer, RmsNorm};
use super::Qwen2Model;
use crate::cuda::{self, fused, AttentionKernel};
use crate::layers::Linear;

impl<B: Backend> Attention<B> {
    /// On burn-cuda in bf16 with fused kernels on: bias add, head split and RoPE as one
    /// kernel per projection, then quarry's flash attention, which reads the grouped
    /// key/value heads in place and writes the o-projection's input layout directly.
    #[cfg(feature = "cuda")]
    pub(super) fn forward_fused(
        &self,
        x: &Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
    ) -> Option<Tensor<B, 3>> {
        if !fused::active::<B>(x.dtype())
            || [&self.q_proj, &self.k_proj, &self.v_proj]
                .iter()
                .any(|p| p.lora.is_some())
        {
            return None;
        }
        let [batch, seq_len, _] = x.dims();
        let heads = |projection: &Linear<B>, count: usize, rotate: bool| {
            fused::rope_heads(
                projection.forward_without_bias(x.clone()),
                projection.bias(),
                (cos, sin),
                count,
                self.head_dim,
                rotate,
            )
            .ok()
        };
        let q = heads(&self.q_proj, self.num_heads, true)?;
        let k = heads(&self.k_proj, self.num_kv_heads, true)?;
        let v = heads(&self.v_proj, self.num_kv_heads, false)?;
        let flash = cuda::attention_kernel() == AttentionKernel::Fused
            && fused::flash_applies(self.head_dim)
            && fused::on_flash_device(x);
        let context = if flash {
            fused::flash_attention(q, k, v)
        } else {
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: true,
            };
            scaled_dot_product_attention(q, self.repeat_kv(k), self.repeat_kv(v), options)
                .swap_dims(1, 2)
                .reshape([batch, seq_len, self.num_heads * self.head_dim])
        };
        Some(self.o_proj.forward(context))
    }
}

impl<B: Backend> DecoderLayer<B> {
    /// The layer with each residual add fused into the RMSNorm after it: takes the
    /// residual stream and its input-normed copy, returns the new residual stream and its
    /// copy normed by `next_norm` (the next layer's input norm, or the final norm).
    #[cfg(feature = "cuda")]
    fn forward_fused(
        &self,
        (residual, normed): (Tensor<B, 3>, Tensor<B, 3>),
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        next_norm: &RmsNorm<B>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let attended = self.self_attn.forward(normed, cos, sin);
        let norm = &self.post_attention_layernorm;
        let (residual, normed) =
            fused::add_rms_norm(residual, Some(attended), &norm.weight, norm.eps);
        let fed_forward = self.mlp.forward(normed);
        fused::add_rms_norm(
            residual,
            Some(fed_forward),
            &next_norm.weight,
            next_norm.eps,
        )
    }
}

impl<B: Backend> Qwen2Model<B> {
    /// Final hidden states with every norm fused into the residual add before it; hands the
    /// embeddings back when the fused kernels do not apply.
    pub(super) fn forward_fused(
        &self,
        hidden: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
    ) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
        if !(fused::active::<B>(hidden.dtype())
            && fused::norm_applies(self.config.hidden_size)
            && !self.layers.is_empty())
        {
            return Err(hidden);
        }
        let first = &self.layers[0].input_layernorm;
        let mut stream = fused::add_rms_norm(hidden, None, &first.weight, first.eps);
        for (i, layer) in self.layers.iter().enumerate() {
            let next_norm = self
                .layers
                .get(i + 1)
                .map_or(&self.norm, |next| &next.input_layernorm);
            stream = layer.forward_fused(stream, cos, sin, next_norm);
        }
        Ok(stream.1)
    }
}
