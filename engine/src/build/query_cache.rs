//! The query-embedding cache of a dense index (`<index>/queries/`): every
//! later evaluation searches without loading the model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use quarry_encoder::prompt::TextKind;
use quarry_encoder::EmbeddingModel;
use quarry_index::dense::{DenseIndex, ElementType, IndexSpec, IndexWriter, Manifest};
use sha2::{Digest, Sha256};

use super::encoder::PreparedEncoder;
use super::stale_format;
use crate::dataset::Query;
use crate::error::{EngineError, Result};

/// Sub-folder of an index directory holding the query-embedding cache.
pub const QUERY_CACHE_DIR: &str = "queries";

/// Query embeddings cached next to an index, keyed by query id and a hash of
/// the query text: a changed or new query is re-encoded, nothing else. Stored
/// as a small dense index of its own (`queries/`, same format and encoder
/// fingerprint), rewritten as a whole when entries are added.
pub struct QueryCache {
    dir: PathBuf,
    vectors: HashMap<String, Vec<f32>>,
}

/// Cache key of a query: id, tab, first 16 hex digits of the text's sha256.
pub fn query_key(query: &Query) -> String {
    let hash = hex::encode(Sha256::digest(query.text.as_bytes()));
    format!("{}\t{}", query.id, &hash[..16])
}

/// The query id a cache row is stored under: the id of a [`query_key`], or the whole key
/// where it has no text hash (queries stored by `quarry index import`).
pub fn query_id_of_key(key: &str) -> &str {
    key.split_once('\t').map_or(key, |(id, _)| id)
}

impl QueryCache {
    /// Reads `<index>/queries/` (an absent cache is empty). The cache must
    /// have been encoded by `encoder_fingerprint` (the index's encoder):
    /// vectors of another encoder would be searched against the documents
    /// without any error and give silently wrong numbers.
    pub fn open(index_dir: &Path, encoder_fingerprint: &str) -> Result<QueryCache> {
        let dir = index_dir.join(QUERY_CACHE_DIR);
        let mut vectors = HashMap::new();
        let manifest = Manifest::load(&dir).map_err(|e| stale_format(&dir, e))?;
        if let Some(manifest) = manifest.filter(|m| m.complete) {
            if manifest.encoder_fingerprint != encoder_fingerprint {
                return Err(EngineError::DataCorruption {
                    file: dir.join("manifest.json"),
                    detail: format!(
                        "the cached query vectors were encoded by encoder {}, the index by {}; \
                         delete {} (quarry encodes the queries again)",
                        super::short(&manifest.encoder_fingerprint),
                        super::short(encoder_fingerprint),
                        dir.display()
                    ),
                });
            }
            let index = DenseIndex::open(&dir)?;
            for row in 0..index.rows() {
                vectors.insert(index.doc_id(row)?.to_string(), index.row_vector(row)?);
            }
        }
        Ok(QueryCache { dir, vectors })
    }

    pub fn missing<'q>(&self, queries: &'q [Query]) -> Vec<&'q Query> {
        queries
            .iter()
            .filter(|q| !self.vectors.contains_key(&query_key(q)))
            .collect()
    }

    pub fn get(&self, query: &Query) -> Option<&[f32]> {
        self.vectors.get(&query_key(query)).map(Vec::as_slice)
    }

    /// Encodes the queries not cached yet (loading the model when `model` is
    /// `None` and something is missing) and rewrites the cache. Returns how
    /// many were encoded.
    pub fn ensure(
        &mut self,
        queries: &[&Query],
        prepared: &PreparedEncoder,
        model: Option<&EmbeddingModel>,
    ) -> Result<usize> {
        let mut seen = std::collections::HashSet::new();
        let missing: Vec<&Query> = queries
            .iter()
            .copied()
            .filter(|q| !self.vectors.contains_key(&query_key(q)) && seen.insert(query_key(q)))
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let loaded;
        let model = match model {
            Some(m) => m,
            None => {
                loaded = prepared.load()?;
                &loaded
            }
        };
        let texts: Vec<&str> = missing.iter().map(|q| q.text.as_str()).collect();
        let inputs = prepared.inputs(TextKind::Query, None, &texts)?;
        let vectors = model.embed(&inputs)?;
        for (q, v) in missing.iter().zip(vectors) {
            self.vectors.insert(query_key(q), v);
        }
        self.store(prepared)?;
        Ok(missing.len())
    }

    fn store(&self, prepared: &PreparedEncoder) -> Result<()> {
        let mut keys: Vec<&String> = self.vectors.keys().collect();
        keys.sort();
        let mut listing = Sha256::new();
        for k in &keys {
            listing.update(k.as_bytes());
            listing.update(b"\n");
        }
        let tmp = self.dir.with_extension("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
        }
        let mut writer = IndexWriter::create_or_resume(
            &tmp,
            IndexSpec {
                encoder_fingerprint: prepared.fingerprint.clone(),
                corpus_checksum: format!("queries:{}", hex::encode(listing.finalize())),
                dim: prepared.dim,
                element_type: ElementType::F32,
                shard_rows: keys.len().max(1),
            },
        )?;
        let flat: Vec<f32> = keys.iter().flat_map(|k| self.vectors[*k].clone()).collect();
        writer.push_batch(&keys, &flat)?;
        writer.finish()?;
        let old = self.dir.with_extension("old");
        if self.dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|e| EngineError::io(&old, e))?;
            }
            std::fs::rename(&self.dir, &old).map_err(|e| EngineError::io(&self.dir, e))?;
        }
        std::fs::rename(&tmp, &self.dir).map_err(|e| EngineError::io(&tmp, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| EngineError::io(&old, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_of_a_key_is_the_query_id() {
        let query = Query {
            id: "PLAIN-2".into(),
            text: "Do statins cause breast cancer?".into(),
        };
        assert_eq!(query_id_of_key(&query_key(&query)), "PLAIN-2");
        assert_eq!(query_id_of_key("q7"), "q7");
    }
}
