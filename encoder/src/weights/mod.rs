//! Model weights: where the model code's tensors come from.
//!
//! [`open_weights`] looks at a path and picks the reader: an HF folder or `.safetensors` file
//! ([`SafetensorsSource`]) or a `.gguf` file ([`GgufSource`]). Both present tensors under HF
//! names with PyTorch shapes through [`crate::TensorSource`]. Pickle-based checkpoints
//! (`pytorch_model.bin`, `.pt`, `.pth`, `.ckpt`) can execute code when loaded and are refused.

pub mod dequant;
pub mod gguf;
pub mod safetensors;

use std::path::{Path, PathBuf};

pub use self::gguf::{
    config_from_gguf, gguf_to_hf_name, GgufFile, GgufSource, GgufTensorInfo, GgufValue,
};
pub use self::safetensors::SafetensorsSource;
pub use dequant::GgmlType;

use crate::tokenizer::TextTokenizer;
use crate::{EncoderError, TensorSource};

/// Extensions of pickle-based checkpoints: loading one runs arbitrary code.
const PICKLE_EXTENSIONS: &[&str] = &["bin", "pt", "pth", "ckpt", "pkl", "pickle"];

/// A model's weights, whatever the file format.
#[derive(Debug)]
pub enum Weights {
    Safetensors(SafetensorsSource),
    Gguf(GgufSource),
}

impl Weights {
    pub fn as_source(&self) -> &dyn TensorSource {
        match self {
            Weights::Safetensors(s) => s,
            Weights::Gguf(g) => g,
        }
    }

    /// The HF-style model configuration: the folder's `config.json`, or for a GGUF the
    /// equivalent values from its metadata ([`config_from_gguf`]).
    pub fn config_json(&self) -> Result<serde_json::Value, EncoderError> {
        match self {
            Weights::Gguf(g) => config_from_gguf(g.file()),
            Weights::Safetensors(s) => {
                let path = s.origin().join("config.json");
                let text = std::fs::read_to_string(&path).map_err(|error| EncoderError::Io {
                    path: path.clone(),
                    error,
                })?;
                serde_json::from_str(&text).map_err(|e| EncoderError::DataCorruption {
                    file: path,
                    detail: format!("invalid JSON: {e}"),
                })
            }
        }
    }

    /// The model's tokenizer: the folder's `tokenizer.json`, or the one in the GGUF metadata.
    pub fn tokenizer(&self) -> Result<TextTokenizer, EncoderError> {
        match self {
            Weights::Gguf(g) => TextTokenizer::from_gguf(g.file()),
            Weights::Safetensors(s) => TextTokenizer::from_hf_dir(s.origin()),
        }
    }

    /// The model's chat template (Jinja text), if it has one: `tokenizer.chat_template` in the
    /// GGUF metadata, or `chat_template` in the folder's `tokenizer_config.json`.
    pub fn chat_template(&self) -> Result<Option<String>, EncoderError> {
        match self {
            Weights::Gguf(g) => Ok(g
                .file()
                .get("tokenizer.chat_template")
                .and_then(GgufValue::as_str)
                .map(str::to_string)),
            Weights::Safetensors(s) => {
                let path = s.origin().join("tokenizer_config.json");
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(error) => return Err(EncoderError::Io { path, error }),
                };
                let config: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| EncoderError::DataCorruption {
                        file: path,
                        detail: format!("invalid JSON: {e}"),
                    })?;
                Ok(config
                    .get("chat_template")
                    .and_then(|t| t.as_str())
                    .map(str::to_string))
            }
        }
    }

    /// The files whose bytes define the model, for the encoder fingerprint: weight files
    /// (every shard) and, for HF folders, `config.json`.
    pub fn model_files(&self) -> Vec<PathBuf> {
        match self {
            Weights::Gguf(g) => vec![g.file().path().to_path_buf()],
            Weights::Safetensors(s) => {
                let mut files: Vec<PathBuf> =
                    s.files().into_iter().map(Path::to_path_buf).collect();
                let config = s.origin().join("config.json");
                if config.is_file() {
                    files.push(config);
                }
                files
            }
        }
    }
}

/// Opens the weights at `path`: an HF model folder, a `.safetensors` file or a `.gguf` file.
pub fn open_weights(path: &Path) -> Result<Weights, EncoderError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if path.is_dir() {
        return SafetensorsSource::open(path).map(Weights::Safetensors);
    }
    match extension.as_deref() {
        Some("gguf") => GgufSource::open(path).map(Weights::Gguf),
        Some("safetensors") => SafetensorsSource::open(path).map(Weights::Safetensors),
        Some(ext) if PICKLE_EXTENSIONS.contains(&ext) => Err(pickle_error(path)),
        _ if !path.exists() => Err(EncoderError::Io {
            path: path.to_path_buf(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        }),
        _ => Err(EncoderError::UnsupportedFormat {
            file: path.to_path_buf(),
            detail: "expected an HF model folder, a .safetensors or a .gguf file".into(),
        }),
    }
}

fn pickle_error(path: &Path) -> EncoderError {
    EncoderError::UnsupportedFormat {
        file: path.to_path_buf(),
        detail:
            "pickle-based PyTorch checkpoint: loading it can execute code, so quarry refuses it; \
                 convert it to safetensors (e.g. `save_pretrained(..., safe_serialization=True)`)"
                .into(),
    }
}

/// The error for a folder without safetensors weights, naming a pickle checkpoint if that is
/// what the folder holds instead.
pub(crate) fn no_weights_error(folder: &Path) -> EncoderError {
    for name in [
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "model.pt",
        "model.pth",
    ] {
        if folder.join(name).exists() {
            return pickle_error(&folder.join(name));
        }
    }
    EncoderError::UnsupportedFormat {
        file: folder.to_path_buf(),
        detail: "no model.safetensors or model.safetensors.index.json in this folder".into(),
    }
}
