//! Optional approximate search: an HNSW graph (Malkov & Yashunin's
//! hierarchical navigable small world, with hnswlib's insertion and
//! neighbour-selection heuristic) over the index's own memory-mapped rows.
//!
//! Data flow: [`HnswIndex::build`] reads the rows straight from the shards
//! (no copy), inserts them in parallel, writes the links to
//! `<index>/hnsw/graph.qhg` (layout in `index/FORMAT.md`), measures recall
//! against the exact scan and records the graph in the manifest.
//! [`HnswIndex::load`] maps that file back: reload is O(1) apart from the
//! one-time checksum (cached in `verified.json` like the shards').
//!
//! Why not the hnsw_rs crate (used before): with the same M / ef_construction
//! and the same SIMD distance, its search was 0.6–0.8× hnswlib's queries/s at
//! recall@10 ≥ 0.95, its build 2.5× slower and its reload 7× slower
//! (docs/results.md). Its search allocates an `Arc` per candidate, keeps the
//! visited set in a SipHash `HashMap`, takes an `RwLock` and bumps shared
//! `Arc` counts per visited node (two threads were no faster than one), and
//! its dump stores a second copy of every vector that reload deserialises.
//! Here: visited set = epoch-tagged array, links = flat `u32` arrays, vectors
//! = the shards themselves.
//!
//! Distance: `−⟨a, b⟩` (inner product; cosine on unit vectors). The builder
//! refuses rows whose norm is not 1 (± 1e-2): the neighbour-selection
//! heuristic assumes a metric-like distance.
//!
//! Modules, one idea each: `rows` (the rows read in place, and the
//! distance), `search` (greedy descent, best-first layer search, neighbour
//! selection: shared by insertion and queries), `build` (the graph under
//! parallel construction), `file` (the `graph.qhg` layout, writer and
//! reader). This file: parameters, build/load/search of an [`HnswIndex`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use rayon::prelude::*;

use super::format::checksum_hex;
use super::hit::Hit;
use super::kernels::dot_f32;
use super::manifest::{HnswEntry, Manifest};
use super::reader::DenseIndex;
use super::verified::VerifiedSet;
use crate::error::io_err;
use crate::topk::Ranked;
use crate::IndexError;

mod build;
mod file;
mod rows;
mod search;

use build::BuildGraph;
use file::{graph_err, write_graph, MappedGraph};
use rows::Rows;
pub use search::MAX_M;
use search::{greedy, search_layer, Cand, Shape};

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
const GRAPH_FILE: &str = "graph.qhg";

/// What a build reports.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub entry: HnswEntry,
    pub build_seconds: f64,
}

/// A reloaded HNSW graph over an index's rows (searches read the rows from
/// the [`DenseIndex`] passed to [`HnswIndex::search`]).
pub struct HnswIndex {
    graph: MappedGraph,
    entry: HnswEntry,
}

fn graph_path(dir: &Path, entry: &HnswEntry) -> PathBuf {
    dir.join(&entry.dir).join(&entry.basename)
}

impl HnswIndex {
    /// Builds the graph over all rows of `index` (parallel insertion), writes it
    /// to `<index>/hnsw/graph.qhg`, measures recall@`recall_k` against exact
    /// flat search on `recall_queries` (row-major; when empty, 200 evenly
    /// spaced stored rows are used as queries) and records everything in the
    /// manifest.
    pub fn build(
        index: &DenseIndex,
        params: HnswParams,
        recall_queries: &[f32],
        recall_k: usize,
    ) -> Result<BuildReport, IndexError> {
        let dir = index.dir();
        let dim = index.dim();
        let n = index.rows() as usize;
        if params.m < 2 || params.m > MAX_M || params.ef_construction == 0 {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(dir),
                detail: format!(
                    "HNSW needs 2 <= M <= {MAX_M} and ef_construction >= 1 (got M = {}, ef_construction = {})",
                    params.m, params.ef_construction
                ),
            });
        }
        if n > u32::MAX as usize - 1 {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(dir),
                detail: format!("{n} rows: the HNSW graph addresses rows with 32 bits"),
            });
        }
        let rows = Rows::new(index);
        // Unit norms (checked in parallel, reported by global row number).
        if let Some(bad) = (0..n as u32).into_par_iter().find_first(|&i| {
            let v = rows.vector(i);
            (dot_f32(&v, &v).sqrt() - 1.0).abs() > 1e-2
        }) {
            let v = rows.vector(bad);
            let (shard_no, _) = (bad as usize / rows.shard_rows, 0);
            let shard = index
                .shards()
                .nth(shard_no)
                .map(|(_, s)| s.path().to_path_buf());
            return Err(IndexError::InvalidInput {
                file: shard.unwrap_or_else(|| dir.to_path_buf()),
                detail: format!(
                    "row {bad} has norm {:.4}: the HNSW index needs unit-normalised vectors",
                    dot_f32(&v, &v).sqrt()
                ),
            });
        }

        let start = Instant::now();
        let shape = Shape {
            m: params.m,
            m0: 2 * params.m,
        };
        let graph = BuildGraph::new(n, shape);
        // Node 0 is the first entry point; the others are inserted in row
        // order by all threads taking the next row from a shared counter
        // (hnswlib's ParallelFor).
        let next = AtomicUsize::new(1);
        rayon::broadcast(|_| loop {
            let id = next.fetch_add(1, Relaxed);
            if id >= n {
                break;
            }
            graph.insert(&rows, id as u32, params.ef_construction);
        });
        let build_seconds = start.elapsed().as_secs_f64();

        // Persist: hnsw/graph.qhg written atomically, then committed in the manifest.
        let gdir = dir.join(HNSW_DIR);
        std::fs::create_dir_all(&gdir).map_err(io_err(&gdir))?;
        // A build killed mid-write leaves its uniquely named temporary behind.
        super::writer::sweep_leftover_temps(&gdir)?;
        let path = gdir.join(GRAPH_FILE);
        let sum = write_graph(&path, &graph, params.ef_construction)?;
        drop(graph);
        let mut verified = VerifiedSet::load(dir);
        let rel = format!("{HNSW_DIR}/{GRAPH_FILE}");
        verified.mark(dir, &rel, &checksum_hex(sum));
        let _ = verified.store(dir);

        // Recall of the persisted graph against the exact scan.
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
        let mut entry = HnswEntry {
            dir: HNSW_DIR.into(),
            basename: GRAPH_FILE.into(),
            checksum: checksum_hex(sum),
            m: params.m,
            ef_construction: params.ef_construction,
            ef_search: params.ef_search,
            rows: n as u64,
            recall_at_k: 0.0,
            recall_k,
            recall_queries: queries.len() / dim,
        };
        let fp = index.manifest().encoder_fingerprint.clone();
        let loaded = HnswIndex {
            graph: MappedGraph::open(&path)?,
            entry: entry.clone(),
        };
        let exact = index.search(&fp, queries, recall_k)?;
        let approx = loaded.search(index, &fp, queries, recall_k, None)?;
        entry.recall_at_k = recall_at_k(&exact, &approx, recall_k);
        let mut manifest: Manifest = index.manifest().clone();
        manifest.hnsw = Some(entry.clone());
        manifest.store(dir)?;
        Ok(BuildReport {
            entry,
            build_seconds,
        })
    }

    /// Maps the graph recorded in the index's manifest (no rebuilding). The
    /// file is checksummed and structurally checked on its first load; later
    /// loads find it in `verified.json` and only read the header.
    pub fn load(index: &DenseIndex) -> Result<HnswIndex, IndexError> {
        let entry = index
            .manifest()
            .hnsw
            .clone()
            .ok_or_else(|| IndexError::InvalidInput {
                file: Manifest::path(index.dir()),
                detail: "the index has no HNSW graph (build one with `quarry index hnsw`)".into(),
            })?;
        if entry.checksum.is_empty() {
            return Err(IndexError::InvalidInput {
                file: Manifest::path(index.dir()),
                detail: "the HNSW graph was written by an older quarry (hnsw_rs dump); rebuild it with `quarry index hnsw`".into(),
            });
        }
        let path = graph_path(index.dir(), &entry);
        let graph = MappedGraph::open(&path)?;
        if graph.layout.n as u64 != index.rows() || entry.rows != index.rows() {
            return Err(graph_err(
                &path,
                format!(
                    "graph covers {} rows (manifest: {}), index has {}",
                    graph.layout.n,
                    entry.rows,
                    index.rows()
                ),
            ));
        }
        if checksum_hex(graph.stored_checksum()) != entry.checksum {
            return Err(graph_err(
                &path,
                format!(
                    "footer checksum {} differs from the manifest's {}: graph replaced?",
                    checksum_hex(graph.stored_checksum()),
                    entry.checksum
                ),
            ));
        }
        let rel = format!("{}/{}", entry.dir, entry.basename);
        let mut verified = VerifiedSet::load(index.dir());
        if !verified.is_verified(index.dir(), &rel, &entry.checksum) {
            graph.verify(&path)?;
            verified.mark(index.dir(), &rel, &entry.checksum);
            let _ = verified.store(index.dir());
        }
        Ok(HnswIndex { graph, entry })
    }

    /// Re-checks the graph file in full (checksum and link ranges), whatever
    /// `verified.json` says: for `quarry index verify`.
    pub fn verify_file(index: &DenseIndex) -> Result<(), IndexError> {
        let Some(entry) = index.manifest().hnsw.clone() else {
            return Ok(());
        };
        let path = graph_path(index.dir(), &entry);
        let checked = MappedGraph::open(&path).and_then(|graph| graph.verify(&path));
        if checked.is_err() {
            // As for shards: a failed full check drops the graph's stamp.
            let mut verified = VerifiedSet::load(index.dir());
            if verified.forget(&format!("{}/{}", entry.dir, entry.basename)) {
                let _ = verified.store(index.dir());
            }
        }
        checked
    }

    pub fn entry(&self) -> &HnswEntry {
        &self.entry
    }

    /// Approximate top-`k` for each query (best first, equal scores by
    /// ascending row); `ef` defaults to the manifest's ef_search. Queries run
    /// in parallel on the current rayon pool.
    pub fn search(
        &self,
        index: &DenseIndex,
        query_encoder_fingerprint: &str,
        queries: &[f32],
        k: usize,
        ef: Option<usize>,
    ) -> Result<Vec<Vec<Hit>>, IndexError> {
        index.check_encoder(query_encoder_fingerprint)?;
        index.check_queries(queries)?;
        let dim = index.dim();
        if self.graph.layout.n as u64 != index.rows() {
            return Err(graph_err(
                &graph_path(index.dir(), &self.entry),
                format!(
                    "graph covers {} rows, index has {}",
                    self.graph.layout.n,
                    index.rows()
                ),
            ));
        }
        let ef = ef.unwrap_or(self.entry.ef_search).max(k);
        let rows = Rows::new(index);
        let g = &self.graph;
        let layout = g.layout;
        Ok(queries
            .par_chunks(dim)
            .map(|q| {
                if layout.n == 0 || k == 0 {
                    return Vec::new();
                }
                let ep = layout.entry;
                let start = Cand {
                    dist: rows.dist_to(q, ep),
                    id: ep,
                };
                let cur = greedy(g, &rows, q, start, layout.max_level, 0);
                let mut hits: Vec<Hit> = search_layer(g, &rows, q, cur, ef, 0)
                    .into_iter()
                    .map(|c| Hit {
                        row: c.id as u64,
                        score: -c.dist,
                    })
                    .collect();
                hits.sort_by(Hit::rank_cmp);
                hits.truncate(k);
                hits
            })
            .collect())
    }
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
