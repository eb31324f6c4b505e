//! # quarry-index
//!
//! Everything quarry keeps on disk to answer a query: the BM25 index (a
//! tantivy index scored exactly as Lucene/Pyserini do) and the dense
//! embedding store (memory-mapped shards, exact flat search, HNSW).
//! `engine` builds these from datasets and queries them; this crate knows
//! nothing about datasets or metrics.

pub mod error;
pub use error::IndexError;

pub mod bm25;
pub mod dense;
pub mod topk;
