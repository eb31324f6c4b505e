//! Retrieval metrics with trec_eval's semantics, so that quarry's numbers
//! are the ones papers report (checked against pytrec_eval in
//! `tests/tests/pytrec_reference.rs`).
//!
//! What "trec_eval semantics" means here, from trec_eval's source
//! (`form_res_rels.c`, `m_ndcg_cut.c`, `m_recip_rank.c`, `m_recall.c`,
//! `m_P.c`, `m_map.c`):
//! - The run is re-sorted by score descending, ties broken by doc id
//!   descending (byte-wise `strcmp`); the rank column of a run file and the
//!   retriever's own order are ignored.
//! - A judgment of grade >= 1 is relevant; grade 0 is judged non-relevant;
//!   a retrieved doc without a judgment is non-relevant.
//! - nDCG@k: gain = grade (linear), discount log2(rank + 1); the ideal DCG
//!   orders all judged docs of grade >= 1 by grade, cut at k.
//! - MRR@k = trec_eval's `recip_rank` on the run cut to its top k.
//! - Recall@k = relevant in top k / all relevant judged (`recall.k`);
//!   P@k = relevant in top k / k (`P.k`); MAP over the full ranking (`map`);
//!   MAP@k counts only the relevant docs in the top k, still divided by all
//!   relevant judged (`map_cut.k`); success@k is 1 when a relevant doc is in
//!   the top k (`success.k`); R-prec is the precision at rank R, R the number
//!   of relevant judged docs (`Rprec`).
//! - trec_eval's own names are accepted too: `ndcg_cut.10` or `ndcg_cut_10`,
//!   `recall.100`, `P.10`, `map`, `map_cut.10`, `success.10`, `Rprec`.
//!
//! Means are over the queries of the qrels that have at least one relevant
//! judgment. Such a query without any hit scores 0 on every metric
//! (trec_eval `-c`) and is reported; queries whose judgments are all 0
//! cannot be scored and are reported and left out; run queries without
//! qrels are ignored, as trec_eval does.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use crate::dataset::Qrels;
use crate::error::{EngineError, Result};
use crate::run::{Run, RunHit};

/// A metric and its cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Ndcg(usize),
    Mrr(usize),
    Recall(usize),
    Precision(usize),
    Map,
    MapCut(usize),
    Success(usize),
    RPrec,
}

impl Metric {
    /// The measure that computes the same number in trec_eval/pytrec_eval.
    pub fn trec_eval_name(&self) -> String {
        match self {
            Metric::Ndcg(k) => format!("ndcg_cut.{k}"),
            Metric::Mrr(k) => format!("recip_rank (run cut to top {k})"),
            Metric::Recall(k) => format!("recall.{k}"),
            Metric::Precision(k) => format!("P.{k}"),
            Metric::Map => "map".to_string(),
            Metric::MapCut(k) => format!("map_cut.{k}"),
            Metric::Success(k) => format!("success.{k}"),
            Metric::RPrec => "Rprec".to_string(),
        }
    }

    /// The deepest rank this metric looks at (`None`: the whole ranking).
    pub fn depth(&self) -> Option<usize> {
        match *self {
            Metric::Ndcg(k)
            | Metric::Mrr(k)
            | Metric::Recall(k)
            | Metric::Precision(k)
            | Metric::MapCut(k)
            | Metric::Success(k) => Some(k),
            Metric::Map | Metric::RPrec => None,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Ndcg(k) => write!(f, "ndcg@{k}"),
            Metric::Mrr(k) => write!(f, "mrr@{k}"),
            Metric::Recall(k) => write!(f, "recall@{k}"),
            Metric::Precision(k) => write!(f, "p@{k}"),
            Metric::Map => write!(f, "map"),
            Metric::MapCut(k) => write!(f, "map@{k}"),
            Metric::Success(k) => write!(f, "success@{k}"),
            Metric::RPrec => write!(f, "r-prec"),
        }
    }
}

const METRIC_FORMS: &str = "ndcg@K, mrr@K, recall@K, p@K, map, map@K, success@K or r-prec \
     (K a positive integer), or trec_eval's names (ndcg_cut.K, recall.K, P.K, map_cut.K, \
     success.K, Rprec)";

/// trec_eval's measure names (`ndcg_cut.10`, `ndcg_cut_10`, `P.5`, `Rprec`, ...) in
/// quarry's form (`ndcg@10`, `p@5`, `r-prec`); other input is returned as it is.
fn from_trec_eval_name(spec: &str) -> String {
    if spec == "rprec" {
        return "r-prec".to_string();
    }
    for (trec, ours) in [
        ("ndcg_cut", "ndcg"),
        ("map_cut", "map"),
        ("recall", "recall"),
        ("success", "success"),
        ("p", "p"),
    ] {
        let Some(rest) = spec.strip_prefix(trec) else {
            continue;
        };
        if let Some(k) = rest.strip_prefix('.').or_else(|| rest.strip_prefix('_')) {
            return format!("{ours}@{k}");
        }
    }
    spec.to_string()
}

impl FromStr for Metric {
    type Err = EngineError;

    fn from_str(input: &str) -> Result<Metric> {
        let bad = |detail: String| EngineError::MetricSpec {
            input: input.to_string(),
            detail,
        };
        let spec = from_trec_eval_name(&input.trim().to_ascii_lowercase());
        let (name, cutoff) = match spec.split_once('@') {
            Some((name, cutoff)) => (name, Some(cutoff)),
            None => (spec.as_str(), None),
        };
        let k = match cutoff {
            None => None,
            Some(c) => match c.parse::<usize>() {
                Ok(k) if k > 0 => Some(k),
                _ => return Err(bad(format!("cutoff `{c}` is not a positive integer"))),
            },
        };
        match (name, k) {
            ("map", None) => Ok(Metric::Map),
            ("map", Some(k)) => Ok(Metric::MapCut(k)),
            ("r-prec", None) => Ok(Metric::RPrec),
            ("r-prec", Some(_)) => Err(bad(
                "r-prec cuts at the number of relevant docs and takes no cutoff".into(),
            )),
            ("ndcg" | "mrr" | "recall" | "p" | "success", None) => {
                Err(bad(format!("{name} needs a cutoff, e.g. {name}@10")))
            }
            ("success", Some(k)) => Ok(Metric::Success(k)),
            ("ndcg", Some(k)) => Ok(Metric::Ndcg(k)),
            ("mrr", Some(k)) => Ok(Metric::Mrr(k)),
            ("recall", Some(k)) => Ok(Metric::Recall(k)),
            ("p", Some(k)) => Ok(Metric::Precision(k)),
            _ => Err(bad(format!("unknown metric; expected {METRIC_FORMS}"))),
        }
    }
}

/// Parses a comma-separated list such as `ndcg@10,mrr@10,recall@100,map`.
pub fn parse_metric_list(list: &str) -> Result<Vec<Metric>> {
    let mut metrics = Vec::new();
    for part in list.split(',') {
        if part.trim().is_empty() {
            return Err(EngineError::MetricSpec {
                input: list.to_string(),
                detail: format!("empty entry in the list; expected comma-separated {METRIC_FORMS}"),
            });
        }
        let metric: Metric = part.parse()?;
        if metrics.contains(&metric) {
            return Err(EngineError::MetricSpec {
                input: list.to_string(),
                detail: format!("{metric} is listed twice"),
            });
        }
        metrics.push(metric);
    }
    Ok(metrics)
}

/// trec_eval's order: score descending, then doc id descending (byte-wise).
pub fn trec_eval_order(a: &RunHit, b: &RunHit) -> Ordering {
    b.score
        .partial_cmp(&a.score)
        .unwrap_or(Ordering::Equal)
        .then_with(|| b.doc_id.as_bytes().cmp(a.doc_id.as_bytes()))
}

/// Scores one query: `judgments` maps doc id to grade, `hits` in any order.
pub fn score_query(
    judgments: &HashMap<String, i32>,
    hits: &[RunHit],
    metrics: &[Metric],
) -> Vec<f64> {
    let mut ranked: Vec<&RunHit> = hits.iter().collect();
    ranked.sort_by(|a, b| trec_eval_order(a, b));
    // Grade of each retrieved doc in rank order; unjudged counts as 0.
    let grades: Vec<i32> = ranked
        .iter()
        .map(|hit| judgments.get(&hit.doc_id).copied().unwrap_or(0))
        .collect();
    let num_relevant = judgments.values().filter(|&&g| g >= 1).count();
    let mut ideal: Vec<i32> = judgments.values().copied().filter(|&g| g >= 1).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));

    let relevant_in_top = |k: usize| grades.iter().take(k).filter(|&&g| g >= 1).count();
    let dcg = |gains: &[i32], k: usize| -> f64 {
        gains
            .iter()
            .take(k)
            .enumerate()
            .filter(|(_, &g)| g > 0)
            .map(|(i, &g)| f64::from(g) / ((i + 2) as f64).log2())
            // fold from +0.0: `sum()` of nothing is -0.0, which printed as `-0.0000`.
            .fold(0.0, |total, gain| total + gain)
    };

    metrics
        .iter()
        .map(|metric| match *metric {
            Metric::Ndcg(k) => {
                let ideal_dcg = dcg(&ideal, k);
                if ideal_dcg > 0.0 {
                    dcg(&grades, k) / ideal_dcg
                } else {
                    0.0
                }
            }
            Metric::Mrr(k) => grades
                .iter()
                .take(k)
                .position(|&g| g >= 1)
                .map_or(0.0, |i| 1.0 / (i + 1) as f64),
            Metric::Recall(k) => {
                if num_relevant == 0 {
                    0.0
                } else {
                    relevant_in_top(k) as f64 / num_relevant as f64
                }
            }
            Metric::Precision(k) => relevant_in_top(k) as f64 / k as f64,
            Metric::Map => average_precision(&grades, grades.len(), num_relevant),
            Metric::MapCut(k) => average_precision(&grades, k, num_relevant),
            Metric::Success(k) => {
                if relevant_in_top(k) > 0 {
                    1.0
                } else {
                    0.0
                }
            }
            Metric::RPrec => {
                if num_relevant == 0 {
                    0.0
                } else {
                    relevant_in_top(num_relevant) as f64 / num_relevant as f64
                }
            }
        })
        .collect()
}

/// trec_eval's average precision over the first `depth` ranks: the precision at each
/// relevant doc found there, summed, over all relevant judged docs.
fn average_precision(grades: &[i32], depth: usize, num_relevant: usize) -> f64 {
    if num_relevant == 0 {
        return 0.0;
    }
    let mut relevant_so_far = 0usize;
    let mut sum = 0.0;
    for (i, &g) in grades.iter().take(depth).enumerate() {
        if g >= 1 {
            relevant_so_far += 1;
            sum += relevant_so_far as f64 / (i + 1) as f64;
        }
    }
    sum / num_relevant as f64
}

/// The scores of a run against qrels.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    #[serde(serialize_with = "serialize_metric_names")]
    pub metrics: Vec<Metric>,
    /// One value per metric, for every query averaged over.
    pub per_query: BTreeMap<String, Vec<f64>>,
    /// Means over `per_query`, one per metric.
    pub means: Vec<f64>,
    /// Queries with relevant judgments but no hit (scored 0, included).
    pub queries_without_results: Vec<String>,
    /// Queries whose judgments are all grade 0 (left out of the means).
    pub queries_without_relevant: Vec<String>,
    /// Run queries that have no qrels (ignored).
    pub run_queries_without_qrels: usize,
}

fn serialize_metric_names<S: serde::Serializer>(
    metrics: &[Metric],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(metrics.iter().map(Metric::to_string))
}

impl Evaluation {
    pub fn num_queries(&self) -> usize {
        self.per_query.len()
    }

    pub fn mean(&self, metric: Metric) -> Option<f64> {
        let index = self.metrics.iter().position(|m| *m == metric)?;
        Some(self.means[index])
    }
}

/// Scores `run` against `qrels` (see the module doc for which queries count).
pub fn evaluate(qrels: &Qrels, run: &Run, metrics: &[Metric]) -> Evaluation {
    let mut per_query = BTreeMap::new();
    let mut queries_without_results = Vec::new();
    let mut queries_without_relevant = Vec::new();
    for (query_id, judgments) in &qrels.by_query {
        if !judgments.values().any(|&g| g >= 1) {
            queries_without_relevant.push(query_id.clone());
            continue;
        }
        let hits = run.by_query.get(query_id).map(Vec::as_slice).unwrap_or(&[]);
        if hits.is_empty() {
            queries_without_results.push(query_id.clone());
        }
        per_query.insert(query_id.clone(), score_query(judgments, hits, metrics));
    }
    let means = (0..metrics.len())
        .map(|i| {
            if per_query.is_empty() {
                0.0
            } else {
                per_query.values().map(|v: &Vec<f64>| v[i]).sum::<f64>() / per_query.len() as f64
            }
        })
        .collect();
    let run_queries_without_qrels = run
        .by_query
        .keys()
        .filter(|q| !qrels.by_query.contains_key(*q))
        .count();
    Evaluation {
        metrics: metrics.to_vec(),
        per_query,
        means,
        queries_without_results,
        queries_without_relevant,
        run_queries_without_qrels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::hits;

    fn judgments(list: &[(&str, i32)]) -> HashMap<String, i32> {
        list.iter().map(|&(d, g)| (d.to_string(), g)).collect()
    }

    #[test]
    fn parses_metric_names_with_clear_errors() {
        assert_eq!(
            parse_metric_list("ndcg@10, MRR@10,recall@100,recall@1000,map,p@10").unwrap(),
            vec![
                Metric::Ndcg(10),
                Metric::Mrr(10),
                Metric::Recall(100),
                Metric::Recall(1000),
                Metric::Map,
                Metric::Precision(10)
            ]
        );
        for (bad, says) in [
            ("ndcg", "needs a cutoff"),
            ("ndcg@0", "positive integer"),
            ("ndcg@x", "positive integer"),
            ("r-prec@10", "no cutoff"),
            ("success", "needs a cutoff"),
            ("bleu@4", "unknown metric"),
            ("map,,p@1", "empty entry"),
            ("map,map", "twice"),
        ] {
            let err = parse_metric_list(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn accepts_trec_eval_measure_names() {
        for (name, metric) in [
            ("ndcg_cut.10", Metric::Ndcg(10)),
            ("NDCG_CUT_10", Metric::Ndcg(10)),
            ("recall.1000", Metric::Recall(1000)),
            ("recall_100", Metric::Recall(100)),
            ("P.5", Metric::Precision(5)),
            ("P_20", Metric::Precision(20)),
            ("map", Metric::Map),
            ("map_cut.100", Metric::MapCut(100)),
            ("map@10", Metric::MapCut(10)),
            ("success.1", Metric::Success(1)),
            ("success@10", Metric::Success(10)),
            ("Rprec", Metric::RPrec),
            ("r-prec", Metric::RPrec),
        ] {
            assert_eq!(name.parse::<Metric>().unwrap(), metric, "{name}");
        }
        // Shown in quarry's form; trec_eval's name is what the header note gives.
        assert_eq!(Metric::MapCut(10).to_string(), "map@10");
        assert_eq!(Metric::RPrec.trec_eval_name(), "Rprec");
    }

    #[test]
    fn ties_are_broken_by_doc_id_descending() {
        // Same score: trec_eval ranks "b" before "a", so the relevant "a" is second.
        let q = judgments(&[("a", 1)]);
        let run = hits(&[("a", 1.0), ("b", 1.0)]);
        assert_eq!(score_query(&q, &run, &[Metric::Mrr(10)]), vec![0.5]);
        assert_eq!(score_query(&q, &run, &[Metric::Mrr(1)]), vec![0.0]);
    }

    #[test]
    fn graded_ndcg_matches_hand_computation() {
        let q = judgments(&[("a", 2), ("b", 1), ("c", 0), ("z", 1)]);
        let run = hits(&[("c", 3.0), ("b", 2.0), ("a", 1.0)]);
        let dcg = 1.0 / 3f64.log2() + 2.0 / 2.0;
        let ideal = 2.0 + 1.0 / 3f64.log2() + 1.0 / 2.0;
        let values = score_query(
            &q,
            &run,
            &[
                Metric::Ndcg(10),
                Metric::Recall(2),
                Metric::Precision(5),
                Metric::Map,
            ],
        );
        assert!((values[0] - dcg / ideal).abs() < 1e-12);
        assert_eq!(values[1], 1.0 / 3.0);
        assert_eq!(values[2], 2.0 / 5.0);
        assert!((values[3] - (1.0 / 2.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn means_cover_queries_with_relevant_judgments() {
        let mut qrels = Qrels::default();
        qrels.by_query.insert("q1".into(), judgments(&[("a", 1)]));
        qrels.by_query.insert("q2".into(), judgments(&[("a", 1)]));
        qrels.by_query.insert("q3".into(), judgments(&[("a", 0)]));
        let mut run = Run::default();
        run.by_query.insert("q1".into(), hits(&[("a", 1.0)]));
        run.by_query.insert("q9".into(), hits(&[("a", 1.0)]));
        let eval = evaluate(&qrels, &run, &[Metric::Mrr(10)]);
        assert_eq!(eval.num_queries(), 2);
        assert_eq!(eval.means, vec![0.5]);
        assert_eq!(eval.queries_without_results, vec!["q2"]);
        assert_eq!(eval.queries_without_relevant, vec!["q3"]);
        assert_eq!(eval.run_queries_without_qrels, 1);
    }
}
