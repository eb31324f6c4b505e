//! # quarry-encoder
//!
//! Turns text into vectors. Sits at the start of quarry's data flow:
//! `engine` hands it corpus and query texts, it returns embeddings plus an
//! [`EncoderFingerprint`] that `index` stores next to them so stale
//! embeddings are never searched with a different query encoder.
//!
//! Inside: weights arrive through a [`TensorSource`] (HF names, PyTorch
//! shapes, f32); [`qwen2`] and [`bert`] hold the architectures in burn;
//! [`encode`] batches token id sequences by length, runs the model and pools
//! (last token / mean / CLS, optional L2 normalisation). The engine holds an
//! [`EmbeddingModel`] (CPU via burn-ndarray, or CUDA with the `cuda` feature):
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
