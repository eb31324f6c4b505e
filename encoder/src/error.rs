//! The one error type of the encoder crate, and the helpers that attach a path to I/O errors.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    // The I/O error is part of the message and not a `source` as well: anyhow's `{:#}`
    // chain would print it twice ("...: No such file (os error 2): No such file (os error 2)").
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}: corrupt data: {detail}")]
    DataCorruption { file: PathBuf, detail: String },
    /// A checkpoint format quarry refuses or cannot read (pickle-based `.bin`/`.pt`, unknown layout).
    #[error("{file}: unsupported model format: {detail}")]
    UnsupportedFormat { file: PathBuf, detail: String },
    /// The model code asked for a tensor the checkpoint does not have.
    #[error("{file}: tensor `{tensor}` not found")]
    MissingTensor { file: PathBuf, tensor: String },
    /// A tensor stored in an element type quarry cannot convert to f32.
    #[error("{file}: tensor `{tensor}`: unsupported dtype {dtype}")]
    UnsupportedDtype {
        file: PathBuf,
        tensor: String,
        dtype: String,
    },
    /// A checkpoint lacks a tensor the architecture needs, or holds it in another shape.
    #[error("{origin}: tensor `{name}`: {detail}")]
    Weights {
        origin: PathBuf,
        name: String,
        detail: String,
    },
    /// A model configuration (config.json, GGUF metadata) quarry cannot run.
    #[error("{file}: model configuration: {detail}")]
    Config { file: PathBuf, detail: String },
    /// Building or running a tokenizer failed.
    #[error("{file}: tokenizer: {detail}")]
    Tokenizer { file: PathBuf, detail: String },
    /// Prompt template data invalid or a template asked for something the tokenizer lacks.
    #[error("prompt template `{template}`: {detail}")]
    Template { template: String, detail: String },
    /// Caller input that cannot be encoded (empty or over-long sequence, token id outside the vocabulary).
    #[error("invalid encoder input: {0}")]
    InvalidInput(String),
    /// The tensor backend failed or cannot do what was asked (device error, unsupported dtype).
    #[error("tensor backend: {0}")]
    Backend(String),
}

/// The [`EncoderError::Io`] of `path`, for `map_err`.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> EncoderError + '_ {
    move |error| EncoderError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The text of a file, or the [`EncoderError::Io`] naming it.
pub(crate) fn read_text(path: &Path) -> Result<String, EncoderError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

/// A failed atomic write (`quarry_fsio`), naming the file it concerns (the target, or its
/// temporary sibling).
impl From<quarry_fsio::AtomicWriteError> for EncoderError {
    fn from(err: quarry_fsio::AtomicWriteError) -> Self {
        EncoderError::Io {
            path: err.path,
            error: err.source,
        }
    }
}
