//! Retrieval: one [`Retriever`] for every way quarry ranks documents —
//! BM25, a dense index searched exactly or through its HNSW graph, and
//! hybrids fusing two retrievers (nestable) — opened from the spec string
//! users write ([`RetrieverSpec`]).
//!
//! Place in the data flow: corpus → encoder → shards → **retriever** → run →
//! metrics. A retriever serves a batch of queries as a [`Run`]
//! ([`Retrievers::retrieve`], what `eval`, `compare` and `mine` score) and one
//! free-text query as ranked hits with their documents
//! ([`Retrievers::search`], what the search shell shows).
//!
//! [`Retrievers`] is the set of retrievers open over one dataset: a leaf
//! (the BM25 index, a dense index and its model) is opened once and shared
//! by every spec that names it. A new kind of retriever (GPU exact search, a
//! remote engine) is one more leaf here and one more spec in [`spec`].

pub mod bm25;
pub mod dense;
pub mod run_file;
pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

pub use bm25::Bm25Retriever;
pub use dense::{DenseRetriever, DenseSearch};
pub use run_file::RunFileRetriever;
pub use spec::{split_top_level, RetrieverSpec, SpecError};

use crate::catalog::Catalog;
use crate::dataset::{Corpus, Dataset, Document, Query};
use crate::error::Result;
use crate::fusion::Fusion;
use crate::run::{Run, RunHit};

/// Hits each side of a hybrid contributes to one free-text search before
/// fusion (at least k): fusing two top-10s would miss documents ranked
/// 11th by one side and 1st by the other.
pub const SEARCH_FUSION_DEPTH: usize = 100;

/// An opened retriever. Cheap to clone: leaves are shared.
#[derive(Clone)]
pub enum Retriever {
    Bm25(Rc<Bm25Retriever>),
    Dense(Rc<DenseRetriever>, DenseSearch),
    RunFile(Rc<RunFileRetriever>),
    Hybrid {
        fusion: Fusion,
        first: Box<Retriever>,
        second: Box<Retriever>,
    },
}

/// A batch run and what it took to make it.
#[derive(Debug)]
pub struct Retrieval {
    pub run: Run,
    /// The index folder (a hybrid's first side's).
    pub index_dir: PathBuf,
    /// True when no index had to be built for it.
    pub index_reused: bool,
    /// Opening (or building) the indexes, and encoding uncached queries.
    pub index_time: Duration,
    pub search_time: Duration,
    /// Hits dropped because doc id == query id (datasets with `remove_self`).
    pub self_hits_removed: usize,
    /// Queries the dense query caches lacked and the model encoded.
    pub queries_encoded: usize,
}

/// One free-text query's ranking, with where the time went.
pub struct Ranking<'c> {
    pub hits: Vec<SearchHit<'c>>,
    pub encode_time: Duration,
    pub search_time: Duration,
}

/// A ranked document: id, score and the document itself (`None` when the
/// index names a doc the corpus file does not hold).
pub struct SearchHit<'c> {
    pub doc_id: String,
    pub score: f64,
    pub document: Option<&'c Document>,
}

impl Retriever {
    /// The spec this retriever was opened from (canonical form).
    pub fn spec(&self) -> RetrieverSpec {
        match self {
            Retriever::Bm25(_) => RetrieverSpec::Bm25,
            Retriever::Dense(dense, DenseSearch::Exact) => {
                RetrieverSpec::Dense(dense.name().to_string())
            }
            Retriever::Dense(dense, DenseSearch::Hnsw) => {
                RetrieverSpec::Hnsw(dense.name().to_string())
            }
            Retriever::RunFile(run) => RetrieverSpec::RunFile(run.path().to_path_buf()),
            Retriever::Hybrid {
                fusion,
                first,
                second,
            } => RetrieverSpec::Hybrid {
                fusion: *fusion,
                first: Box::new(first.spec()),
                second: Box::new(second.spec()),
            },
        }
    }

    /// The top `k` of each query; self hits are dropped from every leaf's
    /// ranking when `remove_self` (before fusion, as Pyserini does per run).
    pub fn retrieve(&self, queries: &[&Query], k: usize, remove_self: bool) -> Result<Retrieval> {
        let started = Instant::now();
        let (lists, dir, reused, open_time, encoded, encode_time) = match self {
            Retriever::Bm25(bm25) => (
                bm25.retrieve(queries, k)?,
                bm25.dir().to_path_buf(),
                bm25.reused,
                bm25.open_time,
                0,
                Duration::ZERO,
            ),
            Retriever::Dense(dense, how) => {
                let (lists, encoded, encode_time) = dense.retrieve(queries, k, *how)?;
                let dir = dense.dir().to_path_buf();
                (lists, dir, true, dense.open_time, encoded, encode_time)
            }
            Retriever::RunFile(run) => (
                run.retrieve(queries, k),
                run.path().to_path_buf(),
                true,
                run.open_time,
                0,
                Duration::ZERO,
            ),
            Retriever::Hybrid {
                fusion,
                first,
                second,
            } => return fuse_retrievals(*fusion, first, second, queries, k, remove_self),
        };
        // Encoding uncached queries is index preparation, not search.
        let search_time = started.elapsed().saturating_sub(encode_time);
        let (run, self_hits_removed) = assemble_run(queries, lists, remove_self);
        Ok(Retrieval {
            run,
            index_dir: dir,
            index_reused: reused,
            index_time: open_time + encode_time,
            search_time,
            self_hits_removed,
            queries_encoded: encoded,
        })
    }

    /// The top `k` of one free-text query (no self-hit removal: the text has
    /// no id). Hybrids fuse each side's top [`SEARCH_FUSION_DEPTH`] (or k).
    /// Returns the hits, the time encoding and the time searching.
    pub fn search(&self, text: &str, k: usize) -> Result<(Vec<RunHit>, Duration, Duration)> {
        let started = Instant::now();
        match self {
            Retriever::Bm25(bm25) => {
                let hits = bm25.search(text, k)?;
                Ok((hits, Duration::ZERO, started.elapsed()))
            }
            Retriever::Dense(dense, how) => {
                let (hits, encode) = dense.search(text, k, *how)?;
                Ok((hits, encode, started.elapsed() - encode))
            }
            Retriever::RunFile(run) => Ok((run.search()?, Duration::ZERO, Duration::ZERO)),
            Retriever::Hybrid {
                fusion,
                first,
                second,
            } => {
                let depth = k.max(SEARCH_FUSION_DEPTH);
                let (a, encode_a, search_a) = first.search(text, depth)?;
                let (b, encode_b, search_b) = second.search(text, depth)?;
                let fuse_started = Instant::now();
                let fused = fusion.fuse(&a, &b, k);
                Ok((
                    fused,
                    encode_a + encode_b,
                    search_a + search_b + fuse_started.elapsed(),
                ))
            }
        }
    }
}

/// A hybrid: both sides retrieve `k` deep, then each query's two rankings
/// are fused ([`crate::fusion`]) and cut to `k`.
fn fuse_retrievals(
    fusion: Fusion,
    first: &Retriever,
    second: &Retriever,
    queries: &[&Query],
    k: usize,
    remove_self: bool,
) -> Result<Retrieval> {
    let first = first.retrieve(queries, k, remove_self)?;
    let second = second.retrieve(queries, k, remove_self)?;
    let started = Instant::now();
    let mut run = Run::default();
    let empty = Vec::new();
    for query in queries {
        let a = first.run.by_query.get(&query.id).unwrap_or(&empty);
        let b = second.run.by_query.get(&query.id).unwrap_or(&empty);
        run.by_query.insert(query.id.clone(), fusion.fuse(a, b, k));
    }
    Ok(Retrieval {
        run,
        index_dir: first.index_dir,
        index_reused: first.index_reused && second.index_reused,
        index_time: first.index_time + second.index_time,
        search_time: first.search_time + second.search_time + started.elapsed(),
        self_hits_removed: first.self_hits_removed.max(second.self_hits_removed),
        queries_encoded: first.queries_encoded + second.queries_encoded,
    })
}

/// The retrievers open over one dataset, and its corpus.
pub struct Retrievers {
    catalog: Catalog,
    dataset: Dataset,
    corpus: Corpus,
    /// doc id -> position in `corpus.docs`, made on the first search.
    positions: std::cell::OnceCell<HashMap<String, usize>>,
    /// Shows a BM25 index build.
    build_progress: ProgressBar,
    bm25: Option<Rc<Bm25Retriever>>,
    dense: BTreeMap<String, Rc<DenseRetriever>>,
    runs: BTreeMap<PathBuf, Rc<RunFileRetriever>>,
}

impl Retrievers {
    /// Nothing is opened until a spec asks for it.
    pub fn new(
        catalog: &Catalog,
        dataset: &Dataset,
        corpus: Corpus,
        build_progress: ProgressBar,
    ) -> Retrievers {
        Retrievers {
            catalog: catalog.clone(),
            dataset: dataset.clone(),
            corpus,
            positions: Default::default(),
            build_progress,
            bm25: None,
            dense: BTreeMap::new(),
            runs: BTreeMap::new(),
        }
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Opens what `spec` names (leaves already open are shared).
    pub fn open(&mut self, spec: &RetrieverSpec) -> Result<Retriever> {
        Ok(match spec {
            RetrieverSpec::Bm25 => Retriever::Bm25(self.bm25()?),
            RetrieverSpec::Dense(name) => Retriever::Dense(self.dense(name)?, DenseSearch::Exact),
            RetrieverSpec::Hnsw(name) => Retriever::Dense(self.dense(name)?, DenseSearch::Hnsw),
            RetrieverSpec::RunFile(path) => Retriever::RunFile(self.run_file(path)?),
            RetrieverSpec::Hybrid {
                fusion,
                first,
                second,
            } => Retriever::Hybrid {
                fusion: *fusion,
                first: Box::new(self.open(first)?),
                second: Box::new(self.open(second)?),
            },
        })
    }

    /// The BM25 retriever (opened, or built, on first use).
    pub fn bm25(&mut self) -> Result<Rc<Bm25Retriever>> {
        if self.bm25.is_none() {
            let opened = Bm25Retriever::open(
                &self.catalog,
                &self.dataset,
                &self.corpus,
                &self.build_progress,
            )?;
            self.bm25 = Some(Rc::new(opened));
        }
        Ok(Rc::clone(self.bm25.as_ref().expect("opened above")))
    }

    fn dense(&mut self, name: &str) -> Result<Rc<DenseRetriever>> {
        if let Some(open) = self.dense.get(name) {
            return Ok(Rc::clone(open));
        }
        let opened = Rc::new(DenseRetriever::open(
            &self.catalog,
            &self.dataset,
            &self.corpus,
            name,
        )?);
        self.dense.insert(name.to_string(), Rc::clone(&opened));
        Ok(opened)
    }

    fn run_file(&mut self, path: &std::path::Path) -> Result<Rc<RunFileRetriever>> {
        if let Some(open) = self.runs.get(path) {
            return Ok(Rc::clone(open));
        }
        let opened = Rc::new(RunFileRetriever::open(path)?);
        self.runs.insert(path.to_path_buf(), Rc::clone(&opened));
        Ok(opened)
    }

    /// Names of the dense indexes opened so far.
    pub fn open_dense_names(&self) -> Vec<String> {
        self.dense.keys().cloned().collect()
    }

    /// A batch of queries → a run, with the dataset's self-hit rule.
    pub fn retrieve(
        &self,
        retriever: &Retriever,
        queries: &[&Query],
        k: usize,
    ) -> Result<Retrieval> {
        retriever.retrieve(queries, k, self.dataset.remove_self)
    }

    /// One free-text query → ranked hits with their documents.
    pub fn search(&self, retriever: &Retriever, text: &str, k: usize) -> Result<Ranking<'_>> {
        let (hits, encode_time, search_time) = retriever.search(text, k)?;
        let hits = hits
            .into_iter()
            .map(|hit| SearchHit {
                document: self.document(&hit.doc_id),
                doc_id: hit.doc_id,
                score: hit.score,
            })
            .collect();
        Ok(Ranking {
            hits,
            encode_time,
            search_time,
        })
    }

    /// A document of the corpus by id.
    pub fn document(&self, id: &str) -> Option<&Document> {
        let positions = self.positions.get_or_init(|| {
            self.corpus
                .docs
                .iter()
                .enumerate()
                .map(|(i, doc)| (doc.id.clone(), i))
                .collect()
        });
        positions.get(id).map(|&i| &self.corpus.docs[i])
    }
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
/// when asked. Returns the run and how many self hits were dropped.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::hits;

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
        let retrieved = vec![hits(&[("a", 3.0), ("c", 2.0)]), hits(&[("a", 1.0)])];
        let (run, removed) = assemble_run(&refs, retrieved.clone(), true);
        assert_eq!(removed, 1);
        assert_eq!(run.by_query["a"], hits(&[("c", 2.0)]));
        assert_eq!(run.by_query["b"], hits(&[("a", 1.0)]));
        let (run, removed) = assemble_run(&refs, retrieved, false);
        assert_eq!((removed, run.by_query["a"].len()), (0, 2));
    }
}
