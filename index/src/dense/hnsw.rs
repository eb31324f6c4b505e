//! Optional approximate search: an HNSW graph (hnsw_rs) built from the
//! shards, persisted in `<index>/hnsw/`, reloaded without rebuilding. The
//! graph keeps its own f32 copy of the vectors (hnsw_rs's dump format).
//!
//! Distance: `max(0, 1 − ⟨a, b⟩)`, i.e. inner product on unit vectors
//! (hnsw_rs requires non-negative distances). The builder refuses rows whose
//! norm is not 1 (± 1e-2): on such rows this distance would not rank by
//! inner product.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use rayon::prelude::*;

use super::kernels::{decode_row, dot_f32};
use super::manifest::{HnswEntry, Manifest};
use super::reader::DenseIndex;
use super::topk::Hit;
use crate::IndexError;

/// Inner-product distance for unit vectors, with our SIMD dot product.
#[derive(Debug, Default, Clone, Copy)]
pub struct DistInnerProduct;

impl Distance<f32> for DistInnerProduct {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot_f32(va, vb)).max(0.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Max links per node on upper layers (layer 0 keeps 2·M), as hnswlib's M.
    pub m: usize,
    pub ef_construction: usize,
    /// Default ef at search time (stored in the manifest).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
        }
    }
}

const HNSW_DIR: &str = "hnsw";
const HNSW_BASENAME: &str = "graph";

type Graph<'a> = Hnsw<'a, f32, DistInnerProduct>;

self_cell::self_cell!(
    struct LoadedGraph {
        owner: HnswIo,
        #[not_covariant]
        dependent: Graph,
    }
);

/// A built or reloaded HNSW graph over an index's rows.
pub struct HnswIndex {
    graph: LoadedGraph,
    entry: HnswEntry,
}

fn hnsw_err(file: &Path, detail: impl std::fmt::Display) -> IndexError {
    IndexError::DataCorruption {
        file: file.to_path_buf(),
        detail: format!("hnsw: {detail}"),
    }
}

/// What a build reports.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub entry: HnswEntry,
    pub build_seconds: f64,
}

impl HnswIndex {
    /// Builds the graph over all rows of `index` (parallel insertion), writes it
    /// to `<index>/hnsw/`, measures recall@`recall_k` against exact flat search
    /// on `recall_queries` (row-major; when empty, 200 evenly spaced stored rows
    /// are used as queries) and records everything in the manifest.
    pub fn build(
        index: &DenseIndex,
        params: HnswParams,
        recall_queries: &[f32],
        recall_k: usize,
    ) -> Result<BuildReport, IndexError> {
        let dir = index.dir();
        let dim = index.dim();
        let n = index.rows() as usize;
        let start = Instant::now();
        let graph: Graph<'static> = Hnsw::new(
            params.m,
            n.max(1),
            16,
            params.ef_construction,
            DistInnerProduct,
        );
        // Insert shard by shard, decoding to f32 in chunks (hnsw_rs copies each point).
        const CHUNK: usize = 16_384;
        let mut buf = vec![0f32; CHUNK * dim];
        for (base, shard) in index.shards() {
            let stride = shard.header().row_stride as usize;
            let bytes = shard.row_bytes();
            let mut r = 0;
            while r < shard.rows() {
                let m = (shard.rows() - r).min(CHUNK);
                let et = index.element_type();
                buf[..m * dim]
                    .par_chunks_mut(dim)
                    .enumerate()
                    .for_each(|(j, out)| {
                        decode_row(et, &bytes[(r + j) * stride..(r + j + 1) * stride], dim, out)
                    });
                if let Some(j) = buf[..m * dim]
                    .chunks(dim)
                    .position(|v| (dot_f32(v, v).sqrt() - 1.0).abs() > 1e-2)
                {
                    return Err(IndexError::InvalidInput {
                        file: shard.path().to_path_buf(),
                        detail: format!(
                            "row {} has norm {:.4}: the HNSW index needs unit-normalised vectors",
                            base + (r + j) as u64,
                            dot_f32(&buf[j * dim..(j + 1) * dim], &buf[j * dim..(j + 1) * dim])
                                .sqrt()
                        ),
                    });
                }
                let items: Vec<(&[f32], usize)> = buf[..m * dim]
                    .chunks(dim)
                    .enumerate()
                    .map(|(j, v)| (v, base as usize + r + j))
                    .collect();
                graph.parallel_insert_slice(&items);
                r += m;
            }
        }
        let build_seconds = start.elapsed().as_secs_f64();

        // Persist: dump into hnsw.tmp/, then swap it in and commit in the manifest.
        let final_dir = dir.join(HNSW_DIR);
        let tmp_dir = dir.join(format!("{HNSW_DIR}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp_dir);
        std::fs::create_dir_all(&tmp_dir).map_err(|e| IndexError::Io {
            path: tmp_dir.clone(),
            source: e,
        })?;
        let basename = graph
            .file_dump(&tmp_dir, HNSW_BASENAME)
            .map_err(|e| hnsw_err(&tmp_dir, e))?;
        for f in std::fs::read_dir(&tmp_dir).map_err(|e| IndexError::Io {
            path: tmp_dir.clone(),
            source: e,
        })? {
            let p = f
                .map_err(|e| IndexError::Io {
                    path: tmp_dir.clone(),
                    source: e,
                })?
                .path();
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| IndexError::Io {
                    path: p.clone(),
                    source: e,
                })?;
        }
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&tmp_dir, &final_dir).map_err(|e| IndexError::Io {
            path: final_dir.clone(),
            source: e,
        })?;
        super::fsutil::sync_dir(dir)?;

        // Recall against the exact scan.
        let owned_queries;
        let queries: &[f32] = if recall_queries.is_empty() {
            let nq = n.min(200);
            let mut q = Vec::with_capacity(nq * dim);
            for i in 0..nq {
                q.extend(index.row_vector((i * n / nq.max(1)) as u64)?);
            }
            owned_queries = q;
            &owned_queries
        } else {
            recall_queries
        };
        let fp = index.manifest().encoder_fingerprint.clone();
        let exact = index.search(&fp, queries, recall_k)?;
        let approx = search_graph(&graph, queries, dim, recall_k, params.ef_search);
        let recall = recall_at_k(&exact, &approx, recall_k);
        let entry = HnswEntry {
            dir: HNSW_DIR.into(),
            basename,
            m: params.m,
            ef_construction: params.ef_construction,
            ef_search: params.ef_search,
            rows: n as u64,
            recall_at_k: recall,
            recall_k,
            recall_queries: queries.len() / dim,
        };
        let mut manifest: Manifest = index.manifest().clone();
        manifest.hnsw = Some(entry.clone());
        manifest.store(dir)?;
        Ok(BuildReport {
            entry,
            build_seconds,
        })
    }

    /// Reloads the graph recorded in the index's manifest (no rebuilding).
    pub fn load(index: &DenseIndex) -> Result<HnswIndex, IndexError> {
        let entry = index
            .manifest()
            .hnsw
            .clone()
            .ok_or_else(|| IndexError::InvalidInput {
                file: Manifest::path(index.dir()),
                detail: "the index has no HNSW graph (build one with `quarry index hnsw`)".into(),
            })?;
        if entry.rows != index.rows() {
            return Err(hnsw_err(
                &Manifest::path(index.dir()),
                format!(
                    "graph covers {} rows, index has {}",
                    entry.rows,
                    index.rows()
                ),
            ));
        }
        let gdir: PathBuf = index.dir().join(&entry.dir);
        let io = HnswIo::new(&gdir, &entry.basename);
        let graph = LoadedGraph::try_new(io, |io| {
            io.load_hnsw_with_dist::<f32, DistInnerProduct>(DistInnerProduct)
                .map_err(|e| hnsw_err(&gdir, e))
        })?;
        Ok(HnswIndex { graph, entry })
    }

    pub fn entry(&self) -> &HnswEntry {
        &self.entry
    }

    /// Approximate top-`k` for each query; `ef` defaults to the manifest's ef_search.
    pub fn search(
        &self,
        index: &DenseIndex,
        query_encoder_fingerprint: &str,
        queries: &[f32],
        k: usize,
        ef: Option<usize>,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        index.check_encoder(query_encoder_fingerprint)?;
        let dim = index.dim();
        if queries.is_empty() || !queries.len().is_multiple_of(dim) {
            return Err(IndexError::DimensionMismatch {
                file: Manifest::path(index.dir()),
                expected: dim,
                found: queries.len() % dim,
            });
        }
        let ef = ef.unwrap_or(self.entry.ef_search).max(k);
        Ok(self
            .graph
            .with_dependent(|_, g| search_graph(g, queries, dim, k, ef)))
    }
}

fn search_graph(
    graph: &Graph<'_>,
    queries: &[f32],
    dim: usize,
    k: usize,
    ef: usize,
) -> Vec<Vec<Hit>> {
    queries
        .par_chunks(dim)
        .map(|q| {
            let mut hits: Vec<Hit> = graph
                .search(q, k, ef.max(k))
                .into_iter()
                .map(|nb| Hit {
                    row: nb.d_id as u64,
                    score: 1.0 - nb.distance,
                })
                .collect();
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
            hits
        })
        .collect()
}

/// Mean over queries of |approx top-k ∩ exact top-k| / k.
pub fn recall_at_k(exact: &[Vec<Hit>], approx: &[Vec<Hit>], k: usize) -> f64 {
    if exact.is_empty() || k == 0 {
        return 0.0;
    }
    let total: usize = exact
        .iter()
        .zip(approx)
        .map(|(e, a)| {
            let truth: std::collections::HashSet<u64> = e.iter().take(k).map(|h| h.row).collect();
            a.iter().take(k).filter(|h| truth.contains(&h.row)).count()
        })
        .sum();
    total as f64 / (exact.len() * k) as f64
}
