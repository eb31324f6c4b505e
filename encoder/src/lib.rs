//! # quarry-encoder
//!
//! Turns text into vectors. Sits at the start of quarry's data flow:
//! `engine` hands it corpus and query texts, it returns embeddings plus an
//! [`EncoderFingerprint`] that `index` stores next to them so stale
//! embeddings are never searched with a different query encoder.

pub mod error;
pub use error::EncoderError;
pub mod tensor_source;
pub use tensor_source::{HostTensor, TensorSource};

pub mod bert;
pub mod encode;
mod layers;
pub mod qwen2;
pub use bert::{BertConfig, BertModel};
pub use encode::{
    BatchPolicy, ComputeDevice, EmbeddingModel, EncodeOptions, Encoder, ModelConfig, Pooling,
    Precision,
};
pub use qwen2::{Qwen2Config, Qwen2Model};

/// Opaque identity of everything that determines an embedding: weights,
/// tokenizer, prompt template, pooling, normalisation, max length, dtype.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EncoderFingerprint(pub String);
