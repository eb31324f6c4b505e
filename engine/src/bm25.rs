//! The BM25 retriever: opens (or builds, once per corpus checksum) the
//! index crate's Lucene-exact BM25 index in the catalog, searches the
//! split's queries and returns a [`Run`].
//!
//! Scores are reported as Pyserini reports them (Anserini's score-ties
//! adjuster, [`adjust_score_ties_as_anserini`]: rounded to 4 decimals, ties
//! nudged apart so trec_eval keeps Lucene's order), because Pyserini's
//! numbers are the reference. Self-hit removal follows Pyserini
//! `--remove-query`: `k` hits are searched, adjusted, and the query's own doc
//! is dropped afterwards, so such a query has `k - 1` hits (see
//! [`crate::retrieve::remove_self_hits`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use quarry_index::bm25::{adjust_score_ties_as_anserini, Bm25Doc, Bm25Index};

use crate::dataset::{Corpus, Dataset, Query};
use crate::error::{EngineError, Result};
use crate::retrieve::{assemble_run, ensure_parent, Catalog};
use crate::run::{Run, RunHit};

/// A BM25 run and what it took to make it.
#[derive(Debug)]
pub struct Bm25Retrieval {
    pub run: Run,
    pub index_dir: PathBuf,
    /// True when an index built earlier for this exact corpus was reused.
    pub index_reused: bool,
    pub index_time: Duration,
    pub search_time: Duration,
    /// Hits dropped because doc id == query id (datasets with `remove_self`).
    pub self_hits_removed: usize,
}

/// The dataset's BM25 index in the catalog, built first when no index of
/// this exact corpus is there. Returns it and whether it was reused.
///
/// `progress` shows the build (one tick per document).
pub fn open_or_build_bm25(
    catalog: &Catalog,
    dataset: &Dataset,
    corpus: &Corpus,
    progress: &ProgressBar,
) -> Result<(Bm25Index, bool)> {
    let index_dir = catalog.bm25_dir(&dataset.name, &corpus.sha256);
    if let Some(index) = Bm25Index::open_if_current(&index_dir, &corpus.sha256)? {
        return Ok((index, true));
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
    Ok((index, false))
}

/// Retrieves the top `k` docs for each of `queries`.
///
/// `progress` shows the index build (one tick per document); it is left
/// untouched when the index is reused.
pub fn retrieve_bm25(
    catalog: &Catalog,
    dataset: &Dataset,
    corpus: &Corpus,
    queries: &[&Query],
    k: usize,
    progress: &ProgressBar,
) -> Result<Bm25Retrieval> {
    let started = Instant::now();
    let (index, index_reused) = open_or_build_bm25(catalog, dataset, corpus, progress)?;
    let index_dir = index.dir().to_path_buf();
    let index_time = started.elapsed();

    let started = Instant::now();
    let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
    let hits = index.search_batch(&texts, k)?;
    if hits.len() != queries.len() {
        return Err(EngineError::DataCorruption {
            file: index_dir,
            detail: format!(
                "search returned {} result lists for {} queries",
                hits.len(),
                queries.len()
            ),
        });
    }
    let hits = hits
        .into_iter()
        .map(|mut list| {
            adjust_score_ties_as_anserini(&mut list);
            list.into_iter()
                .map(|hit| RunHit {
                    doc_id: hit.doc_id,
                    score: f64::from(hit.score),
                })
                .collect()
        })
        .collect();
    let (run, self_hits_removed) = assemble_run(queries, hits, dataset.remove_self);
    Ok(Bm25Retrieval {
        run,
        index_dir,
        index_reused,
        index_time,
        search_time: started.elapsed(),
        self_hits_removed,
    })
}
