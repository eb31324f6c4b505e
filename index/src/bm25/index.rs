//! The on-disk BM25 index: build once per corpus, reopen while current, search.
//!
//! `engine` hands [`Bm25Index::build`] the corpus documents and asks
//! [`Bm25Index::search`] / [`Bm25Index::search_batch`] for ranked doc ids. The
//! index is a tantivy index in one directory with three fields:
//!
//! * `contents`: title and text, analysed by Lucene's English chain
//!   ([`super::analyzer`]), postings with term frequencies only;
//! * `norm`: Lucene's one-byte length norm of `contents` (a fast field;
//!   tantivy's own field norms use a different encoding and are disabled);
//! * `id`: the document id (a fast field; its dictionary order is the byte
//!   order of the ids, which breaks score ties as Anserini does).
//!
//! plus `quarry-bm25.json`, the manifest that says which corpus (checksum),
//! analyzer and parameters the index was built for. Builds go to a temporary
//! sibling directory that replaces `dir` only once complete.
//!
//! Results reproduce Pyserini's `LuceneSearcher.search` with BM25 k1 = 0.9,
//! b = 0.4 on a BEIR "flat" index: same terms, same float scores, and ties
//! ordered by doc id ascending (Anserini sorts by score, then by the `id`
//! field). Dropping a query's own id from its hits is the caller's job.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tantivy::indexer::NoMergePolicy;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{TextAnalyzer, TokenStream};
use tantivy::{
    DocId, DocSet, Index, IndexReader, InvertedIndexReader, ReloadPolicy, Searcher,
    TantivyDocument, Term,
};

use super::analyzer::{count_terms, english_analyzer, ANALYZER_NAME};
use super::query::{LuceneBm25Query, LuceneBm25Scorer, SegmentNorms, TermCursor};
use super::similarity::{int_to_byte4, Bm25Similarity, DEFAULT_B, DEFAULT_K1};
use crate::error::{io_err, IndexError};
use crate::topk::{Ranked, TopK};

thread_local! {
    /// One analyzer per thread for queries (building one allocates).
    static QUERY_ANALYZER: std::cell::RefCell<TextAnalyzer> =
        std::cell::RefCell::new(english_analyzer());
}

/// Bumped whenever the on-disk layout or the analysis changes.
pub const FORMAT_VERSION: u32 = 1;
/// Identifies the analysis chain in the manifest.
pub const ANALYZER_ID: &str =
    "lucene-10.5 StandardTokenizer+EnglishPossessive+LowerCase+EnglishStop+PorterStem";
const MANIFEST_FILE: &str = "quarry-bm25.json";
const FIELD_ID: &str = "id";
const FIELD_CONTENTS: &str = "contents";
const FIELD_NORM: &str = "norm";
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

/// One ranked document.
#[derive(Debug, Clone, PartialEq)]
pub struct Bm25Hit {
    /// The document's id.
    pub doc_id: String,
    /// Lucene's BM25 score.
    pub score: f32,
}

/// Rewrites hit scores as Pyserini reports them: Anserini's
/// `ScoreTiesAdjusterReranker`, which Pyserini's `LuceneSearcher.search`
/// applies to every result list.
///
/// Each score is rounded to 4 decimals, and each hit whose rounded score is
/// within 1e-4 of the previous (already adjusted) one is lowered by `1e-6 * n`
/// for the n-th such hit in a row, so that trec_eval, which breaks score ties
/// by doc id descending, keeps Lucene's order (score, then doc id ascending).
/// Evaluations that must equal Pyserini's numbers need these scores; the
/// order of `hits` is unchanged. Pyserini adjusts the full list before a
/// query's own id is dropped.
///
/// The arithmetic is that of the class in anserini-2.3.0-fatjar.jar (read
/// from its bytecode): `(float) (Math.round((double) score * 1e4) / 1e4)`,
/// then float comparisons and subtraction.
pub fn adjust_score_ties_as_anserini(hits: &mut [Bm25Hit]) {
    let mut dup = 0u32;
    for i in 0..hits.len() {
        let scaled = f64::from(hits[i].score) * 1e4;
        // Java's Math.round(double): the nearest integer, ties toward +infinity.
        let floor = scaled.floor();
        let rounded = if scaled - floor >= 0.5 {
            floor + 1.0
        } else {
            floor
        };
        hits[i].score = (rounded / 1e4) as f32;
        if i == 0 || hits[i - 1].score - hits[i].score > 1e-4f32 {
            dup = 0;
        } else {
            dup += 1;
            hits[i].score -= 1e-6f32 * dup as f32;
        }
    }
}

/// What an index was built from and with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    corpus_checksum: String,
    analyzer: String,
    k1: f32,
    b: f32,
    tantivy: String,
    /// All documents given to the build.
    num_docs: u64,
    /// Documents with at least one indexed term (BM25's N).
    docs_with_terms: u64,
    /// Indexed terms over all documents.
    sum_total_term_freq: u64,
}

impl Manifest {
    fn is_current(&self, corpus_checksum: &str) -> bool {
        self.format_version == FORMAT_VERSION
            && self.corpus_checksum == corpus_checksum
            && self.analyzer == ANALYZER_ID
            && self.k1 == DEFAULT_K1
            && self.b == DEFAULT_B
    }
}

/// What search needs of the index's single segment, loaded at open.
struct SegmentData {
    inverted_index: Arc<InvertedIndexReader>,
    norms: Arc<[u8]>,
    ids: IdTable,
}

/// Doc ids of one segment, addressed by their dictionary ordinal.
struct IdTable {
    /// Ordinal (= rank in byte order) of each document's id.
    doc_ords: Vec<u32>,
    /// Concatenated ids in ordinal order.
    text: String,
    /// `text[ends[o - 1]..ends[o]]` is the id of ordinal `o`.
    ends: Vec<usize>,
}

impl IdTable {
    fn id(&self, ord: u32) -> &str {
        let ord = ord as usize;
        let start = if ord == 0 { 0 } else { self.ends[ord - 1] };
        &self.text[start..self.ends[ord]]
    }
}

/// A BM25 index opened for searching.
pub struct Bm25Index {
    dir: PathBuf,
    index: Index,
    _reader: IndexReader,
    searcher: Searcher,
    contents: Field,
    similarity: Arc<Bm25Similarity>,
    norms: Arc<SegmentNorms>,
    /// The single segment; `None` for an empty index.
    segment: Option<SegmentData>,
    manifest: Manifest,
}

impl std::fmt::Debug for Bm25Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25Index")
            .field("dir", &self.dir)
            .field("manifest", &self.manifest)
            .finish()
    }
}

fn tantivy_err(path: &Path) -> impl FnOnce(tantivy::TantivyError) -> IndexError + '_ {
    move |source| IndexError::Tantivy {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(file: &Path, detail: impl Into<String>) -> IndexError {
    IndexError::DataCorruption {
        file: file.to_path_buf(),
        detail: detail.into(),
    }
}

fn schema() -> Schema {
    let mut builder = Schema::builder();
    builder.add_text_field(FIELD_ID, TextOptions::default().set_fast("raw"));
    builder.add_text_field(
        FIELD_CONTENTS,
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER_NAME)
                .set_index_option(IndexRecordOption::WithFreqs)
                .set_fieldnorms(false),
        ),
    );
    builder.add_u64_field(FIELD_NORM, NumericOptions::default().set_fast());
    builder.build()
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

impl Bm25Index {
    /// Opens the index in `dir` if it exists and was built for this corpus
    /// checksum, format, analyzer and parameters; `Ok(None)` if it must be
    /// (re)built.
    pub fn open_if_current(
        dir: &Path,
        corpus_checksum: &str,
    ) -> Result<Option<Bm25Index>, IndexError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let bytes = match fs::read(&manifest_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&manifest_path)(e)),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(&manifest_path, format!("unreadable manifest: {e}")))?;
        if !manifest.is_current(corpus_checksum) {
            return Ok(None);
        }
        Bm25Index::open(dir, manifest).map(Some)
    }

    /// Builds the index of `docs` into `dir` (replacing what is there) and
    /// opens it. The build runs in a temporary sibling directory that takes
    /// `dir`'s place only once it is complete.
    pub fn build<'a>(
        dir: &Path,
        corpus_checksum: &str,
        docs: impl Iterator<Item = Bm25Doc<'a>>,
    ) -> Result<Bm25Index, IndexError> {
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
        quarry_fsio::write(
            &staging.path().join(MANIFEST_FILE),
            &serde_json::to_vec_pretty(&manifest).expect("manifest serializes"),
        )?;

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
        Bm25Index::open(dir, manifest)
    }

    fn open(dir: &Path, manifest: Manifest) -> Result<Bm25Index, IndexError> {
        let index = Index::open_in_dir(dir).map_err(tantivy_err(dir))?;
        index
            .tokenizers()
            .register(ANALYZER_NAME, english_analyzer());
        let schema = index.schema();
        let field = |name: &str| {
            schema
                .get_field(name)
                .map_err(|_| corrupt(dir, format!("index has no field {name:?}")))
        };
        let contents = field(FIELD_CONTENTS)?;
        field(FIELD_ID)?;
        field(FIELD_NORM)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_err(dir))?;
        let searcher = reader.searcher();
        let segments = searcher.segment_readers();
        if segments.len() > 1 {
            return Err(corrupt(
                dir,
                format!("expected one segment, found {}", segments.len()),
            ));
        }
        let mut norms = SegmentNorms::new();
        let mut segment_data = None;
        let mut docs_with_terms = 0u64;
        let mut sum_total_term_freq = 0u64;
        let mut num_docs = 0u64;
        if let Some(segment) = segments.first() {
            let max_doc = segment.max_doc();
            num_docs = u64::from(max_doc);
            let fast = segment.fast_fields();
            let norm_column = fast.u64(FIELD_NORM).map_err(tantivy_err(dir))?;
            let mut segment_norms = Vec::with_capacity(max_doc as usize);
            for doc in 0..max_doc {
                let norm = norm_column
                    .first(doc)
                    .filter(|&n| n <= 255)
                    .ok_or_else(|| corrupt(dir, format!("document #{doc} has no valid norm")))?;
                segment_norms.push(norm as u8);
            }
            docs_with_terms = segment_norms.iter().filter(|&&n| n != 0).count() as u64;
            let segment_norms: Arc<[u8]> = Arc::from(segment_norms);
            norms.insert(segment.segment_id(), Arc::clone(&segment_norms));

            let id_column = fast
                .str(FIELD_ID)
                .map_err(tantivy_err(dir))?
                .ok_or_else(|| corrupt(dir, "no id fast field"))?;
            let mut text = String::new();
            let mut ends = Vec::with_capacity(id_column.num_terms());
            let mut stream = id_column
                .dictionary()
                .stream()
                .map_err(|e| io_err(dir)(e))?;
            while stream.advance() {
                let id = std::str::from_utf8(stream.key())
                    .map_err(|_| corrupt(dir, "document id is not UTF-8"))?;
                text.push_str(id);
                ends.push(text.len());
            }
            let mut doc_ords = Vec::with_capacity(max_doc as usize);
            for doc in 0..max_doc {
                let ord = id_column
                    .ords()
                    .first(doc)
                    .filter(|&o| (o as usize) < ends.len())
                    .ok_or_else(|| corrupt(dir, format!("document #{doc} has no id")))?;
                doc_ords.push(ord as u32);
            }
            let inverted_index = segment.inverted_index(contents).map_err(tantivy_err(dir))?;
            sum_total_term_freq = inverted_index.total_num_tokens();
            segment_data = Some(SegmentData {
                inverted_index,
                norms: segment_norms,
                ids: IdTable {
                    doc_ords,
                    text,
                    ends,
                },
            });
        }
        let found = (num_docs, docs_with_terms, sum_total_term_freq);
        let expected = (
            manifest.num_docs,
            manifest.docs_with_terms,
            manifest.sum_total_term_freq,
        );
        if found != expected {
            return Err(corrupt(
                dir,
                format!(
                    "index holds (docs, docs with terms, terms) = {found:?}, manifest says {expected:?}"
                ),
            ));
        }
        let similarity = Arc::new(Bm25Similarity::new(
            manifest.k1,
            manifest.b,
            docs_with_terms,
            sum_total_term_freq,
        ));
        Ok(Bm25Index {
            dir: dir.to_path_buf(),
            index,
            _reader: reader,
            searcher,
            contents,
            similarity,
            norms: Arc::new(norms),
            segment: segment_data,
            manifest,
        })
    }

    /// Number of documents in the index.
    pub fn num_docs(&self) -> usize {
        self.manifest.num_docs as usize
    }

    /// The directory the index lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// BM25 parameters and collection statistics.
    pub fn similarity(&self) -> &Bm25Similarity {
        &self.similarity
    }

    /// A tantivy searcher over the index (e.g. to run a [`LuceneBm25Query`]).
    pub fn searcher(&self) -> &Searcher {
        &self.searcher
    }

    /// The underlying tantivy index (with the analyzer registered).
    pub fn tantivy_index(&self) -> &Index {
        &self.index
    }

    /// The analysed terms of `text`, as queries and documents are indexed.
    pub fn analyze(&self, text: &str) -> Vec<String> {
        super::analyzer::analyze(&mut english_analyzer(), text)
    }

    /// The tantivy query for an already analysed bag of terms.
    pub fn query_for_terms<S: AsRef<str>>(&self, terms: &[S]) -> LuceneBm25Query {
        LuceneBm25Query::new(
            self.contents,
            terms,
            Arc::clone(&self.similarity),
            Arc::clone(&self.norms),
        )
    }

    /// The `k` best documents for `query`: score descending, then doc id
    /// ascending (byte order).
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Bm25Hit>, IndexError> {
        QUERY_ANALYZER.with(|analyzer| self.search_with(&mut analyzer.borrow_mut(), query, k))
    }

    /// [`Bm25Index::search`] for many queries, in parallel.
    pub fn search_batch(
        &self,
        queries: &[&str],
        k: usize,
    ) -> Result<Vec<Vec<Bm25Hit>>, IndexError> {
        queries
            .par_iter()
            .map(|query| self.search(query, k))
            .collect()
    }

    fn search_with(
        &self,
        analyzer: &mut TextAnalyzer,
        query: &str,
        k: usize,
    ) -> Result<Vec<Bm25Hit>, IndexError> {
        let Some(segment) = &self.segment else {
            return Ok(Vec::new());
        };
        if k == 0 {
            return Ok(Vec::new());
        }
        // Anserini's bag of words: one clause per distinct term, boosted by its count.
        let mut terms: Vec<(String, f32)> = Vec::new();
        let mut stream = analyzer.token_stream(query);
        while stream.advance() {
            let text = &stream.token().text;
            match terms.iter_mut().find(|(t, _)| t == text) {
                Some((_, count)) => *count += 1.0,
                None => terms.push((text.clone(), 1.0)),
            }
        }
        // With a single segment its document frequencies are the index's, so
        // one dictionary lookup per term gives both idf and postings.
        let io = |e| io_err(&self.dir)(e);
        let mut cursors = Vec::with_capacity(terms.len());
        for (text, boost) in &terms {
            let term = Term::from_field_text(self.contents, text);
            if let Some(info) = segment.inverted_index.get_term_info(&term).map_err(io)? {
                let postings = segment
                    .inverted_index
                    .read_postings_from_terminfo(&info, IndexRecordOption::WithFreqs)
                    .map_err(io)?;
                let weight = self
                    .similarity
                    .term_weight(*boost, u64::from(info.doc_freq));
                cursors.push(TermCursor::new(postings, weight));
            }
        }
        if cursors.is_empty() {
            return Ok(Vec::new());
        }
        let mut scorer = LuceneBm25Scorer::new(
            cursors,
            Arc::clone(&segment.norms),
            Arc::clone(&self.similarity),
        );
        let ids = &segment.ids;
        let mut top = TopK::new(k);
        let mut doc = scorer.doc();
        while doc != tantivy::TERMINATED {
            let score = tantivy::query::Scorer::score(&mut scorer);
            top.push(Candidate {
                score,
                id_ord: ids.doc_ords[doc as usize],
                doc,
            });
            doc = scorer.advance();
        }
        Ok(top
            .into_sorted()
            .into_iter()
            .map(|c| Bm25Hit {
                doc_id: ids.id(c.id_ord).to_string(),
                score: c.score,
            })
            .collect())
    }
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

/// A scored document of the one segment, as Lucene ranks it.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    /// Dictionary ordinal of the document's id (= its rank in byte order).
    id_ord: u32,
    doc: DocId,
}

impl Ranked for Candidate {
    #[inline]
    fn score(&self) -> f32 {
        self.score
    }

    /// Higher score, then smaller id (Anserini's tie order), then smaller doc number.
    #[inline]
    fn rank_cmp(&self, other: &Candidate) -> std::cmp::Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.id_ord.cmp(&other.id_ord))
            .then(self.doc.cmp(&other.doc))
    }
}
