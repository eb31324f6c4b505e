//! TREC run files: `qid Q0 docid rank score tag`, one retrieved doc a line.
//!
//! A run is what a retriever produces and what [`crate::metrics`] scores.
//! As in trec_eval, the rank column is informational: metrics order hits by
//! score (see [`crate::metrics`]). Writes are atomic (temp file, fsync,
//! rename) so an interrupted `--run-out` never leaves half a run behind.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{EngineError, Result};
use crate::textio::{FirstSeen, LineReader};

/// One retrieved document.
#[derive(Debug, Clone, PartialEq)]
pub struct RunHit {
    pub doc_id: String,
    pub score: f64,
}

/// Hits from `(doc id, score)` pairs, in the given order: the rankings tests write.
#[cfg(test)]
pub(crate) fn hits(pairs: &[(&str, f64)]) -> Vec<RunHit> {
    pairs
        .iter()
        .map(|&(doc_id, score)| RunHit {
            doc_id: doc_id.into(),
            score,
        })
        .collect()
}

/// Retrieved documents per query, each list in the retriever's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    pub by_query: BTreeMap<String, Vec<RunHit>>,
}

const RUN_LINE: &str = "6 whitespace-separated fields `qid Q0 docid rank score tag`";

impl Run {
    pub fn num_hits(&self) -> usize {
        self.by_query.values().map(Vec::len).sum()
    }

    /// Reads a TREC run file (optionally `.gz`/`.zst`). A doc listed twice
    /// for one query is an error, as in trec_eval.
    pub fn read(path: &Path) -> Result<Run> {
        let mut reader = LineReader::open(path)?;
        let mut by_query: BTreeMap<String, Vec<RunHit>> = BTreeMap::new();
        let mut seen = FirstSeen::default();
        while let Some((line_number, line)) = reader.next_nonblank()? {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [query_id, _q0, doc_id, rank, score, _tag] = fields[..] else {
                return Err(EngineError::malformed(
                    path,
                    line_number,
                    format!("{RUN_LINE}, found {} fields", fields.len()),
                ));
            };
            if rank.parse::<i64>().is_err() {
                return Err(EngineError::malformed(
                    path,
                    line_number,
                    format!("an integer rank in field 4, found `{rank}`"),
                ));
            }
            let score: f64 = match score.parse::<f64>() {
                Ok(s) if s.is_finite() => s,
                _ => {
                    return Err(EngineError::malformed(
                        path,
                        line_number,
                        format!("a finite number as score in field 5, found `{score}`"),
                    ))
                }
            };
            let key = (query_id.to_string(), doc_id.to_string());
            seen.record(key, path, line_number, || {
                format!("query `{query_id}` retrieves doc `{doc_id}`")
            })?;
            by_query
                .entry(query_id.to_string())
                .or_default()
                .push(RunHit {
                    doc_id: doc_id.to_string(),
                    score,
                });
        }
        if by_query.is_empty() {
            return Err(crate::dataset::empty(path, "run lines"));
        }
        Ok(Run { by_query })
    }

    /// Writes the run atomically, hits in their stored order with ranks
    /// 1, 2, ...; see [`format_score`] for why the file orders exactly as the
    /// run in memory.
    pub fn write(&self, path: &Path, tag: &str) -> Result<()> {
        if tag.is_empty() || tag.contains(char::is_whitespace) {
            return Err(EngineError::DataCorruption {
                file: path.to_path_buf(),
                detail: format!("run tag `{tag}` must be one non-empty word"),
            });
        }
        for (query_id, hits) in &self.by_query {
            let bad = std::iter::once(query_id.as_str())
                .chain(hits.iter().map(|h| h.doc_id.as_str()))
                .find(|id| id.is_empty() || id.contains(char::is_whitespace));
            if let Some(id) = bad {
                return Err(EngineError::DataCorruption {
                    file: path.to_path_buf(),
                    detail: format!(
                        "id `{id}` cannot be written to a run file (empty or has whitespace)"
                    ),
                });
            }
        }
        quarry_fsio::write_with(path, |out| {
            for (query_id, hits) in &self.by_query {
                for (index, hit) in hits.iter().enumerate() {
                    writeln!(
                        out,
                        "{query_id} Q0 {} {} {} {tag}",
                        hit.doc_id,
                        index + 1,
                        format_score(hit.score)
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }
}

/// A score as a run file holds it: six decimals, as Pyserini writes them,
/// wherever six decimals read back to the very same score; otherwise the
/// shortest decimal that does. Retrievers score in f32, so an f32 score is
/// read back as f32 ("4.362700"; "0.83423245" where six decimals would
/// round a cosine), anything else as f64. Reading back exactly keeps distinct
/// values distinct and in order, and equal values equal, so trec_eval's
/// ranking of the written file equals the in-memory one: a fixed six
/// decimals alone would merge dense scores one f32 step apart into ties that
/// trec_eval then breaks by doc id.
pub fn format_score(score: f64) -> String {
    let narrow = score as f32;
    if f64::from(narrow) == score {
        six_decimals_or_exact(narrow)
    } else {
        six_decimals_or_exact(score)
    }
}

/// `value` to six decimals if that reads back as `value`, else its shortest
/// exact decimal.
fn six_decimals_or_exact<T>(value: T) -> String
where
    T: Copy + PartialEq + std::fmt::Display + std::str::FromStr,
{
    let six = format!("{value:.6}");
    if six.parse::<T>().ok() == Some(value) {
        six
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_keeps_ids_and_trec_eval_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.trec");
        let mut run = Run::default();
        // f32 scores one ulp apart, an f32 tie, and f64 scores.
        let a = 9.5898f32;
        let b = f32::from_bits(a.to_bits() + 1);
        run.by_query.insert(
            "q1".into(),
            hits(&[
                ("d1", f64::from(b)),
                ("d2", f64::from(a)),
                ("d3", f64::from(a)),
                ("d4", 0.1 + 0.2),
            ]),
        );
        run.by_query.insert("q2".into(), hits(&[("d1", -1.0)]));
        run.write(&path, "quarry-bm25").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("q1 Q0 d1 1 9.589801 quarry-bm25\nq1 Q0 d2 2 9.589800 quarry-bm25\n"),
            "{text}"
        );
        let back = Run::read(&path).unwrap();
        assert_eq!(back.by_query["q1"][3..], hits(&[("d4", 0.1 + 0.2)]));
        assert_eq!(back.by_query["q2"], run.by_query["q2"]);
        for (query, hits) in &run.by_query {
            let order = |hits: &[RunHit]| {
                let mut sorted = hits.to_vec();
                sorted.sort_by(crate::metrics::trec_eval_order);
                sorted.into_iter().map(|h| h.doc_id).collect::<Vec<_>>()
            };
            assert_eq!(order(hits), order(&back.by_query[query]), "{query}");
        }
        assert_eq!(back.by_query["q1"][1].score, back.by_query["q1"][2].score);
    }

    #[test]
    fn scores_have_six_decimals_unless_six_would_change_them() {
        assert_eq!(format_score(f64::from(4.3627f32)), "4.362700");
        assert_eq!(format_score(-1.0), "-1.000000");
        assert_eq!(format_score(0.25), "0.250000");
        // A cosine one f32 step above 0.8: six decimals would merge the two.
        let cosine = 0.8f32;
        let next = f32::from_bits(cosine.to_bits() + 1);
        assert_eq!(format!("{cosine:.6}"), format!("{next:.6}"));
        assert_eq!(format_score(f64::from(cosine)), "0.800000");
        assert_eq!(format_score(f64::from(next)), "0.8000001");
        // An f64 score (a fusion) keeps its f64 precision.
        assert_eq!(format_score(0.1 + 0.2).parse::<f64>(), Ok(0.1 + 0.2));
        assert_eq!(
            format_score(1.0 / 61.0 + 1.0 / 62.0).parse::<f64>(),
            Ok(1.0 / 61.0 + 1.0 / 62.0)
        );
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "q1 Q0 d1 1 2.0 tag\nq1 Q0 d2 2 2.0\n",
                "run.trec:2",
                "6 whitespace-separated",
            ),
            ("q1 Q0 d1 one 2.0 tag\n", "run.trec:1", "integer rank"),
            ("q1 Q0 d1 1 NaN tag\n", "run.trec:1", "finite number"),
            (
                "q1 Q0 d1 1 2.0 tag\n\nq1 Q0 d1 2 1.0 tag\n",
                "line 3",
                "first on line 1",
            ),
        ];
        for (content, place, what) in cases {
            let path = dir.path().join("run.trec");
            std::fs::write(&path, content).unwrap();
            let err = Run::read(&path).unwrap_err().to_string();
            assert!(err.contains(place) && err.contains(what), "{err}");
        }
    }
}
