//! # quarry-engine
//!
//! The middle of quarry's data flow: reads datasets (BEIR layout, the
//! `datasets.toml` registry), drives `encoder` and `index` to retrieve, fuses
//! rankings, and scores them with trec_eval semantics.
//!
//! - [`registry`]: `datasets.toml`, names -> folders.
//! - [`dataset`]: corpus, queries and qrels of a BEIR folder.
//! - [`run`]: TREC run files, read and written.
//! - [`metrics`]: nDCG, MRR, recall, P and MAP as trec_eval computes them.
//! - [`retrieve`]: the index catalog, split queries, self-hit removal.
//! - [`fusion`]: reciprocal rank fusion and score interpolation of two rankings.
//! - [`bm25`]: the BM25 retriever over the catalog's index.
//! - [`build`]: dense indexes: encode a corpus once, cache query embeddings, search.
//! - [`mine`]: hard negatives from a ranking, as training groups.
//! - [`train_data`]: training groups (Tevatron/RepLLaMA JSONL, MS MARCO triples), read and written.
//! - [`textio`]: line reading of plain, `.gz` and `.zst` files.
//! - [`train_data`], [`train`]: LoRA contrastive fine-tuning (`quarry train`).

pub mod bm25;
pub mod build;
pub mod dataset;
pub mod error;
pub mod fusion;
pub mod metrics;
pub mod mine;
pub mod registry;
pub mod retrieve;
pub mod run;
pub mod textio;
pub mod train;
pub mod train_data;

pub use error::{EngineError, Result};
