//! # quarry-engine
//!
//! The middle of quarry's data flow: reads datasets (BEIR layout, the
//! `datasets.toml` registry), drives `encoder` and `index` to retrieve, fuses
//! rankings, and scores them with trec_eval semantics.
