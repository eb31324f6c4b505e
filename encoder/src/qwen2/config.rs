//! [`Qwen2Config`]: the hyper-parameters of a Qwen2 checkpoint, read from its `config.json`
//! (every variant transformers has written) and checked against what the layers implement.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::read_text;
use crate::layers::require_positive;
use crate::EncoderError;

/// The architecture hyper-parameters, from a HF `config.json` (or GGUF metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen2Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Per-head width; `hidden_size / num_attention_heads` unless the config says otherwise.
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    /// Whether `lm_head` shares the embedding matrix. Irrelevant to hidden
    /// states; kept so the configuration round-trips.
    pub tie_word_embeddings: bool,
}

/// `config.json` fields as published; variants are reconciled in [`Qwen2Config::from_hf_json`].
#[derive(Deserialize)]
struct RawQwen2Config {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    max_position_embeddings: Option<usize>,
    rope_theta: Option<f64>,
    rope_parameters: Option<Value>,
    rope_scaling: Option<Value>,
    rms_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    tie_word_embeddings: Option<bool>,
    use_sliding_window: Option<bool>,
}

impl Qwen2Config {
    /// Reads a HF `config.json` of `Qwen2ForCausalLM`/`Qwen2Model` or
    /// `Qwen2_5_VLForConditionalGeneration` (text tower only).
    pub fn from_hf_file(path: &Path) -> Result<Self, EncoderError> {
        let text = read_text(path)?;
        Self::from_hf_json(&text, path)
    }

    /// Parses `config.json` text; `file` names it in errors.
    ///
    /// Accepts the variants transformers has written over time: `rope_theta`
    /// at the top level or inside transformers 5's `rope_parameters`; for
    /// Qwen2.5-VL, the text settings either flat or nested in `text_config`.
    pub fn from_hf_json(text: &str, file: &Path) -> Result<Self, EncoderError> {
        let config_error = |detail: String| EncoderError::Config {
            file: file.to_path_buf(),
            detail,
        };
        let root: Value = serde_json::from_str(text)
            .map_err(|err| config_error(format!("not valid JSON: {err}")))?;
        let Value::Object(mut fields) = root else {
            return Err(config_error("not a JSON object".to_string()));
        };
        // Newer Qwen2.5-VL configs nest the language model's settings; overlay
        // them on the top level (which may still hold e.g. `vocab_size`).
        if let Some(Value::Object(text_config)) = fields.remove("text_config") {
            fields.extend(text_config);
        }
        let raw: RawQwen2Config = serde_json::from_value(Value::Object(fields))
            .map_err(|err| config_error(format!("unexpected field value: {err}")))?;
        let required = |value: Option<usize>, name: &str| {
            value.ok_or_else(|| config_error(format!("missing `{name}`")))
        };

        if let Some(activation) = &raw.hidden_act {
            if activation != "silu" {
                return Err(config_error(format!(
                    "hidden_act `{activation}`: Qwen2 layers here implement `silu` only"
                )));
            }
        }
        if raw.use_sliding_window == Some(true) {
            return Err(config_error(
                "use_sliding_window = true is not supported (full attention only)".to_string(),
            ));
        }
        let rope_from_parameters = match &raw.rope_parameters {
            Some(parameters) => {
                check_rope_type(parameters).map_err(config_error)?;
                parameters.get("rope_theta").and_then(Value::as_f64)
            }
            None => None,
        };
        if let Some(scaling) = &raw.rope_scaling {
            check_rope_type(scaling).map_err(config_error)?;
        }
        let rope_theta = raw
            .rope_theta
            .or(rope_from_parameters)
            .ok_or_else(|| config_error("missing `rope_theta`".to_string()))?;

        let hidden_size = required(raw.hidden_size, "hidden_size")?;
        let num_attention_heads = required(raw.num_attention_heads, "num_attention_heads")?;
        require_positive(file, &[("num_attention_heads", num_attention_heads)])?;
        let config = Self {
            vocab_size: required(raw.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: required(raw.intermediate_size, "intermediate_size")?,
            num_hidden_layers: required(raw.num_hidden_layers, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(num_attention_heads),
            head_dim: raw.head_dim.unwrap_or(hidden_size / num_attention_heads),
            max_position_embeddings: required(
                raw.max_position_embeddings,
                "max_position_embeddings",
            )?,
            rope_theta,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
        };
        config.validate(file)?;
        for scaling in [&raw.rope_scaling, &raw.rope_parameters]
            .into_iter()
            .flatten()
        {
            check_mrope_section(scaling, config.head_dim).map_err(config_error)?;
        }
        Ok(config)
    }

    /// Checks the invariants the layers rely on; `file` names the source in errors.
    pub fn validate(&self, file: &Path) -> Result<(), EncoderError> {
        require_positive(
            file,
            &[
                ("vocab_size", self.vocab_size),
                ("hidden_size", self.hidden_size),
                ("intermediate_size", self.intermediate_size),
                ("num_hidden_layers", self.num_hidden_layers),
                ("num_attention_heads", self.num_attention_heads),
                ("num_key_value_heads", self.num_key_value_heads),
                ("head_dim", self.head_dim),
                ("max_position_embeddings", self.max_position_embeddings),
            ],
        )?;
        let config_error = |detail: String| EncoderError::Config {
            file: file.to_path_buf(),
            detail,
        };
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(config_error(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(config_error(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim
            )));
        }
        if !(self.rope_theta > 0.0 && self.rms_norm_eps >= 0.0) {
            return Err(config_error(format!(
                "rope_theta {} / rms_norm_eps {} out of range",
                self.rope_theta, self.rms_norm_eps
            )));
        }
        Ok(())
    }
}

/// Only plain 1-D RoPE is implemented; Qwen2.5-VL's multimodal RoPE (M-RoPE) is accepted
/// because on text-only input it computes exactly that.
///
/// Why: M-RoPE gives every token three position ids (temporal, height, width) and splits the
/// `head_dim / 2` rotary frequencies into three consecutive sections (`mrope_section`, e.g.
/// `[16, 24, 24]` for head_dim 128): section `k` rotates by `position_k * inverse_frequency`.
/// transformers' `get_rope_index` only gives the three streams different values for image and
/// video tokens; for text tokens all three are the same running index (from the attention mask:
/// `cumsum - 1`, which for quarry's right-padded batches is `0..len` on the real tokens, the
/// positions Qwen2 uses). With equal streams each section rotates by
/// `position * inverse_frequency`, with the inverse frequencies of the whole head
/// (`rope_theta^(-2i/head_dim)`, not restarted per section), so the assembled cos/sin tables are
/// those of 1-D RoPE. The `qwen2_5_vl` parity fixture checks this against transformers' own
/// M-RoPE code path.
fn check_rope_type(parameters: &Value) -> Result<(), String> {
    let kind = parameters
        .get("rope_type")
        .or_else(|| parameters.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        // transformers >= 4.5x rewrites `{"type": "mrope"}` to `rope_type: "default"` and keeps
        // `mrope_section` alongside; older saves keep `type: "mrope"`.
        "default" | "mrope" => Ok(()),
        other => Err(format!(
            "rope type `{other}` (scaled RoPE) is not supported; only default/mrope"
        )),
    }
}

/// An `mrope_section`, where given, must split the `head_dim / 2` frequencies (transformers
/// fails on one that does not); its split itself does not matter for text (see
/// [`check_rope_type`]).
fn check_mrope_section(parameters: &Value, head_dim: usize) -> Result<(), String> {
    let Some(section) = parameters.get("mrope_section") else {
        return Ok(());
    };
    let sizes: Option<Vec<u64>> = section
        .as_array()
        .map(|sizes| sizes.iter().map(Value::as_u64).collect::<Option<_>>())
        .unwrap_or(None);
    match sizes {
        Some(sizes) if sizes.iter().sum::<u64>() == (head_dim / 2) as u64 => Ok(()),
        _ => Err(format!(
            "mrope_section {section} does not split the head_dim / 2 = {} rotary frequencies",
            head_dim / 2
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Qwen2Config, EncoderError> {
        Qwen2Config::from_hf_json(text, Path::new("config.json"))
    }

    /// Qwen2.5-7B-Instruct's published config.json (transformers 4.43 format).
    const QWEN2_5_7B_INSTRUCT: &str = r#"{
      "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
      "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
      "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 18944,
      "max_position_embeddings": 32768, "max_window_layers": 28, "model_type": "qwen2",
      "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
      "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072,
      "tie_word_embeddings": false, "torch_dtype": "bfloat16",
      "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
      "vocab_size": 152064}"#;

    /// Qwen2.5-VL-7B-Instruct's published config.json: flat text settings,
    /// `rope_scaling` of type mrope, a vision tower config alongside.
    const QWEN2_5_VL_7B_INSTRUCT: &str = r#"{
      "architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0,
      "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
      "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
      "video_token_id": 151656, "hidden_act": "silu", "hidden_size": 3584,
      "initializer_range": 0.02, "intermediate_size": 18944, "max_position_embeddings": 128000,
      "max_window_layers": 28, "model_type": "qwen2_5_vl", "num_attention_heads": 28,
      "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
      "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": false,
      "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": true,
      "use_sliding_window": false,
      "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280,
        "intermediate_size": 3420, "num_heads": 16, "in_chans": 3, "out_hidden_size": 3584,
        "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
        "temporal_patch_size": 2},
      "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
      "vocab_size": 152064}"#;

    /// The same model's config as transformers 4.57 writes it (`Qwen2_5_VLConfig(text_config=..,
    /// vision_config=..).to_json_string()`): text settings nested, `rope_scaling` rewritten to
    /// `rope_type: "default"` with `mrope_section` kept, `model_type` of the nested part
    /// `qwen2_5_vl_text`.
    const QWEN2_5_VL_7B_INSTRUCT_TRANSFORMERS_4_57: &str = r#"{
      "architectures": ["Qwen2_5_VLForConditionalGeneration"], "image_token_id": 151655,
      "model_type": "qwen2_5_vl",
      "text_config": {"attention_dropout": 0.0, "bos_token_id": 151643, "dtype": "bfloat16",
        "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584,
        "initializer_range": 0.02, "intermediate_size": 18944,
        "layer_types": ["full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention", "full_attention"],
        "max_position_embeddings": 128000, "max_window_layers": 28,
        "model_type": "qwen2_5_vl_text", "num_attention_heads": 28, "num_hidden_layers": 28,
        "num_key_value_heads": 4, "rms_norm_eps": 1e-06,
        "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"},
        "rope_theta": 1000000.0, "sliding_window": null, "use_cache": true,
        "use_sliding_window": false, "vocab_size": 152064},
      "tie_word_embeddings": false, "transformers_version": "4.57.1", "video_token_id": 151656,
      "vision_config": {"depth": 32, "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu",
        "hidden_size": 1280, "in_channels": 3, "initializer_range": 0.02,
        "intermediate_size": 3420, "model_type": "qwen2_5_vl", "num_heads": 16,
        "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
        "temporal_patch_size": 2, "tokens_per_second": 2, "window_size": 112},
      "vision_end_token_id": 151653, "vision_start_token_id": 151652}"#;

    #[test]
    fn reads_transformers_4_57_nested_qwen2_5_vl_config() {
        let nested = parse(QWEN2_5_VL_7B_INSTRUCT_TRANSFORMERS_4_57).unwrap();
        assert_eq!(nested, parse(QWEN2_5_VL_7B_INSTRUCT).unwrap());
        assert_eq!(nested.head_dim, 128);
    }

    #[test]
    fn reads_published_qwen2_5_config() {
        let config = parse(QWEN2_5_7B_INSTRUCT).unwrap();
        assert_eq!(config.hidden_size, 3584);
        assert_eq!(config.num_key_value_heads, 4);
        assert_eq!(config.head_dim, 128);
        assert_eq!(config.rope_theta, 1e6);
        assert!(!config.tie_word_embeddings);
    }

    #[test]
    fn reads_flat_and_nested_qwen2_5_vl_configs_alike() {
        let flat = parse(QWEN2_5_VL_7B_INSTRUCT).unwrap();
        assert_eq!(flat.vocab_size, 152064);
        assert_eq!(flat.max_position_embeddings, 128000);
        // transformers 5 layout: text settings nested, rope_theta in rope_parameters.
        let mut value: Value = serde_json::from_str(QWEN2_5_VL_7B_INSTRUCT).unwrap();
        let object = value.as_object_mut().unwrap();
        let mut text = serde_json::Map::new();
        for key in [
            "hidden_size",
            "intermediate_size",
            "num_attention_heads",
            "num_hidden_layers",
            "num_key_value_heads",
            "rms_norm_eps",
            "max_position_embeddings",
            "vocab_size",
            "hidden_act",
            "use_sliding_window",
        ] {
            text.insert(key.to_string(), object.remove(key).unwrap());
        }
        object.remove("rope_theta");
        object.remove("rope_scaling");
        text.insert(
            "rope_parameters".to_string(),
            serde_json::json!({"rope_type": "default", "type": "mrope",
                               "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}),
        );
        object.insert("text_config".to_string(), Value::Object(text));
        let nested = parse(&value.to_string()).unwrap();
        assert_eq!(nested, flat);
    }

    #[test]
    fn refuses_what_it_cannot_compute() {
        let with = |key: &str, json: &str| {
            let mut value: Value = serde_json::from_str(QWEN2_5_7B_INSTRUCT).unwrap();
            value[key] = serde_json::from_str(json).unwrap();
            parse(&value.to_string()).unwrap_err().to_string()
        };
        assert!(with("rope_scaling", r#"{"type": "yarn", "factor": 4.0}"#).contains("yarn"));
        assert!(with("use_sliding_window", "true").contains("sliding"));
        assert!(with("hidden_act", r#""gelu""#).contains("gelu"));
        assert!(with("num_key_value_heads", "5").contains("multiple"));
        assert!(with(
            "rope_scaling",
            r#"{"type": "mrope", "mrope_section": [16, 24, 16]}"#
        )
        .contains("mrope_section"));
        let mut value: Value = serde_json::from_str(QWEN2_5_7B_INSTRUCT).unwrap();
        value.as_object_mut().unwrap().remove("rope_theta");
        assert!(parse(&value.to_string())
            .unwrap_err()
            .to_string()
            .contains("rope_theta"));
    }
}
