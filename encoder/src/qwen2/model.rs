//! The Qwen2 decoder stack: RMSNorm, the SwiGLU MLP, the pre-norm decoder layer and
//! [`Qwen2Model`], which loads them from a checkpoint (or draws random weights) and runs them.

use burn::tensor::{
    activation::silu, backend::Backend, module::embedding, DType, Distribution, Int, Tensor,
};

use super::attention::{Attention, RotaryEmbedding};
use super::Qwen2Config;
use crate::layers::{divide, to_dtype, to_f32, Linear, WeightReader};
use crate::{EncoderError, TensorSource};

/// Where the language model's tensors live in the checkpoint's naming.
///
/// `Qwen2ForCausalLM` uses `model.`; a bare `Qwen2Model` has no prefix;
/// `Qwen2_5_VLForConditionalGeneration` files use `model.` (vision tower `visual.`): so
/// `save_pretrained` writes them in 4.51, 4.57 and 5.x alike, 4.52+ mapping its in-memory
/// names back on save. Those in-memory names, `model.language_model.` (and `model.visual.`),
/// are in files written from the state dict directly; `language_model.model.` in some exports.
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
pub(super) struct RmsNorm<B: Backend> {
    pub(super) weight: Tensor<B, 3>,
    pub(super) eps: f64,
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

/// SwiGLU feed-forward: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub(super) struct Mlp<B: Backend> {
    pub(super) gate_proj: Linear<B>,
    pub(super) up_proj: Linear<B>,
    pub(super) down_proj: Linear<B>,
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

    pub(super) fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
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
pub(super) struct DecoderLayer<B: Backend> {
    pub(super) input_layernorm: RmsNorm<B>,
    pub(super) self_attn: Attention<B>,
    pub(super) post_attention_layernorm: RmsNorm<B>,
    pub(super) mlp: Mlp<B>,
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
}

/// Random weights drawn on the device itself (no host copy: the 7B shape
/// has 7.6 G parameters). Uniform with standard deviation 0.02 (transformers'
/// `initializer_range`), so activations stay in a realistic range.
pub(super) struct RandomInit<B: Backend> {
    device: B::Device,
    dtype: DType,
}

impl<B: Backend> RandomInit<B> {
    const STD: f64 = 0.02;

    pub(super) fn tensor<const D: usize>(&self, shape: [usize; D]) -> Tensor<B, D> {
        let half_width = Self::STD * 3f64.sqrt();
        Tensor::random(
            shape,
            Distribution::Uniform(-half_width, half_width),
            (&self.device, self.dtype),
        )
    }

    pub(super) fn linear(&self, d_in: usize, d_out: usize, with_bias: bool) -> Linear<B> {
        Linear::from_tensors(
            self.tensor([d_in, d_out]),
            with_bias.then(|| self.tensor([d_out])),
        )
    }
}

/// The Qwen2 language model without its LM head.
#[derive(Debug, Clone)]
pub struct Qwen2Model<B: Backend> {
    pub(super) embed_tokens: Tensor<B, 2>,
    pub(super) layers: Vec<DecoderLayer<B>>,
    pub(super) norm: RmsNorm<B>,
    pub(super) rotary: RotaryEmbedding,
    pub(super) config: Qwen2Config,
    pub(super) device: B::Device,
    pub(super) dtype: DType,
    /// The checkpoint's prefix of the language model's names (`model.`), for module paths.
    pub(super) prefix: String,
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
        let weights = WeightReader::<B>::new(source, device, dtype).under(prefix);
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

    /// Final hidden states `[batch, seq, hidden]` (after the final norm) of
    /// right-padded token ids `[batch, seq]`; positions `0..seq` per row.
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, seq_len] = input_ids.dims();
        let (cos, sin) = self.rotary.tables::<B>(seq_len, &self.device, self.dtype);
        let hidden = embedding(self.embed_tokens.clone(), input_ids);
        #[cfg(feature = "cuda")]
        let hidden = match self.forward_fused(hidden, &cos, &sin) {
            Ok(states) => return states,
            Err(hidden) => hidden,
        };
        let hidden = self
            .layers
            .iter()
            .fold(hidden, |hidden, layer| layer.forward(hidden, &cos, &sin));
        self.norm.forward(hidden)
    }
}
