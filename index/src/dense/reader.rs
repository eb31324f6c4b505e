//! Reading an index directory: open (O(1) per shard: mmap, header, footer),
//! one-time checksum verification, and exact flat inner-product search.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;

use super::format::{checksum_hex, ElementType};
use super::hit::Hit;
use super::kernels::{decode_row, score_block, Isa};
use super::manifest::Manifest;
use super::quant::QuantizedRows;
use super::shard::Shard;
use super::verified::VerifiedSet;
use crate::topk::TopK;
use crate::IndexError;

/// When to run the full checksum of the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Only shards not yet recorded as verified in `verified.json` (the default):
    /// each shard is checksummed once, later opens are O(1).
    Once,
    /// Every shard, every time (what `quarry index verify` does).
    Always,
    /// Header/footer/manifest consistency only.
    Never,
}

/// Per-shard verification outcome, for `quarry index info/verify`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ShardStatus {
    /// Checksummed during this open.
    VerifiedNow,
    /// Recorded as verified earlier (by the writer or an earlier open), file unchanged since.
    VerifiedBefore,
    /// Not checksummed (Verify::Never and not recorded).
    Unverified,
}

pub struct DenseIndex {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<Shard>,
    /// Global row number of each shard's first row.
    starts: Vec<u64>,
    status: Vec<ShardStatus>,
    isa: Isa,
    /// 8-bit codes for [`DenseIndex::search_rescored`], built on first use.
    quantized: OnceLock<QuantizedRows>,
}

impl DenseIndex {
    /// Opens with [`Verify::Once`].
    pub fn open(dir: &Path) -> Result<DenseIndex, IndexError> {
        DenseIndex::open_with(dir, Verify::Once)
    }

    pub fn open_with(dir: &Path, verify: Verify) -> Result<DenseIndex, IndexError> {
        let manifest = Manifest::load(dir)?.ok_or_else(|| IndexError::Io {
            path: Manifest::path(dir),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no manifest: not an index"),
        })?;
        let mut shards = Vec::with_capacity(manifest.shards.len());
        let mut starts = Vec::with_capacity(manifest.shards.len());
        let mut status = Vec::with_capacity(manifest.shards.len());
        let mut verified = VerifiedSet::load(dir);
        let mut verified_changed = false;
        let mut start = 0u64;
        // Map every shard first (starting the header/footer reads), then decode.
        let mapped = manifest
            .shards
            .iter()
            .map(|entry| Shard::map(&dir.join(&entry.file)))
            .collect::<Result<Vec<_>, _>>()?;
        for (entry, mapped) in manifest.shards.iter().zip(mapped) {
            let path = dir.join(&entry.file);
            let shard = mapped.finish()?;
            let h = shard.header();
            let mismatch = |detail: String| IndexError::DataCorruption {
                file: path.clone(),
                detail,
            };
            if h.element_type != manifest.element_type || h.dim as usize != manifest.dim {
                return Err(mismatch(format!(
                    "shard holds {} × {} but the manifest says {} × {}",
                    h.element_type, h.dim, manifest.element_type, manifest.dim
                )));
            }
            if h.row_count != entry.rows || shard.file_len() != entry.bytes {
                return Err(mismatch(format!(
                    "shard has {} rows / {} bytes, the manifest lists {} rows / {} bytes",
                    h.row_count,
                    shard.file_len(),
                    entry.rows,
                    entry.bytes
                )));
            }
            if checksum_hex(shard.stored_checksum()) != entry.checksum {
                return Err(mismatch(format!(
                    "footer checksum {} differs from the manifest's {}: shard replaced?",
                    checksum_hex(shard.stored_checksum()),
                    entry.checksum
                )));
            }
            let known = verified.is_verified(dir, &entry.file, &entry.checksum);
            let st = match (verify, known) {
                (Verify::Always, _) | (Verify::Once, false) => {
                    if let Err(err) = shard.verify() {
                        // A failed full check drops the shard's stamp, so later opens
                        // checksum it again (and refuse it) rather than trusting a
                        // stamp that an in-place edit kept (same size, mtime, inode).
                        if verified.forget(&entry.file) {
                            let _ = verified.store(dir);
                        }
                        return Err(err);
                    }
                    verified.mark(dir, &entry.file, &entry.checksum);
                    verified_changed = true;
                    ShardStatus::VerifiedNow
                }
                (_, true) => ShardStatus::VerifiedBefore,
                (Verify::Never, false) => ShardStatus::Unverified,
            };
            status.push(st);
            starts.push(start);
            start += entry.rows;
            shards.push(shard);
        }
        if verified_changed {
            // Best effort: a read-only index directory just re-verifies next time.
            let _ = verified.store(dir);
        }
        Ok(DenseIndex {
            dir: dir.to_path_buf(),
            manifest,
            shards,
            starts,
            status,
            isa: Isa::detect(),
            quantized: OnceLock::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn rows(&self) -> u64 {
        self.manifest.total_rows()
    }
    pub fn dim(&self) -> usize {
        self.manifest.dim
    }
    pub fn element_type(&self) -> ElementType {
        self.manifest.element_type
    }
    pub fn shard_status(&self) -> &[ShardStatus] {
        &self.status
    }
    /// The SIMD implementation chosen for this CPU.
    pub fn isa_name(&self) -> &'static str {
        self.isa.name()
    }
    /// Bytes of shard files + manifest.
    pub fn size_on_disk(&self) -> u64 {
        let manifest = std::fs::metadata(Manifest::path(&self.dir))
            .map(|m| m.len())
            .unwrap_or(0);
        self.shards.iter().map(|s| s.file_len()).sum::<u64>() + manifest
    }

    /// Refuses queries from another encoder than the index's.
    pub fn check_encoder(&self, query_encoder_fingerprint: &str) -> Result<(), IndexError> {
        if query_encoder_fingerprint != self.manifest.encoder_fingerprint {
            return Err(IndexError::EncoderMismatch {
                file: Manifest::path(&self.dir),
                index: self.manifest.encoder_fingerprint.clone(),
                query: query_encoder_fingerprint.to_string(),
            });
        }
        Ok(())
    }

    fn locate(&self, row: u64) -> Result<(usize, usize), IndexError> {
        if row >= self.rows() {
            return Err(IndexError::InvalidInput {
                file: self.dir.clone(),
                detail: format!("row {row} out of range (index has {} rows)", self.rows()),
            });
        }
        let s = self.starts.partition_point(|&st| st <= row) - 1;
        Ok((s, (row - self.starts[s]) as usize))
    }

    /// Doc id of a global row number.
    pub fn doc_id(&self, row: u64) -> Result<&str, IndexError> {
        let (s, r) = self.locate(row)?;
        Ok(self.shards[s].doc_ids()?[r].as_str())
    }

    /// A stored row decoded to f32.
    pub fn row_vector(&self, row: u64) -> Result<Vec<f32>, IndexError> {
        let (s, r) = self.locate(row)?;
        let shard = &self.shards[s];
        let stride = shard.header().row_stride as usize;
        let mut v = vec![0f32; self.dim()];
        decode_row(
            self.element_type(),
            &shard.row_bytes()[r * stride..(r + 1) * stride],
            self.dim(),
            &mut v,
        );
        Ok(v)
    }

    /// Visits all rows in order as (shard index, global start, shard), for builders (HNSW).
    pub fn shards(&self) -> impl Iterator<Item = (u64, &Shard)> {
        self.starts.iter().copied().zip(self.shards.iter())
    }

    /// Checks row-major `queries` (a whole number of rows, all finite) and
    /// returns how many there are.
    pub(crate) fn check_queries(&self, queries: &[f32]) -> Result<usize, IndexError> {
        let dim = self.dim();
        if queries.is_empty() || !queries.len().is_multiple_of(dim) {
            return Err(IndexError::DimensionMismatch {
                file: Manifest::path(&self.dir),
                expected: dim,
                found: if queries.len() < dim {
                    queries.len()
                } else {
                    queries.len() % dim
                },
            });
        }
        if let Some(i) = queries.iter().position(|v| !v.is_finite()) {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(&self.dir),
                detail: format!(
                    "query {} has a non-finite value at component {}",
                    i / dim,
                    i % dim
                ),
            });
        }
        Ok(queries.len() / dim)
    }

    /// Exact top-`k` by inner product for each query (row-major `queries`,
    /// `n × dim`), best first; equal scores by ascending row. Refuses queries
    /// from another encoder.
    pub fn search(
        &self,
        query_encoder_fingerprint: &str,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        self.check_encoder(query_encoder_fingerprint)?;
        let nq = self.check_queries(queries)?;
        Ok(self.flat_search_within(queries, nq, k, SEARCH_HEAP_BUDGET))
    }

    /// The exact scan in batches of queries whose top-k heaps fit in `budget` bytes: each
    /// batch streams the shards once; memory does not grow with the corpus.
    fn flat_search_within(
        &self,
        queries: &[f32],
        nq: usize,
        k: usize,
        budget: usize,
    ) -> Vec<Vec<Hit>> {
        let batch = queries_per_scan(k, budget).min(nq.max(1));
        let dim = self.dim();
        let mut results = Vec::with_capacity(nq);
        for chunk in queries.chunks(batch * dim) {
            results.extend(self.flat_search(chunk, chunk.len() / dim, k));
        }
        results
    }

    fn flat_search(&self, queries: &[f32], nq: usize, k: usize) -> Vec<Vec<Hit>> {
        let dim = self.dim();
        let et = self.element_type();
        let isa = self.isa;
        // Row tiles small enough to stay in L2 while a block of queries sweeps them.
        let tile_rows = ((256 * 1024) / et.row_stride(dim)).clamp(3, 192) / 3 * 3;
        let threads = rayon::current_num_threads().max(1);
        let total = self.rows() as usize;
        let task_rows = (total / (threads * 8)).clamp(tile_rows, 1 << 16);
        let tasks: Vec<(usize, usize, usize)> = self
            .shards
            .iter()
            .enumerate()
            .flat_map(|(s, shard)| {
                (0..shard.rows())
                    .step_by(task_rows)
                    .map(move |r| (s, r, (r + task_rows).min(shard.rows())))
            })
            .collect();
        let tops = scan_in_parallel(&tasks, nq, k, |&(s, lo, hi), tops| {
            let shard = &self.shards[s];
            let stride = shard.header().row_stride as usize;
            let bytes = shard.row_bytes();
            let mut scores = vec![0f32; nq * tile_rows];
            let mut r = lo;
            while r < hi {
                let n = (hi - r).min(tile_rows);
                score_block(
                    isa,
                    et,
                    queries,
                    nq,
                    dim,
                    &bytes[r * stride..],
                    stride,
                    n,
                    &mut scores,
                );
                let base = self.starts[s] + r as u64;
                for (qi, top) in tops.iter_mut().enumerate() {
                    for (j, &score) in scores[qi * n..(qi + 1) * n].iter().enumerate() {
                        top.push(Hit {
                            row: base + j as u64,
                            score,
                        });
                    }
                }
                r += n;
            }
        });
        tops.into_iter().map(TopK::into_sorted).collect()
    }

    /// Exact score of one stored row.
    fn exact_score(&self, query: &[f32], row: u64) -> f32 {
        let (s, r) = self.locate(row).expect("row from this index");
        let shard = &self.shards[s];
        let stride = shard.header().row_stride as usize;
        let mut out = [0f32];
        score_block(
            self.isa,
            self.element_type(),
            query,
            1,
            self.dim(),
            &shard.row_bytes()[r * stride..(r + 1) * stride],
            stride,
            1,
            &mut out,
        );
        out[0]
    }

    fn quantize(&self) -> QuantizedRows {
        QuantizedRows::build(self.element_type(), self.dim(), self.rows(), self.shards())
    }

    /// Builds the 8-bit codes used by [`DenseIndex::search_rescored`] now
    /// (otherwise the first such search does; ≈ 1 byte per component in RAM).
    pub fn prepare_rescored(&self) {
        self.quantized.get_or_init(|| self.quantize());
    }

    /// Fast batched top-`k`: 8-bit scan keeps the best `candidates` rows per
    /// query, which are then rescored exactly (see [`super::quant`]). Scores
    /// are exact; a true top-k row is missed only if the 8-bit scan ranks it
    /// below `candidates` others (measure recall with the exact [`DenseIndex::search`]).
    pub fn search_rescored(
        &self,
        query_encoder_fingerprint: &str,
        queries: &[f32],
        k: usize,
        candidates: usize,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        self.check_encoder(query_encoder_fingerprint)?;
        let nq = self.check_queries(queries)?;
        let dim = self.dim();
        let candidates = candidates.max(k);
        let qr = self.quantized.get_or_init(|| self.quantize());
        let dp = qr.dim_padded;
        let mut qcodes = vec![0u8; nq * dp];
        let qscales: Vec<f32> = queries
            .chunks(dim)
            .zip(qcodes.chunks_mut(dp))
            .map(|(q, c)| qr.encode_query(q, c))
            .collect();
        let total = self.rows() as usize;
        let tile_rows = 96;
        let threads = rayon::current_num_threads().max(1);
        let task_rows = (total / (threads * 8)).clamp(tile_rows, 1 << 16);
        let tasks: Vec<usize> = (0..total).step_by(task_rows).collect();
        let tops = scan_in_parallel(&tasks, nq, candidates, |&lo, tops| {
            let hi = (lo + task_rows).min(total);
            let mut raw = vec![0i32; nq * tile_rows];
            let mut r = lo;
            while r < hi {
                let n = (hi - r).min(tile_rows);
                qr.raw_block(&qcodes, nq, r, n, &mut raw);
                for (qi, top) in tops.iter_mut().enumerate() {
                    let t = qscales[qi];
                    for (j, &x) in raw[qi * n..(qi + 1) * n].iter().enumerate() {
                        let row = r + j;
                        let approx = (x - 64 * qr.sums[row]) as f32 * qr.scales[row] * t;
                        top.push(Hit {
                            row: row as u64,
                            score: approx,
                        });
                    }
                }
                r += n;
            }
        });
        Ok(tops
            .into_par_iter()
            .zip(queries.par_chunks(dim))
            .map(|(cands, q)| {
                let mut exact = TopK::new(k);
                for h in cands.into_sorted() {
                    exact.push(Hit {
                        row: h.row,
                        score: self.exact_score(q, h.row),
                    });
                }
                exact.into_sorted()
            })
            .collect())
    }
}

/// Runs `scan` on every task in parallel, each filling one top-`k` collector
/// per query, and merges the collectors query by query.
/// Bytes the exact scan's top-k heaps may take at once (every worker thread holds one heap
/// per query of the batch, and the parallel reduction up to as many again).
pub const SEARCH_HEAP_BUDGET: usize = 1 << 30;

/// Queries scanned together so that their heaps stay within `budget` bytes.
pub fn queries_per_scan(k: usize, budget: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let heap = (k.min(1 << 16) + 1) * std::mem::size_of::<Hit>();
    (budget / (2 * threads * heap)).max(1)
}

fn scan_in_parallel<T: Sync>(
    tasks: &[T],
    nq: usize,
    k: usize,
    scan: impl Fn(&T, &mut [TopK<Hit>]) + Sync,
) -> Vec<TopK<Hit>> {
    let collectors = || (0..nq).map(|_| TopK::new(k)).collect::<Vec<_>>();
    tasks
        .par_iter()
        .map(|task| {
            let mut tops = collectors();
            scan(task, &mut tops);
            tops
        })
        .reduce(collectors, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
            a
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dense::{ElementType, IndexSpec, IndexWriter};

    #[test]
    fn query_batches_within_a_small_budget_give_the_same_hits() {
        let dir = tempfile::tempdir().unwrap();
        let (dim, rows) = (8, 500);
        let vector = |i: usize, j: usize| ((i * 31 + j * 17) % 23) as f32 - 11.0;
        let mut writer = IndexWriter::create_or_resume(
            dir.path(),
            IndexSpec {
                encoder_fingerprint: "fp".into(),
                corpus_checksum: "c".into(),
                dim,
                element_type: ElementType::F32,
                shard_rows: 128,
            },
        )
        .unwrap();
        for i in 0..rows {
            let v: Vec<f32> = (0..dim).map(|j| vector(i, j)).collect();
            writer.push(&format!("d{i}"), &v).unwrap();
        }
        writer.finish().unwrap();
        let index = DenseIndex::open(dir.path()).unwrap();
        let nq = 37;
        let queries: Vec<f32> = (0..nq * dim)
            .map(|x| vector(x / dim + 1000, x % dim))
            .collect();
        let whole = index.flat_search_within(&queries, nq, 50, usize::MAX);
        // A budget of one byte: one query per scan.
        assert_eq!(queries_per_scan(50, 1), 1);
        let one_by_one = index.flat_search_within(&queries, nq, 50, 1);
        assert_eq!(whole.len(), nq);
        assert_eq!(whole, one_by_one);
        // The default budget holds thousands of queries at k = 1000 per scan.
        assert!(
            queries_per_scan(1000, SEARCH_HEAP_BUDGET) * rayon::current_num_threads() >= 16_000
        );
    }
}
