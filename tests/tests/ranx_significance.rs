//! quarry's paired tests, corrections and confidence intervals against ranx,
//! scipy and statsmodels, on `fixtures/reference/ranx_significance.json`
//! (made by `scripts/ranx_significance_reference.py`, tool versions inside).
//!
//! The per-query scores are quarry's own (from the fixture's qrels and runs)
//! and must first equal ranx's, so the tests are compared on the same input.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use quarry_engine::dataset::Qrels;
use quarry_engine::metrics::{evaluate, Metric};
use quarry_engine::run::{Run, RunHit};
use quarry_engine::stats::{adjust, mean_interval, p_value, Correction, PairedTest};
use serde_json::Value;

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/reference/ranx_significance.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// ranx's metric names → quarry's.
fn metric(name: &str) -> Metric {
    name.replace("precision@", "p@").parse().unwrap()
}

fn qrels(value: &Value) -> Qrels {
    let by_query = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(q, docs)| {
            let judged: HashMap<String, i32> = docs
                .as_object()
                .unwrap()
                .iter()
                .map(|(d, g)| (d.clone(), g.as_i64().unwrap() as i32))
                .collect();
            (q.clone(), judged)
        })
        .collect();
    Qrels {
        path: "ranx_significance.json".into(),
        by_query,
    }
}

fn run(value: &Value) -> Run {
    let by_query: BTreeMap<String, Vec<RunHit>> = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(q, docs)| {
            let hits = docs
                .as_object()
                .unwrap()
                .iter()
                .map(|(d, s)| RunHit {
                    doc_id: d.clone(),
                    score: s.as_f64().unwrap(),
                })
                .collect();
            (q.clone(), hits)
        })
        .collect();
    Run { by_query }
}

/// Per-query scores of every run, by run name then metric name, in query-id order.
fn per_query_scores(f: &Value) -> BTreeMap<String, BTreeMap<String, Vec<f64>>> {
    let qrels = qrels(&f["qrels"]);
    let names: Vec<String> = f["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let metrics: Vec<Metric> = names.iter().map(|n| metric(n)).collect();
    f["runs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| {
            let evaluation = evaluate(&qrels, &run(value), &metrics);
            let by_metric = names
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let values = evaluation.per_query.values().map(|v| v[i]).collect();
                    (m.clone(), values)
                })
                .collect();
            (name.clone(), by_metric)
        })
        .collect()
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn per_query_scores_equal_ranx() {
    let f = fixture();
    let ours = per_query_scores(&f);
    for (name, by_metric) in &ours {
        for (m, values) in by_metric {
            let theirs = numbers(&f["per_query"][name][m]);
            assert_eq!(values.len(), theirs.len(), "{name} {m}");
            for (q, (a, b)) in values.iter().zip(&theirs).enumerate() {
                assert!(
                    (a - b).abs() < 1e-12,
                    "{name} {m} query {q}: {a} vs ranx {b}"
                );
            }
        }
    }
}

#[test]
fn p_values_equal_ranx_scipy_and_the_bootstrap_definition() {
    let f = fixture();
    let ours = per_query_scores(&f);
    let permutations = f["permutations"].as_u64().unwrap() as u32;
    let seed = f["seed"].as_u64().unwrap();
    let ties: Vec<&str> = f["ties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    // ranx counts a permutation that ties the observed difference by float
    // rounding (see the fixture script); where ties occur, quarry's
    // tie-inclusive p is checked against the tie-inclusive numpy estimate.
    assert!(
        ties.contains(&"precision@10"),
        "the fixture must exercise ties"
    );
    for (test_name, test) in [
        ("student", PairedTest::T),
        ("fisher", PairedTest::Randomization { permutations, seed }),
        (
            "bootstrap",
            PairedTest::Bootstrap {
                resamples: permutations,
                seed,
            },
        ),
    ] {
        for (pair, by_metric) in f["p_values"][test_name].as_object().unwrap() {
            let (control, treatment) = pair.split_once('|').unwrap();
            for (m, expected) in by_metric.as_object().unwrap() {
                let expected = if test_name == "fisher" && ties.contains(&m.as_str()) {
                    &f["p_values"]["fisher_ties_counted"][pair][m]
                } else {
                    expected
                };
                let expected = expected.as_f64().unwrap();
                let p = p_value(test, &ours[treatment][m], &ours[control][m]).unwrap();
                let tolerance = if test == PairedTest::T {
                    1e-9
                } else {
                    // Two independent Monte-Carlo estimates: 5 sd of their
                    // difference, plus one permutation's worth.
                    let n = f64::from(permutations);
                    5.0 * (2.0 * expected * (1.0 - expected) / n).sqrt() + 1.0 / n
                };
                assert!(
                    (p - expected).abs() <= tolerance,
                    "{test_name} {pair} {m}: quarry {p} vs {expected} (tolerance {tolerance:e})"
                );
            }
        }
    }
}

#[test]
fn holm_and_bonferroni_equal_statsmodels() {
    let f = fixture();
    let ours = per_query_scores(&f);
    for (method, correction) in [
        ("holm", Correction::Holm),
        ("bonferroni", Correction::Bonferroni),
    ] {
        for (m, expected) in f["corrections"][method].as_object().unwrap() {
            let family: Vec<Option<f64>> = ["better", "similar"]
                .iter()
                .map(|other| p_value(PairedTest::T, &ours[*other][m], &ours["baseline"][m]))
                .collect();
            let adjusted = adjust(&family, correction);
            for (a, b) in adjusted.iter().zip(numbers(expected)) {
                let a = a.unwrap();
                assert!((a - b).abs() < 1e-9, "{method} {m}: {a} vs statsmodels {b}");
            }
        }
    }
}

#[test]
fn confidence_intervals_equal_scipy() {
    let f = fixture();
    let ours = per_query_scores(&f);
    for (name, by_metric) in &ours {
        for (m, values) in by_metric {
            let interval = mean_interval(values, 0.95);
            let expected = numbers(&f["intervals"][name][m]);
            assert!(
                (interval.low - expected[0]).abs() < 1e-9
                    && (interval.high - expected[1]).abs() < 1e-9,
                "{name} {m}: {interval:?} vs scipy {expected:?}"
            );
        }
    }
}
