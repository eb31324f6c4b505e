//! A bag-of-words BM25 query scored as Lucene scores it, on tantivy postings.
//!
//! [`super::index::Bm25Index`] turns a query string into a
//! [`LuceneBm25Query`]: what Anserini's `BagOfWordsQueryGenerator` builds, a
//! disjunction of one clause per distinct analysed term, boosted by how often
//! the term occurs in the query. tantivy provides the term dictionary and the
//! postings (document ids and term frequencies); the scoring is Lucene's
//! ([`Bm25Similarity`]) with Lucene's per-document norm byte, which the index
//! keeps in a fast field because tantivy's own field norms are encoded
//! differently.
//!
//! The scorer walks the postings document at a time and sums the clause
//! scores in double before rounding to float, as Lucene's disjunction scorers
//! do.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tantivy::index::SegmentId;
use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, SegmentReader, TantivyError, Term, TERMINATED};

use super::similarity::Bm25Similarity;

/// Lucene's norm byte of every document, per segment of one index.
pub type SegmentNorms = HashMap<SegmentId, Arc<[u8]>>;

/// One clause per distinct term; `boost` is the term's count in the query.
#[derive(Clone)]
pub struct LuceneBm25Query {
    field: Field,
    terms: Vec<(Term, f32)>,
    similarity: Arc<Bm25Similarity>,
    norms: Arc<SegmentNorms>,
}

impl fmt::Debug for LuceneBm25Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LuceneBm25Query")
            .field("terms", &self.terms)
            .field("k1", &self.similarity.k1())
            .field("b", &self.similarity.b())
            .finish()
    }
}

impl LuceneBm25Query {
    /// A query over `field` for the analysed query `terms` (duplicates allowed:
    /// they become one clause with a boost of their count, as in Anserini).
    pub fn new<S: AsRef<str>>(
        field: Field,
        terms: &[S],
        similarity: Arc<Bm25Similarity>,
        norms: Arc<SegmentNorms>,
    ) -> LuceneBm25Query {
        let mut counted: Vec<(Term, f32)> = Vec::new();
        for term in terms {
            let term = Term::from_field_text(field, term.as_ref());
            match counted.iter_mut().find(|(t, _)| *t == term) {
                Some((_, count)) => *count += 1.0,
                None => counted.push((term, 1.0)),
            }
        }
        LuceneBm25Query {
            field,
            terms: counted,
            similarity,
            norms,
        }
    }

    /// The distinct terms and their boosts.
    pub fn terms(&self) -> &[(Term, f32)] {
        &self.terms
    }

    /// The weight for a searcher's document frequencies (summed over segments).
    pub fn bm25_weight(&self, searcher: &tantivy::Searcher) -> tantivy::Result<LuceneBm25Weight> {
        let mut clauses = Vec::with_capacity(self.terms.len());
        for (term, boost) in &self.terms {
            let doc_freq = searcher.doc_freq(term)?;
            if doc_freq > 0 {
                clauses.push(Clause {
                    term: term.clone(),
                    boost: *boost,
                    idf: self.similarity.idf(doc_freq),
                });
            }
        }
        Ok(LuceneBm25Weight {
            field: self.field,
            clauses,
            similarity: Arc::clone(&self.similarity),
            norms: Arc::clone(&self.norms),
        })
    }
}

impl Query for LuceneBm25Query {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        match enable_scoring.searcher() {
            Some(searcher) => Ok(Box::new(self.bm25_weight(searcher)?)),
            None => Err(TantivyError::InvalidArgument(
                "LuceneBm25Query needs a searcher for document frequencies".to_string(),
            )),
        }
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for (term, _) in &self.terms {
            visitor(term, false);
        }
    }
}

#[derive(Clone, Debug)]
struct Clause {
    term: Term,
    boost: f32,
    idf: f32,
}

/// [`LuceneBm25Query`] bound to the document frequencies of one searcher.
pub struct LuceneBm25Weight {
    field: Field,
    clauses: Vec<Clause>,
    similarity: Arc<Bm25Similarity>,
    norms: Arc<SegmentNorms>,
}

impl LuceneBm25Weight {
    /// The scorer of one segment, as its concrete type.
    pub fn bm25_scorer(
        &self,
        reader: &SegmentReader,
        boost: Score,
    ) -> tantivy::Result<LuceneBm25Scorer> {
        let norms = self.norms.get(&reader.segment_id()).ok_or_else(|| {
            TantivyError::InvalidArgument(format!(
                "segment {} is not part of the BM25 index this query was made for",
                reader.segment_id().short_uuid_string()
            ))
        })?;
        let inverted_index = reader.inverted_index(self.field)?;
        let mut cursors = Vec::with_capacity(self.clauses.len());
        for clause in &self.clauses {
            if let Some(postings) =
                inverted_index.read_postings(&clause.term, IndexRecordOption::WithFreqs)?
            {
                // Lucene: BoostQuery boosts multiply, then BM25's weight = boost * idf.
                let weight = (boost * clause.boost) * clause.idf;
                cursors.push(TermCursor::new(postings, weight));
            }
        }
        Ok(LuceneBm25Scorer::new(
            cursors,
            Arc::clone(norms),
            Arc::clone(&self.similarity),
        ))
    }
}

impl Weight for LuceneBm25Weight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(self.bm25_scorer(reader, boost)?))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.bm25_scorer(reader, 1.0)?;
        if scorer.seek(doc) != doc {
            return Err(TantivyError::InvalidArgument(format!(
                "document #{doc} does not match the query"
            )));
        }
        let norm = scorer.norms[doc as usize];
        let mut explanation =
            Explanation::new("sum of (in double, cast to float):", scorer.score());
        for (cursor, clause) in scorer.cursors.iter().zip(&self.clauses) {
            if cursor.postings.doc() != doc {
                continue;
            }
            let freq = cursor.postings.term_freq();
            let mut term = Explanation::new_with_string(
                format!(
                    "weight({:?}) = boost * idf * freq / (freq + k1 * (1 - b + b * dl / avgdl))",
                    clause.term.value().as_str().unwrap_or("?")
                ),
                self.similarity.score(cursor.weight, freq, norm),
            );
            term.add_const("boost", clause.boost);
            term.add_const("idf", clause.idf);
            term.add_const("freq", freq as Score);
            term.add_const("k1", self.similarity.k1());
            term.add_const("b", self.similarity.b());
            term.add_const(
                "dl (decoded norm)",
                super::similarity::byte4_to_int(norm) as Score,
            );
            term.add_const("avgdl", self.similarity.avgdl());
            explanation.add_detail(term);
        }
        Ok(explanation)
    }
}

/// Postings of one query term and its constant `boost * idf`.
pub struct TermCursor {
    postings: SegmentPostings,
    weight: f32,
}

impl TermCursor {
    /// A term's postings (read with frequencies) and its `boost * idf`.
    pub fn new(postings: SegmentPostings, weight: f32) -> TermCursor {
        TermCursor { postings, weight }
    }
}

/// Document-at-a-time disjunction of the query's terms with Lucene's BM25.
pub struct LuceneBm25Scorer {
    cursors: Vec<TermCursor>,
    norms: Arc<[u8]>,
    similarity: Arc<Bm25Similarity>,
    doc: DocId,
}

impl LuceneBm25Scorer {
    /// The disjunction of `cursors`, with each document's Lucene norm byte in `norms`.
    pub fn new(
        cursors: Vec<TermCursor>,
        norms: Arc<[u8]>,
        similarity: Arc<Bm25Similarity>,
    ) -> LuceneBm25Scorer {
        let doc = cursors
            .iter()
            .map(|c| c.postings.doc())
            .min()
            .unwrap_or(TERMINATED);
        LuceneBm25Scorer {
            cursors,
            norms,
            similarity,
            doc,
        }
    }

    fn min_doc(&self) -> DocId {
        self.cursors
            .iter()
            .map(|c| c.postings.doc())
            .min()
            .unwrap_or(TERMINATED)
    }
}

impl DocSet for LuceneBm25Scorer {
    fn advance(&mut self) -> DocId {
        if self.doc == TERMINATED {
            return TERMINATED;
        }
        for cursor in &mut self.cursors {
            if cursor.postings.doc() == self.doc {
                cursor.postings.advance();
            }
        }
        self.doc = self.min_doc();
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc >= target {
            return self.doc;
        }
        for cursor in &mut self.cursors {
            if cursor.postings.doc() < target {
                cursor.postings.seek(target);
            }
        }
        self.doc = self.min_doc();
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.cursors
            .iter()
            .map(|c| c.postings.size_hint())
            .max()
            .unwrap_or(0)
    }
}

impl Scorer for LuceneBm25Scorer {
    #[inline]
    fn score(&mut self) -> Score {
        let norm = self.norms[self.doc as usize];
        let mut sum = 0f64;
        for cursor in &self.cursors {
            if cursor.postings.doc() == self.doc {
                sum += f64::from(self.similarity.score(
                    cursor.weight,
                    cursor.postings.term_freq(),
                    norm,
                ));
            }
        }
        sum as f32
    }
}
