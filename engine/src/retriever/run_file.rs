//! A TREC run file as a retriever (`run:PATH`): the rankings another tool
//! made (Pyserini, Tevatron, a reranker), scored, fused and tested beside
//! quarry's own retrievers by `eval`, `compare` and hybrids.
//!
//! Each query's hits are put in trec_eval's order (score descending, then
//! doc id descending; the rank column is ignored, as trec_eval ignores it)
//! and cut to the `k` asked for. A query the file does not hold gets an empty
//! ranking, as `quarry eval --run` scores it: 0 on every metric.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dataset::Query;
use crate::error::{EngineError, Result, UsageError};
use crate::metrics::trec_eval_order;
use crate::run::{Run, RunHit};

/// A run file read once and served by query id.
pub struct RunFileRetriever {
    path: PathBuf,
    run: Run,
    /// Reading and ordering the file.
    pub open_time: Duration,
}

impl RunFileRetriever {
    /// Reads the run at `path` (TREC format, optionally `.gz`/`.zst`); a bad
    /// line is an error naming the file and line.
    pub fn open(path: &Path) -> Result<RunFileRetriever> {
        let started = Instant::now();
        let mut run = Run::read(path)?;
        for hits in run.by_query.values_mut() {
            hits.sort_by(trec_eval_order);
        }
        Ok(RunFileRetriever {
            path: path.to_path_buf(),
            run,
            open_time: started.elapsed(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Each query's top `k` from the file, in query order.
    pub fn retrieve(&self, queries: &[&Query], k: usize) -> Vec<Vec<RunHit>> {
        queries
            .iter()
            .map(|query| {
                self.run
                    .by_query
                    .get(&query.id)
                    .map(|hits| hits[..hits.len().min(k)].to_vec())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// A run file holds rankings for its own queries only: a free-text query
    /// has none.
    pub fn search(&self) -> Result<Vec<RunHit>> {
        Err(EngineError::Usage(UsageError(format!(
            "{}: a run file ranks only the queries it holds; free text needs bm25 or a dense index",
            self.path.display()
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_come_in_trec_eval_order_cut_to_k() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.trec");
        // Ranks disagree with scores; d1 and d3 tie (doc id descending breaks it).
        std::fs::write(
            &path,
            "q1 Q0 d1 1 1.0 x\nq1 Q0 d2 2 3.0 x\nq1 Q0 d3 3 1.0 x\nq2 Q0 d9 1 5.0 x\n",
        )
        .unwrap();
        let run = RunFileRetriever::open(&path).unwrap();
        let q = |id: &str| Query {
            id: id.into(),
            text: String::new(),
        };
        let (q1, q3) = (q("q1"), q("q3"));
        let lists = run.retrieve(&[&q1, &q3], 2);
        let ids: Vec<&str> = lists[0].iter().map(|h| h.doc_id.as_str()).collect();
        assert_eq!(ids, ["d2", "d3"]);
        assert!(lists[1].is_empty(), "a query the file lacks ranks nothing");
        assert!(run.search().unwrap_err().to_string().contains("run.trec"));
    }
}
