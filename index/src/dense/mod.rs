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
//!
//! ```no_run
//! use quarry_index::dense::{DenseIndex, ElementType, IndexSpec, IndexWriter};
//! # fn main() -> Result<(), quarry_index::IndexError> {
//! # let dir = std::path::Path::new("idx"); let (ids, vecs): (Vec<String>, Vec<f32>) = (vec![], vec![]);
//! let spec = IndexSpec {
//!     encoder_fingerprint: "qwen2-0.5b@rev/mean/l2".into(),
//!     corpus_checksum: "sha256:…".into(),
//!     dim: 896,
//!     element_type: ElementType::F16,
//!     shard_rows: quarry_index::dense::DEFAULT_SHARD_ROWS,
//! };
//! let mut writer = IndexWriter::create_or_resume(dir, spec)?;
//! let skip = writer.rows_done() as usize; // rows already stored by an interrupted build
//! writer.push_batch(&ids[skip..], &vecs[skip * 896..])?;
//! writer.finish()?;
//!
//! let index = DenseIndex::open(dir)?; // O(1); checksums each shard once
//! let hits = index.search("qwen2-0.5b@rev/mean/l2", &vecs[..896], 10)?;
//! println!("{} {}", index.doc_id(hits[0][0].row)?, hits[0][0].score);
//! # Ok(()) }
//! ```

pub mod format;
pub mod hit;
pub mod hnsw;
pub mod kernels;
pub mod manifest;
pub mod merge;
pub mod npy;
pub mod quant;
pub mod reader;
pub mod shard;
pub mod verified;
pub mod writer;

pub use format::ElementType;
pub use hit::Hit;
pub use hnsw::{HnswIndex, HnswParams};
pub use manifest::{HnswEntry, Manifest, ShardEntry};
pub use merge::{merge_slices, slice_rows};
pub use reader::{DenseIndex, ShardStatus, Verify};

/// The old home of [`Hit`] and of the dense top-k collector, kept so that
/// paths from before the crate-wide [`crate::topk`] still resolve.
pub mod topk {
    pub use super::hit::Hit;
    /// The dense scans' collector: [`crate::topk::TopK`] ranking [`Hit`]s.
    pub type TopK = crate::topk::TopK<Hit>;
}
pub use writer::{IndexSpec, IndexWriter, DEFAULT_SHARD_ROWS};
