//! Training data for `quarry train`: Tevatron / RepLLaMA JSONL groups (one query, its
//! positive passages, its hard negatives). Read here, consumed by [`crate::train`].
//!
//! Line format: `{"query_id", "query", "positive_passages": [{"docid", "title", "text"}],
//! "negative_passages": [...]}`; `title` may be absent. Errors name the file and line.

use std::path::Path;

use serde::Deserialize;

use crate::error::{EngineError, Result};

/// One training query with its passages (Tevatron/RepLLaMA group).
pub struct TrainGroup {
    pub query_id: String,
    pub query: String,
    pub positives: Vec<TrainPassage>,
    pub negatives: Vec<TrainPassage>,
}

pub struct TrainPassage {
    pub doc_id: String,
    pub title: String,
    pub text: String,
}

#[derive(Deserialize)]
struct RawGroup {
    query_id: String,
    query: String,
    positive_passages: Vec<RawPassage>,
    #[serde(default)]
    negative_passages: Vec<RawPassage>,
}

#[derive(Deserialize)]
struct RawPassage {
    docid: String,
    #[serde(default)]
    title: String,
    text: String,
}

impl From<RawPassage> for TrainPassage {
    fn from(raw: RawPassage) -> Self {
        TrainPassage {
            doc_id: raw.docid,
            title: raw.title,
            text: raw.text,
        }
    }
}

/// Reads a Tevatron JSONL file (plain, `.gz` or `.zst`). Errors name file:line.
pub fn load_train_groups(path: &Path) -> Result<Vec<TrainGroup>, EngineError> {
    let mut reader = crate::textio::LineReader::open(path)?;
    let mut groups = Vec::new();
    while let Some((line_number, line)) = reader.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawGroup = serde_json::from_str(line).map_err(|e| {
            EngineError::malformed(
                path,
                line_number,
                format!("a Tevatron training group (query_id, query, positive_passages with docid/text): {e}"),
            )
        })?;
        if raw.positive_passages.is_empty() {
            return Err(EngineError::malformed(
                path,
                line_number,
                format!("at least one positive passage for query `{}`", raw.query_id),
            ));
        }
        groups.push(TrainGroup {
            query_id: raw.query_id,
            query: raw.query,
            positives: raw.positive_passages.into_iter().map(Into::into).collect(),
            negatives: raw.negative_passages.into_iter().map(Into::into).collect(),
        });
    }
    Ok(groups)
}
