//! The model configuration a GGUF carries in its metadata, as the `config.json` it stands for.

use super::{GgufFile, GgufValue};
use crate::EncoderError;

/// The HF `config.json` values of a Qwen2 model, from a GGUF's `qwen2.*` metadata, as JSON the
/// model code deserialises exactly as it does a `config.json`.
pub fn config_from_gguf(file: &GgufFile) -> Result<serde_json::Value, EncoderError> {
    let arch = file.get_str("general.architecture")?;
    if arch != "qwen2" {
        return Err(EncoderError::UnsupportedFormat {
            file: file.path().to_path_buf(),
            detail: format!("GGUF architecture `{arch}` (quarry reads qwen2)"),
        });
    }
    let key = |k: &str| format!("{arch}.{k}");
    let hidden = file.get_u64(&key("embedding_length"))?;
    let heads = file.get_u64(&key("attention.head_count"))?;
    let kv_heads = match file.get(&key("attention.head_count_kv")) {
        Some(_) => file.get_u64(&key("attention.head_count_kv"))?,
        None => heads,
    };
    let vocab = match file
        .get("tokenizer.ggml.tokens")
        .and_then(GgufValue::as_array)
    {
        Some(tokens) => tokens.len() as u64,
        None => match file.tensor_info("token_embd.weight") {
            Some(t) => *t.dims.last().unwrap_or(&0) as u64,
            None => return Err(file.config_error("tokenizer.ggml.tokens", "array of strings")),
        },
    };
    let rope_theta = match file.get(&key("rope.freq_base")) {
        Some(_) => file.get_f64(&key("rope.freq_base"))?,
        None => 10_000.0,
    };
    // f32 metadata -> f64 through the shortest decimal, so 1e-6 stays 1e-6 and not 9.99999997e-7.
    let as_json_f64 = |v: f64| -> f64 { format!("{}", v as f32).parse().unwrap_or(v) };
    let mut config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": hidden,
        "num_hidden_layers": file.get_u64(&key("block_count"))?,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": file.get_u64(&key("feed_forward_length"))?,
        "rms_norm_eps": as_json_f64(file.get_f64(&key("attention.layer_norm_rms_epsilon"))?),
        "rope_theta": as_json_f64(rope_theta),
        "vocab_size": vocab,
        "hidden_act": "silu",
        // No separate output matrix: the head reuses the embedding, as HF's tie_word_embeddings.
        "tie_word_embeddings": file.tensor_info("output.weight").is_none(),
        "torch_dtype": "float32",
    });
    config["max_position_embeddings"] = file.get_u64(&key("context_length"))?.into();
    // llama.cpp writes the per-head width only when it is not hidden / heads.
    if file.get(&key("attention.key_length")).is_some() {
        config["head_dim"] = file.get_u64(&key("attention.key_length"))?.into();
    }
    for (gguf_key, hf_key) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
    ] {
        if let Some(id) = file.get(gguf_key).and_then(GgufValue::as_u64) {
            config[hf_key] = id.into();
        }
    }
    Ok(config)
}
