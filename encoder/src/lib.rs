//! # quarry-encoder
//!
//! Turns text into vectors. Where it sits in quarry's data flow:
//!
//! ```text
//! corpus ──▶ encoder ──▶ shards ──▶ retriever ──▶ run ──▶ metrics
//!            (this crate: texts to embeddings + fingerprint)
//! ```
//!
//! `engine` hands it corpus and query texts; it returns embeddings plus an
//! [`EncoderFingerprint`] that `index` stores next to the shards so stale
//! embeddings are never searched with a different query encoder.
//!
//! Inside, from text to vector:
//!
//! - [`prompt`]: prompt templates (`templates.toml`) and the token ids of one prompt.
//! - [`tokenizer`]: text to token ids, as transformers' fast tokenizers do it.
//! - [`weights`]: where tensors come from: safetensors folders/files and GGUF files (header,
//!   tensor table, dequantisation, the config and tokenizer a GGUF stores), behind
//!   [`TensorSource`] ([`tensor_source`]: HF names, PyTorch shapes, f32). [`lora`] merges a PEFT
//!   adapter into a source, or saves and loads one.
//! - [`qwen2`], [`bert`]: the architectures in burn, on the shared `layers` (weight
//!   reading, the linear layer) and [`kernels`] (CPU host kernels behind [`EncoderBackend`]).
//! - [`encode`]: batches token id sequences by length, runs the model and pools (last token /
//!   mean / CLS, optional L2 normalisation); [`EmbeddingModel`] is the non-generic face the
//!   engine holds.
//! - [`backend`]: the burn backends (CPU via burn-ndarray, CUDA with the `cuda` feature), the
//!   device and precision choice; `encode`, `cuda` and `frozen` build on it.
//! - `cuda` (feature `cuda`): cuBLAS GEMMs, fused kernels and flash attention on burn-cuda.
//! - `frozen`: training's frozen base projections as one autodiff op; [`contrastive`]: the
//!   InfoNCE loss `quarry train` minimises.
//! - [`fingerprint`]: the hash of everything that determines an embedding.
//! - [`error`]: the one error type, [`EncoderError`].
//!
//! ```no_run
//! # fn demo(source: &dyn quarry_encoder::TensorSource) -> Result<(), quarry_encoder::EncoderError> {
//! use quarry_encoder::{ComputeDevice, EmbeddingModel, EncodeOptions, ModelConfig};
//! let dir = std::path::Path::new("models/all-MiniLM-L6-v2");
//! let config = ModelConfig::from_hf_file(&dir.join("config.json"))?;
//! let options = EncodeOptions::from_sentence_transformers_dir(dir)?;
//! let model = EmbeddingModel::load(&config, source, options, ComputeDevice::Cpu)?;
//! let vectors: Vec<Vec<f32>> = model.embed(&[vec![101, 7592, 102]])?;
//! # Ok(()) }
//! ```

pub mod device_memory;
pub mod error;
pub use error::EncoderError;
pub mod tensor_source;
pub use tensor_source::{HostTensor, TensorSource};
pub mod fingerprint;
pub mod prompt;
pub mod tokenizer;
pub mod weights;

pub mod backend;
pub mod bert;
pub mod contrastive;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod encode;
mod frozen;
pub mod kernels;
mod layers;
pub mod lora;
pub use layers::LoraBranch;
pub mod qwen2;
pub use bert::{BertConfig, BertModel};
pub use encode::{
    BatchPolicy, ComputeDevice, EmbeddingModel, EncodeOptions, Encoder, ModelConfig, Pooling,
    Precision,
};
pub use kernels::EncoderBackend;
pub use qwen2::{Qwen2Config, Qwen2Model};

/// Opaque identity of everything that determines an embedding: weights,
/// tokenizer, prompt template, pooling, normalisation, max length, dtype.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EncoderFingerprint(pub String);
