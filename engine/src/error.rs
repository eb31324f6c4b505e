//! The one error type of the engine crate.
//!
//! Every variant that comes from reading user data names the file (and the
//! line, where there is one) so that the binary can print it as is.

use std::path::PathBuf;

/// Errors from reading datasets, registries and run files, and from retrieval.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    // The I/O error is part of the message and not a `source` as well: anyhow's `{:#}`
    // chain would print it twice ("...: No such file (os error 2): No such file (os error 2)").
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    /// A line of a data file that does not have the expected shape.
    #[error("{file}:{line}: malformed line: expected {expected}")]
    MalformedLine {
        file: PathBuf,
        line: u64,
        expected: String,
    },

    /// A training group (Tevatron JSONL line) without a positive passage.
    #[error("{file}:{line}: query `{query_id}` has no positive passage")]
    NoPositives {
        file: PathBuf,
        line: u64,
        query_id: String,
    },

    /// A training file naming a doc id that the corpus it is resolved against lacks.
    #[error("{file}:{line}: doc id `{doc_id}` is not in the corpus {corpus}")]
    UnknownDocId {
        file: PathBuf,
        line: u64,
        doc_id: String,
        corpus: PathBuf,
    },

    /// A registry (`datasets.toml`) that does not parse or has a bad value.
    #[error("{file}: {detail}")]
    Registry { file: PathBuf, detail: String },

    #[error(
        "unknown dataset `{name}`; known datasets: {}{}",
        known_list(known),
        registry_hint(registry)
    )]
    UnknownDataset {
        name: String,
        known: Vec<String>,
        registry: Option<PathBuf>,
    },

    /// The dataset folder lacks a file it needs (corpus, queries, a qrels split).
    #[error("{dir}: no {what} found (looked for {looked_for})")]
    MissingFile {
        dir: PathBuf,
        what: String,
        looked_for: String,
    },

    #[error(
        "{file}: sha256 of the uncompressed corpus is {actual}, but the registry says {expected}"
    )]
    ChecksumMismatch {
        file: PathBuf,
        expected: String,
        actual: String,
    },

    /// A metric name such as `ndcg@10` that does not parse.
    #[error("bad metric `{input}`: {detail}")]
    MetricSpec { input: String, detail: String },

    /// A data file with no records: an error, never a score of zero.
    #[error("{file}: no {what} in the file (an empty input cannot be evaluated)")]
    EmptyInput { file: PathBuf, what: &'static str },

    /// Data that parses but contradicts itself (duplicate ids, ...).
    #[error("{file}: corrupt data: {detail}")]
    DataCorruption { file: PathBuf, detail: String },

    #[error(transparent)]
    Index(#[from] quarry_index::IndexError),

    #[error(transparent)]
    Encoder(#[from] quarry_encoder::EncoderError),

    /// A flag value this build or machine cannot honour (the binary exits 2).
    #[error(transparent)]
    Usage(#[from] UsageError),

    /// A retriever spec that does not parse (the binary exits 2).
    #[error(transparent)]
    Spec(#[from] crate::retriever::SpecError),

    /// A download or conversion of `quarry datasets fetch` that failed: `what`
    /// is the URL or file, `detail` what happened and what to do.
    #[error("{what}: {detail}")]
    Fetch { what: String, detail: String },

    /// A model by hub id (`--model ORG/NAME`) that cannot be resolved or
    /// fetched: the detail says what the hub answered and what to do.
    #[error("Hugging Face model {repo}: {detail}")]
    Hub { repo: String, detail: String },

    /// A dense build or dense retrieval that cannot go on (index missing,
    /// built from something else, interrupted); the detail says what to run.
    #[error("{path}: {detail}")]
    Build { path: PathBuf, detail: String },
}

/// A value given by the user (a flag, a spec) that cannot be honoured; the
/// message names the flag and what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "(none)".to_string()
    } else {
        known.join(", ")
    }
}

fn registry_hint(registry: &Option<PathBuf>) -> String {
    match registry {
        Some(path) => format!(
            " (from {}); or pass a path to a BEIR folder",
            path.display()
        ),
        None => " (no datasets.toml found); or pass a path to a BEIR folder".to_string(),
    }
}

/// A crash-safe write (quarry_fsio) that failed, with the path it failed on.
impl From<quarry_fsio::AtomicWriteError> for EngineError {
    fn from(err: quarry_fsio::AtomicWriteError) -> Self {
        EngineError::Io {
            path: err.path,
            error: err.source,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            error,
        }
    }

    pub(crate) fn malformed(
        file: impl Into<PathBuf>,
        line: u64,
        expected: impl Into<String>,
    ) -> Self {
        EngineError::MalformedLine {
            file: file.into(),
            line,
            expected: expected.into(),
        }
    }
}
