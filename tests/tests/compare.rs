//! End-to-end tests of `quarry compare`: several metrics per table, paired
//! tests against a baseline (p-values recomputed from the per-query scores
//! the report writes, so the pairing over queries is what is checked), the
//! group averages, published values from a registry, the report folder, and
//! usage errors.
//!
//! The p-values themselves are checked against ranx and scipy in
//! ranx_significance.rs; here the tiny random BERT of tiny_fixtures gives a
//! dense retriever that ranks differently from BM25.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::Stream::{Either, Stdout};
use common::{quarry_command, run, write_file, Ran};
use quarry_engine::stats::{adjust, p_value, Correction, PairedTest};
use serde_json::Value;
use tiny_fixtures::{tiny_dataset, tiny_model};

mod common;
mod tiny_fixtures;

/// A registry naming the tiny dataset four times (two `text`, two `code`
/// entries over the same folder), with published values for `tiny-a`.
fn registry() -> String {
    let mut toml = String::new();
    for (name, kind) in [
        ("tiny-a", "text"),
        ("tiny-b", "text"),
        ("tiny-c", "code"),
        ("tiny-d", "code"),
    ] {
        toml += &format!(
            "[[dataset]]\nname = \"{name}\"\npath = \"tiny\"\nsplit = \"test\"\nremove_self = false\n\
             corpus_sha256 = \"\"\nurl = \"\"\nkind = \"{kind}\"\n\n"
        );
    }
    for (retriever, value) in [("bm25", 0.5), ("dense:tiny-bert", 0.25)] {
        toml += &format!(
            "[[published]]\nsource = \"Example et al. 2025, Table 1\"\nretriever = \"{retriever}\"\n\
             dataset = \"tiny-a\"\nmetric = \"ndcg@10\"\nvalue = {value}\n\n"
        );
    }
    toml
}

/// The tiny model, the tiny dataset, the registry above, and a data home
/// where the tiny model's index of `tiny-a` is built.
struct Setup {
    tmp: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let model = tiny_model(tmp.path());
        tiny_dataset(tmp.path(), 40);
        write_file(tmp.path(), "registry.toml", &registry());
        let setup = Setup { tmp };
        setup
            .quarry(&[
                "build",
                "--model",
                model.to_str().unwrap(),
                "--dataset",
                "tiny-a",
            ])
            .ok();
        setup
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.tmp.path().join(name)
    }

    fn command(&self, registry: &Path) -> Command {
        let mut command = quarry_command();
        command
            .arg("--registry")
            .arg(registry)
            .env("QUARRY_HOME", self.path("home"));
        command
    }

    fn quarry(&self, args: &[&str]) -> Ran {
        run(self.command(&self.path("registry.toml")), args)
    }

    /// `quarry compare --datasets tiny-a --retrievers RETRIEVERS REST...`.
    fn compare(&self, rest: &[&str]) -> Ran {
        let mut args = vec![
            "compare",
            "--datasets",
            "tiny-a",
            "--retrievers",
            "bm25,dense:tiny-bert,hybrid:rrf(bm25,dense:tiny-bert)",
        ];
        args.extend_from_slice(rest);
        self.quarry(&args)
    }
}

/// (retriever, metric) → the values of every query, in the file's order.
type Scores = BTreeMap<(String, String), Vec<f64>>;

/// `per_query.csv`: the query ids (in order) and the scores.
fn per_query(path: &Path) -> (Vec<String>, Scores) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("dataset,query,retriever,metric,value"));
    let mut queries = Vec::new();
    let mut values = Scores::new();
    for line in lines {
        // The hybrid's name is quoted (it has commas); split it off the end.
        let (head, value) = line.rsplit_once(',').unwrap();
        let (head, metric) = head.rsplit_once(',').unwrap();
        let mut fields = head.splitn(3, ',');
        let (_dataset, query, retriever) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap().trim_matches('"'),
        );
        if retriever == "bm25" && metric == "ndcg@10" {
            queries.push(query.to_string());
        }
        values
            .entry((retriever.to_string(), metric.to_string()))
            .or_default()
            .push(value.parse().unwrap());
    }
    (queries, values)
}

#[test]
fn significance_is_paired_over_the_same_queries_and_corrected() {
    let setup = Setup::new();
    let report = setup.path("report");
    let json = setup
        .compare(&[
            "--metrics",
            "ndcg@10,recall@100,mrr@10",
            "--baseline",
            "bm25",
            "--test",
            "t",
            "--correction",
            "holm",
            "--format",
            "json",
            "--report",
            report.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(
        json["metrics"],
        serde_json::json!(["ndcg@10", "recall@100", "mrr@10"])
    );
    assert_eq!(json["baseline"], "bm25");
    let row = &json["rows"][0];
    assert_eq!(row["dataset"], "tiny-a");
    assert_eq!(row["group"], "text");
    assert_eq!(row["queries"], 6);

    // The per-query file gives each retriever's scores on the same queries;
    // the t-test over them (then Holm over the two systems tested against
    // bm25) is what the table reports.
    let (queries, values) = per_query(&report.join("per_query.csv"));
    assert_eq!(queries, ["q0", "q1", "q2", "q3", "q4", "q5"]);
    let names = [
        "bm25",
        "dense:tiny-bert",
        "hybrid:rrf(k=60,bm25,dense:tiny-bert)",
    ];
    for (m, metric) in ["ndcg@10", "recall@100", "mrr@10"].iter().enumerate() {
        let scores = |r: usize| &values[&(names[r].to_string(), metric.to_string())];
        let raw: Vec<Option<f64>> = (0..3)
            .map(|r| {
                (r != 0)
                    .then(|| p_value(PairedTest::T, scores(r), scores(0)))
                    .flatten()
            })
            .collect();
        let adjusted = adjust(&raw, Correction::Holm);
        for r in 0..3 {
            let cell = &row["cells"][r][m];
            let mean = scores(r).iter().sum::<f64>() / 6.0;
            let reported = cell["mean"].as_f64().unwrap();
            assert!(
                (reported - mean).abs() < 1e-12,
                "{metric} {r}: {reported} vs {mean}"
            );
            assert!(cell["ci_low"].as_f64().unwrap() <= mean);
            assert!(cell["ci_high"].as_f64().unwrap() >= mean);
            if r == 0 {
                assert!(cell["p_value"].is_null(), "the baseline has no p-value");
                continue;
            }
            let (p, p_adj) = (cell["p_value"].as_f64(), cell["p_adjusted"].as_f64());
            match (raw[r], p) {
                (Some(expected), Some(p)) => assert!((expected - p).abs() < 1e-12, "{metric} {r}"),
                (expected, p) => assert_eq!(expected, p, "{metric} {r}"),
            }
            if let (Some(expected), Some(p_adj)) = (adjusted[r], p_adj) {
                assert!((expected - p_adj).abs() < 1e-12);
                assert!(p_adj >= p.unwrap());
                let verdict = cell["verdict"].as_str().unwrap();
                let base_mean = row["cells"][0][m]["mean"].as_f64().unwrap();
                if p_adj > 0.05 {
                    assert_eq!(verdict, "same");
                } else {
                    assert_eq!(verdict, if mean > base_mean { "better" } else { "worse" });
                }
            }
        }
    }

    // Every file of the report, each complete.
    for name in [
        "comparison.md",
        "comparison.tex",
        "comparison.json",
        "comparison.csv",
        "per_query.csv",
        "bars-ndcg_at_10.svg",
        "bars-recall_at_100.svg",
        "bars-mrr_at_10.svg",
        "differences-tiny-a-ndcg_at_10.svg",
    ] {
        let text = std::fs::read_to_string(report.join(name)).unwrap();
        if name.ends_with(".svg") {
            assert!(
                text.starts_with("<svg ") && text.trim_end().ends_with("</svg>"),
                "{name}"
            );
        }
    }
    let md = std::fs::read_to_string(report.join("comparison.md")).unwrap();
    assert!(
        md.contains("![ndcg@10: means with 95% intervals](bars-ndcg_at_10.svg)"),
        "{md}"
    );
    assert!(md.contains("bm25 (baseline)"), "{md}");
    assert!(md.contains("paired t-test, Holm-corrected"), "{md}");
    let tex = std::fs::read_to_string(report.join("comparison.tex")).unwrap();
    assert!(tex.contains("\\multicolumn{1}{c}{ndcg@10}"), "{tex}");
    assert!(
        tex.contains("\\begin{tabular}") && tex.contains("\\end{tabular}"),
        "{tex}"
    );
    let csv = std::fs::read_to_string(report.join("comparison.csv")).unwrap();
    assert!(csv.starts_with("dataset,split,group,queries,retriever,metric,mean,ci_low,ci_high,p_value,p_adjusted,verdict,published,published_source\n"), "{csv}");
    assert!(
        csv.contains(",\"hybrid:rrf(k=60,bm25,dense:tiny-bert)\",ndcg@10,"),
        "{csv}"
    );
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("comparison.json")).unwrap())
            .unwrap();
    assert_eq!(again, json);
}

#[test]
fn randomization_is_seeded_and_markers_follow_the_verdicts() {
    let setup = Setup::new();
    let args = [
        "--metrics",
        "ndcg@10",
        "--baseline",
        "dense:tiny-bert",
        "--test",
        "randomization",
        "--permutations",
        "2000",
        "--alpha",
        "0.5",
        "--correction",
        "none",
        "--format",
        "json",
    ];
    let first = setup.compare(&args).ok().json();
    let second = setup.compare(&args).ok().json();
    assert_eq!(first, second, "the same seed gives the same p-values");
    let mut other = args.to_vec();
    other.extend(["--seed", "7"]);
    let reseeded = setup.compare(&other).ok().json();
    assert_eq!(reseeded["significance"]["seed"], 7);
    assert_eq!(first["significance"]["permutations"], 2000);
    assert_eq!(first["significance"]["test"], "randomization");
    // With 2,000 permutations the p-value moves by Monte-Carlo error only.
    let p = |j: &Value| j["rows"][0]["cells"][0][0]["p_value"].as_f64().unwrap();
    assert!(
        (p(&first) - p(&reseeded)).abs() < 0.05,
        "{} {}",
        p(&first),
        p(&reseeded)
    );
    assert!(first["rows"][0]["cells"][1][0]["p_value"].is_null());

    let md = setup.compare(&args[..args.len() - 2]).ok().stdout();
    let bm25_line = md.lines().find(|l| l.starts_with("| bm25 |")).unwrap();
    let verdict = first["rows"][0]["cells"][0][0]["verdict"].as_str().unwrap();
    match verdict {
        "better" => assert!(bm25_line.contains('▲'), "{md}"),
        "worse" => assert!(bm25_line.contains('▼'), "{md}"),
        _ => assert!(!bm25_line.contains(['▲', '▼']), "{md}"),
    }
    assert!(md.contains("| dense:tiny-bert (baseline) |"), "{md}");
    assert!(
        md.contains("Fisher's randomization test (2000 permutations, seed 42)"),
        "{md}"
    );
}

#[test]
fn groups_are_averaged_and_published_values_shown() {
    let setup = Setup::new();
    let json = setup
        .quarry(&[
            "compare",
            "--datasets",
            "tiny-a,tiny-b,tiny-c,tiny-d",
            "--retrievers",
            "bm25",
            "--metrics",
            "ndcg@10,recall@100",
            "--paper",
            "--format",
            "json",
        ])
        .ok()
        .json();
    let groups: Vec<&str> = json["averages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["text", "code", "all"]);
    let mean = json["rows"][0]["cells"][0][0]["mean"].as_f64().unwrap();
    for average in json["averages"].as_array().unwrap() {
        assert!((average["values"][0][0].as_f64().unwrap() - mean).abs() < 1e-12);
    }
    let cell = &json["rows"][0]["cells"][0][0];
    assert_eq!(cell["published"], 0.5);
    assert_eq!(cell["published_source"], "Example et al. 2025, Table 1");
    assert!(json["rows"][1]["cells"][0][0]["published"].is_null());
    assert!(
        json["rows"][0]["cells"][0][1]["published"].is_null(),
        "recall@100 has none"
    );

    let md = setup
        .quarry(&[
            "compare",
            "--datasets",
            "tiny-a,tiny-c",
            "--retrievers",
            "bm25,dense:tiny-bert",
            "--paper",
        ])
        .exit(1)
        .stdout();
    assert!(md.contains(" (0.5000)") && md.contains(" (0.2500)"), "{md}");
    assert!(
        md.contains("published value (Example et al. 2025, Table 1)"),
        "{md}"
    );
    // dense:tiny-bert is built for tiny-a only: tiny-c's cell is missing, and
    // the command says how to build it and exits 1 after printing the table.
    assert!(md.contains('—'), "{md}");

    // A published value whose metric is not a metric names the registry.
    let bad = setup.path("bad.toml");
    std::fs::write(
        &bad,
        registry().replace(
            "metric = \"ndcg@10\"\nvalue = 0.25",
            "metric = \"ndcg10\"\nvalue = 0.25",
        ),
    )
    .unwrap();
    run(
        setup.command(&bad),
        &[
            "compare",
            "--datasets",
            "tiny-a",
            "--retrievers",
            "bm25",
            "--paper",
        ],
    )
    .exit(1)
    .has(Either, &["bad.toml", "published #2"]);
}

#[test]
fn a_missing_index_is_named_after_the_table() {
    let setup = Setup::new();
    setup
        .quarry(&[
            "compare",
            "--datasets",
            "tiny-a,tiny-c",
            "--retrievers",
            "bm25,dense:tiny-bert",
        ])
        .exit(1)
        .has(Stdout, &["| bm25 |", "—"])
        .has(
            Either,
            &[
                "missing: dense:tiny-bert on tiny-c",
                "build --model",
                "--dataset tiny-c",
            ],
        );
}

#[test]
fn contradictory_flags_are_usage_errors() {
    let setup = Setup::new();
    for (args, message) in [
        (
            vec!["--baseline", "dense:other"],
            "is not one of --retrievers",
        ),
        (vec!["--test", "t", "--alpha", "1.5"], "--alpha 1.5"),
        (vec!["--metrics", "ndcg@2000"], "raise --k"),
        (vec!["--metrics", "ndcg10"], "ndcg10"),
        (vec!["--split", "a/b"], "not a split name"),
    ] {
        setup.compare(&args).exit(2).has(Either, &[message]);
    }
    setup
        .quarry(&[
            "compare",
            "--datasets",
            "tiny-a",
            "--retrievers",
            "bm25",
            "--test",
            "t",
        ])
        .exit(2)
        .has(Either, &["at least two retrievers"]);
}

/// `run:PATH` puts another tool's run beside quarry's retrievers: Pyserini's
/// BM25 run of nfcorpus (its top 10) scores exactly as quarry's BM25 on
/// ndcg@10, query by query, so the test finds no difference; a hybrid fuses it.
#[test]
fn run_files_are_retrievers_in_compare_eval_and_hybrids() {
    let home = tempfile::tempdir().unwrap();
    let pyserini = common::pyserini_run();
    let run_spec = format!("run:{}", pyserini.display());
    let retrievers = format!("bm25,{run_spec},hybrid:rrf(bm25,{run_spec})");
    let json = common::quarry_home(
        home.path(),
        &[
            "compare",
            "--datasets",
            "nfcorpus",
            "--retrievers",
            &retrievers,
            "--metrics",
            "ndcg@10",
            "--baseline",
            "bm25",
            "--format",
            "json",
        ],
    )
    .ok()
    .json();
    assert_eq!(json["retrievers"][1], run_spec.as_str());
    let cells = &json["rows"][0]["cells"];
    let mean = |r: usize| cells[r][0]["mean"].as_f64().unwrap();
    assert!((mean(0) - 0.3218).abs() < 5e-5, "{}", mean(0));
    assert_eq!(mean(1), mean(0), "Pyserini's top 10 equals quarry's BM25");
    assert_eq!(cells[1][0]["p_value"], 1.0);
    assert_eq!(cells[1][0]["verdict"], "same");
    assert!(cells[2][0]["mean"].as_f64().unwrap() > 0.0);

    // eval --retriever run:PATH scores what eval --run PATH scores.
    let eval = |source: &[&str]| {
        let mut args = vec![
            "eval",
            "--dataset",
            "nfcorpus",
            "--metrics",
            "ndcg@10,mrr@10",
            "--json",
        ];
        args.extend_from_slice(source);
        common::quarry_home(home.path(), &args).ok().json()
    };
    let by_spec = eval(&["--retriever", &run_spec]);
    let by_flag = eval(&["--run", pyserini.to_str().unwrap()]);
    assert_eq!(by_spec["metrics"], by_flag["metrics"]);

    // A run file that is not there is an error naming it.
    common::quarry_home(
        home.path(),
        &[
            "compare",
            "--datasets",
            "nfcorpus",
            "--retrievers",
            "bm25,run:/no/such.trec",
        ],
    )
    .exit(1)
    .has(Either, &["/no/such.trec"]);
    // The search shell takes free text, which a run file cannot rank.
    common::quarry_home(
        home.path(),
        &["search", "--dataset", "nfcorpus", "--retriever", &run_spec],
    )
    .exit(2)
    .has(Either, &["ranks only the queries it holds"]);
}
