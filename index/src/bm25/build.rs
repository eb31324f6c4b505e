//! Building a BM25 index: documents analysed in parallel, indexed by tantivy
//! into one segment, in a staging folder that replaces the target folder
//! only once the build is complete.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tantivy::indexer::NoMergePolicy;
use tantivy::schema::Field;
use tantivy::{Index, TantivyDocument};

use super::analyzer::{count_terms, english_analyzer, ANALYZER_NAME};
use super::layout::{
    schema, Manifest, ANALYZER_ID, FIELD_CONTENTS, FIELD_ID, FIELD_NORM, FORMAT_VERSION,
};
use super::similarity::{int_to_byte4, DEFAULT_B, DEFAULT_K1};
use crate::error::{io_err, tantivy_err, IndexError};

/// Documents analysed per parallel batch during a build.
const BUILD_BATCH: usize = 512;
/// Corpora at least this large are indexed by several tantivy writer threads.
const LARGE_CORPUS_DOCS: usize = 200_000;
/// tantivy indexing memory per writer thread.
const WRITER_MEMORY_PER_THREAD: usize = 128 << 20;

/// A corpus document: indexed as one field, `title` then `text`.
#[derive(Debug, Clone, Copy)]
pub struct Bm25Doc<'a> {
    /// Document id, returned in hits.
    pub id: &'a str,
    /// Title (may be empty).
    pub title: &'a str,
    /// Body text.
    pub text: &'a str,
}

/// Builds the index of `docs` into `dir` (replacing what is there) and
/// returns its manifest. The build runs in a temporary sibling directory
/// that takes `dir`'s place only once it is complete.
pub(super) fn build_in_place<'a>(
    dir: &Path,
    corpus_checksum: &str,
    docs: impl Iterator<Item = Bm25Doc<'a>>,
) -> Result<Manifest, IndexError> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bm25".to_string());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.building-"))
        .tempdir_in(&parent)
        .map_err(io_err(&parent))?;
    let manifest = build_into(staging.path(), corpus_checksum, docs)?;
    // quarry_fsio fsyncs the staging folder after the rename.
    manifest.store(staging.path())?;

    // Swap the finished build into place.
    let staged = staging.keep();
    if dir.exists() {
        let retired = parent.join(format!(".{name}.old-{}", std::process::id()));
        if retired.exists() {
            fs::remove_dir_all(&retired).map_err(io_err(&retired))?;
        }
        fs::rename(dir, &retired).map_err(io_err(dir))?;
        if let Err(e) = fs::rename(&staged, dir) {
            let _ = fs::rename(&retired, dir);
            let _ = fs::remove_dir_all(&staged);
            return Err(io_err(dir)(e));
        }
        fs::remove_dir_all(&retired).map_err(io_err(&retired))?;
    } else if let Err(e) = fs::rename(&staged, dir) {
        let _ = fs::remove_dir_all(&staged);
        return Err(io_err(dir)(e));
    }
    quarry_fsio::sync_dir(&parent)?;
    Ok(manifest)
}

/// One document for tantivy (which runs [`english_analyzer`] on `contents`
/// itself) and its number of terms, counted here for Lucene's norm.
fn prepare_doc(fields: (Field, Field, Field), doc: &Bm25Doc<'_>) -> (TantivyDocument, u64) {
    let (id, contents, norm) = fields;
    // Pyserini's BEIR "flat" contents: title + "\n" + text. A line break always
    // ends a token, so the terms are those of the two parts.
    let num_terms = (count_terms(doc.title) + count_terms(doc.text)) as u64;
    let mut text = String::with_capacity(doc.title.len() + 1 + doc.text.len());
    text.push_str(doc.title);
    text.push('\n');
    text.push_str(doc.text);
    let mut tantivy_doc = TantivyDocument::default();
    tantivy_doc.add_text(id, doc.id);
    tantivy_doc.add_text(contents, text);
    tantivy_doc.add_u64(
        norm,
        u64::from(int_to_byte4(num_terms.min(u64::from(u32::MAX)) as u32)),
    );
    (tantivy_doc, num_terms)
}

/// Builds the tantivy index of `docs` in the empty directory `dir`.
fn build_into<'a>(
    dir: &Path,
    corpus_checksum: &str,
    mut docs: impl Iterator<Item = Bm25Doc<'a>>,
) -> Result<Manifest, IndexError> {
    let schema = schema();
    let fields = (
        schema.get_field(FIELD_ID).expect("schema has id"),
        schema
            .get_field(FIELD_CONTENTS)
            .expect("schema has contents"),
        schema.get_field(FIELD_NORM).expect("schema has norm"),
    );
    let index = Index::create_in_dir(dir, schema).map_err(tantivy_err(dir))?;
    index
        .tokenizers()
        .register(ANALYZER_NAME, english_analyzer());
    // Each tantivy writer thread analyses and indexes its own segment; the
    // segments are merged at the end, which only pays off for larger corpora.
    // Corpus size is judged by reading ahead (iterators, e.g. progress bars,
    // often do not report a size hint).
    let head: Vec<Bm25Doc<'a>> = docs.by_ref().take(LARGE_CORPUS_DOCS).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if head.len() < LARGE_CORPUS_DOCS {
        1
    } else {
        cores.clamp(1, 8)
    };
    let mut docs = head.into_iter().chain(docs);
    let mut writer = index
        .writer_with_num_threads::<TantivyDocument>(threads, threads * WRITER_MEMORY_PER_THREAD)
        .map_err(tantivy_err(dir))?;
    writer.set_merge_policy(Box::new(NoMergePolicy));

    let mut num_docs = 0u64;
    let mut docs_with_terms = 0u64;
    let mut sum_total_term_freq = 0u64;
    let mut batch: Vec<Bm25Doc<'a>> = Vec::with_capacity(BUILD_BATCH);
    loop {
        batch.clear();
        batch.extend(docs.by_ref().take(BUILD_BATCH));
        if batch.is_empty() {
            break;
        }
        let prepared: Vec<(TantivyDocument, u64)> = batch
            .par_iter()
            .map(|doc| prepare_doc(fields, doc))
            .collect();
        for (doc, num_terms) in prepared {
            num_docs += 1;
            docs_with_terms += u64::from(num_terms > 0);
            sum_total_term_freq += num_terms;
            writer.add_document(doc).map_err(tantivy_err(dir))?;
        }
    }
    writer.commit().map_err(tantivy_err(dir))?;
    let segments = index.searchable_segment_ids().map_err(tantivy_err(dir))?;
    if segments.len() > 1 {
        writer.merge(&segments).wait().map_err(tantivy_err(dir))?;
    }
    writer.wait_merging_threads().map_err(tantivy_err(dir))?;
    Ok(Manifest {
        format_version: FORMAT_VERSION,
        corpus_checksum: corpus_checksum.to_string(),
        analyzer: ANALYZER_ID.to_string(),
        k1: DEFAULT_K1,
        b: DEFAULT_B,
        tantivy: tantivy::version_string().to_string(),
        num_docs,
        docs_with_terms,
        sum_total_term_freq,
    })
}
