//! Which architecture a model is: [`ModelConfig`] read from `config.json`, and the loaded
//! model of that architecture.

use std::path::Path;

use burn::tensor::{backend::Backend, DType, Int, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bert::{BertConfig, BertModel};
use crate::error::read_text;
use crate::kernels::EncoderBackend;
use crate::qwen2::{Qwen2Config, Qwen2Model};
use crate::{EncoderError, TensorSource};

/// The architecture and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelConfig {
    Qwen2(Qwen2Config),
    Bert(BertConfig),
}

impl ModelConfig {
    /// Reads a HF `config.json`, choosing the architecture from `model_type`
    /// (`qwen2`, `qwen2_5_vl`, `bert`).
    pub fn from_hf_file(path: &Path) -> Result<Self, EncoderError> {
        let text = read_text(path)?;
        Self::from_hf_json(&text, path)
    }

    /// Parses `config.json` text (or the equivalent built from GGUF
    /// metadata); `path` names its source in errors.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self, EncoderError> {
        let value: Value = serde_json::from_str(text).map_err(|err| EncoderError::Config {
            file: path.to_path_buf(),
            detail: format!("not valid JSON: {err}"),
        })?;
        match value.get("model_type").and_then(Value::as_str) {
            Some("qwen2" | "qwen2_5_vl" | "qwen2_5_vl_text") => {
                Ok(Self::Qwen2(Qwen2Config::from_hf_json(text, path)?))
            }
            Some("bert") => Ok(Self::Bert(BertConfig::from_hf_json(text, path)?)),
            other => Err(EncoderError::Config {
                file: path.to_path_buf(),
                detail: format!(
                    "model_type {other:?}: quarry encodes with qwen2, qwen2_5_vl or bert"
                ),
            }),
        }
    }

    pub(crate) fn hidden_size(&self) -> usize {
        match self {
            Self::Qwen2(config) => config.hidden_size,
            Self::Bert(config) => config.hidden_size,
        }
    }

    /// Longest sequence the model accepts.
    pub(crate) fn max_position_embeddings(&self) -> usize {
        match self {
            Self::Qwen2(config) => config.max_position_embeddings,
            Self::Bert(config) => config.max_position_embeddings,
        }
    }

    pub(crate) fn vocab_size(&self) -> usize {
        match self {
            Self::Qwen2(config) => config.vocab_size,
            Self::Bert(config) => config.vocab_size,
        }
    }
}

/// A loaded architecture.
#[derive(Debug, Clone)]
pub(super) enum Architecture<B: Backend> {
    Qwen2(Qwen2Model<B>),
    Bert(BertModel<B>),
}

impl<B: EncoderBackend> Architecture<B> {
    /// Loads the weights of `config`'s architecture from `source` onto `device` in `dtype`.
    pub(super) fn load(
        config: &ModelConfig,
        source: &dyn TensorSource,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, EncoderError> {
        Ok(match config {
            ModelConfig::Qwen2(qwen2) => {
                Self::Qwen2(Qwen2Model::load(qwen2, source, device, dtype)?)
            }
            ModelConfig::Bert(bert) => Self::Bert(BertModel::load(bert, source, device, dtype)?),
        })
    }

    /// Final hidden states `[batch, padded, hidden]` of right-padded token ids whose rows have
    /// `lengths` real tokens.
    pub(super) fn forward(&self, input_ids: Tensor<B, 2, Int>, lengths: &[usize]) -> Tensor<B, 3> {
        match self {
            Self::Qwen2(model) => model.forward(input_ids),
            Self::Bert(model) => model.forward(input_ids, lengths),
        }
    }
}
