//! The Qwen2 decoder as a text encoder: token ids in, final hidden states
//! (after the last RMSNorm) out; `encode` pools them into embeddings.
//!
//! One implementation serves every checkpoint of the family quarry studies:
//! Qwen2.5 base/Instruct/Coder/Math, DeepSeek-R1-Distill-Qwen, and the language
//! tower of Qwen2.5-VL (whose multimodal RoPE reduces to ordinary positions for
//! text-only input; the vision tower is not loaded). The layout follows
//! transformers' `modeling_qwen2.py` (and candle's `qwen2.rs`): RMSNorm, rotary
//! embeddings, grouped-query attention with q/k/v biases, SwiGLU MLP.
//!
//! Batches are right-padded: with the causal mask, a real token never attends
//! to the padding that follows it, so no padding mask is needed and every real
//! position equals the unpadded result. Positions count from 0 at the first token.

use std::path::Path;

use burn::tensor::{
    activation::silu,
    backend::Backend,
    module::{attention, embedding},
    ops::AttentionModuleOptions,
    DType, Distribution, Int, Tensor, TensorData,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layers::{divide, require_positive, to_dtype, to_f32, Linear, LoraBranch, WeightReader};
use crate::lora::{LoraAdapter, LoraPair};
use crate::{EncoderError, HostTensor, TensorSource};

/// The architecture hyper-parameters, from a HF `config.json` (or GGUF metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen2Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Per-head width; `hidden_size / num_attention_heads` unless the config says otherwise.
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    /// Whether `lm_head` shares the embedding matrix. Irrelevant to hidden
    /// states; kept so the configuration round-trips.
    pub tie_word_embeddings: bool,
}

/// `config.json` fields as published; variants are reconciled in [`Qwen2Config::from_hf_json`].
#[derive(Deserialize)]
struct RawQwen2Config {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    max_position_embeddings: Option<usize>,
    rope_theta: Option<f64>,
    rope_parameters: Option<Value>,
    rope_scaling: Option<Value>,
    rms_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    tie_word_embeddings: Option<bool>,
    use_sliding_window: Option<bool>,
}

impl Qwen2Config {
    /// Reads a HF `config.json` of `Qwen2ForCausalLM`/`Qwen2Model` or
    /// `Qwen2_5_VLForConditionalGeneration` (text tower only).
    pub fn from_hf_file(path: &Path) -> Result<Self, EncoderError> {
        let text = std::fs::read_to_string(path).map_err(|source| EncoderError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hf_json(&text, path)
    }

    /// Parses `config.json` text; `file` names it in errors.
    ///
    /// Accepts the variants transformers has written over time: `rope_theta`
    /// at the top level or inside transformers 5's `rope_parameters`; for
    /// Qwen2.5-VL, the text settings either flat or nested in `text_config`.
    pub fn from_hf_json(text: &str, file: &Path) -> Result<Self, EncoderError> {
        let config_error = |detail: String| EncoderError::Config {
            file: file.to_path_buf(),
            detail,
        };
        let root: Value = serde_json::from_str(text)
            .map_err(|err| config_error(format!("not valid JSON: {err}")))?;
        let Value::Object(mut fields) = root else {
            return Err(config_error("not a JSON object".to_string()));
        };
        // Newer Qwen2.5-VL configs nest the language model's settings; overlay
        // them on the top level (which may still hold e.g. `vocab_size`).
        if let Some(Value::Object(text_config)) = fields.remove("text_config") {
            fields.extend(text_config);
        }
        let raw: RawQwen2Config = serde_json::from_value(Value::Object(fields))
            .map_err(|err| config_error(format!("unexpected field value: {err}")))?;
        let required = |value: Option<usize>, name: &str| {
            value.ok_or_else(|| config_error(format!("missing `{name}`")))
        };

        if let Some(activation) = &raw.hidden_act {
            if activation != "silu" {
                return Err(config_error(format!(
                    "hidden_act `{activation}`: Qwen2 layers here implement `silu` only"
                )));
            }
        }
        if raw.use_sliding_window == Some(true) {
            return Err(config_error(
                "use_sliding_window = true is not supported (full attention only)".to_string(),
            ));
        }
        let rope_from_parameters = match &raw.rope_parameters {
            Some(parameters) => {
                check_rope_type(parameters).map_err(config_error)?;
                parameters.get("rope_theta").and_then(Value::as_f64)
            }
            None => None,
        };
        if let Some(scaling) = &raw.rope_scaling {
            check_rope_type(scaling).map_err(config_error)?;
        }
        let rope_theta = raw
            .rope_theta
            .or(rope_from_parameters)
            .ok_or_else(|| config_error("missing `rope_theta`".to_string()))?;

        let hidden_size = required(raw.hidden_size, "hidden_size")?;
        let num_attention_heads = required(raw.num_attention_heads, "num_attention_heads")?;
        require_positive(file, "num_attention_heads", num_attention_heads)?;
        let config = Self {
            vocab_size: required(raw.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: required(raw.intermediate_size, "intermediate_size")?,
            num_hidden_layers: required(raw.num_hidden_layers, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(num_attention_heads),
            head_dim: raw.head_dim.unwrap_or(hidden_size / num_attention_heads),
            max_position_embeddings: required(
                raw.max_position_embeddings,
                "max_position_embeddings",
            )?,
            rope_theta,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
        };
        config.validate(file)?;
        Ok(config)
    }

    /// Checks the invariants the layers rely on; `file` names the source in errors.
    pub fn validate(&self, file: &Path) -> Result<(), EncoderError> {
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            require_positive(file, field, value)?;
        }
        let config_error = |detail: String| EncoderError::Config {
            file: file.to_path_buf(),
            detail,
        };
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return Err(config_error(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if self.head_dim % 2 != 0 {
            return Err(config_error(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim
            )));
        }
        if !(self.rope_theta > 0.0 && self.rms_norm_eps >= 0.0) {
            return Err(config_error(format!(
                "rope_theta {} / rms_norm_eps {} out of range",
                self.rope_theta, self.rms_norm_eps
            )));
        }
        Ok(())
    }
}

/// Only plain RoPE (and Qwen2.5-VL's mrope, identical for text-only input) is implemented.
fn check_rope_type(parameters: &Value) -> Result<(), String> {
    let kind = parameters
        .get("rope_type")
        .or_else(|| parameters.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" | "mrope" => Ok(()),
        other => Err(format!(
            "rope type `{other}` (scaled RoPE) is not supported; only default/mrope"
        )),
    }
}

/// Where the language model's tensors live in the checkpoint's naming.
///
/// `Qwen2ForCausalLM` uses `model.`; a bare `Qwen2Model` has no prefix;
/// `Qwen2_5_VLForConditionalGeneration` uses `model.` (transformers < 4.52),
/// `model.language_model.` (newer) or `language_model.model.`.
fn language_model_prefix(source: &dyn TensorSource) -> Result<&'static str, EncoderError> {
    const PREFIXES: [&str; 5] = [
        "model.",
        "model.language_model.",
        "language_model.model.",
        "language_model.",
        "",
    ];
    PREFIXES
        .into_iter()
        .find(|prefix| {
            source
                .shape(&format!("{prefix}embed_tokens.weight"))
                .is_some()
        })
        .ok_or_else(|| {
            let mut names = source.tensor_names();
            names.sort();
            names.truncate(5);
            EncoderError::Weights {
                origin: source.origin().to_path_buf(),
                name: "embed_tokens.weight".to_string(),
                detail: format!(
                    "no Qwen2 token embedding under any of the prefixes {PREFIXES:?}; \
                     first tensor names: {names:?}"
                ),
            }
        })
}

/// Qwen2's RMSNorm: statistics in f32, scale in the model dtype.
#[derive(Debug, Clone)]
struct RmsNorm<B: Backend> {
    weight: Tensor<B, 3>,
    eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    fn ones(cfg: &Qwen2Config, device: &B::Device, dtype: DType) -> Self {
        Self {
            weight: Tensor::ones([1, 1, cfg.hidden_size], (device, dtype)),
            eps: cfg.rms_norm_eps,
        }
    }

    fn new(cfg: &Qwen2Config, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
        let weight = weights
            .tensor("weight", [cfg.hidden_size])?
            .reshape([1, 1, cfg.hidden_size]);
        Ok(Self {
            weight,
            eps: cfg.rms_norm_eps,
        })
    }

    /// burn's graph; on burn-cuda in bf16 `Qwen2Model::forward` runs every norm fused with
    /// the residual add before it instead (`cuda::fused::add_rms_norm`).
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let dtype = x.dtype();
        let x = to_f32(x);
        let mean_square = x.clone().powi_scalar(2).mean_dim(2);
        // Division, not `recip()`: burn-ndarray's SIMD reciprocal is an
        // approximation (~1e-4 relative), far outside parity tolerance.
        let normed = divide(x, mean_square.add_scalar(self.eps).sqrt());
        to_dtype(normed, dtype) * self.weight.clone()
    }
}

/// Rotary position embedding tables, computed like transformers' default RoPE
/// (f32 inverse frequencies, f32 angles) so positions match bit for bit.
#[derive(Debug, Clone)]
struct RotaryEmbedding {
    inverse_frequencies: Vec<f32>,
    head_dim: usize,
}

impl RotaryEmbedding {
    fn new(cfg: &Qwen2Config) -> Self {
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
    fn tables<B: Backend>(
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
fn scaled_dot_product_attention<B: Backend>(
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
struct Attention<B: Backend> {
    q_proj: Linear<B>,
    k_proj: Linear<B>,
    v_proj: Linear<B>,
    o_proj: Linear<B>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl<B: Backend> Attention<B> {
    fn random(cfg: &Qwen2Config, init: &RandomInit<B>) -> Self {
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

    fn new(cfg: &Qwen2Config, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
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

    fn forward(&self, x: Tensor<B, 3>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 3> {
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

    /// On burn-cuda in bf16 with fused kernels on: bias add, head split and RoPE as one
    /// kernel per projection, then quarry's flash attention, which reads the grouped
    /// key/value heads in place and writes the o-projection's input layout directly.
    #[cfg(feature = "cuda")]
    fn forward_fused(
        &self,
        x: &Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
    ) -> Option<Tensor<B, 3>> {
        use crate::cuda::{self, fused, AttentionKernel};
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

    /// Repeats each key/value head for the query heads of its group.
    fn repeat_kv(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
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

/// SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
struct Mlp<B: Backend> {
    gate_proj: Linear<B>,
    up_proj: Linear<B>,
    down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn random(cfg: &Qwen2Config, init: &RandomInit<B>) -> Self {
        let (hidden, inner) = (cfg.hidden_size, cfg.intermediate_size);
        Self {
            gate_proj: init.linear(hidden, inner, false),
            up_proj: init.linear(hidden, inner, false),
            down_proj: init.linear(inner, hidden, false),
        }
    }

    fn new(cfg: &Qwen2Config, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
        let (hidden, inner) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: weights.linear("gate_proj", hidden, inner, false)?,
            up_proj: weights.linear("up_proj", hidden, inner, false)?,
            down_proj: weights.linear("down_proj", inner, hidden, false)?,
        })
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        #[cfg(feature = "cuda")]
        let (gate, up) = match crate::cuda::fused::silu_mul(gate, up) {
            Ok(product) => return self.down_proj.forward(product),
            Err(inputs) => inputs,
        };
        self.down_proj.forward(silu(gate) * up)
    }
}

/// Pre-norm decoder block.
#[derive(Debug, Clone)]
struct DecoderLayer<B: Backend> {
    input_layernorm: RmsNorm<B>,
    self_attn: Attention<B>,
    post_attention_layernorm: RmsNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> DecoderLayer<B> {
    fn new(cfg: &Qwen2Config, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
        Ok(Self {
            input_layernorm: RmsNorm::new(cfg, &weights.pp("input_layernorm"))?,
            self_attn: Attention::new(cfg, &weights.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(cfg, &weights.pp("post_attention_layernorm"))?,
            mlp: Mlp::new(cfg, &weights.pp("mlp"))?,
        })
    }

    fn forward(&self, x: Tensor<B, 3>, cos: &Tensor<B, 4>, sin: &Tensor<B, 4>) -> Tensor<B, 3> {
        let x = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), cos, sin);
        x.clone() + self.mlp.forward(self.post_attention_layernorm.forward(x))
    }

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
        use crate::cuda::fused::add_rms_norm;
        let attended = self.self_attn.forward(normed, cos, sin);
        let norm = &self.post_attention_layernorm;
        let (residual, normed) = add_rms_norm(residual, Some(attended), &norm.weight, norm.eps);
        let fed_forward = self.mlp.forward(normed);
        add_rms_norm(
            residual,
            Some(fed_forward),
            &next_norm.weight,
            next_norm.eps,
        )
    }
}

/// Random weights drawn on the device itself (no host copy: the 7B shape
/// has 7.6 G parameters). Uniform with standard deviation 0.02 (transformers'
/// `initializer_range`), so activations stay in a realistic range.
struct RandomInit<B: Backend> {
    device: B::Device,
    dtype: DType,
}

impl<B: Backend> RandomInit<B> {
    const STD: f64 = 0.02;

    fn tensor<const D: usize>(&self, shape: [usize; D]) -> Tensor<B, D> {
        let half_width = Self::STD * 3f64.sqrt();
        Tensor::random(
            shape,
            Distribution::Uniform(-half_width, half_width),
            (&self.device, self.dtype),
        )
    }

    fn linear(&self, d_in: usize, d_out: usize, with_bias: bool) -> Linear<B> {
        Linear::from_tensors(
            self.tensor([d_in, d_out]),
            with_bias.then(|| self.tensor([d_out])),
        )
    }
}

/// The Qwen2 language model without its LM head.
#[derive(Debug, Clone)]
pub struct Qwen2Model<B: Backend> {
    embed_tokens: Tensor<B, 2>,
    layers: Vec<DecoderLayer<B>>,
    norm: RmsNorm<B>,
    rotary: RotaryEmbedding,
    config: Qwen2Config,
    device: B::Device,
    dtype: DType,
    /// The checkpoint's prefix of the language model's names (`model.`), for module paths.
    prefix: String,
}

impl<B: Backend> Qwen2Model<B> {
    /// Loads the language model's weights (HF naming, any of the known
    /// prefixes) onto `device` in `dtype`. `lm_head` and `visual.*` are not read.
    pub fn load(
        config: &Qwen2Config,
        source: &dyn TensorSource,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, EncoderError> {
        config.validate(source.origin())?;
        let prefix = language_model_prefix(source)?;
        let root = WeightReader::<B>::new(source, device, dtype);
        let weights = match prefix.strip_suffix('.') {
            Some(segment) => root.pp(segment),
            None => root,
        };
        let embed_tokens = weights.tensor(
            "embed_tokens.weight",
            [config.vocab_size, config.hidden_size],
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|index| DecoderLayer::new(config, &weights.pp("layers").pp(index)))
            .collect::<Result<Vec<_>, _>>()?;
        let norm = RmsNorm::new(config, &weights.pp("norm"))?;
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            rotary: RotaryEmbedding::new(config),
            config: config.clone(),
            device: weights.device().clone(),
            dtype: weights.dtype(),
            prefix: prefix.to_string(),
        })
    }

    /// A model of `config`'s shape with random weights generated on `device`
    /// (throughput measurements: speed does not depend on weight values).
    pub fn random(config: &Qwen2Config, device: &B::Device, dtype: DType) -> Self {
        let init = RandomInit::<B> {
            device: device.clone(),
            dtype,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| DecoderLayer {
                input_layernorm: RmsNorm::ones(config, device, dtype),
                self_attn: Attention::random(config, &init),
                post_attention_layernorm: RmsNorm::ones(config, device, dtype),
                mlp: Mlp::random(config, &init),
            })
            .collect();
        Self {
            embed_tokens: init.tensor([config.vocab_size, config.hidden_size]),
            layers,
            norm: RmsNorm::ones(config, device, dtype),
            rotary: RotaryEmbedding::new(config),
            config: config.clone(),
            device: device.clone(),
            dtype,
            // Random weights have no checkpoint names; HF's causal-LM layout is the default.
            prefix: "model.".into(),
        }
    }

    pub fn config(&self) -> &Qwen2Config {
        &self.config
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Every linear with its module path in the checkpoint's naming
    /// (`model.layers.0.self_attn.q_proj`), layer by layer in PEFT's order.
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear<B>)> {
        let prefix = &self.prefix;
        let mut linears = Vec::with_capacity(self.layers.len() * 7);
        for (index, layer) in self.layers.iter_mut().enumerate() {
            let attention = &mut layer.self_attn;
            let mlp = &mut layer.mlp;
            let path = |group: &str, name: &str| format!("{prefix}layers.{index}.{group}.{name}");
            linears.push((path("self_attn", "q_proj"), &mut attention.q_proj));
            linears.push((path("self_attn", "k_proj"), &mut attention.k_proj));
            linears.push((path("self_attn", "v_proj"), &mut attention.v_proj));
            linears.push((path("self_attn", "o_proj"), &mut attention.o_proj));
            linears.push((path("mlp", "gate_proj"), &mut mlp.gate_proj));
            linears.push((path("mlp", "up_proj"), &mut mlp.up_proj));
            linears.push((path("mlp", "down_proj"), &mut mlp.down_proj));
        }
        linears
    }

    /// Module paths and `(d_in, d_out)` of the linears whose last name component is in
    /// `targets` (`q_proj`, ...), in model order.
    pub fn lora_targets(&mut self, targets: &[String]) -> Vec<(String, usize, usize)> {
        self.linears_mut()
            .into_iter()
            .filter(|(path, _)| {
                let last = path.rsplit('.').next().unwrap_or("");
                targets.iter().any(|t| t == last)
            })
            .map(|(path, linear)| {
                let (d_in, d_out) = linear.dims();
                (path, d_in, d_out)
            })
            .collect()
    }

    /// Puts `adapter`'s tensors (f32, on the model's device) on the linears it adapts, as
    /// branches with `dropout` (0 for inference) that compute in f32 when `compute_f32` (see
    /// [`LoraBranch`]); replaces any branches attached before. Every adapter module must exist
    /// with fitting shapes.
    pub fn attach_lora(
        &mut self,
        adapter: &LoraAdapter,
        dropout: f64,
        compute_f32: bool,
    ) -> Result<(), EncoderError> {
        let device = self.device.clone();
        let scale = adapter.config.scale();
        let mut used = 0;
        for (path, linear) in self.linears_mut() {
            linear.lora = None;
            let Some(pair) = adapter.modules.get(&path) else {
                continue;
            };
            let (d_in, d_out) = linear.dims();
            let rank = adapter.config.rank;
            if pair.a.shape != [rank, d_in] || pair.b.shape != [d_out, rank] {
                return Err(EncoderError::InvalidInput(format!(
                    "adapter `{path}`: lora_A {:?} / lora_B {:?} do not fit the linear [{d_out}, {d_in}]",
                    pair.a.shape, pair.b.shape
                )));
            }
            let tensor = |host: &HostTensor| {
                Tensor::<B, 2>::from_data(
                    TensorData::new(host.data.clone(), [host.shape[0], host.shape[1]]),
                    (&device, DType::F32),
                )
            };
            linear.lora = Some(Box::new(LoraBranch {
                a: tensor(&pair.a),
                b: tensor(&pair.b),
                scale,
                dropout,
                compute_f32,
            }));
            used += 1;
        }
        if used != adapter.modules.len() {
            let known: Vec<String> = self.linears_mut().into_iter().map(|(p, _)| p).collect();
            let unknown: Vec<&String> = adapter
                .modules
                .keys()
                .filter(|module| !known.contains(module))
                .collect();
            return Err(EncoderError::InvalidInput(format!(
                "the adapter names modules this model does not have: {unknown:?}"
            )));
        }
        Ok(())
    }

    /// The attached LoRA branches with their module paths, in model order.
    pub fn lora_branches_mut(&mut self) -> Vec<(String, &mut LoraBranch<B>)> {
        self.linears_mut()
            .into_iter()
            .filter_map(|(path, linear)| linear.lora.as_deref_mut().map(|lora| (path, lora)))
            .collect()
    }

    /// The attached branches' current values as a host adapter (for saving).
    pub fn lora_adapter(
        &mut self,
        config: &crate::lora::LoraConfig,
    ) -> Result<LoraAdapter, EncoderError> {
        let mut modules = std::collections::BTreeMap::new();
        for (path, branch) in self.lora_branches_mut() {
            let host = |tensor: &Tensor<B, 2>| -> Result<HostTensor, EncoderError> {
                let shape = tensor.dims().to_vec();
                let data = to_f32(tensor.clone())
                    .into_data()
                    .to_vec::<f32>()
                    .map_err(|e| EncoderError::Backend(format!("reading `{path}`: {e:?}")))?;
                Ok(HostTensor { shape, data })
            };
            modules.insert(
                path.clone(),
                LoraPair {
                    a: host(&branch.a)?,
                    b: host(&branch.b)?,
                },
            );
        }
        Ok(LoraAdapter {
            config: config.clone(),
            modules,
        })
    }

    /// Final hidden states `[batch, seq, hidden]` (after the final norm) of
    /// right-padded token ids `[batch, seq]`; positions `0..seq` per row.
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, seq_len] = input_ids.dims();
        let (cos, sin) = self.rotary.tables::<B>(seq_len, &self.device, self.dtype);
        let mut hidden = embedding(self.embed_tokens.clone(), input_ids);
        #[cfg(feature = "cuda")]
        {
            use crate::cuda::fused;
            if fused::active::<B>(hidden.dtype())
                && fused::norm_applies(self.config.hidden_size)
                && !self.layers.is_empty()
            {
                let first = &self.layers[0].input_layernorm;
                let mut stream = fused::add_rms_norm(hidden, None, &first.weight, first.eps);
                for (i, layer) in self.layers.iter().enumerate() {
                    let next_norm = self
                        .layers
                        .get(i + 1)
                        .map_or(&self.norm, |next| &next.input_layernorm);
                    stream = layer.forward_fused(stream, &cos, &sin, next_norm);
                }
                return stream.1;
            }
        }
        for layer in &self.layers {
            hidden = layer.forward(hidden, &cos, &sin);
        }
        self.norm.forward(hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Qwen2Config, EncoderError> {
        Qwen2Config::from_hf_json(text, Path::new("config.json"))
    }

    /// Qwen2.5-7B-Instruct's published config.json (transformers 4.43 format).
    const QWEN2_5_7B_INSTRUCT: &str = r#"{
      "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
      "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
      "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 18944,
      "max_position_embeddings": 32768, "max_window_layers": 28, "model_type": "qwen2",
      "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
      "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072,
      "tie_word_embeddings": false, "torch_dtype": "bfloat16",
      "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
      "vocab_size": 152064}"#;

    /// Qwen2.5-VL-7B-Instruct's published config.json: flat text settings,
    /// `rope_scaling` of type mrope, a vision tower config alongside.
    const QWEN2_5_VL_7B_INSTRUCT: &str = r#"{
      "architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0,
      "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
      "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
      "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 3584,
      "initializer_range": 0.02, "intermediate_size": 18944, "max_position_embeddings": 128000,
      "max_window_layers": 28, "model_type": "qwen2_5_vl", "num_attention_heads": 28,
      "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
      "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": false,
      "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": true,
      "use_sliding_window": false,
      "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280,
        "intermediate_size": 3420, "num_heads": 16, "in_chans": 3, "out_hidden_size": 3584,
        "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
        "temporal_patch_size": 2},
      "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
      "vocab_size": 152064}"#;

    #[test]
    fn reads_published_qwen2_5_config() {
        let config = parse(QWEN2_5_7B_INSTRUCT).unwrap();
        assert_eq!(config.hidden_size, 3584);
        assert_eq!(config.num_key_value_heads, 4);
        assert_eq!(config.head_dim, 128);
        assert_eq!(config.rope_theta, 1e6);
        assert!(!config.tie_word_embeddings);
    }

    #[test]
    fn reads_flat_and_nested_qwen2_5_vl_configs_alike() {
        let flat = parse(QWEN2_5_VL_7B_INSTRUCT).unwrap();
        assert_eq!(flat.vocab_size, 152064);
        assert_eq!(flat.max_position_embeddings, 128000);
        // transformers 5 layout: text settings nested, rope_theta in rope_parameters.
        let mut value: Value = serde_json::from_str(QWEN2_5_VL_7B_INSTRUCT).unwrap();
        let object = value.as_object_mut().unwrap();
        let mut text = serde_json::Map::new();
        for key in [
            "hidden_size",
            "intermediate_size",
            "num_attention_heads",
            "num_hidden_layers",
            "num_key_value_heads",
            "rms_norm_eps",
            "max_position_embeddings",
            "vocab_size",
            "hidden_act",
            "use_sliding_window",
        ] {
            text.insert(key.to_string(), object.remove(key).unwrap());
        }
        object.remove("rope_theta");
        object.remove("rope_scaling");
        text.insert(
            "rope_parameters".to_string(),
            serde_json::json!({"rope_type": "default", "type": "mrope",
                               "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}),
        );
        object.insert("text_config".to_string(), Value::Object(text));
        let nested = parse(&value.to_string()).unwrap();
        assert_eq!(nested, flat);
    }

    #[test]
    fn refuses_what_it_cannot_compute() {
        let with = |key: &str, json: &str| {
            let mut value: Value = serde_json::from_str(QWEN2_5_7B_INSTRUCT).unwrap();
            value[key] = serde_json::from_str(json).unwrap();
            parse(&value.to_string()).unwrap_err().to_string()
        };
        assert!(with("rope_scaling", r#"{"type": "yarn", "factor": 4.0}"#).contains("yarn"));
        assert!(with("use_sliding_window", "true").contains("sliding"));
        assert!(with("hidden_act", r#""gelu""#).contains("gelu"));
        assert!(with("num_key_value_heads", "5").contains("multiple"));
        let mut value: Value = serde_json::from_str(QWEN2_5_7B_INSTRUCT).unwrap();
        value.as_object_mut().unwrap().remove("rope_theta");
        assert!(parse(&value.to_string())
            .unwrap_err()
            .to_string()
            .contains("rope_theta"));
    }
}
