//! End-to-end tests of `quarry search` fed through a pipe (its scriptable
//! mode): the top BM25 hit of nfcorpus queries must be Pyserini's top hit
//! (tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.top10.trec),
//! and commands and mistakes must answer with a message, never a crash.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml) so
//! cargo builds the binary first and passes its path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use common::Stream::{Stderr, Stdout};
use common::{
    assert_matches_pyserini, pyserini_run, quarry_command, registry_arg, repo_root, result_blocks,
    run_with_stdin, run_with_stdin_bytes, Ran,
};

mod common;

/// One data home for every test here, so the nfcorpus BM25 index is built
/// once (the first test to get here builds it; the others wait on the lock).
fn home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `quarry COMMAND ARGS --registry REPO/datasets.toml --home HOME` (the
/// shared home), one at a time, with `input` on stdin.
fn quarry(command: &str, args: &[&str], input: &str) -> Ran {
    let _one_at_a_time = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let registry = registry_arg();
    let shared = ["--registry", &registry, "--home", home().to_str().unwrap()];
    run_with_stdin(
        quarry_command(),
        &[&[command], args, &shared].concat(),
        input,
    )
}

fn pyserini_top1() -> HashMap<String, String> {
    std::fs::read_to_string(pyserini_run())
        .unwrap()
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f[3] == "1").then(|| (f[0].to_string(), f[2].to_string()))
        })
        .collect()
}

#[test]
fn piped_queries_top_hit_equals_pyserini() {
    // Query texts of nfcorpus queries.jsonl; their Pyserini top-1 is clear
    // of the runner-up by more than score rounding.
    let asked = [
        ("PLAIN-12", "Exploiting Autophagy to Live Longer"),
        (
            "PLAIN-33",
            "What\u{2019}s Driving America\u{2019}s Obesity Problem?",
        ),
        ("PLAIN-56", "Foods for Glaucoma"),
    ];
    let input: String = asked.iter().map(|(_, q)| format!("{q}\n")).collect();
    let searched = quarry(
        "search",
        &["--dataset", "nfcorpus", "--retriever", "bm25", "--k", "3"],
        &input,
    );
    let stdout = searched.ok().stdout();
    let blocks = result_blocks(&stdout);
    assert_eq!(blocks.len(), asked.len(), "{stdout}");
    let reference = pyserini_top1();
    for ((id, query), block) in asked.iter().zip(&blocks) {
        assert_eq!(block.len(), 3, "{query}: {stdout}");
        assert_eq!(block[0], reference[*id], "{query}: {stdout}");
    }
    // No prompt decoration on a pipe; the latency split is printed.
    // Query terms are marked with ** when stdout is not a terminal.
    searched
        .lacks(Stdout, &["nfcorpus>"])
        .has(Stdout, &["encode ", " ms, search ", "**"]);
}

#[test]
fn commands_work_and_mistakes_are_messages() {
    let input = "\
:k 2
exploiting autophagy
:doc MED-4711
:rank MED-4711
:k zero
:bogus
:doc NOPE-1
:retriever hybrid:rrf(bm25)
:retriever dense:missing
:retriever hybrid:rrf(bm25,bm25)
exploiting autophagy
:help
:quit
this line is never read
";
    let searched = quarry("search", &["--dataset", "nfcorpus"], input);
    let stdout = searched.ok().stdout();
    let blocks = result_blocks(&stdout);
    assert_eq!(blocks.len(), 2, "{stdout}");
    assert_eq!(blocks[0].len(), 2, "{stdout}");
    assert_eq!(blocks[0][0], "MED-4711", "{stdout}");
    // RRF of bm25 with itself keeps bm25's order.
    assert_eq!(blocks[1], blocks[0], "{stdout}");
    // :doc prints the document in full.
    let corpus_doc = {
        let raw = std::process::Command::new("zstdcat")
            .arg(repo_root().join("data/nfcorpus/corpus.jsonl.zst"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&raw.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["_id"] == "MED-4711")
            .unwrap()
    };
    // :help lists the commands (`:dataset NAME`).
    searched
        .has(
            Stdout,
            &[
                corpus_doc["text"].as_str().unwrap(),
                "  bm25: rank 1 (score",
                "hybrid:rrf(k=60,bm25,bm25)",
                ":dataset NAME",
            ],
        )
        .has(
            Stderr,
            &[
                "`:k zero`: give a whole number",
                "unknown command `:bogus`; type :help",
                "no document `NOPE-1` in nfcorpus",
                "rrf takes 2 retrievers",
                "dense:missing",
            ],
        )
        .lacks(Stdout, &["never read"]);
}

#[test]
fn bad_retriever_flag_is_a_usage_error() {
    let retriever = [
        "--dataset",
        "nfcorpus",
        "--retriever",
        "hybrid:max(bm25,bm25)",
    ];
    quarry("search", &retriever, "")
        .exit(2)
        .has(Stderr, &["unknown fusion `max`"]);
}

/// `quarry eval --retriever hybrid:...`: RRF of BM25 with itself keeps BM25's
/// order (scores 2/(k+rank) strictly fall with rank), so its metrics must be
/// Pyserini's BM25 numbers (pytrec_eval, tests/fixtures/reference).
#[test]
fn eval_of_rrf_of_bm25_with_itself_equals_pyserini_bm25() {
    let metrics = ["ndcg@10", "recall@100", "recall@1000"];
    let metric_list = metrics.join(",");
    let args = [
        "--dataset",
        "nfcorpus",
        "--retriever",
        "hybrid:rrf(bm25,bm25)",
        "--metrics",
        &metric_list,
        "--json",
    ];
    let report = quarry("eval", &args, "").ok().json();
    assert_eq!(report["source"]["retriever"], "hybrid:rrf(k=60,bm25,bm25)");
    assert_matches_pyserini(&report, &metrics, 1e-9);
}

#[test]
fn a_line_that_is_not_utf8_is_skipped_and_the_shell_goes_on() {
    let _one_at_a_time = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let registry = registry_arg();
    let args = [
        "search",
        "--dataset",
        "nfcorpus",
        "--k",
        "1",
        "--registry",
        &registry,
        "--home",
        home().to_str().unwrap(),
    ];
    let ran = run_with_stdin_bytes(quarry_command(), &args, b"caf\xe9 latte\nstatin\n");
    ran.ok()
        .has(Stderr, &["stdin line 1: not UTF-8 text; skipped"])
        .has(Stdout, &["statin"]);
}

#[test]
fn a_query_by_id_marks_its_judged_hits() {
    // PLAIN-2's top BM25 hits include judged documents (Pyserini's top 10 has them).
    let input = ":k 5\n:q PLAIN-2\n:q NOPE\n:q\nnever read\n";
    let searched = quarry("search", &["--dataset", "nfcorpus"], input);
    let stdout = searched.ok().stdout();
    assert!(
        stdout.contains("query PLAIN-2: Do Cholesterol Statin Drugs Cause Breast Cancer?"),
        "{stdout}"
    );
    assert!(stdout.contains("relevant in qrels/test]"), "{stdout}");
    assert!(stdout.contains(" [rel 2]"), "{stdout}");
    // The top hit is Pyserini's for this query text.
    let top = result_blocks(&stdout)[0][0].clone();
    assert_eq!(top, pyserini_top1()["PLAIN-2"], "{stdout}");
    searched
        .has(Stderr, &["no query `NOPE`"])
        .lacks(Stdout, &["never read"]);
}
