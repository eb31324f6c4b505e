//! BERT as a sentence encoder (all-MiniLM-L6-v2 and kin): token ids in,
//! final hidden states of the last encoder layer out; `encode` applies the
//! sentence-transformers pooling (`1_Pooling`, mean over real tokens) and
//! normalisation (`2_Normalize`).
//!
//! Follows transformers' `modeling_bert.py`: word + position + token-type
//! embeddings with LayerNorm, post-LN encoder layers, exact (erf) GELU, and a
//! key padding mask so padded batches equal unpadded encodings.

use std::path::Path;

use burn::tensor::{
    activation::gelu_approximate, backend::Backend, module::embedding, DType, Int, Tensor,
};
use serde::{Deserialize, Serialize};

use crate::error::read_text;
use crate::kernels::EncoderBackend;
use crate::layers::{require_positive, to_dtype, to_f32, Linear, WeightReader};
use crate::{EncoderError, TensorSource};

/// The feed-forward activation named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BertActivation {
    /// `gelu`: exact, `x * Φ(x)` with erf.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
}

/// The architecture hyper-parameters, from a HF `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: BertActivation,
}

#[derive(Deserialize)]
struct RawBertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    position_embedding_type: Option<String>,
}

fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f64 {
    1e-12
}
fn default_hidden_act() -> String {
    "gelu".to_string()
}

impl BertConfig {
    pub fn from_hf_file(path: &Path) -> Result<Self, EncoderError> {
        let text = read_text(path)?;
        Self::from_hf_json(&text, path)
    }

    /// Parses `config.json` text; `file` names it in errors.
    pub fn from_hf_json(text: &str, file: &Path) -> Result<Self, EncoderError> {
        let config_error = |detail: String| EncoderError::Config {
            file: file.to_path_buf(),
            detail,
        };
        let raw: RawBertConfig =
            serde_json::from_str(text).map_err(|err| config_error(err.to_string()))?;
        let hidden_act = match raw.hidden_act.as_str() {
            "gelu" => BertActivation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => BertActivation::GeluTanh,
            other => return Err(config_error(format!("hidden_act `{other}` not supported"))),
        };
        if let Some(kind) = raw.position_embedding_type.as_deref() {
            if kind != "absolute" {
                return Err(config_error(format!(
                    "position_embedding_type `{kind}` not supported (absolute only)"
                )));
            }
        }
        let config = Self {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            max_position_embeddings: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            layer_norm_eps: raw.layer_norm_eps,
            hidden_act,
        };
        config.validate(file)?;
        Ok(config)
    }

    pub fn validate(&self, file: &Path) -> Result<(), EncoderError> {
        require_positive(
            file,
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("intermediate_size", self.intermediate_size),
                ("max_position_embeddings", self.max_position_embeddings),
                ("type_vocab_size", self.type_vocab_size),
            ],
        )?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(EncoderError::Config {
                file: file.to_path_buf(),
                detail: format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            });
        }
        Ok(())
    }
}

/// `BertModel` has no prefix; task heads (`BertForMaskedLM`, ...) nest it under `bert.`.
fn bert_prefix(source: &dyn TensorSource) -> Result<&'static str, EncoderError> {
    const PREFIXES: [&str; 3] = ["", "bert.", "model."];
    PREFIXES
        .into_iter()
        .find(|prefix| {
            source
                .shape(&format!("{prefix}embeddings.word_embeddings.weight"))
                .is_some()
        })
        .ok_or_else(|| EncoderError::Weights {
            origin: source.origin().to_path_buf(),
            name: "embeddings.word_embeddings.weight".to_string(),
            detail: format!("no BERT word embedding under any of the prefixes {PREFIXES:?}"),
        })
}

/// LayerNorm over the last dimension; statistics in f32. Old checkpoints
/// name the parameters `gamma`/`beta` instead of `weight`/`bias`.
#[derive(Debug, Clone)]
struct LayerNorm<B: Backend> {
    weight: Tensor<B, 3>,
    bias: Tensor<B, 3>,
    eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    fn new(cfg: &BertConfig, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
        let width = cfg.hidden_size;
        let (weight, bias) = match weights.tensor("weight", [width]) {
            Ok(weight) => (weight, weights.tensor("bias", [width])?),
            Err(missing) => match weights.tensor("gamma", [width]) {
                Ok(gamma) => (gamma, weights.tensor("beta", [width])?),
                Err(_) => return Err(missing),
            },
        };
        Ok(Self {
            weight: weight.reshape([1, 1, width]),
            bias: bias.reshape([1, 1, width]),
            eps: cfg.layer_norm_eps,
        })
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let dtype = x.dtype();
        let x = to_f32(x);
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let variance = centered.clone().powi_scalar(2).mean_dim(2);
        // Division, not `recip()` (burn-ndarray's SIMD reciprocal is approximate).
        let normed = centered / variance.add_scalar(self.eps).sqrt();
        to_dtype(normed, dtype) * self.weight.clone() + self.bias.clone()
    }
}

#[derive(Debug, Clone)]
struct Embeddings<B: Backend> {
    word_embeddings: Tensor<B, 2>,
    position_embeddings: Tensor<B, 2>,
    token_type_embeddings: Tensor<B, 2>,
    layer_norm: LayerNorm<B>,
}

impl<B: Backend> Embeddings<B> {
    fn new(cfg: &BertConfig, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
        let width = cfg.hidden_size;
        Ok(Self {
            word_embeddings: weights.tensor("word_embeddings.weight", [cfg.vocab_size, width])?,
            position_embeddings: weights.tensor(
                "position_embeddings.weight",
                [cfg.max_position_embeddings, width],
            )?,
            token_type_embeddings: weights
                .tensor("token_type_embeddings.weight", [cfg.type_vocab_size, width])?,
            layer_norm: LayerNorm::new(cfg, &weights.pp("LayerNorm"))?,
        })
    }

    /// Single-segment input: every token has type 0 and positions count from 0.
    fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, seq_len] = input_ids.dims();
        let words = embedding(self.word_embeddings.clone(), input_ids);
        let positions = self
            .position_embeddings
            .clone()
            .narrow(0, 0, seq_len)
            .unsqueeze_dim::<3>(0);
        let token_type = self
            .token_type_embeddings
            .clone()
            .narrow(0, 0, 1)
            .unsqueeze_dim::<3>(0);
        self.layer_norm.forward(words + positions + token_type)
    }
}

#[derive(Debug, Clone)]
struct SelfAttention<B: Backend> {
    /// Query, key and value projections fused: `[hidden, 3 * hidden]`.
    query_key_value: Linear<B>,
    output: Linear<B>,
    output_norm: LayerNorm<B>,
    num_heads: usize,
}

impl<B: EncoderBackend> SelfAttention<B> {
    fn new(cfg: &BertConfig, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
        let width = cfg.hidden_size;
        let output = weights.pp("output");
        Ok(Self {
            query_key_value: weights.pp("self").fused_linear(
                &["query", "key", "value"],
                width,
                width,
                true,
            )?,
            output: output.linear("dense", width, width, true)?,
            output_norm: LayerNorm::new(cfg, &output.pp("LayerNorm"))?,
            num_heads: cfg.num_attention_heads,
        })
    }

    /// `lengths[i]`: real tokens of row `i`; keys past it are masked out.
    fn forward(&self, x: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 3> {
        let qkv = self.query_key_value.forward(x.clone());
        let context = B::padded_self_attention(qkv, self.num_heads, lengths);
        self.output_norm.forward(self.output.forward(context) + x)
    }
}

#[derive(Debug, Clone)]
struct EncoderLayer<B: Backend> {
    attention: SelfAttention<B>,
    intermediate: Linear<B>,
    output: Linear<B>,
    output_norm: LayerNorm<B>,
    activation: BertActivation,
}

impl<B: EncoderBackend> EncoderLayer<B> {
    fn new(cfg: &BertConfig, weights: &WeightReader<B>) -> Result<Self, EncoderError> {
        let output = weights.pp("output");
        Ok(Self {
            attention: SelfAttention::new(cfg, &weights.pp("attention"))?,
            intermediate: weights.pp("intermediate").linear(
                "dense",
                cfg.hidden_size,
                cfg.intermediate_size,
                true,
            )?,
            output: output.linear("dense", cfg.intermediate_size, cfg.hidden_size, true)?,
            output_norm: LayerNorm::new(cfg, &output.pp("LayerNorm"))?,
            activation: cfg.hidden_act,
        })
    }

    fn forward(&self, x: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 3> {
        let x = self.attention.forward(x, lengths);
        let inner = self.intermediate.forward(x.clone());
        let inner = match self.activation {
            BertActivation::Gelu => B::gelu_erf(inner),
            BertActivation::GeluTanh => gelu_approximate(inner),
        };
        self.output_norm.forward(self.output.forward(inner) + x)
    }
}

/// `BertModel` without the pooler (sentence-transformers pools token states itself).
#[derive(Debug, Clone)]
pub struct BertModel<B: Backend> {
    embeddings: Embeddings<B>,
    layers: Vec<EncoderLayer<B>>,
    config: BertConfig,
}

impl<B: EncoderBackend> BertModel<B> {
    /// Loads `BertModel` weights (bare, or under `bert.`) onto `device` in `dtype`.
    pub fn load(
        config: &BertConfig,
        source: &dyn TensorSource,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, EncoderError> {
        config.validate(source.origin())?;
        let prefix = bert_prefix(source)?;
        let weights = WeightReader::<B>::new(source, device, dtype).under(prefix);
        let embeddings = Embeddings::new(config, &weights.pp("embeddings"))?;
        let layers = (0..config.num_hidden_layers)
            .map(|index| EncoderLayer::new(config, &weights.pp("encoder.layer").pp(index)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            embeddings,
            layers,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Last hidden states `[batch, seq, hidden]` of right-padded token ids
    /// `[batch, seq]`; `lengths[i]` real tokens in row `i` (the rest is masked out).
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>, lengths: &[usize]) -> Tensor<B, 3> {
        let mut hidden = self.embeddings.forward(input_ids);
        for layer in &self.layers {
            hidden = layer.forward(hidden, lengths);
        }
        hidden
    }
}
