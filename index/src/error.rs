//! The one error type of the index crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: corrupt data: {detail}")]
    DataCorruption { file: PathBuf, detail: String },
    /// The BM25 index's tantivy layer failed (open, write, merge, read).
    #[error("{path}: tantivy: {source}")]
    Tantivy {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
}
