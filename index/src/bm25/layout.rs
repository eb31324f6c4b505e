//! What a BM25 index directory holds: a tantivy index with the three fields
//! below, plus `quarry-bm25.json`, the manifest that says which corpus
//! (checksum), analyzer and parameters the index was built for.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tantivy::schema::{IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};

use super::analyzer::ANALYZER_NAME;
use super::similarity::{DEFAULT_B, DEFAULT_K1};
use crate::error::IndexError;
use crate::json_file;

/// Bumped whenever the on-disk layout or the analysis changes.
pub const FORMAT_VERSION: u32 = 1;
/// Identifies the analysis chain in the manifest.
pub const ANALYZER_ID: &str =
    "lucene-10.5 StandardTokenizer+EnglishPossessive+LowerCase+EnglishStop+PorterStem";
pub(super) const MANIFEST_FILE: &str = "quarry-bm25.json";
pub(super) const FIELD_ID: &str = "id";
pub(super) const FIELD_CONTENTS: &str = "contents";
pub(super) const FIELD_NORM: &str = "norm";

/// What an index was built from and with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Manifest {
    pub(super) format_version: u32,
    pub(super) corpus_checksum: String,
    pub(super) analyzer: String,
    pub(super) k1: f32,
    pub(super) b: f32,
    pub(super) tantivy: String,
    /// All documents given to the build.
    pub(super) num_docs: u64,
    /// Documents with at least one indexed term (BM25's N).
    pub(super) docs_with_terms: u64,
    /// Indexed terms over all documents.
    pub(super) sum_total_term_freq: u64,
}

impl Manifest {
    pub(super) fn is_current(&self, corpus_checksum: &str) -> bool {
        self.format_version == FORMAT_VERSION
            && self.corpus_checksum == corpus_checksum
            && self.analyzer == ANALYZER_ID
            && self.k1 == DEFAULT_K1
            && self.b == DEFAULT_B
    }
}

impl Manifest {
    /// Reads `dir`'s manifest; `Ok(None)` when there is none.
    pub(super) fn load(dir: &Path) -> Result<Option<Manifest>, IndexError> {
        let path = dir.join(MANIFEST_FILE);
        match json_file::read_if_exists(&path)? {
            Some(bytes) => json_file::parse(&path, &bytes, "unreadable manifest").map(Some),
            None => Ok(None),
        }
    }

    /// Atomically writes the manifest into `dir` (the last file of a build).
    pub(super) fn store(&self, dir: &Path) -> Result<(), IndexError> {
        let json = serde_json::to_vec_pretty(self).expect("manifest serializes");
        quarry_fsio::write(&dir.join(MANIFEST_FILE), &json)?;
        Ok(())
    }
}

pub(super) fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field(FIELD_ID, TextOptions::default().set_fast("raw"));
    builder.add_text_field(
        FIELD_CONTENTS,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER_NAME)
                .set_index_option(IndexRecordOption::WithFreqs)
                .set_fieldnorms(false),
        ),
    );
    builder.add_u64_field(FIELD_NORM, NumericOptions::default().set_fast());
    builder.build()
}
