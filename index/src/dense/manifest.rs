//! `manifest.json`: what an index directory holds. The manifest is the
//! commit point of the writer: a shard exists for readers only once the
//! manifest lists it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::{check_version, ElementType, FORMAT_VERSION};
use crate::json_file;
use crate::IndexError;

pub const MANIFEST_FILE: &str = "manifest.json";

/// One shard as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the index directory.
    pub file: String,
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// XXH3-64 of the file's bytes before the footer, 16 hex digits (equals the footer's).
    pub checksum: String,
}

/// HNSW graph persisted next to the shards (optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswEntry {
    /// Sub-directory holding the graph file (`hnsw`).
    pub dir: String,
    /// File name of the graph inside `dir` (`graph.qhg`, layout in FORMAT.md).
    pub basename: String,
    /// XXH3-64 of the graph file's bytes before its footer, 16 hex digits
    /// (equals the footer's). Empty in manifests written before quarry's own
    /// graph format (an hnsw_rs dump): loading those asks for a rebuild.
    #[serde(default)]
    pub checksum: String,
    pub m: usize,
    pub ef_construction: usize,
    /// Default ef at search time.
    pub ef_search: usize,
    pub rows: u64,
    /// recall@k against exact flat search, measured right after the build.
    pub recall_at_k: f64,
    pub recall_k: usize,
    pub recall_queries: usize,
}

/// Everything a reader needs to know about an index directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Opaque identity of the encoder that produced the vectors (model, revision,
    /// pooling, normalisation, …). Queries must come from the same encoder.
    pub encoder_fingerprint: String,
    /// Checksum of the corpus the vectors were computed from (opaque to this crate).
    pub corpus_checksum: String,
    pub dim: usize,
    pub element_type: ElementType,
    /// Rows per shard; every shard but the last has exactly this many.
    pub shard_rows: u64,
    /// True once the writer's `finish` has run: no more rows will come.
    pub complete: bool,
    pub shards: Vec<ShardEntry>,
    pub hnsw: Option<HnswEntry>,
}

impl Manifest {
    pub fn total_rows(&self) -> u64 {
        self.shards.iter().map(|s| s.rows).sum()
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads `dir/manifest.json`; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Manifest>, IndexError> {
        let path = Manifest::path(dir);
        let Some(text) = json_file::read_if_exists(&path)? else {
            return Ok(None);
        };
        // Read the version first so a newer manifest gets a version error, not a parse error.
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let version: Version = json_file::parse(&path, &text, "not a manifest")?;
        check_version(&path, version.format_version, FORMAT_VERSION)?;
        json_file::parse(&path, &text, "bad manifest").map(Some)
    }

    /// Atomically replaces `dir/manifest.json`.
    pub fn store(&self, dir: &Path) -> Result<(), IndexError> {
        let json = serde_json::to_vec_pretty(self).expect("manifest serialises");
        quarry_fsio::write_with(&Manifest::path(dir), |out| {
            out.write_all(&json)?;
            out.write_all(b"\n")
        })?;
        Ok(())
    }
}
