//! # quarry-index
//!
//! Everything quarry keeps on disk to answer a query: the BM25 index (a
//! tantivy index scored exactly as Lucene/Pyserini do) and the dense
//! embedding store (memory-mapped shards, exact flat search, HNSW).
//!
//! Where it sits in quarry's flow:
//!
//! ```text
//! corpus ──► encoder ──► shards ──────► retriever ──► run ──► metrics
//! (engine)   (encoder)   (this crate:   (engine, over  (engine) (engine)
//!                         dense, bm25)   this crate's
//!                                        searches)
//! ```
//!
//! `engine` reads the corpus, has `encoder` embed it and streams the vectors
//! into [`dense::IndexWriter`] (or hands the documents to
//! [`bm25::Bm25Index::build`]); its retriever then opens the indexes here and
//! asks them for ranked hits, which it writes as runs and scores. This crate
//! knows nothing about datasets, models or metrics.
//!
//! Modules:
//! - [`bm25`]: Lucene's English analysis, the tantivy index (build, layout,
//!   open, search) and Lucene's BM25 scoring.
//! - [`dense`]: the embedding store: shard and manifest formats
//!   (`index/FORMAT.md`), streaming crash-safe writer, reader with exact
//!   SIMD flat search and 8-bit rescored search, HNSW graph, `.npy` input.
//! - [`topk`]: the one bounded top-k collector both searches rank with.
//! - [`error`]: [`IndexError`], the crate's one error type.
//!
//! Files are replaced atomically through the workspace's `quarry_fsio`.

pub mod error;
pub use error::IndexError;

pub mod bm25;
pub mod dense;
mod json_file;
pub mod topk;
