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

/// A retriever as users name it on the command line:
///
/// - `bm25`
/// - `dense:NAME` (a dense index built for the dataset under NAME)
/// - `hybrid:rrf(A,B)` or `hybrid:rrf(k=K,A,B)`: reciprocal rank fusion of
///   two retrievers (k = 60 by default)
/// - `hybrid:interp(ALPHA,A,B)`: min-max score interpolation, ALPHA on A
///
/// A and B are retriever specs themselves, so hybrids nest.
#[derive(Debug, Clone, PartialEq)]
pub enum RetrieverSpec {
    Bm25,
    Dense(String),
    Hybrid {
        fusion: Fusion,
        first: Box<RetrieverSpec>,
        second: Box<RetrieverSpec>,
    },
}

/// Why a retriever spec did not parse; the message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retriever `{spec}`: {detail} (expected bm25, dense:NAME, hybrid:rrf(A,B), hybrid:rrf(k=60,A,B) or hybrid:interp(0.5,A,B))")]
pub struct SpecError {
    pub spec: String,
    pub detail: String,
}

impl RetrieverSpec {
    pub fn parse(spec: &str) -> Result<RetrieverSpec, SpecError> {
        let fail = |detail: String| SpecError {
            spec: spec.to_string(),
            detail,
        };
        let text = spec.trim();
        if text == "bm25" {
            return Ok(RetrieverSpec::Bm25);
        }
        if let Some(name) = text.strip_prefix("dense:") {
            let name = name.trim();
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(fail(format!(
                    "dense index name `{name}` must be non-empty letters, digits, `-`, `_` or `.`"
                )));
            }
            return Ok(RetrieverSpec::Dense(name.to_string()));
        }
        let Some(hybrid) = text.strip_prefix("hybrid:") else {
            return Err(fail("unknown retriever".into()));
        };
        let open = hybrid
            .find('(')
            .ok_or_else(|| fail("a hybrid needs its retrievers in parentheses".into()))?;
        if !hybrid.ends_with(')') {
            return Err(fail("missing closing `)`".into()));
        }
        let method = hybrid[..open].trim();
        let args = split_top_level(&hybrid[open + 1..hybrid.len() - 1]).map_err(fail)?;
        let (fusion, retrievers) = match (method, args.as_slice()) {
            ("rrf", [a, b]) => (Fusion::Rrf { k: DEFAULT_RRF_K }, [a, b]),
            ("rrf", [k, a, b]) => {
                let value = k.trim().strip_prefix("k=").unwrap_or(k).trim();
                let k = value
                    .parse::<f64>()
                    .ok()
                    .filter(|k| k.is_finite() && *k > 0.0)
                    .ok_or_else(|| fail(format!("rrf k `{value}` is not a number > 0")))?;
                (Fusion::Rrf { k }, [a, b])
            }
            ("interp", [alpha, a, b]) => {
                let value = alpha.trim().strip_prefix("alpha=").unwrap_or(alpha).trim();
                let alpha = value
                    .parse::<f64>()
                    .ok()
                    .filter(|a| (0.0..=1.0).contains(a))
                    .ok_or_else(|| {
                        fail(format!("interp alpha `{value}` is not a number in [0, 1]"))
                    })?;
                (Fusion::Interpolation { alpha }, [a, b])
            }
            ("rrf", _) => {
                return Err(fail(format!(
                    "rrf takes 2 retrievers (and optionally k= first), got {} arguments",
                    args.len()
                )))
            }
            ("interp", _) => {
                return Err(fail(format!(
                    "interp takes an alpha and 2 retrievers, got {} arguments",
                    args.len()
                )))
            }
            (other, _) => return Err(fail(format!("unknown fusion `{other}` (rrf or interp)"))),
        };
        let first = RetrieverSpec::parse(retrievers[0])?;
        let second = RetrieverSpec::parse(retrievers[1])?;
        Ok(RetrieverSpec::Hybrid {
            fusion,
            first: Box::new(first),
            second: Box::new(second),
        })
    }

    /// A comma-separated list of specs (`quarry compare --retrievers`). Only
    /// commas outside parentheses separate, so hybrids (whose arguments are
    /// comma-separated too) can be listed: `bm25,hybrid:rrf(bm25,dense:A)`.
    pub fn parse_list(list: &str) -> Result<Vec<RetrieverSpec>, SpecError> {
        let parts = split_top_level(list).map_err(|detail| SpecError {
            spec: list.to_string(),
            detail,
        })?;
        parts.into_iter().map(RetrieverSpec::parse).collect()
    }

    /// The spec as users write it (canonical form, `k=` spelled out).
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// Every dense index name the spec uses.
    pub fn dense_names(&self) -> Vec<&str> {
        match self {
            RetrieverSpec::Bm25 => Vec::new(),
            RetrieverSpec::Dense(name) => vec![name.as_str()],
            RetrieverSpec::Hybrid { first, second, .. } => {
                let mut names = first.dense_names();
                names.extend(second.dense_names());
                names
            }
        }
    }
}

impl std::fmt::Display for RetrieverSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetrieverSpec::Bm25 => f.write_str("bm25"),
            RetrieverSpec::Dense(name) => write!(f, "dense:{name}"),
            RetrieverSpec::Hybrid {
                fusion: Fusion::Rrf { k },
                first,
                second,
            } => write!(f, "hybrid:rrf(k={k},{first},{second})"),
            RetrieverSpec::Hybrid {
                fusion: Fusion::Interpolation { alpha },
                first,
                second,
            } => write!(f, "hybrid:interp({alpha},{first},{second})"),
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Splits at commas outside parentheses.
pub fn split_top_level(args: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "unbalanced `)`".to_string())?
            }
            ',' if depth == 0 => {
                parts.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced `(`".into());
    }
    parts.push(&args[start..]);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranking(hits: &[(&str, f64)]) -> Vec<RunHit> {
        hits.iter()
            .map(|&(doc_id, score)| RunHit {
                doc_id: doc_id.into(),
                score,
            })
            .collect()
    }

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
    #[test]
    fn specs_parse_and_print_back() {
        assert_eq!(RetrieverSpec::parse("bm25").unwrap(), RetrieverSpec::Bm25);
        assert_eq!(
            RetrieverSpec::parse("dense:minilm").unwrap(),
            RetrieverSpec::Dense("minilm".into())
        );
        let spec = RetrieverSpec::parse("hybrid:rrf(bm25, dense:qwen-0.5b)").unwrap();
        assert_eq!(
            spec,
            RetrieverSpec::Hybrid {
                fusion: Fusion::Rrf { k: 60.0 },
                first: Box::new(RetrieverSpec::Bm25),
                second: Box::new(RetrieverSpec::Dense("qwen-0.5b".into())),
            }
        );
        assert_eq!(spec.to_string(), "hybrid:rrf(k=60,bm25,dense:qwen-0.5b)");
        assert_eq!(RetrieverSpec::parse(&spec.to_string()).unwrap(), spec);
        let nested =
            RetrieverSpec::parse("hybrid:interp(0.3,hybrid:rrf(k=10,bm25,dense:a),dense:b)")
                .unwrap();
        assert_eq!(nested.dense_names(), vec!["a", "b"]);
        assert_eq!(RetrieverSpec::parse(&nested.to_string()).unwrap(), nested);
    }

    #[test]
    fn spec_lists_split_only_at_top_level_commas() {
        let list = RetrieverSpec::parse_list(
            "bm25, hybrid:rrf(k=20,bm25,dense:a),dense:b,hybrid:interp(0.3,hybrid:rrf(bm25,dense:a),dense:b)",
        )
        .unwrap();
        let names: Vec<String> = list.iter().map(RetrieverSpec::name).collect();
        assert_eq!(
            names,
            [
                "bm25",
                "hybrid:rrf(k=20,bm25,dense:a)",
                "dense:b",
                "hybrid:interp(0.3,hybrid:rrf(k=60,bm25,dense:a),dense:b)",
            ]
        );
        let unbalanced = RetrieverSpec::parse_list("bm25,hybrid:rrf(bm25,dense:a").unwrap_err();
        assert!(unbalanced.detail.contains("unbalanced"), "{unbalanced}");
        let empty = RetrieverSpec::parse_list("bm25,,dense:a").unwrap_err();
        assert_eq!(empty.spec, "");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, needle) in [
            ("bm26", "unknown retriever"),
            ("dense:", "dense index name"),
            ("dense:a/b", "dense index name"),
            ("hybrid:rrf", "parentheses"),
            ("hybrid:rrf(bm25,dense:x", "closing"),
            ("hybrid:rrf(bm25)", "2 retrievers"),
            ("hybrid:rrf(k=0,bm25,bm25)", "k `0`"),
            ("hybrid:interp(bm25,bm25)", "alpha"),
            ("hybrid:interp(1.5,bm25,bm25)", "`1.5`"),
            ("hybrid:max(bm25,bm25)", "unknown fusion `max`"),
            ("hybrid:rrf(bm25,hybrid:rrf(bm25)", "unbalanced"),
            ("hybrid:rrf(bm25,bm2)", "`bm2`"),
        ] {
            let err = RetrieverSpec::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
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
