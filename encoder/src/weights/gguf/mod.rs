//! GGUF files (llama.cpp's single-file checkpoints): header parsing with every size bounded
//! (`header`), the tensor table and dequantisation to f32 (`file`), the mapping of llama.cpp's
//! Qwen2 tensor names and dimension order to the Hugging Face names and PyTorch shapes the model
//! code expects (`source`), and the model configuration (`config`) and tokenizer (`tokenizer`)
//! stored in the metadata (`value`).
//!
//! Why hand-written rather than a crate: the format is small and stable (a header of typed
//! key/values and tensor descriptors, then aligned raw data), and we need two things the
//! available readers do not give together: a permissive licence with small compile cost
//! (candle-core's `quantized` module drags in candle's whole tensor stack; `rlx-gguf` is GPL-3;
//! the small `gguf*` crates are young single-author projects that allocate whatever a header
//! claims) and hard bounds on every size read from an untrusted header. The dequantisation
//! kernels (`dequant.rs`) are checked value-for-value against the reference `gguf` Python package.
//!
//! Layout (GGUF v2/v3, little-endian): magic `GGUF`, u32 version, u64 tensor count, u64 metadata
//! count, metadata key/values, tensor infos (name, n_dims, dims innermost-first, ggml type, offset),
//! padding to `general.alignment` (default 32), tensor data.
//!
//! Qwen2 needs no un-permuting of q/k: llama.cpp's converter permutes q/k rows only for the
//! `llama` architecture (its `LlamaModel.modify_tensors`, for llama.cpp's interleaved RoPE);
//! `Qwen2Model` writes HF's tensors as they are and llama.cpp runs qwen2 with NEOX
//! (rotate-half) RoPE, the same as transformers. Checked against transformers 5.24's GGUF
//! loader: its `TENSOR_PROCESSORS` un-permutes for `llama` only and has no `qwen2` entry, so
//! its Qwen2 weights are the dequantised tensors as stored, which is what we return
//! (tests/weights_real_models.rs compares those with the `gguf` package value for value).

mod config;
mod file;
mod header;
mod source;
mod tokenizer;
mod value;

pub use config::config_from_gguf;
pub use file::{GgufFile, GgufTensorInfo};
pub use source::{gguf_to_hf_name, GgufSource};
pub use value::GgufValue;
