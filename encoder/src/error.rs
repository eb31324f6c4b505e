//! The one error type of the encoder crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: corrupt data: {detail}")]
    DataCorruption { file: PathBuf, detail: String },
}
