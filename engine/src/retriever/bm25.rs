//! The BM25 retriever: opens (or builds, once per corpus checksum) the
//! index crate's Lucene-exact BM25 index in the catalog.
//!
//! Scores of a batch are reported as Pyserini reports them (Anserini's
//! score-ties adjuster, [`adjust_score_ties_as_anserini`]: rounded to 4
//! decimals, ties nudged apart so trec_eval keeps Lucene's order), because
//! Pyserini's numbers are the reference. Self-hit removal follows Pyserini
//! `--remove-query`: `k` hits are searched, adjusted, and the query's own
//! doc is dropped afterwards (see [`super::remove_self_hits`]).

use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use quarry_index::bm25::{adjust_score_ties_as_anserini, Bm25Doc, Bm25Index};

use crate::catalog::{ensure_parent, Catalog};
use crate::dataset::{Corpus, Dataset, Query};
use crate::error::{EngineError, Result};
use crate::run::RunHit;

/// An open BM25 index of one corpus.
pub struct Bm25Retriever {
    index: Bm25Index,
    /// True when an index built earlier for this exact corpus was reused.
    pub reused: bool,
    /// Time to open (or build) the index.
    pub open_time: Duration,
}

impl Bm25Retriever {
    /// The dataset's BM25 index in the catalog, built first when no index of
    /// this exact corpus is there; `progress` shows the build (one tick per
    /// document) and is left untouched when the index is reused.
    pub fn open(
        catalog: &Catalog,
        dataset: &Dataset,
        corpus: &Corpus,
        progress: &ProgressBar,
    ) -> Result<Bm25Retriever> {
        let started = Instant::now();
        let index_dir = catalog.bm25_dir(&dataset.name, &corpus.sha256);
        if let Some(index) = Bm25Index::open_if_current(&index_dir, &corpus.sha256)? {
            return Ok(Bm25Retriever {
                index,
                reused: true,
                open_time: started.elapsed(),
            });
        }
        ensure_parent(&index_dir).map_err(|e| EngineError::io(&index_dir, e))?;
        progress.set_length(corpus.docs.len() as u64);
        let docs = corpus.docs.iter().map(|doc| Bm25Doc {
            id: &doc.id,
            title: &doc.title,
            text: &doc.text,
        });
        let index = Bm25Index::build(&index_dir, &corpus.sha256, progress.wrap_iter(docs))?;
        progress.finish_and_clear();
        Ok(Bm25Retriever {
            index,
            reused: false,
            open_time: started.elapsed(),
        })
    }

    pub fn dir(&self) -> &Path {
        self.index.dir()
    }

    /// The top `k` docs of each query, scores as Pyserini reports them.
    pub fn retrieve(&self, queries: &[&Query], k: usize) -> Result<Vec<Vec<RunHit>>> {
        let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
        let hits = self.index.search_batch(&texts, k)?;
        if hits.len() != queries.len() {
            return Err(EngineError::DataCorruption {
                file: self.dir().to_path_buf(),
                detail: format!(
                    "search returned {} result lists for {} queries",
                    hits.len(),
                    queries.len()
                ),
            });
        }
        Ok(hits
            .into_iter()
            .map(|mut list| {
                adjust_score_ties_as_anserini(&mut list);
                list.into_iter().map(to_run_hit).collect()
            })
            .collect())
    }

    /// The top `k` docs of one query text, with Lucene's raw scores.
    pub fn search(&self, text: &str, k: usize) -> Result<Vec<RunHit>> {
        Ok(self
            .index
            .search(text, k)?
            .into_iter()
            .map(to_run_hit)
            .collect())
    }

    /// The terms the index's analyzer makes of `text` (for highlighting).
    pub fn analyze(&self, text: &str) -> Vec<String> {
        self.index.analyze(text)
    }
}

fn to_run_hit(hit: quarry_index::bm25::Bm25Hit) -> RunHit {
    RunHit {
        doc_id: hit.doc_id,
        score: f64::from(hit.score),
    }
}
