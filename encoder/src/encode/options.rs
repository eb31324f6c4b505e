//! [`EncodeOptions`]: everything besides the weights that determines the output vectors, and
//! how a sentence-transformers model folder declares them.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{BatchPolicy, Pooling};
use crate::backend::Precision;
use crate::error::read_text;
use crate::EncoderError;

/// Everything besides the weights that determines the output vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodeOptions {
    pub pooling: Pooling,
    /// L2-normalise each embedding (sentence-transformers `Normalize`).
    pub normalize: bool,
    pub precision: Precision,
    pub batch: BatchPolicy,
}

impl EncodeOptions {
    /// Decoder defaults: last-token pooling, normalised, f32.
    pub fn last_token() -> Self {
        Self {
            pooling: Pooling::LastToken,
            normalize: true,
            precision: Precision::F32,
            batch: BatchPolicy::default(),
        }
    }

    /// Pooling and normalisation as a sentence-transformers model folder
    /// declares them (`modules.json`, `<pooling module>/config.json`).
    pub fn from_sentence_transformers_dir(dir: &Path) -> Result<Self, EncoderError> {
        let modules_path = dir.join("modules.json");
        let modules: Vec<Value> = read_json(&modules_path)?;
        let module_of = |kind: &str| {
            modules.iter().find(|module| {
                module
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.ends_with(kind))
            })
        };
        let config_error = |file: &Path, detail: String| EncoderError::Config {
            file: file.to_path_buf(),
            detail,
        };
        let pooling_module = module_of(".Pooling")
            .ok_or_else(|| config_error(&modules_path, "no Pooling module".to_string()))?;
        let pooling_dir = pooling_module
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                config_error(&modules_path, "Pooling module without `path`".to_string())
            })?;
        let pooling_path = dir.join(pooling_dir).join("config.json");
        let pooling_config: Value = read_json(&pooling_path)?;
        // sentence-transformers < 6 writes one boolean per mode; 6 writes
        // `"pooling_mode": "mean"`.
        let modes: Vec<&str> = match pooling_config.get("pooling_mode").and_then(Value::as_str) {
            Some(mode) => vec![mode],
            None => [
                ("pooling_mode_cls_token", "cls"),
                ("pooling_mode_mean_tokens", "mean"),
                ("pooling_mode_max_tokens", "max"),
                ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                ("pooling_mode_weightedmean_tokens", "weightedmean"),
                ("pooling_mode_lasttoken", "lasttoken"),
            ]
            .into_iter()
            .filter(|(flag, _)| pooling_config.get(flag).and_then(Value::as_bool) == Some(true))
            .map(|(_, mode)| mode)
            .collect(),
        };
        let pooling = match modes.as_slice() {
            ["cls"] => Pooling::Cls,
            ["mean"] => Pooling::Mean,
            ["lasttoken"] => Pooling::LastToken,
            other => {
                return Err(config_error(
                    &pooling_path,
                    format!("pooling modes {other:?}: one of cls, mean, lasttoken is supported"),
                ))
            }
        };
        Ok(Self {
            pooling,
            normalize: module_of(".Normalize").is_some(),
            precision: Precision::F32,
            batch: BatchPolicy::default(),
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EncoderError> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|err| EncoderError::Config {
        file: path.to_path_buf(),
        detail: err.to_string(),
    })
}
