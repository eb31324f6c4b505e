//! # quarry-engine
//!
//! The middle of quarry's data flow, and everything the `quarry` binary
//! calls:
//!
//! ```text
//! corpus ──> encoder ──> shards ──> retriever ──> run ──> metrics
//! dataset    build       (index)    retriever     run     metrics
//! ```
//!
//! - [`registry`], [`dataset`], [`split`]: `datasets.toml`, the corpus,
//!   queries and qrels of a BEIR folder, and which queries a split asks.
//! - [`fetch`]: `quarry datasets fetch`: downloads (resumed, checksummed)
//!   converted into BEIR folders in the data folder.
//! - [`hub`]: `--model ORG/NAME[@REV]`: models fetched into the Hugging Face
//!   cache, the resolved commit recorded with the encoder.
//! - [`catalog`]: where every index lives in the data home.
//! - [`device`]: where encoders run (`--device`, `--dtype`, GPU settings).
//! - [`build`]: dense indexes: encode a corpus once into shards, cache the
//!   query embeddings.
//! - [`retriever`]: BM25, dense (exact / HNSW) and hybrid retrievers opened
//!   from a spec (and other tools' run files, `run:PATH`); a batch of queries
//!   → [`run::Run`], one query → ranked hits.
//! - [`compare`]: several retrievers × datasets × metrics with intervals,
//!   significance against a baseline and published values; tables, plots, reports.
//! - [`fusion`]: reciprocal rank fusion and score interpolation of two rankings.
//! - [`run`]: TREC run files, read and written.
//! - [`metrics`]: nDCG, MRR, recall, P, MAP, success and R-prec as trec_eval
//!   computes them.
//! - [`mine`], [`train_data`], [`train`]: hard negatives, training groups and
//!   LoRA contrastive fine-tuning (`quarry mine`, `quarry train`).
//! - [`inspect`]: a dense index folder verified and searched as it is.
//! - [`embed`]: any texts through an encoder, as a build would (`quarry encode`).
//! - [`vector_io`]: vectors in and out as `.npy` (`quarry index export|import`).
//! - [`bench`]: GPU encoding throughput (`quarry bench encode`).
//! - [`stats`]: paired significance tests, Holm/Bonferroni, confidence intervals.
//! - [`svg`]: what the pictures (compare's plots, training's loss curve) share.
//! - [`textio`]: line reading of plain, `.gz` and `.zst` files.

pub mod bench;
pub mod build;
pub mod catalog;
pub mod compare;
pub mod dataset;
pub mod device;
pub mod embed;
pub mod error;
pub mod fetch;
pub mod fusion;
pub mod hub;
pub mod inspect;
pub mod metrics;
pub mod mine;
pub mod registry;
pub mod retriever;
pub mod run;
pub mod split;
pub mod stats;
pub mod svg;
pub mod textio;
pub mod train;
pub mod train_data;
pub mod vector_io;

pub use error::{EngineError, Result, UsageError};
