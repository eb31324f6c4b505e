//! Vectors in and out of quarry: `quarry index export` writes an index's rows as a `.npy`
//! matrix and its ids as a text file; `quarry index import` stores vectors made elsewhere
//! (Tevatron, sentence-transformers, faiss pipelines) as a quarry index, so they are
//! searched exactly and scored with quarry's metrics.
//!
//! An imported index has no encoder: its fingerprint is `imported:` and the first 16 hex
//! digits of the vector file's sha256, and query vectors imported with it go to its
//! `queries/` sub-index under the same fingerprint (keyed by plain query id). It is searched
//! with `quarry index search DIR --stored-queries`, whose TREC output `quarry eval --retriever
//! run:FILE` scores. Imports resume: the writer keeps whole shards, and a rerun continues after them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use quarry_index::dense::npy::{f32_header, NpyVectors};
use quarry_index::dense::{DenseIndex, ElementType, IndexSpec, IndexWriter, DEFAULT_SHARD_ROWS};

use crate::build::QUERY_CACHE_DIR;
use crate::error::{EngineError, Result};
use crate::train_data::file_sha256;

/// Prefix of the encoder fingerprint of imported indexes.
pub const IMPORTED_PREFIX: &str = "imported:";

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    pub npy: PathBuf,
    pub ids: PathBuf,
    pub rows: u64,
    pub dim: usize,
    pub seconds: f64,
}

/// Writes every row of `index` (decoded to f32, in row order) to `npy` and its doc ids,
/// one per line, to `ids`. Both files are replaced atomically.
pub fn export_index(index: &DenseIndex, npy: &Path, ids: &Path) -> Result<ExportReport> {
    let started = Instant::now();
    let rows = index.rows();
    let dim = index.dim();
    let row_count = usize::try_from(rows).map_err(|_| EngineError::Build {
        path: index.dir().to_path_buf(),
        detail: format!("{rows} rows do not fit this machine's address space"),
    })?;
    write_matrix(
        npy,
        ids,
        (row_count, dim),
        |row| index.row_vector(row as u64).map_err(std::io::Error::other),
        |row| {
            Ok(index
                .doc_id(row as u64)
                .map_err(std::io::Error::other)?
                .to_string())
        },
    )?;
    Ok(ExportReport {
        npy: npy.to_path_buf(),
        ids: ids.to_path_buf(),
        rows,
        dim,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes `rows` x `dim` vectors as a `.npy` (f32) and their ids, one per line, each file
/// replaced atomically; `vector(i)` and `id(i)` give row `i`.
pub(crate) fn write_matrix(
    npy: &Path,
    ids: &Path,
    (rows, dim): (usize, usize),
    vector: impl Fn(usize) -> std::io::Result<Vec<f32>>,
    id: impl Fn(usize) -> std::io::Result<String>,
) -> Result<()> {
    quarry_fsio::write_with(npy, |out| {
        out.write_all(&f32_header(rows, dim))?;
        for row in 0..rows {
            for value in vector(row)? {
                out.write_all(&value.to_le_bytes())?;
            }
        }
        Ok(())
    })
    .map_err(|e| EngineError::io(npy, e.source))?;
    quarry_fsio::write_with(ids, |out| {
        for row in 0..rows {
            writeln!(out, "{}", id(row)?)?;
        }
        Ok(())
    })
    .map_err(|e| EngineError::io(ids, e.source))
}

/// One matrix of vectors and the ids of its rows.
#[derive(Debug, Clone)]
pub struct VectorFiles {
    /// `.npy`, f32 or f16, rows x dim.
    pub npy: PathBuf,
    /// One id per line, as many as the matrix has rows.
    pub ids: PathBuf,
}

/// What `quarry index import` is asked to do.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub dir: PathBuf,
    pub docs: VectorFiles,
    pub queries: Option<VectorFiles>,
    pub store: ElementType,
    pub shard_rows: usize,
}

impl ImportRequest {
    pub fn new(dir: PathBuf, docs: VectorFiles) -> ImportRequest {
        ImportRequest {
            dir,
            docs,
            queries: None,
            store: ElementType::F32,
            shard_rows: DEFAULT_SHARD_ROWS,
        }
    }
}

/// What an import stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub dir: PathBuf,
    pub fingerprint: String,
    pub rows: u64,
    pub dim: usize,
    /// Rows found stored by an earlier, interrupted import of the same files.
    pub resumed_rows: u64,
    pub queries: Option<u64>,
    pub seconds: f64,
}

/// Stores the request's vectors as a dense index in `dir` (and its queries in
/// `dir/queries/`), resuming an interrupted import of the same files.
pub fn import_vectors(request: &ImportRequest) -> Result<ImportReport> {
    let started = Instant::now();
    let fingerprint = format!(
        "{IMPORTED_PREFIX}{}",
        &file_sha256(&request.docs.npy)?[..16]
    );
    let (rows, dim, resumed_rows) = import_matrix(
        &request.dir,
        &request.docs,
        &fingerprint,
        request.store,
        request.shard_rows,
        None,
    )?;
    let queries = match &request.queries {
        Some(files) => {
            let dir = request.dir.join(QUERY_CACHE_DIR);
            // Queries are compared with the documents: same width, kept exactly (f32).
            let (n, _, _) = import_matrix(
                &dir,
                files,
                &fingerprint,
                ElementType::F32,
                request.shard_rows,
                Some(dim),
            )?;
            Some(n)
        }
        None => None,
    };
    Ok(ImportReport {
        dir: request.dir.clone(),
        fingerprint,
        rows,
        dim,
        resumed_rows,
        queries,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes one matrix as an index in `dir`; returns (rows, dim, rows already stored).
fn import_matrix(
    dir: &Path,
    files: &VectorFiles,
    fingerprint: &str,
    store: ElementType,
    shard_rows: usize,
    want_dim: Option<usize>,
) -> Result<(u64, usize, u64)> {
    let matrix = NpyVectors::open(&files.npy)?;
    let ids = read_ids(&files.ids, matrix.rows)?;
    if let Some(want) = want_dim.filter(|&d| d != matrix.cols) {
        return Err(EngineError::Build {
            path: files.npy.clone(),
            detail: format!(
                "{}-dimensional vectors, but the documents are {want}-dimensional",
                matrix.cols
            ),
        });
    }
    let spec = IndexSpec {
        encoder_fingerprint: fingerprint.to_string(),
        corpus_checksum: file_sha256(&files.ids)?,
        dim: matrix.cols,
        element_type: store,
        shard_rows,
    };
    let mut writer = IndexWriter::create_or_resume(dir, spec)?;
    let done = writer.rows_done();
    if writer.is_complete() {
        return Ok((done, matrix.cols, done));
    }
    let start = usize::try_from(done).unwrap_or(usize::MAX).min(matrix.rows);
    // A shard's worth of rows at a time: bounded memory whatever the matrix size.
    let mut batch = vec![0f32; shard_rows.min(matrix.rows.max(1)) * matrix.cols];
    let mut row = start;
    while row < matrix.rows {
        let end = (row + shard_rows).min(matrix.rows);
        let flat = &mut batch[..(end - row) * matrix.cols];
        for (i, out) in flat.chunks_mut(matrix.cols).enumerate() {
            matrix.row_into(row + i, out);
        }
        writer.push_batch(&ids[row..end], flat)?;
        row = end;
    }
    writer.finish()?;
    Ok((matrix.rows as u64, matrix.cols, done))
}

/// The ids of a matrix's rows: one per line, none empty, none twice, exactly `rows` of
/// them. Errors name the file and line.
pub fn read_ids(path: &Path, rows: usize) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let bad = |line: usize, detail: String| EngineError::Build {
        path: PathBuf::from(format!("{}:{line}", path.display())),
        detail,
    };
    let mut ids = Vec::with_capacity(rows.min(1 << 24));
    let mut seen = std::collections::HashSet::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| bad(i + 1, format!("unreadable line: {e}")))?;
        let id = line.strip_suffix('\r').unwrap_or(&line);
        if id.is_empty() || id.trim() != id {
            return Err(bad(
                i + 1,
                format!("id {id:?} is empty or has surrounding spaces"),
            ));
        }
        if ids.len() == rows {
            return Err(bad(
                i + 1,
                format!("more ids than the {rows} rows of the vectors"),
            ));
        }
        if !seen.insert(id.to_string()) {
            return Err(bad(i + 1, format!("id {id:?} appears twice")));
        }
        ids.push(id.to_string());
    }
    if ids.len() != rows {
        return Err(EngineError::Build {
            path: path.to_path_buf(),
            detail: format!("{} ids for {rows} rows of vectors", ids.len()),
        });
    }
    Ok(ids)
}
