//! # Dense embedding store
//!
//! Where document embeddings live between `quarry build` (which encodes a
//! corpus once and streams the vectors into an [`IndexWriter`]) and every
//! later search or evaluation (which opens a [`DenseIndex`] in O(1) and
//! scans it exactly, or asks its optional HNSW graph).
//!
//! One directory per (encoder, dataset): `manifest.json` + shard files
//! (`index/FORMAT.md` describes every byte) + `verified.json` (checksum
//! cache) + optionally `hnsw/`.

pub mod format;
mod fsutil;
pub mod hnsw;
pub mod kernels;
pub mod manifest;
pub mod npy;
pub mod quant;
pub mod reader;
pub mod shard;
pub mod topk;
pub mod verified;
pub mod writer;

pub use format::ElementType;
pub use hnsw::{HnswIndex, HnswParams};
pub use manifest::{HnswEntry, Manifest, ShardEntry};
pub use reader::{DenseIndex, ShardStatus, Verify};
pub use topk::Hit;
pub use writer::{IndexSpec, IndexWriter, DEFAULT_SHARD_ROWS};
