//! Streaming writer: rows arrive in batches, are cut into shards of a fixed
//! row count, and each full shard is published atomically (shard file, then
//! manifest). After a crash, [`IndexWriter::create_or_resume`] reopens the
//! directory at the last published shard and tells the caller how many rows
//! are already stored so it can skip them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::format::{checksum_hex, ElementType, FORMAT_VERSION};
use super::kernels::encode_row;
use super::manifest::{Manifest, ShardEntry, MANIFEST_FILE};
use super::shard::{write_shard, Shard};
use super::verified::VerifiedSet;
use crate::error::io_err;
use crate::IndexError;

/// What an index is: fixed when it is created, checked when it is resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Opaque identity of the encoder (see [`Manifest::encoder_fingerprint`]).
    pub encoder_fingerprint: String,
    /// Opaque checksum of the corpus.
    pub corpus_checksum: String,
    pub dim: usize,
    pub element_type: ElementType,
    /// Rows per shard (the last shard may hold fewer).
    pub shard_rows: usize,
}

/// Default shard size: 65,536 rows (≈ 235 MB at 896 × f32).
pub const DEFAULT_SHARD_ROWS: usize = 1 << 16;

pub fn shard_file_name(index: usize) -> String {
    format!("shard-{index:05}.qvs")
}

/// A temporary file of a write that never finished: quarry_fsio's
/// `.NAME.XXXXXX.tmp`, or `NAME.tmp` from quarry versions before it.
pub(crate) fn is_leftover_temp(file_name: &str) -> bool {
    file_name.ends_with(quarry_fsio::TMP_SUFFIX)
}

/// Deletes the leftover temporary files in `dir` (not recursive).
pub(crate) fn sweep_leftover_temps(dir: &Path) -> Result<(), IndexError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if is_leftover_temp(&entry.file_name().to_string_lossy()) && path.is_file() {
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

pub struct IndexWriter {
    dir: PathBuf,
    manifest: Manifest,
    stride: usize,
    /// Rows of the shard being filled, already encoded at the storage type.
    pending_rows: Vec<u8>,
    pending_ids: Vec<String>,
    seen: HashSet<String>,
    verified: VerifiedSet,
}

impl IndexWriter {
    /// Creates `dir` (and a fresh index in it) or resumes the index found
    /// there. Resuming requires the same spec; a finished index refuses new rows.
    pub fn create_or_resume(dir: &Path, spec: IndexSpec) -> Result<IndexWriter, IndexError> {
        if spec.dim == 0 || spec.shard_rows == 0 {
            return Err(IndexError::InvalidInput {
                file: dir.to_path_buf(),
                detail: "dimension and shard_rows must be positive".into(),
            });
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let manifest = match Manifest::load(dir)? {
            Some(m) => {
                let stored = IndexSpec {
                    encoder_fingerprint: m.encoder_fingerprint.clone(),
                    corpus_checksum: m.corpus_checksum.clone(),
                    dim: m.dim,
                    element_type: m.element_type,
                    shard_rows: m.shard_rows as usize,
                };
                if stored != spec {
                    return Err(IndexError::InvalidInput {
                        file: Manifest::path(dir),
                        detail: format!(
                            "cannot resume: the index was started with {stored:?}, \
                             the writer was asked for {spec:?}"
                        ),
                    });
                }
                m
            }
            None => {
                let m = Manifest {
                    format_version: FORMAT_VERSION,
                    encoder_fingerprint: spec.encoder_fingerprint.clone(),
                    corpus_checksum: spec.corpus_checksum.clone(),
                    dim: spec.dim,
                    element_type: spec.element_type,
                    shard_rows: spec.shard_rows as u64,
                    complete: false,
                    shards: Vec::new(),
                    hnsw: None,
                };
                m.store(dir)?;
                m
            }
        };
        // Leftovers of an interrupted write: temp files, and shard files that
        // were renamed into place but never committed to the manifest.
        let listed: HashSet<&str> = manifest.shards.iter().map(|s| s.file.as_str()).collect();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let stray_shard = name.starts_with("shard-") && !listed.contains(name.as_str());
            if is_leftover_temp(&name) || stray_shard {
                let p = entry.path();
                if p.is_file() {
                    std::fs::remove_file(&p).map_err(io_err(&p))?;
                }
            }
        }
        let mut seen = HashSet::new();
        for entry in &manifest.shards {
            let shard = Shard::open(&dir.join(&entry.file))?;
            for id in shard.doc_ids()?.iter() {
                seen.insert(id.as_str().to_string());
            }
        }
        Ok(IndexWriter {
            dir: dir.to_path_buf(),
            stride: spec.element_type.row_stride(spec.dim),
            manifest,
            pending_rows: Vec::new(),
            pending_ids: Vec::new(),
            seen,
            verified: VerifiedSet::load(dir),
        })
    }

    /// Rows durably stored: the caller resumes its input after this many rows.
    pub fn rows_done(&self) -> u64 {
        self.manifest.total_rows()
    }

    pub fn is_complete(&self) -> bool {
        self.manifest.complete
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one row. Rejects NaN/inf, wrong dimensions and duplicate doc ids.
    pub fn push(&mut self, doc_id: &str, vector: &[f32]) -> Result<(), IndexError> {
        if self.manifest.complete {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(&self.dir),
                detail: "the index is already complete (finish() was called)".into(),
            });
        }
        let dim = self.manifest.dim;
        if vector.len() != dim {
            return Err(IndexError::DimensionMismatch {
                file: self.dir.clone(),
                expected: dim,
                found: vector.len(),
            });
        }
        if let Some(i) = vector.iter().position(|v| !v.is_finite()) {
            return Err(IndexError::InvalidInput {
                file: self.dir.clone(),
                detail: format!(
                    "vector of doc `{doc_id}` has a non-finite value ({}) at component {i}",
                    vector[i]
                ),
            });
        }
        if !self.seen.insert(doc_id.to_string()) {
            return Err(IndexError::InvalidInput {
                file: self.dir.clone(),
                detail: format!("duplicate doc id `{doc_id}`"),
            });
        }
        let at = self.pending_rows.len();
        self.pending_rows.resize(at + self.stride, 0);
        encode_row(
            self.manifest.element_type,
            vector,
            &mut self.pending_rows[at..],
        );
        self.pending_ids.push(doc_id.to_string());
        if self.pending_ids.len() == self.manifest.shard_rows as usize {
            self.flush_shard()?;
        }
        Ok(())
    }

    /// Appends `doc_ids.len()` rows stored row-major in `vectors`.
    pub fn push_batch<S: AsRef<str>>(
        &mut self,
        doc_ids: &[S],
        vectors: &[f32],
    ) -> Result<(), IndexError> {
        let dim = self.manifest.dim;
        if vectors.len() != doc_ids.len() * dim {
            return Err(IndexError::DimensionMismatch {
                file: self.dir.clone(),
                expected: doc_ids.len() * dim,
                found: vectors.len(),
            });
        }
        for (id, v) in doc_ids.iter().zip(vectors.chunks_exact(dim)) {
            self.push(id.as_ref(), v)?;
        }
        Ok(())
    }

    fn flush_shard(&mut self) -> Result<(), IndexError> {
        if self.pending_ids.is_empty() {
            return Ok(());
        }
        let file = shard_file_name(self.manifest.shards.len());
        let path = self.dir.join(&file);
        let (sum, bytes) = write_shard(
            &path,
            self.manifest.element_type,
            self.manifest.dim,
            &self.pending_rows,
            &self.pending_ids,
        )?;
        let checksum = checksum_hex(sum);
        self.manifest.shards.push(ShardEntry {
            file: file.clone(),
            rows: self.pending_ids.len() as u64,
            bytes,
            checksum: checksum.clone(),
        });
        // Commit point: the shard exists once the manifest names it.
        self.manifest.store(&self.dir)?;
        // The checksum was computed over the very bytes written: record the shard as verified.
        self.verified.mark(&self.dir, &file, &checksum);
        self.verified.store(&self.dir)?;
        self.pending_rows.clear();
        self.pending_ids.clear();
        Ok(())
    }

    /// Writes the last (partial) shard and marks the index complete.
    pub fn finish(mut self) -> Result<Manifest, IndexError> {
        if !self.manifest.complete {
            self.flush_shard()?;
            self.manifest.complete = true;
            self.manifest.store(&self.dir)?;
            quarry_fsio::sync_dir(&self.dir)?;
        }
        debug_assert!(self.dir.join(MANIFEST_FILE).exists());
        Ok(self.manifest)
    }
}
