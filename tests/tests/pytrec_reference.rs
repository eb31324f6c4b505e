//! quarry's metrics against pytrec_eval (trec_eval 9), per query and mean,
//! on the runs of `fixtures/reference/pytrec_eval_metrics.json`.
//!
//! The fixture is made by `tests/reference/make_fixtures.sh`; it explains
//! how each quarry metric maps onto a trec_eval measure.

use std::path::{Path, PathBuf};

use quarry_engine::dataset::read_qrels_file;
use quarry_engine::metrics::{evaluate, Metric};
use quarry_engine::run::Run;
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn metrics_equal_pytrec_eval_per_query_and_mean() {
    let root = repo_root();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/reference/pytrec_eval_metrics.json"))
            .unwrap(),
    )
    .unwrap();
    let metric_names = strings(&fixture["metrics"]);
    let metrics: Vec<Metric> = metric_names.iter().map(|m| m.parse().unwrap()).collect();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 2, "synthetic and nfcorpus cases expected");

    for case in cases {
        let name = case["name"].as_str().unwrap();
        let qrels = read_qrels_file(&root.join(case["qrels"].as_str().unwrap())).unwrap();
        let run = Run::read(&root.join(case["run"].as_str().unwrap())).unwrap();
        let evaluation = evaluate(&qrels, &run, &metrics);

        let expected_per_query = case["per_query"].as_object().unwrap();
        assert_eq!(
            evaluation.per_query.keys().collect::<Vec<_>>(),
            expected_per_query.keys().collect::<Vec<_>>(),
            "{name}: evaluated queries"
        );
        let mut max_diff: f64 = 0.0;
        for (query_id, values) in &evaluation.per_query {
            for (i, metric) in metric_names.iter().enumerate() {
                let expected = expected_per_query[query_id][metric].as_f64().unwrap();
                let diff = (values[i] - expected).abs();
                max_diff = max_diff.max(diff);
                assert!(
                    diff <= TOLERANCE,
                    "{name}: query {query_id} {metric}: quarry {} pytrec_eval {expected}",
                    values[i]
                );
            }
        }
        for (i, metric) in metric_names.iter().enumerate() {
            let expected = case["mean"][metric].as_f64().unwrap();
            let diff = (evaluation.means[i] - expected).abs();
            max_diff = max_diff.max(diff);
            assert!(
                diff <= TOLERANCE,
                "{name}: mean {metric}: quarry {} pytrec_eval {expected}",
                evaluation.means[i]
            );
        }
        assert_eq!(
            evaluation.queries_without_results,
            strings(&case["queries_without_results"]),
            "{name}"
        );
        assert_eq!(
            evaluation.queries_without_relevant,
            strings(&case["queries_without_relevant"]),
            "{name}"
        );
        assert_eq!(
            evaluation.run_queries_without_qrels,
            case["run_queries_without_qrels"].as_array().unwrap().len(),
            "{name}"
        );
        eprintln!(
            "{name}: {} queries x {} metrics, max |quarry - pytrec_eval| = {max_diff:e}",
            evaluation.num_queries(),
            metrics.len()
        );
    }
}

/// The synthetic case must actually exercise what it claims to.
#[test]
fn synthetic_fixture_has_ties_and_edge_cases() {
    let root = repo_root();
    let run = Run::read(&root.join("tests/fixtures/reference/synthetic/run.trec")).unwrap();
    let tied_queries = run
        .by_query
        .values()
        .filter(|hits| {
            let mut scores: Vec<f64> = hits.iter().map(|h| h.score).collect();
            scores.sort_by(f64::total_cmp);
            scores.windows(2).any(|w| w[0] == w[1])
        })
        .count();
    assert!(tied_queries >= 10, "only {tied_queries} queries with ties");
    let qrels =
        read_qrels_file(&root.join("tests/fixtures/reference/synthetic/qrels.tsv")).unwrap();
    let grades: std::collections::BTreeSet<i32> = qrels
        .by_query
        .values()
        .flat_map(|d| d.values().copied())
        .collect();
    assert_eq!(grades.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
}
