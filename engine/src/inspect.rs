//! `quarry index …`: a dense index folder (see `index/FORMAT.md`) opened,
//! verified, searched with vectors given as they are, and given an HNSW
//! graph — without a dataset or a model. The binary prints what these
//! return.

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use quarry_index::dense::hnsw::BuildReport as HnswBuildReport;
use quarry_index::dense::npy::NpyVectors;
use quarry_index::dense::HnswIndex;
pub use quarry_index::dense::{DenseIndex, HnswParams, Manifest, ShardStatus, Verify};

use crate::build::query_cache::query_id_of_key;
use crate::build::QUERY_CACHE_DIR;
use crate::error::{EngineError, Result};

/// Opens the index at `dir`, checking shard checksums as `verify` says.
pub fn open_index(dir: &Path, verify: Verify) -> Result<DenseIndex> {
    Ok(DenseIndex::open_with(dir, verify)?)
}

/// Every checksum of the index recomputed: its shards, its HNSW graph (when
/// there is one) and the same for its query cache (`queries/`), which is an
/// index of its own. Returns the index (shards verified) and the folders
/// that were checked. The first mismatch is the error.
pub fn verify_index(dir: &Path) -> Result<(DenseIndex, Vec<PathBuf>)> {
    let mut checked = Vec::new();
    let index = DenseIndex::open_with(dir, Verify::Always)?;
    HnswIndex::verify_file(&index)?;
    checked.push(dir.to_path_buf());
    let cache = dir.join(QUERY_CACHE_DIR);
    if cache.join("manifest.json").exists() {
        let queries = DenseIndex::open_with(&cache, Verify::Always)?;
        HnswIndex::verify_file(&queries)?;
        checked.push(cache);
    }
    Ok((index, checked))
}

/// What an index takes on disk, by part, and what searching it takes in memory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Footprint {
    /// Shard files (the vectors and their ids).
    pub shards: u64,
    /// The HNSW graph folder, if any.
    pub hnsw: u64,
    /// The query cache (`queries/`), if any.
    pub queries: u64,
    /// Everything else: manifest, build record, verification stamps.
    pub records: u64,
    pub total: u64,
    /// The exact scan maps the shards read-only: this much page cache, shared between
    /// processes and evicted under memory pressure, never the process's own memory.
    pub mapped: u64,
    /// The most the scan's top-k heaps take at once, whatever the corpus size: queries are
    /// scanned in batches that fit it.
    pub search_heap_budget: u64,
    /// Queries per scan of the shards at k = 1000 on this machine's threads.
    pub queries_per_scan_at_1000: u64,
}

/// The footprint of the index in `dir`.
pub fn footprint(dir: &Path) -> Result<Footprint> {
    fn size_of_tree(path: &Path) -> u64 {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| size_of_tree(&e.path()))
                .sum(),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let mut parts = Footprint {
        shards: 0,
        hnsw: 0,
        queries: 0,
        records: 0,
        total: 0,
        mapped: 0,
        search_heap_budget: quarry_index::dense::reader::SEARCH_HEAP_BUDGET as u64,
        queries_per_scan_at_1000: quarry_index::dense::reader::queries_per_scan(
            1000,
            quarry_index::dense::reader::SEARCH_HEAP_BUDGET,
        ) as u64,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, e))? {
        let entry = entry.map_err(|e| EngineError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = size_of_tree(&entry.path());
        let part = if name.starts_with("shard-") {
            &mut parts.shards
        } else if name == QUERY_CACHE_DIR {
            &mut parts.queries
        } else if name.starts_with("hnsw") {
            &mut parts.hnsw
        } else {
            &mut parts.records
        };
        *part += bytes;
    }
    parts.total = parts.shards + parts.hnsw + parts.queries + parts.records;
    parts.mapped = parts.shards;
    Ok(parts)
}

/// Every query vector stored with the index (its `queries/`: those `quarry index import`
/// stored, or those a build encoded), back to back, and their query ids. The stored queries
/// must come from the index's encoder.
pub fn stored_queries(index: &DenseIndex) -> Result<(Vec<f32>, Vec<String>)> {
    let stored = index.dir().join(QUERY_CACHE_DIR);
    let problem = |detail: String| EngineError::Build {
        path: stored.clone(),
        detail,
    };
    if !stored.join("manifest.json").exists() {
        return Err(problem(
            "no stored queries (import them with `quarry index import --queries-npy`, or \
             give --query-file)"
                .into(),
        ));
    }
    let queries = DenseIndex::open_with(&stored, Verify::Once)?;
    let (theirs, ours) = (
        &queries.manifest().encoder_fingerprint,
        &index.manifest().encoder_fingerprint,
    );
    if theirs != ours {
        return Err(problem(format!(
            "the stored queries come from another encoder ({theirs}) than the index ({ours})"
        )));
    }
    let mut vectors = Vec::with_capacity(queries.rows() as usize * queries.dim());
    let mut ids = Vec::with_capacity(queries.rows() as usize);
    for row in 0..queries.rows() {
        vectors.extend(queries.row_vector(row)?);
        ids.push(query_id_of_key(queries.doc_id(row)?).to_string());
    }
    Ok((vectors, ids))
}

/// One query's hits: (stored row, doc id, score), best first.
pub type VectorHits = Vec<(u64, String, f32)>;

/// The top `k` rows for each query vector (`flat`: queries back to back),
/// exact or through the HNSW graph (`ef`: its search breadth, default the
/// manifest's). `encoder` is the fingerprint the vectors claim; `None`
/// takes the index's own (the vectors are trusted as given).
pub fn search_vectors(
    index: &DenseIndex,
    flat: &[f32],
    k: usize,
    encoder: Option<&str>,
    hnsw: Option<Option<usize>>,
) -> Result<(Vec<VectorHits>, f64)> {
    let fingerprint = encoder
        .unwrap_or(&index.manifest().encoder_fingerprint)
        .to_string();
    let started = Instant::now();
    let results = match hnsw {
        Some(ef) => HnswIndex::load(index)?.search(index, &fingerprint, flat, k, ef)?,
        None => index.search(&fingerprint, flat, k)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut lists = Vec::with_capacity(results.len());
    for hits in results {
        let mut list = Vec::with_capacity(hits.len());
        for hit in hits {
            list.push((hit.row, index.doc_id(hit.row)?.to_string(), hit.score));
        }
        lists.push(list);
    }
    Ok((lists, seconds))
}

/// Builds (or rebuilds) the HNSW graph and measures its recall@10 against
/// the exact scan with stored rows as queries.
pub fn build_hnsw(index: &DenseIndex, params: HnswParams) -> Result<HnswBuildReport> {
    Ok(HnswIndex::build(index, params, &[], 10)?)
}

/// Query vectors from a file: `.npy` (f32, 1-D or 2-D), `.json` (an array,
/// or an array of arrays) or raw little-endian f32; a whole number of
/// `dim`-dimensional vectors, else an error naming the file.
pub fn read_query_vectors(path: &Path, dim: usize) -> Result<Vec<f32>> {
    let bad = |detail: String| EngineError::DataCorruption {
        file: path.to_path_buf(),
        detail,
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let values: Vec<f32> = match ext {
        "npy" => {
            let array = NpyVectors::open(path)?;
            array.rows_vec(0, array.rows)
        }
        "json" => {
            let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
            let rows: Vec<serde_json::Value> = match value {
                serde_json::Value::Array(a) if a.first().is_some_and(|x| x.is_array()) => a,
                other => vec![other],
            };
            let mut out = Vec::new();
            for (i, row) in rows.into_iter().enumerate() {
                let row: Vec<f32> = serde_json::from_value(row)
                    .map_err(|_| bad(format!("query {i} is not an array of numbers")))?;
                out.extend(row);
            }
            out
        }
        _ => {
            let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
            if !bytes.len().is_multiple_of(4) {
                return Err(bad(format!(
                    "raw f32 file has {} bytes, not a multiple of 4",
                    bytes.len()
                )));
            }
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
    };
    if values.is_empty() || !values.len().is_multiple_of(dim) {
        return Err(bad(format!(
            "{} values is not a whole number of {dim}-dimensional queries (index dimension {dim})",
            values.len()
        )));
    }
    Ok(values)
}

/// One dense index of a data home, as `quarry index list` shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IndexListing {
    /// `NAME@DATASET`: what `--retriever dense:NAME` on DATASET opens.
    pub name: String,
    pub dir: PathBuf,
    pub rows: u64,
    pub dim: usize,
    pub element_type: String,
    pub complete: bool,
    /// Files of the index on disk (shards, manifest, graph), in bytes.
    pub bytes: u64,
    pub hnsw: bool,
    /// From `build.json`, when the index has one.
    pub model: Option<String>,
    pub mode: Option<String>,
    pub max_length: Option<usize>,
    /// Sharded-build slices waiting to be merged (`slices/I-of-N`).
    pub pending_slices: usize,
}

/// The dense indexes under `<home>/dense`, by name. A folder whose manifest
/// cannot be read is listed as an error naming it.
pub fn list_indexes(home: &Path) -> Result<Vec<IndexListing>> {
    let dense = home.join("dense");
    let entries = match std::fs::read_dir(&dense) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::io(&dense, e)),
    };
    let mut listings = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(&dense, e))?;
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let slices = dir.join("slices");
        let pending_slices = std::fs::read_dir(&slices)
            .map(|e| e.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0);
        let Some(manifest) = Manifest::load(&dir)? else {
            if pending_slices == 0 {
                continue;
            }
            // Slices of a sharded build, not merged yet: nothing else to say.
            listings.push(IndexListing {
                name: entry.file_name().to_string_lossy().into_owned(),
                dir,
                pending_slices,
                ..IndexListing::default()
            });
            continue;
        };
        let info = crate::build::BuildInfo::load(&dir)?;
        let bytes = manifest.shards.iter().map(|s| s.bytes).sum::<u64>()
            + std::fs::metadata(Manifest::path(&dir)).map_or(0, |m| m.len());
        listings.push(IndexListing {
            name: entry.file_name().to_string_lossy().into_owned(),
            rows: manifest.total_rows(),
            dim: manifest.dim,
            element_type: manifest.element_type.name().to_string(),
            complete: manifest.complete,
            bytes,
            hnsw: manifest.hnsw.is_some(),
            model: info.as_ref().map(|i| i.encoder.model.display().to_string()),
            mode: info.as_ref().map(|i| i.template_mode.clone()),
            max_length: info.as_ref().map(|i| i.max_length),
            pending_slices,
            dir,
        });
    }
    listings.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listings)
}

/// An index argument: a folder as given, else `NAME@DATASET` (or `NAME`)
/// under `<home>/dense`. The error lists the indexes the home holds.
pub fn resolve_index_dir(home: &Path, arg: &Path) -> Result<PathBuf> {
    if arg.is_dir() {
        return Ok(arg.to_path_buf());
    }
    let name = arg.to_string_lossy();
    let in_home = home.join("dense").join(name.as_ref());
    if !name.contains(['/', '\\']) && in_home.is_dir() {
        return Ok(in_home);
    }
    let known: Vec<String> = list_indexes(home)?.into_iter().map(|l| l.name).collect();
    Err(EngineError::Build {
        path: arg.to_path_buf(),
        detail: format!(
            "no such index folder, and no index of that name in {} (it holds: {}; {})",
            home.join("dense").display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
            crate::catalog::HOME_HINT
        ),
    })
}
