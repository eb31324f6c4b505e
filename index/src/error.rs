//! The one error type of the index crate.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    // The I/O error is part of the message and not a `source` as well: anyhow's `{:#}`
    // chain would print it twice ("...: No such file (os error 2): No such file (os error 2)").
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}: corrupt data: {detail}")]
    DataCorruption { file: PathBuf, detail: String },
    /// A file written by a newer (or unknown) version of quarry.
    #[error("{file}: unsupported format version {found} (this quarry reads version {supported})")]
    UnsupportedVersion {
        file: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A vector (query or row) whose length is not the index's dimension.
    #[error("{file}: dimension mismatch: index has {expected} dimensions, got {found}")]
    DimensionMismatch {
        file: PathBuf,
        expected: usize,
        found: usize,
    },
    /// Bad input to a writer or a search: NaN/inf values, duplicate doc ids,
    /// a resumed build whose parameters differ from the stored ones, …
    #[error("{file}: invalid input: {detail}")]
    InvalidInput { file: PathBuf, detail: String },
    /// Queries encoded by another model (or model revision) than the index.
    #[error(
        "{file}: encoder mismatch: the index was built with encoder `{index}`, \
         the queries come from `{query}`; re-encode the queries with the index's encoder \
         or rebuild the index"
    )]
    EncoderMismatch {
        file: PathBuf,
        index: String,
        query: String,
    },
    /// The BM25 index's tantivy layer failed (open, write, merge, read).
    #[error("{path}: tantivy: {source}")]
    Tantivy {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
}

impl From<quarry_fsio::AtomicWriteError> for IndexError {
    /// An atomic write that failed: the path is the target or its temporary.
    fn from(e: quarry_fsio::AtomicWriteError) -> Self {
        IndexError::Io {
            path: e.path,
            error: e.source,
        }
    }
}

/// `map_err` adapter: an I/O error about `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |error| IndexError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// `map_err` adapter: a tantivy failure about the index at `path`.
pub(crate) fn tantivy_err(path: &Path) -> impl FnOnce(tantivy::TantivyError) -> IndexError + '_ {
    move |source| IndexError::Tantivy {
        path: path.to_path_buf(),
        source,
    }
}

/// A file whose content is not what it must be.
pub(crate) fn corrupt(file: &Path, detail: impl Into<String>) -> IndexError {
    IndexError::DataCorruption {
        file: file.to_path_buf(),
        detail: detail.into(),
    }
}
