//! End-to-end tests of `quarry mine` on a tiny BEIR folder with a train
//! split: the groups it writes read back with the engine's Tevatron reader,
//! hold exactly the relevant qrels docs as positives, never a judged doc as
//! a negative, take negatives in the retriever's order (as `quarry eval
//! --run-out` ranks them), and are byte-identical from one run to the next.
//! Dense and hybrid mining use the tiny random BERT of `encoder/fixtures`.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use common::write_file;
use common::Stream::Stderr;
use quarry_engine::run::Run;
use quarry_engine::train_data::{load_train_groups, TrainGroup};
use tiny_fixtures::{TinyDense, DENSE};

mod common;
mod tiny_fixtures;

/// Train qrels of the tiny folder: query -> [(doc, grade)]. q2's only
/// relevant doc is not in the corpus (no group); q4 has a grade-0 judgment
/// that must not come back as a negative; q5 has no train qrels.
const TRAIN_QRELS: [(&str, &[(&str, i32)]); 5] = [
    ("q0", &[("d0", 1), ("d3", 2)]),
    ("q1", &[("d5", 1), ("d1", 0)]),
    ("q2", &[("dx", 1)]),
    ("q3", &[("d9", 1), ("d12", 1), ("d2", 0)]),
    ("q4", &[("d4", 2), ("d16", 0), ("d28", 0)]),
];

/// The tiny model and a 30-doc tiny folder with [`TRAIN_QRELS`] as its train split.
fn tiny_with_train_split() -> TinyDense {
    let tiny = TinyDense::new(30);
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for (query, docs) in TRAIN_QRELS {
        for (doc, grade) in docs {
            qrels += &format!("{query}\t{doc}\t{grade}\n");
        }
    }
    write_file(&tiny.data, "qrels/train.tsv", &qrels);
    tiny
}

fn judged() -> HashMap<&'static str, HashMap<&'static str, i32>> {
    TRAIN_QRELS
        .iter()
        .map(|(q, docs)| (*q, docs.iter().copied().collect()))
        .collect()
}

/// Checks every group against the qrels and, when given, the ranking the
/// negatives must follow (judged docs removed, first `n`).
fn check_groups(groups: &[TrainGroup], run: Option<&Run>, n: usize) {
    let judged = judged();
    for group in groups {
        let qrels = &judged[group.query_id.as_str()];
        let mut expected_positives: Vec<(&str, i32)> = qrels
            .iter()
            .filter(|(d, g)| **g > 0 && **d != "dx")
            .map(|(d, g)| (*d, *g))
            .collect();
        expected_positives.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let positives: Vec<&str> = group.positives.iter().map(|p| p.doc_id.as_str()).collect();
        assert_eq!(
            positives,
            expected_positives.iter().map(|p| p.0).collect::<Vec<_>>(),
            "{}",
            group.query_id
        );
        for negative in &group.negatives {
            assert!(
                !qrels.contains_key(negative.doc_id.as_str()),
                "{}: judged doc {} mined as a negative",
                group.query_id,
                negative.doc_id
            );
        }
        let distinct: HashSet<&str> = group.negatives.iter().map(|p| p.doc_id.as_str()).collect();
        assert_eq!(distinct.len(), group.negatives.len());
        assert!(!group.negatives.is_empty() && group.negatives.len() <= n);
        if let Some(run) = run {
            let expected: Vec<&str> = run.by_query[&group.query_id]
                .iter()
                .map(|h| h.doc_id.as_str())
                .filter(|d| !qrels.contains_key(d))
                .take(n)
                .collect();
            let negatives: Vec<&str> = group.negatives.iter().map(|p| p.doc_id.as_str()).collect();
            assert_eq!(negatives, expected, "{}", group.query_id);
        }
    }
}

/// The run `quarry eval` writes for the train split's queries with `retriever`, `k` deep:
/// what mining must have followed.
fn train_split_run(tiny: &TinyDense, retriever: &str, k: usize, run_file: &Path) -> Run {
    let k = k.to_string();
    let run_out = run_file.to_str().unwrap();
    let rest = [
        "--split",
        "train",
        "--k",
        &k,
        "--metrics",
        "ndcg@10",
        "--run-out",
        run_out,
    ];
    tiny.eval(retriever, &rest).ok();
    Run::read(run_file).unwrap()
}

#[test]
fn bm25_mining_excludes_judged_docs_and_is_deterministic() {
    let tiny = tiny_with_train_split();
    let out = tiny.path("mined.jsonl");
    let mine = |out: &Path, extra: &[&str]| {
        let mut args = vec!["--depth", "20", "--negatives", "4", "--json"];
        args.extend(["--output", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        tiny.on_data("mine", "bm25", &args).ok().json()
    };
    let summary = mine(&out, &[]);
    assert_eq!(summary["split"], "train");
    assert_eq!(summary["queries"], 5);
    assert_eq!(summary["queries_without_positives"], 1);
    assert_eq!(summary["groups_written"], 4);
    assert_eq!(summary["positives_missing_from_corpus"], 1);
    assert_eq!(summary["sample"], "top");

    let groups = load_train_groups(&out).unwrap();
    assert_eq!(
        groups
            .iter()
            .map(|g| g.query_id.as_str())
            .collect::<Vec<_>>(),
        vec!["q0", "q1", "q3", "q4"]
    );
    // Texts come from the corpus.
    let q0 = &groups[0];
    assert_eq!(q0.query, "apple light");
    assert_eq!(q0.positives[0].doc_id, "d3");
    assert_eq!(q0.positives[0].title, "cloud");
    let negatives: usize = groups.iter().map(|g| g.negatives.len()).sum();
    assert_eq!(
        summary["avg_negatives"].as_f64().unwrap(),
        negatives as f64 / 4.0
    );

    // Negatives follow BM25's ranking of the same queries.
    let run = train_split_run(&tiny, "bm25", 20, &tiny.path("train.run"));
    check_groups(&groups, Some(&run), 4);

    // Same input, same bytes; the summary's checksum is the file's.
    let again = tiny.path("again.jsonl");
    let summary_again = mine(&again, &[]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    assert_eq!(summary["output_sha256"], summary_again["output_sha256"]);

    // Skipping the top candidates shifts the window.
    let skipped = tiny.path("skip.jsonl");
    mine(&skipped, &["--skip-top", "1"]);
    let skipped: HashMap<String, TrainGroup> = load_train_groups(&skipped)
        .unwrap()
        .into_iter()
        .map(|g| (g.query_id.clone(), g))
        .collect();
    for without in &groups {
        if without.negatives.len() > 1 {
            let with = &skipped[&without.query_id];
            assert_eq!(with.negatives[0], without.negatives[1]);
        }
    }

    // Random sampling: seeded, reproducible, never a judged doc.
    let random = |name: &str, seed: &str| {
        let path = tiny.path(name);
        let summary = mine(&path, &["--sample", "random", "--seed", seed]);
        assert_eq!(summary["sample"], format!("random(seed={seed})"));
        std::fs::read(&path).unwrap()
    };
    let first = random("r1.jsonl", "7");
    assert_eq!(first, random("r2.jsonl", "7"));
    check_groups(&load_train_groups(&tiny.path("r1.jsonl")).unwrap(), None, 4);
}

#[test]
fn dense_and_hybrid_mining_use_the_built_index() {
    let tiny = tiny_with_train_split();
    tiny.build().ok();
    for retriever in [DENSE, "hybrid:rrf(bm25,dense:tiny-bert)"] {
        let out = tiny.path("mined.jsonl");
        let run_file = tiny.path("train.run");
        let mut args = vec!["--depth", "25", "--negatives", "6", "--json"];
        args.extend(["--output", out.to_str().unwrap()]);
        let summary = tiny.on_data("mine", retriever, &args).ok().json();
        assert_eq!(summary["groups_written"], 4, "{retriever}");
        // Every train query has a doc of the 30 in its dense top 25 that is
        // unjudged, so every group is full.
        assert_eq!(summary["avg_negatives"], 6.0, "{retriever}");
        let run = train_split_run(&tiny, retriever, 25, &run_file);
        check_groups(&load_train_groups(&out).unwrap(), Some(&run), 6);
    }
}

#[test]
fn bad_requests_fail_cleanly_without_output() {
    let tiny = TinyDense::new(30);
    let out = tiny.path("mined.jsonl");
    for (retriever, rest, code, expected) in [
        // The tiny folder has no train split: the message lists the splits present.
        ("bm25", "", 1, &["train", "splits present: test"][..]),
        // A window too small for the negatives asked for is a usage error.
        (
            "bm25",
            "--split test --depth 10 --negatives 8 --skip-top 5",
            2,
            &["--depth 10"],
        ),
        // A dense index that was never built names the build command.
        ("dense:nothing", "--split test", 1, &["quarry build"]),
    ] {
        let mut args: Vec<&str> = rest.split_whitespace().collect();
        args.extend(["--output", out.to_str().unwrap()]);
        tiny.on_data("mine", retriever, &args)
            .exit(code)
            .has(Stderr, expected);
    }
    assert!(!out.exists());
}

#[test]
fn tevatron_v2_output_holds_ids_that_read_back_to_the_same_groups() {
    let tiny = tiny_with_train_split();
    let (v1, v2) = (tiny.path("v1.jsonl"), tiny.path("v2.jsonl"));
    for (out, format) in [(&v1, "tevatron"), (&v2, "tevatron-v2")] {
        let args = [
            "--depth",
            "20",
            "--negatives",
            "4",
            "--format",
            format,
            "--output",
            out.to_str().unwrap(),
        ];
        tiny.on_data("mine", "bm25", &args).ok();
    }
    let text = std::fs::read_to_string(&v2).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["query_text"], "apple light");
    assert_eq!(first["positive_document_ids"][0], "d3");
    assert!(first.get("positive_passages").is_none());
    assert!(text.len() < std::fs::read_to_string(&v1).unwrap().len());
    // Read back against the corpus, the ids give the inline file's groups exactly.
    let corpus = quarry_engine::dataset::read_corpus_file(&tiny.data.join("corpus.jsonl")).unwrap();
    let from_ids = quarry_engine::train_data::load_train_groups_with_corpus(&v2, &corpus).unwrap();
    assert_eq!(from_ids, load_train_groups(&v1).unwrap());
}
