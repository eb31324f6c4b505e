//! What a BM25 search returns, and the score adjustment Pyserini applies to
//! it before it is written as a run.

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
