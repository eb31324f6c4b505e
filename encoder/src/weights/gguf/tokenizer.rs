//! The tokenizer a GGUF file stores in its metadata (`tokenizer.ggml.*`), rebuilt as the
//! `tokenizers` pipeline transformers builds when it converts a GGUF: byte-level BPE over
//! `tokenizer.ggml.tokens`/`merges`, the Qwen2 split regex, no normaliser, no BOS, and every
//! CONTROL token (special) and USER_DEFINED token (not special) registered as an added token so
//! `<|im_start|>` in a prompt maps to its id.

use serde_json::{json, Value};

use super::GgufFile;
use crate::tokenizer::{tokenizer_error, TextTokenizer};
use crate::EncoderError;

/// The pre-tokenizer split pattern of Qwen2 (`tokenizer.ggml.pre = qwen2`), as in Qwen2's
/// `tokenizer.json` and llama.cpp's `LLAMA_VOCAB_PRE_TYPE_QWEN2`.
const QWEN2_SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp token types (`llama_token_type` / gguf-py `TokenType`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

impl TextTokenizer {
    /// Builds the tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.model = gpt2`,
    /// i.e. byte-level BPE, with `tokenizer.ggml.pre = qwen2`).
    pub fn from_gguf(file: &GgufFile) -> Result<TextTokenizer, EncoderError> {
        let path = file.path();
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(tokenizer_error(
                path,
                format!(
                    "tokenizer.ggml.model `{model}` (quarry builds byte-level BPE, `gpt2`, only)"
                ),
            ));
        }
        let pre = file.get_str("tokenizer.ggml.pre")?;
        let split_regex = match pre {
            "qwen2" => QWEN2_SPLIT_REGEX,
            other => {
                return Err(tokenizer_error(
                    path,
                    format!(
                        "tokenizer.ggml.pre `{other}`: no known split pattern (quarry knows qwen2)"
                    ),
                ))
            }
        };
        let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
        let merges = file.get_str_array("tokenizer.ggml.merges")?;
        let token_types: Vec<i64> = match file.get("tokenizer.ggml.token_type") {
            None => vec![1; tokens.len()],
            Some(value) => value
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|v| v.as_f64().map(|f| f as i64))
                        .collect::<Option<Vec<_>>>()
                })
                .filter(|types| types.len() == tokens.len())
                .ok_or_else(|| {
                    tokenizer_error(
                        path,
                        format!("tokenizer.ggml.token_type is not {} integers", tokens.len()),
                    )
                })?,
        };

        let mut vocab = serde_json::Map::with_capacity(tokens.len());
        let mut added_tokens = Vec::new();
        for (id, (&token, &token_type)) in tokens.iter().zip(&token_types).enumerate() {
            if vocab.insert(token.to_string(), json!(id)).is_some() {
                return Err(tokenizer_error(
                    path,
                    format!("token `{token}` appears twice in the vocabulary"),
                ));
            }
            if token_type == TOKEN_TYPE_CONTROL || token_type == TOKEN_TYPE_USER_DEFINED {
                added_tokens.push(json!({
                    "id": id,
                    "content": token,
                    "single_word": false,
                    "lstrip": false,
                    "rstrip": false,
                    "normalized": false,
                    "special": token_type == TOKEN_TYPE_CONTROL,
                }));
            }
        }
        let merges: Vec<Value> = merges
            .iter()
            .map(|merge| {
                merge
                    .split_once(' ')
                    .map(|(a, b)| json!([a, b]))
                    .ok_or_else(|| {
                        tokenizer_error(path, format!("merge `{merge}` is not two tokens"))
                    })
            })
            .collect::<Result<_, _>>()?;

        // The same pipeline transformers' GGUF converter (Qwen2Converter) serialises.
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added_tokens,
            "normalizer": null,
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": split_regex}, "behavior": "Isolated", "invert": false},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
                ]
            },
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {}
            },
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": "",
                "end_of_word_suffix": "",
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": false,
                "vocab": vocab,
                "merges": merges
            }
        });
        let bytes = serde_json::to_vec(&spec).map_err(|e| tokenizer_error(path, e))?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| tokenizer_error(path, e))?;
        let tokenizer = TextTokenizer::from_parts(inner, path)?;
        let mut eos_token_id = None;
        if let Some(eos) = file.get("tokenizer.ggml.eos_token_id") {
            let id = eos
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|&id| (id as usize) < tokens.len())
                .ok_or_else(|| {
                    tokenizer_error(
                        path,
                        format!("tokenizer.ggml.eos_token_id {eos:?} out of range"),
                    )
                })?;
            eos_token_id = Some(id);
        }
        Ok(tokenizer.with_eos_token_id(eos_token_id))
    }
}
