//! Hybrid fusion: combines two rankings of the same query (say BM25 and a
//! dense retriever) into one. Sits after the retrievers and before
//! [`crate::metrics`]: input and output are per-query hit lists.
//!
//! Two methods, both as the literature defines them and as `ranx` (the
//! Python fusion library) computes them:
//!
//! - [`Fusion::Rrf`]: reciprocal rank fusion (Cormack, Clarke & Büttcher,
//!   SIGIR 2009): `score(d) = Σ_r 1 / (k + rank_r(d))`, ranks starting at 1,
//!   `k = 60` by default; a doc absent from a ranking gets nothing from it.
//! - [`Fusion::Interpolation`]: min-max normalise each ranking's scores per
//!   query to [0, 1], then `alpha · first + (1 − alpha) · second`; a doc
//!   absent from a ranking contributes 0 from it. A ranking whose scores are
//!   all equal normalises to 0 (as ranx's `min-max` does), so it cannot
//!   outweigh the other one.
//!
//! Ties in the fused score are broken by doc id (ascending), so the output
//! never depends on hash order or on the order of the inputs' ties.

use std::collections::HashMap;

use crate::run::RunHit;

/// The `k` of reciprocal rank fusion that Cormack et al. found robust.
pub const DEFAULT_RRF_K: f64 = 60.0;

/// How two rankings are fused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion with this `k` (> 0).
    Rrf { k: f64 },
    /// Min-max normalised scores, `alpha` weight on the first ranking (in [0, 1]).
    Interpolation { alpha: f64 },
}

impl Fusion {
    /// Fuses one query's two rankings and keeps the top `depth` hits.
    ///
    /// Each input is a ranking: best first (its order is what RRF reads; it
    /// is not re-sorted). A doc id repeated within one ranking counts at its
    /// first (best) position only.
    pub fn fuse(&self, first: &[RunHit], second: &[RunHit], depth: usize) -> Vec<RunHit> {
        let mut fused: HashMap<&str, f64> = HashMap::new();
        match *self {
            Fusion::Rrf { k } => {
                for ranking in [first, second] {
                    for (position, doc_id) in first_occurrences(ranking).enumerate() {
                        let rank = position as f64 + 1.0;
                        *fused.entry(doc_id).or_insert(0.0) += 1.0 / (k + rank);
                    }
                }
            }
            Fusion::Interpolation { alpha } => {
                for (ranking, weight) in [(first, alpha), (second, 1.0 - alpha)] {
                    let normalised = min_max(ranking);
                    for (doc_id, score) in normalised {
                        *fused.entry(doc_id).or_insert(0.0) += weight * score;
                    }
                }
            }
        }
        let mut hits: Vec<RunHit> = fused
            .into_iter()
            .map(|(doc_id, score)| RunHit {
                doc_id: doc_id.to_string(),
                score,
            })
            .collect();
        sort_hits(&mut hits);
        hits.truncate(depth);
        hits
    }
}

impl std::fmt::Display for Fusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fusion::Rrf { k } => write!(f, "rrf(k={k})"),
            Fusion::Interpolation { alpha } => write!(f, "interp(alpha={alpha})"),
        }
    }
}

/// Best first; equal scores by doc id ascending (deterministic).
pub fn sort_hits(hits: &mut [RunHit]) {
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.doc_id.cmp(&b.doc_id))
    });
}

/// Doc ids of a ranking in order, each at its first position only.
fn first_occurrences(ranking: &[RunHit]) -> impl Iterator<Item = &str> {
    let mut seen = std::collections::HashSet::new();
    ranking
        .iter()
        .map(|hit| hit.doc_id.as_str())
        .filter(move |id| seen.insert(*id))
}

/// Min-max normalised scores of one ranking (first occurrence of each doc).
/// All-equal scores (including a single hit) normalise to 0, as in ranx.
fn min_max(ranking: &[RunHit]) -> Vec<(&str, f64)> {
    let mut seen = std::collections::HashSet::new();
    let hits: Vec<(&str, f64)> = ranking
        .iter()
        .filter(|hit| seen.insert(hit.doc_id.as_str()))
        .map(|hit| (hit.doc_id.as_str(), hit.score))
        .collect();
    let min = hits.iter().map(|h| h.1).fold(f64::INFINITY, f64::min);
    let max = hits.iter().map(|h| h.1).fold(f64::NEG_INFINITY, f64::max);
    let range = max - min;
    hits.into_iter()
        .map(|(id, score)| {
            let normalised = if range > 0.0 {
                (score - min) / range
            } else {
                0.0
            };
            (id, normalised)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::hits as ranking;

    fn ids(hits: &[RunHit]) -> Vec<&str> {
        hits.iter().map(|h| h.doc_id.as_str()).collect()
    }

    #[test]
    fn rrf_matches_the_paper_definition_by_hand() {
        // first:  a(1) b(2) c(3); second: c(1) a(2) d(3); k = 60.
        // a: 1/61 + 1/62; c: 1/63 + 1/61; b: 1/62; d: 1/63.
        let first = ranking(&[("a", 9.0), ("b", 5.0), ("c", 1.0)]);
        let second = ranking(&[("c", 0.9), ("a", 0.8), ("d", 0.1)]);
        let fused = Fusion::Rrf { k: DEFAULT_RRF_K }.fuse(&first, &second, 10);
        assert_eq!(ids(&fused), vec!["a", "c", "b", "d"]);
        let expected = [
            1.0 / 61.0 + 1.0 / 62.0,
            1.0 / 63.0 + 1.0 / 61.0,
            1.0 / 62.0,
            1.0 / 63.0,
        ];
        for (hit, want) in fused.iter().zip(expected) {
            assert!((hit.score - want).abs() < 1e-15, "{hit:?} vs {want}");
        }
    }

    #[test]
    fn rrf_reads_ranks_not_scores_and_respects_k() {
        // Scores are ignored: only positions count.
        let first = ranking(&[("x", -5.0), ("y", -6.0)]);
        let second = ranking(&[("y", 100.0)]);
        let fused = Fusion::Rrf { k: 1.0 }.fuse(&first, &second, 10);
        // x: 1/2; y: 1/3 + 1/2.
        assert_eq!(ids(&fused), vec!["y", "x"]);
        assert!((fused[0].score - (1.0 / 3.0 + 0.5)).abs() < 1e-15);
    }

    #[test]
    fn ties_break_by_doc_id_and_depth_truncates() {
        // b and a each get 1/61 (rank 1 in one list): tie -> a before b.
        let first = ranking(&[("b", 1.0)]);
        let second = ranking(&[("a", 1.0)]);
        let fused = Fusion::Rrf { k: 60.0 }.fuse(&first, &second, 10);
        assert_eq!(ids(&fused), vec!["a", "b"]);
        let fused = Fusion::Rrf { k: 60.0 }.fuse(&second, &first, 1);
        assert_eq!(ids(&fused), vec!["a"]);
    }

    #[test]
    fn interpolation_normalises_min_max_per_ranking() {
        // first: a=10 -> 1, b=5 -> 0.5, c=0 -> 0
        // second: c=3 -> 1, d=1 -> 0
        // alpha 0.3: a 0.3, b 0.15, c 0.7, d 0.
        let first = ranking(&[("a", 10.0), ("b", 5.0), ("c", 0.0)]);
        let second = ranking(&[("c", 3.0), ("d", 1.0)]);
        let fused = Fusion::Interpolation { alpha: 0.3 }.fuse(&first, &second, 10);
        assert_eq!(ids(&fused), vec!["c", "a", "b", "d"]);
        let want = [0.7, 0.3, 0.15, 0.0];
        for (hit, want) in fused.iter().zip(want) {
            assert!((hit.score - want).abs() < 1e-12, "{hit:?} vs {want}");
        }
    }

    #[test]
    fn interpolation_of_a_flat_ranking_gives_it_no_weight() {
        let first = ranking(&[("a", 2.0), ("b", 2.0)]);
        let second = ranking(&[("b", 4.0), ("a", 2.0)]);
        let fused = Fusion::Interpolation { alpha: 0.5 }.fuse(&first, &second, 10);
        assert_eq!(ids(&fused), vec!["b", "a"]);
        assert_eq!(fused[0].score, 0.5);
        assert_eq!(fused[1].score, 0.0);
    }

    #[test]
    fn repeated_doc_counts_once_at_its_best_position() {
        let first = ranking(&[("a", 3.0), ("a", 2.0), ("b", 1.0)]);
        let fused = Fusion::Rrf { k: 60.0 }.fuse(&first, &[], 10);
        assert_eq!(ids(&fused), vec!["a", "b"]);
        assert!((fused[1].score - 1.0 / 62.0).abs() < 1e-15);
    }

    /// ranx's fused scores (tests/fixtures/reference/ranx_fusion.json, made
    /// by scripts/ranx_fusion_reference.py) for RRF and min-max wsum.
    #[test]
    fn fusion_equals_ranx() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/reference/ranx_fusion.json"
        );
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        // ranx runs are doc -> score maps; a ranking is them by score, descending.
        let ranking_of = |run: &serde_json::Value, query: &str| -> Vec<RunHit> {
            let mut hits: Vec<RunHit> = run[query]
                .as_object()
                .unwrap()
                .iter()
                .map(|(doc_id, score)| RunHit {
                    doc_id: doc_id.clone(),
                    score: score.as_f64().unwrap(),
                })
                .collect();
            sort_hits(&mut hits);
            hits
        };
        let cases = fixture["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 5);
        for case in cases {
            let fusion = match case["method"].as_str().unwrap() {
                "rrf" => Fusion::Rrf {
                    k: case["k"].as_f64().unwrap(),
                },
                "interp" => Fusion::Interpolation {
                    alpha: case["alpha"].as_f64().unwrap(),
                },
                other => panic!("{other}"),
            };
            for (query, expected) in case["fused"].as_object().unwrap() {
                let first = ranking_of(&fixture["first"], query);
                let second = ranking_of(&fixture["second"], query);
                let fused = fusion.fuse(&first, &second, usize::MAX);
                let expected = expected.as_object().unwrap();
                assert_eq!(fused.len(), expected.len(), "{fusion} {query}");
                for hit in &fused {
                    let want = expected[&hit.doc_id].as_f64().unwrap();
                    assert!(
                        (hit.score - want).abs() <= 1e-12,
                        "{fusion} {query} {}: {} vs ranx {want}",
                        hit.doc_id,
                        hit.score
                    );
                }
            }
        }
    }
}
