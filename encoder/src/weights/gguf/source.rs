//! A GGUF checkpoint seen as the model code sees every checkpoint: Hugging Face tensor names
//! and PyTorch shapes.

use std::collections::HashMap;
use std::path::Path;

use super::{GgufFile, GgufTensorInfo};
use crate::{EncoderError, HostTensor, TensorSource};

/// llama.cpp tensor name -> Hugging Face name, for the Qwen2 (and llama-like) layout.
/// Names outside the table (e.g. `rope_freqs.weight`) are kept as they are.
pub fn gguf_to_hf_name(gguf_name: &str) -> String {
    match gguf_name {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    if let Some(rest) = gguf_name.strip_prefix("blk.") {
        if let Some((layer, part)) = rest.split_once('.') {
            if layer.bytes().all(|b| b.is_ascii_digit()) && !layer.is_empty() {
                let (stem, suffix) = part.rsplit_once('.').unwrap_or((part, ""));
                let hf = match stem {
                    "attn_norm" => Some("input_layernorm"),
                    "attn_q" => Some("self_attn.q_proj"),
                    "attn_k" => Some("self_attn.k_proj"),
                    "attn_v" => Some("self_attn.v_proj"),
                    "attn_output" => Some("self_attn.o_proj"),
                    "ffn_norm" => Some("post_attention_layernorm"),
                    "ffn_gate" => Some("mlp.gate_proj"),
                    "ffn_up" => Some("mlp.up_proj"),
                    "ffn_down" => Some("mlp.down_proj"),
                    _ => None,
                };
                if let Some(hf) = hf {
                    return format!("model.layers.{layer}.{hf}.{suffix}");
                }
            }
        }
    }
    gguf_name.to_string()
}

/// A GGUF checkpoint seen through HF names and PyTorch shapes.
#[derive(Debug)]
pub struct GgufSource {
    file: GgufFile,
    /// HF name -> GGUF name, in file order.
    hf_to_gguf: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<GgufSource, EncoderError> {
        Ok(Self::from_file(GgufFile::open(path)?))
    }

    pub fn from_file(file: GgufFile) -> GgufSource {
        let hf_to_gguf: Vec<(String, String)> = file
            .tensors()
            .iter()
            .map(|t| (gguf_to_hf_name(&t.name), t.name.clone()))
            .collect();
        let index = hf_to_gguf
            .iter()
            .enumerate()
            .map(|(i, (hf, _))| (hf.clone(), i))
            .collect();
        GgufSource {
            file,
            hf_to_gguf,
            index,
        }
    }

    /// The underlying file (metadata, tokenizer, raw tensors).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    fn gguf_name(&self, hf_name: &str) -> Option<&str> {
        self.index
            .get(hf_name)
            .map(|&i| self.hf_to_gguf[i].1.as_str())
    }
}

impl TensorSource for GgufSource {
    fn tensor_names(&self) -> Vec<String> {
        self.hf_to_gguf.iter().map(|(hf, _)| hf.clone()).collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let gguf = self.gguf_name(name)?;
        self.file.tensor_info(gguf).map(GgufTensorInfo::torch_shape)
    }

    fn load_f32(&self, name: &str) -> Result<HostTensor, EncoderError> {
        let gguf = self
            .gguf_name(name)
            .ok_or_else(|| EncoderError::MissingTensor {
                file: self.file.path().to_path_buf(),
                tensor: name.to_string(),
            })?;
        self.file.dequantize(gguf).map_err(|e| match e {
            // Name the tensor as the caller asked for it, and as the file stores it.
            EncoderError::UnsupportedDtype { file, dtype, .. } => EncoderError::UnsupportedDtype {
                file,
                tensor: format!("{name} (GGUF `{gguf}`)"),
                dtype,
            },
            other => other,
        })
    }

    fn origin(&self) -> &Path {
        self.file.path()
    }
}
