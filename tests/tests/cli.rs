//! End-to-end tests of the `quarry` binary: listing datasets, scoring run
//! files, and every kind of bad input, which must fail with a message that
//! names the file and line (or the field) and the right exit code.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml) so
//! cargo builds the binary first and passes its path.

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{assert_exit, quarry_command, registry_arg, repo_root, stderr, stdout};
use serde_json::Value;

mod common;

/// Runs quarry in `cwd`.
fn quarry(cwd: &Path, args: &[&str]) -> Output {
    quarry_command()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("quarry runs")
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path
}

/// A small valid BEIR folder: 3 docs, 2 queries, test qrels, and a run.
fn tiny_dataset(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("tiny");
    write(
        &root,
        "corpus.jsonl",
        "{\"_id\": \"d1\", \"title\": \"Apples\", \"text\": \"red fruit\"}\n\
         {\"_id\": \"d2\", \"title\": \"Pears\", \"text\": \"green fruit\", \"metadata\": {}}\n\
         {\"_id\": \"d3\", \"text\": \"no title here\"}\n",
    );
    write(
        &root,
        "queries.jsonl",
        "{\"_id\": \"q1\", \"text\": \"red\"}\n{\"_id\": \"q2\", \"text\": \"green\"}\n",
    );
    write(
        &root,
        "qrels/test.tsv",
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n",
    );
    let run = write(
        dir,
        "tiny.trec",
        "q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 1.0 t\nq2 Q0 d1 1 3.0 t\nq2 Q0 d2 2 2.0 t\n",
    );
    (root, run)
}

#[test]
fn datasets_lists_the_registry_with_local_counts() {
    let cwd = tempfile::tempdir().unwrap();
    let output = quarry(cwd.path(), &["--registry", &registry_arg(), "datasets"]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("nfcorpus") && text.contains("3633") && text.contains("323 / 12334"),
        "{text}"
    );

    let output = quarry(
        cwd.path(),
        &["--registry", &registry_arg(), "datasets", "--json"],
    );
    assert_exit(&output, 0);
    let listing: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let find = |name: &str| {
        listing["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()
            .clone()
    };
    let nfcorpus = find("nfcorpus");
    assert_eq!(nfcorpus["docs"], 3633);
    assert_eq!(nfcorpus["split_queries"], 323);
    assert_eq!(nfcorpus["split_qrels"], 12334);
    assert_eq!(
        nfcorpus["qrels_splits"],
        serde_json::json!(["dev", "test", "train"])
    );
    let arguana = find("arguana");
    assert!(arguana["corpus"].is_null());
    assert!(arguana["queries"].is_string());
}

#[test]
fn registry_is_found_through_the_environment() {
    let cwd = tempfile::tempdir().unwrap();
    let output = quarry_command()
        .args(["datasets", "--json"])
        .current_dir(cwd.path())
        .env("QUARRY_REGISTRY", registry_arg())
        .output()
        .unwrap();
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("\"nfcorpus\""));
}

#[test]
fn eval_scores_the_pyserini_nfcorpus_run_like_pytrec_eval() {
    let cwd = tempfile::tempdir().unwrap();
    let run =
        repo_root().join("tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.top10.trec");
    let output = quarry(
        cwd.path(),
        &[
            "--registry",
            &registry_arg(),
            "eval",
            "--dataset",
            "nfcorpus",
            "--run",
            run.to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&output, 0);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo_root().join("tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let ndcg = report["metrics"]["ndcg@10"].as_f64().unwrap();
    assert!(
        (ndcg - reference["ndcg@10"].as_f64().unwrap()).abs() < 1e-9,
        "{ndcg}"
    );
    assert_eq!(report["queries_evaluated"], 323);
    assert_eq!(report["split"], "test");
    assert_eq!(report["missing_qrels_docs"]["judgments"], 0);
    // The run is a top-10 cut: deeper metrics are flagged.
    assert!(
        report["warnings"].to_string().contains("recall@100"),
        "{}",
        report["warnings"]
    );

    let output = quarry(
        cwd.path(),
        &[
            "--registry",
            &registry_arg(),
            "eval",
            "--dataset",
            "nfcorpus",
            "--run",
            run.to_str().unwrap(),
        ],
    );
    assert_exit(&output, 0);
    let table = stdout(&output);
    assert!(
        table.contains("ndcg@10") && table.contains("0.3218") && table.contains("323 queries"),
        "{table}"
    );
}

/// Replaces `dir/name` by `dir/name.gz` or `dir/name.zst` with the same content.
fn compress(dir: &Path, name: &str, suffix: &str) -> PathBuf {
    let plain = dir.join(name);
    let content = std::fs::read(&plain).unwrap();
    let packed = dir.join(format!("{name}{suffix}"));
    match suffix {
        ".gz" => {
            use std::io::Write;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(&content).unwrap();
            std::fs::write(&packed, encoder.finish().unwrap()).unwrap();
        }
        ".zst" => std::fs::write(&packed, zstd::encode_all(&content[..], 3).unwrap()).unwrap(),
        other => panic!("{other}"),
    }
    std::fs::remove_file(plain).unwrap();
    packed
}

#[test]
fn eval_works_on_a_bare_folder_and_compressed_files() {
    let dir = tempfile::tempdir().unwrap();
    let (root, run) = tiny_dataset(dir.path());
    let args = |run: &Path| -> Vec<String> {
        [
            "eval",
            "--dataset",
            root.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
            "--metrics",
            "mrr@10,p@1",
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let plain = quarry(
        dir.path(),
        &args(&run).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_exit(&plain, 0);
    let report: Value = serde_json::from_str(&stdout(&plain)).unwrap();
    assert_eq!(report["dataset"], "tiny");
    // q1: d1 first -> 1; q2: d1 (unjudged) then d2 -> 1/2.
    assert_eq!(report["metrics"]["mrr@10"], 0.75);
    assert_eq!(report["metrics"]["p@1"], 0.5);

    compress(&root, "corpus.jsonl", ".gz");
    compress(&root.join("qrels"), "test.tsv", ".zst");
    let run = compress(dir.path(), "tiny.trec", ".zst");
    let packed = quarry(
        dir.path(),
        &args(&run).iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_exit(&packed, 0);
    let packed_report: Value = serde_json::from_str(&stdout(&packed)).unwrap();
    assert_eq!(packed_report["metrics"], report["metrics"]);
    // The checksum is over the uncompressed bytes, so compression does not change it.
    assert_eq!(packed_report["corpus_sha256"], report["corpus_sha256"]);
}

#[test]
fn unknown_dataset_lists_the_known_ones() {
    let cwd = tempfile::tempdir().unwrap();
    let output = quarry(
        cwd.path(),
        &[
            "--registry",
            &registry_arg(),
            "eval",
            "--dataset",
            "nfcorpsu",
            "--run",
            "x.trec",
        ],
    );
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("unknown dataset `nfcorpsu`"), "{err}");
    assert!(
        err.contains("nfcorpus") && err.contains("arguana") && err.contains("cosqa"),
        "{err}"
    );
}

/// One malformed line in one input file, and what quarry must say about it.
struct MalformedCase {
    /// Path under the test folder (the tiny dataset is `tiny/`).
    file: &'static str,
    content: &'static str,
    /// Replace the file by its zstd-compressed form.
    compressed: bool,
    /// Score the file as the run (`--run`) instead of the tiny dataset's run.
    is_run: bool,
    /// Retrieve with BM25 instead of scoring a run (queries are read then).
    retrieve: bool,
    /// `file:line` and a word of the reason.
    expected: [&'static str; 2],
}

#[test]
fn malformed_lines_name_file_and_line() {
    let cases = [
        MalformedCase {
            file: "tiny/corpus.jsonl",
            content: "{\"_id\": \"d1\", \"text\": \"x\"}\n{\"_id\": \"d2\", \"text\": }\n",
            compressed: false,
            is_run: false,
            retrieve: false,
            expected: ["corpus.jsonl:2", "\"_id\""],
        },
        MalformedCase {
            file: "tiny/queries.jsonl",
            content: "{\"_id\": \"q1\", \"text\": \"red\"}\n{\"_id\": \"q2\"}\n",
            compressed: true,
            is_run: false,
            retrieve: true,
            expected: ["queries.jsonl.zst:2", "text"],
        },
        MalformedCase {
            file: "tiny/qrels/test.tsv",
            content: "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\tvery\n",
            compressed: false,
            is_run: false,
            retrieve: false,
            expected: ["test.tsv:3", "integer relevance grade"],
        },
        MalformedCase {
            file: "bad.trec",
            content: "q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 t\n",
            compressed: false,
            is_run: true,
            retrieve: false,
            expected: ["bad.trec:2", "qid Q0 docid rank score tag"],
        },
    ];
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let (root, tiny_run) = tiny_dataset(dir.path());
        let path = write(dir.path(), case.file, case.content);
        if case.compressed {
            let name = path.file_name().unwrap().to_str().unwrap();
            compress(path.parent().unwrap(), name, ".zst");
        }
        let run = if case.is_run { path } else { tiny_run };
        let source = if case.retrieve {
            ["--retriever", "bm25"]
        } else {
            ["--run", run.to_str().unwrap()]
        };
        let mut args = vec!["eval", "--dataset", root.to_str().unwrap()];
        args.extend(source);
        let output = quarry(dir.path(), &args);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            case.expected.iter().all(|part| err.contains(part)),
            "{}: expected {:?} in\n{err}",
            case.file,
            case.expected
        );
    }
}

#[test]
fn qrels_doc_missing_from_corpus_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let (root, run) = tiny_dataset(dir.path());
    write(
        &root,
        "qrels/test.tsv",
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\tghost\t1\n",
    );
    let output = quarry(
        dir.path(),
        &[
            "eval",
            "--dataset",
            root.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
            "--json",
        ],
    );
    assert_exit(&output, 0);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["missing_qrels_docs"]["judgments"], 1);
    assert_eq!(
        report["missing_qrels_docs"]["examples"],
        serde_json::json!(["ghost"])
    );
    assert!(report["warnings"]
        .to_string()
        .contains("missing from the corpus"));

    let output = quarry(
        dir.path(),
        &[
            "eval",
            "--dataset",
            root.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
        ],
    );
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("warning: 1 qrels judgments name 1 doc ids missing"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn registry_problems_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, run) = tiny_dataset(dir.path());
    let entry =
        "[[dataset]]\nname = \"tiny\"\npath = \"tiny\"\nsplit = \"test\"\nremove_self = false\n\
                 corpus_sha256 = \"SHA\"\nurl = \"\"\nkind = \"text\"\n";
    // Unknown field.
    let registry = write(
        dir.path(),
        "datasets.toml",
        &format!("{}colour = \"red\"\n", entry.replace("SHA", "")),
    );
    let output = quarry(
        dir.path(),
        &["eval", "--dataset", "tiny", "--run", run.to_str().unwrap()],
    );
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("colour") && err.contains(registry.to_str().unwrap()),
        "{err}"
    );

    // Checksum mismatch (registry found in the current directory).
    write(
        dir.path(),
        "datasets.toml",
        &entry.replace("SHA", &"0".repeat(64)),
    );
    let output = quarry(
        dir.path(),
        &["eval", "--dataset", "tiny", "--run", run.to_str().unwrap()],
    );
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("sha256") && err.contains("corpus.jsonl"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let cwd = tempfile::tempdir().unwrap();
    let reg = registry_arg();
    for args in [
        vec!["eval", "--dataset", "nfcorpus"],
        vec![
            "eval",
            "--dataset",
            "nfcorpus",
            "--run",
            "r.trec",
            "--retriever",
            "bm25",
        ],
        vec![
            "eval",
            "--dataset",
            "nfcorpus",
            "--run",
            "r.trec",
            "--metrics",
            "ndcg@0",
        ],
        vec![
            "eval",
            "--dataset",
            "nfcorpus",
            "--retriever",
            "bm25",
            "--k",
            "10",
        ],
        vec!["eval", "--dataset", "nfcorpus", "--retriever", "tfidf"],
        vec!["frobnicate"],
    ] {
        let mut full = vec!["--registry", reg.as_str()];
        full.extend(args.iter().copied());
        let output = quarry(cwd.path(), &full);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains("error"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn bm25_on_nfcorpus_matches_pyserini_and_reuses_its_index() {
    let cwd = tempfile::tempdir().unwrap();
    let home = cwd.path().join("home");
    let run_out = cwd.path().join("bm25.trec");
    let reg = registry_arg();
    let eval = |extra: &[&str]| -> Value {
        let mut args = vec![
            "--registry",
            reg.as_str(),
            "--home",
            home.to_str().unwrap(),
            "eval",
            "--dataset",
            "nfcorpus",
        ];
        args.extend_from_slice(extra);
        args.push("--json");
        let output = quarry(cwd.path(), &args);
        assert_exit(&output, 0);
        serde_json::from_str(&stdout(&output)).unwrap()
    };
    let built = eval(&[
        "--retriever",
        "bm25",
        "--run-out",
        run_out.to_str().unwrap(),
    ]);
    assert_eq!(built["source"]["index_reused"], false);
    assert_eq!(built["queries_evaluated"], 323);
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo_root().join("tests/fixtures/reference/pyserini_bm25_flat_nfcorpus_test.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let ndcg = built["metrics"]["ndcg@10"].as_f64().unwrap();
    let pyserini = reference["ndcg@10"].as_f64().unwrap();
    assert!(
        (ndcg - pyserini).abs() < 1e-3,
        "quarry {ndcg} vs Pyserini {pyserini}"
    );
    for metric in ["recall@100", "recall@1000"] {
        let ours = built["metrics"][metric].as_f64().unwrap();
        let published = reference["meta"]["published_expected"][metric]
            .as_f64()
            .unwrap();
        assert!(
            (ours - published).abs() < 5e-4,
            "{metric}: quarry {ours} vs published {published}"
        );
    }

    // Same corpus checksum: the index in the catalog is reused, same numbers.
    let reused = eval(&["--retriever", "bm25"]);
    assert_eq!(reused["source"]["index_reused"], true);
    assert_eq!(reused["source"]["index_dir"], built["source"]["index_dir"]);
    assert_eq!(reused["metrics"], built["metrics"]);

    // The written run scores the same when read back.
    let rescored = eval(&["--run", run_out.to_str().unwrap()]);
    assert_eq!(rescored["metrics"], built["metrics"]);
}

/// Without a terminal `quarry train` logs a line per micro-batch of its first step and a line
/// per step on stderr (the bar would not draw in a batch job's log), and `--json` prints the
/// summary with its loss curve.
#[test]
fn train_logs_a_line_per_step_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let fixtures = repo_root().join("tests/fixtures/lora");
    let model = fixtures.join("tiny_qwen2");
    let train_file = fixtures.join("train.jsonl");
    let output = tmp.path().join("adapter");
    let out = quarry(
        tmp.path(),
        &[
            "train",
            "--model",
            model.to_str().unwrap(),
            "--train",
            train_file.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--rank",
            "4",
            "--batch",
            "4",
            "--micro-batch",
            "2",
            "--group-size",
            "3",
            "--query-max-len",
            "32",
            "--passage-max-len",
            "64",
            "--max-steps",
            "2",
            "--json",
        ],
    );
    assert_exit(&out, 0);
    let log = stderr(&out);
    assert!(
        log.contains("step 1 micro-batch 1: forward and backward after")
            && log.contains("step 1 micro-batch 2:"),
        "{log}"
    );
    assert!(
        log.contains("step 1/2: loss ") && log.contains("step 2/2: loss "),
        "{log}"
    );
    assert!(!log.contains("step 2 micro-batch"), "{log}");
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["step_losses"].as_array().unwrap().len(), 2);
    assert!(output.join("adapter_model.safetensors").is_file());
}
