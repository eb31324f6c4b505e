//! End-to-end tests of `quarry search` fed through a pipe (its scriptable
//! mode): the top BM25 hit of nfcorpus queries must be Pyserini's top hit
//! (tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.top10.trec),
//! and commands and mistakes must answer with a message, never a crash.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml) so
//! cargo builds the binary first and passes its path.

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;

use common::{output_with_stdin, quarry_command, registry_arg, repo_root, result_blocks};

mod common;

/// One data home for every test here, so the nfcorpus BM25 index is built
/// once (the first test to get here builds it; the others wait on the lock).
fn home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `quarry search ARGS` with `input` on stdin.
fn search(args: &[&str], input: &str) -> Output {
    let _one_at_a_time = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut command = quarry_command();
    command
        .arg("search")
        .args(args)
        .arg("--registry")
        .arg(registry_arg())
        .arg("--home")
        .arg(home());
    output_with_stdin(command, input)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn pyserini_top1() -> HashMap<String, String> {
    let path =
        repo_root().join("tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.top10.trec");
    std::fs::read_to_string(path)
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
    let output = search(
        &["--dataset", "nfcorpus", "--retriever", "bm25", "--k", "3"],
        &input,
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout,
        text(&output.stderr)
    );
    let blocks = result_blocks(&stdout);
    assert_eq!(blocks.len(), asked.len(), "{stdout}");
    let reference = pyserini_top1();
    for ((id, query), block) in asked.iter().zip(&blocks) {
        assert_eq!(block.len(), 3, "{query}: {stdout}");
        assert_eq!(block[0], reference[*id], "{query}: {stdout}");
    }
    // No prompt decoration on a pipe; the latency split is printed.
    assert!(!stdout.contains("nfcorpus>"), "{stdout}");
    assert!(
        stdout.contains("encode ") && stdout.contains(" ms, search "),
        "{stdout}"
    );
    // Query terms are marked with ** when stdout is not a terminal.
    assert!(stdout.contains("**"), "{stdout}");
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
    let output = search(&["--dataset", "nfcorpus"], input);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
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
        text(&raw.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["_id"] == "MED-4711")
            .unwrap()
    };
    assert!(
        stdout.contains(corpus_doc["text"].as_str().unwrap()),
        "{stdout}"
    );
    assert!(stdout.contains("  bm25: rank 1 (score"), "{stdout}");
    assert!(stdout.contains("hybrid:rrf(k=60,bm25,bm25)"), "{stdout}");
    assert!(stdout.contains(":dataset NAME"), "help: {stdout}");
    for needle in [
        "`:k zero`: give a whole number",
        "unknown command `:bogus`; type :help",
        "no document `NOPE-1` in nfcorpus",
        "rrf takes 2 retrievers",
        "dense:missing",
    ] {
        assert!(
            stderr.contains(needle),
            "missing `{needle}` in stderr:\n{stderr}"
        );
    }
    assert!(!stdout.contains("never read"), "{stdout}");
}

#[test]
fn bad_retriever_flag_is_a_usage_error() {
    let output = search(
        &[
            "--dataset",
            "nfcorpus",
            "--retriever",
            "hybrid:max(bm25,bm25)",
        ],
        "",
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("unknown fusion `max`"));
}

/// `quarry eval --retriever hybrid:...`: RRF of BM25 with itself keeps BM25's
/// order (scores 2/(k+rank) strictly fall with rank), so its metrics must be
/// Pyserini's BM25 numbers (pytrec_eval, tests/fixtures/reference).
#[test]
fn eval_of_rrf_of_bm25_with_itself_equals_pyserini_bm25() {
    let _one_at_a_time = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let output = quarry_command()
        .args([
            "eval",
            "--dataset",
            "nfcorpus",
            "--retriever",
            "hybrid:rrf(bm25,bm25)",
        ])
        .args(["--metrics", "ndcg@10,recall@100,recall@1000", "--json"])
        .arg("--registry")
        .arg(registry_arg())
        .arg("--home")
        .arg(home())
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo_root().join("tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(report["source"]["retriever"], "hybrid:rrf(k=60,bm25,bm25)");
    for metric in ["ndcg@10", "recall@100", "recall@1000"] {
        let got = report["metrics"][metric].as_f64().unwrap();
        let want = reference[metric].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-9,
            "{metric}: {got} vs Pyserini {want}"
        );
    }
}
