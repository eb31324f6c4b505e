//! BM25 that reproduces Pyserini's BEIR "flat" runs exactly, on tantivy.
//!
//! Data flow: corpus documents ([`Bm25Doc`]) -> [`analyzer`] (Lucene's
//! English chain: [`standard_tokenizer`], possessive, lower case, stop words,
//! [`porter`]) -> tantivy postings plus Lucene norms, written by [`build`]
//! into the folder [`layout`] describes -> opened and searched by [`index`]
//! (or through tantivy with [`query`]), scored with Lucene's [`similarity`],
//! ranked by the crate's [`crate::topk`] -> [`Bm25Hit`]s ([`hits`]) for the
//! engine.

pub mod analyzer;
pub mod build;
pub mod hits;
pub mod index;
pub mod layout;
pub mod porter;
pub mod query;
pub mod similarity;
pub mod standard_tokenizer;

pub use analyzer::english_analyzer;
pub use build::Bm25Doc;
pub use hits::{adjust_score_ties_as_anserini, Bm25Hit};
pub use index::Bm25Index;
pub use query::LuceneBm25Query;
pub use similarity::Bm25Similarity;
