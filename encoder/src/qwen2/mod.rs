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
//!
//! - `config`: [`Qwen2Config`], read from `config.json` (or GGUF metadata).
//! - `attention`: rotary embeddings and grouped-query causal attention.
//! - `model`: RMSNorm, the SwiGLU MLP, the decoder layer and [`Qwen2Model`] (load, forward).
//! - `lora`: attaching, listing and reading back LoRA branches on the projections (training).
//! - `cuda`: the fused burn-cuda forward paths (with the `cuda` feature).

mod attention;
mod config;
#[cfg(feature = "cuda")]
mod cuda;
mod lora;
mod model;

pub use config::Qwen2Config;
pub use model::Qwen2Model;
