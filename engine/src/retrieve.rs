//! Retrieval plumbing shared by every retriever: where indexes live on
//! disk (the catalog), which queries a split asks, and Pyserini's
//! self-hit removal. The retrievers themselves turn a [`crate::dataset`]
//! into a [`Run`] that [`crate::metrics`] scores.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::dataset::{Qrels, Query};
use crate::run::{Run, RunHit};

/// The data home: every index quarry builds, keyed by what it was built
/// from, so that a changed corpus never reuses a stale index.
///
/// Layout: `<home>/bm25/<dataset>-<first 16 hex digits of the corpus sha256>/`.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub home: PathBuf,
}

impl Catalog {
    /// The home used when neither `--home` nor `QUARRY_HOME` is given.
    pub const DEFAULT_HOME: &'static str = ".quarry";

    pub fn new(home: impl Into<PathBuf>) -> Catalog {
        Catalog { home: home.into() }
    }

    pub fn bm25_dir(&self, dataset_name: &str, corpus_sha256: &str) -> PathBuf {
        let prefix = &corpus_sha256[..corpus_sha256.len().min(16)];
        self.home
            .join("bm25")
            .join(format!("{}-{prefix}", safe_name(dataset_name)))
    }
}

/// Keeps a dataset name usable as one path component.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The queries a split evaluates: those with qrels, in qrels order. Also
/// returns the qrels query ids that have no text in the queries file.
pub fn queries_for_split<'q>(queries: &'q [Query], qrels: &Qrels) -> (Vec<&'q Query>, Vec<String>) {
    let wanted: HashSet<&str> = qrels.by_query.keys().map(String::as_str).collect();
    let mut selected: Vec<&Query> = queries
        .iter()
        .filter(|q| wanted.contains(q.id.as_str()))
        .collect();
    selected.sort_by(|a, b| a.id.cmp(&b.id));
    let have: HashSet<&str> = selected.iter().map(|q| q.id.as_str()).collect();
    let without_text = qrels
        .by_query
        .keys()
        .filter(|id| !have.contains(id.as_str()))
        .cloned()
        .collect();
    (selected, without_text)
}

/// Drops hits whose doc id equals the query id, as Pyserini's
/// `--remove-query` does: it searches `k` hits and filters them, so a query
/// that retrieves itself ends up with `k - 1` hits (no extra hit is fetched).
pub fn remove_self_hits(query_id: &str, hits: &mut Vec<RunHit>) -> usize {
    let before = hits.len();
    hits.retain(|hit| hit.doc_id != query_id);
    before - hits.len()
}

/// Assembles a run from per-query hit lists, applying self-hit removal
/// when the dataset asks for it. Returns the run and how many self hits
/// were dropped.
pub fn assemble_run(
    queries: &[&Query],
    hits_per_query: Vec<Vec<RunHit>>,
    remove_self: bool,
) -> (Run, usize) {
    let mut run = Run::default();
    let mut removed = 0;
    for (query, mut hits) in queries.iter().zip(hits_per_query) {
        if remove_self {
            removed += remove_self_hits(&query.id, &mut hits);
        }
        run.by_query.insert(query.id.clone(), hits);
    }
    (run, removed)
}

/// Creates the parent folder of an index directory.
pub fn ensure_parent(dir: &Path) -> std::io::Result<()> {
    match dir.parent() {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_dir_is_keyed_by_name_and_checksum() {
        let catalog = Catalog::new("/home/q");
        let dir = catalog.bm25_dir("my data", &"ab".repeat(32));
        assert_eq!(dir, Path::new("/home/q/bm25/my_data-abababababababab"));
    }

    #[test]
    fn self_hits_are_dropped_without_refilling() {
        let queries = [
            Query {
                id: "a".into(),
                text: "x".into(),
            },
            Query {
                id: "b".into(),
                text: "y".into(),
            },
        ];
        let refs: Vec<&Query> = queries.iter().collect();
        let hit = |d: &str, s: f64| RunHit {
            doc_id: d.into(),
            score: s,
        };
        let hits = vec![vec![hit("a", 3.0), hit("c", 2.0)], vec![hit("a", 1.0)]];
        let (run, removed) = assemble_run(&refs, hits.clone(), true);
        assert_eq!(removed, 1);
        assert_eq!(run.by_query["a"], vec![hit("c", 2.0)]);
        assert_eq!(run.by_query["b"], vec![hit("a", 1.0)]);
        let (run, removed) = assemble_run(&refs, hits, false);
        assert_eq!((removed, run.by_query["a"].len()), (0, 2));
    }

    #[test]
    fn split_queries_follow_qrels() {
        let queries = vec![
            Query {
                id: "q2".into(),
                text: "b".into(),
            },
            Query {
                id: "q1".into(),
                text: "a".into(),
            },
            Query {
                id: "q9".into(),
                text: "z".into(),
            },
        ];
        let mut qrels = Qrels::default();
        for id in ["q1", "q2", "q3"] {
            qrels
                .by_query
                .insert(id.into(), [("d".to_string(), 1)].into());
        }
        let (selected, missing) = queries_for_split(&queries, &qrels);
        assert_eq!(
            selected.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(),
            vec!["q1", "q2"]
        );
        assert_eq!(missing, vec!["q3"]);
    }
}
