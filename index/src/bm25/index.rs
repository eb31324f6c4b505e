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
//! analyzer and parameters the index was built for ([`super::layout`]).
//! Builds ([`super::build`]) go to a temporary sibling directory that
//! replaces `dir` only once complete.
//!
//! Results reproduce Pyserini's `LuceneSearcher.search` with BM25 k1 = 0.9,
//! b = 0.4 on a BEIR "flat" index: same terms, same float scores, and ties
//! ordered by doc id ascending (Anserini sorts by score, then by the `id`
//! field). Dropping a query's own id from its hits is the caller's job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::{TextAnalyzer, TokenStream};
use tantivy::{
    DocId, DocSet, Index, IndexReader, InvertedIndexReader, ReloadPolicy, Searcher, Term,
};

use super::analyzer::{english_analyzer, ANALYZER_NAME};
use super::build::build_in_place;
use super::layout::{Manifest, FIELD_CONTENTS, FIELD_ID, FIELD_NORM};
use super::query::{LuceneBm25Query, LuceneBm25Scorer, SegmentNorms, TermCursor};
use super::similarity::Bm25Similarity;
use crate::dense::verified::VerifiedSet;
use crate::error::{corrupt, io_err, tantivy_err, IndexError};
use crate::topk::{Ranked, TopK};

// Paths from before the split of this module.
pub use super::build::Bm25Doc;
pub use super::hits::{adjust_score_ties_as_anserini, Bm25Hit};
pub use super::layout::{ANALYZER_ID, FORMAT_VERSION};

thread_local! {
    /// One analyzer per thread for queries (building one allocates).
    static QUERY_ANALYZER: std::cell::RefCell<TextAnalyzer> =
        std::cell::RefCell::new(english_analyzer());
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

/// What the verification stamps of tantivy's files record as their checksum:
/// the checksums themselves live in each file's own footer.
const TANTIVY_FOOTER: &str = "tantivy-footer";

/// Every segment file's footer checksum is checked once, on the first open
/// after the file was written (or changed): tantivy does not check them when
/// it opens an index, and a flipped byte in a postings list would change
/// scores silently. Later opens find the files' stamps in `verified.json`
/// (size, modification time, inode; the dense index's cache) and skip the
/// read. A mismatch is an error naming the file.
fn verify_segment_files(dir: &Path, index: &Index) -> Result<(), IndexError> {
    let mut files: Vec<String> = index
        .directory()
        .list_managed_files()
        .into_iter()
        .filter(|file| dir.join(file).is_file())
        .map(|file| file.to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut verified = VerifiedSet::load(dir);
    if files
        .iter()
        .all(|file| verified.is_verified(dir, file, TANTIVY_FOOTER))
    {
        return Ok(());
    }
    let damaged = index.validate_checksum().map_err(tantivy_err(dir))?;
    if let Some(file) = damaged.iter().min() {
        return Err(corrupt(
            &dir.join(file),
            "checksum mismatch: the file changed after quarry built the index; delete the \
             index folder and quarry builds it again",
        ));
    }
    for file in &files {
        verified.mark(dir, file, TANTIVY_FOOTER);
    }
    // A cache: an index on read-only storage is checked at every open instead.
    let _ = verified.store(dir);
    Ok(())
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

impl Bm25Index {
    /// Opens the index in `dir` if it exists and was built for this corpus
    /// checksum, format, analyzer and parameters; `Ok(None)` if it must be
    /// (re)built.
    pub fn open_if_current(
        dir: &Path,
        corpus_checksum: &str,
    ) -> Result<Option<Bm25Index>, IndexError> {
        match Manifest::load(dir)? {
            Some(manifest) if manifest.is_current(corpus_checksum) => {
                Bm25Index::open(dir, manifest).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Builds the index of `docs` into `dir` (replacing what is there) and
    /// opens it. The build runs in a temporary sibling directory that takes
    /// `dir`'s place only once it is complete.
    pub fn build<'a>(
        dir: &Path,
        corpus_checksum: &str,
        docs: impl Iterator<Item = Bm25Doc<'a>>,
    ) -> Result<Bm25Index, IndexError> {
        let manifest = build_in_place(dir, corpus_checksum, docs)?;
        Bm25Index::open(dir, manifest)
    }

    fn open(dir: &Path, manifest: Manifest) -> Result<Bm25Index, IndexError> {
        let index = Index::open_in_dir(dir).map_err(tantivy_err(dir))?;
        verify_segment_files(dir, &index)?;
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
