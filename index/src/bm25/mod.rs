//! BM25 that reproduces Pyserini's BEIR "flat" runs exactly, on tantivy.
//!
//! Data flow: corpus documents -> [`analyzer`] (Lucene's English chain:
//! [`standard_tokenizer`], possessive, lower case, stop words, [`porter`]) ->
//! tantivy postings plus Lucene norms ([`index`]) -> [`query`], scored with
//! Lucene's [`similarity`] -> ranked [`Bm25Hit`]s for the engine.

pub mod analyzer;
pub mod index;
pub mod porter;
pub mod query;
pub mod similarity;
pub mod standard_tokenizer;

pub use analyzer::english_analyzer;
pub use index::{adjust_score_ties_as_anserini, Bm25Doc, Bm25Hit, Bm25Index};
pub use query::LuceneBm25Query;
pub use similarity::Bm25Similarity;
