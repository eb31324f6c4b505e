//! End-to-end tests of the `quarry` binary: listing datasets, scoring run
//! files, and every kind of bad input, which must fail with a message that
//! names the file and line (or the field) and the right exit code.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml) so
//! cargo builds the binary first and passes its path.

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Stream::{Stderr, Stdout};
use common::{
    assert_matches_pyserini, assert_metric_near, on_dataset, pyserini_reference, pyserini_run,
    quarry_command, quarry_with_registry, registry_arg, repo_root, run, write_file as write, Ran,
};
use serde_json::Value;

mod common;

/// quarry run in `cwd`.
fn in_dir(cwd: &Path) -> Command {
    let mut command = quarry_command();
    command.current_dir(cwd);
    command
}

/// quarry run in `cwd` with this checkout's registry.
fn registered(cwd: &Path) -> Command {
    let mut command = quarry_with_registry();
    command.current_dir(cwd);
    command
}

/// Runs `COMMAND eval --dataset DATASET --run RUN REST...`.
fn eval_run(command: Command, dataset: &str, run_file: &Path, rest: &[&str]) -> Ran {
    let mut args = vec![
        "eval",
        "--dataset",
        dataset,
        "--run",
        run_file.to_str().unwrap(),
    ];
    args.extend_from_slice(rest);
    run(command, &args)
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
    run(registered(cwd.path()), &["datasets"])
        .ok()
        .has(Stdout, &["nfcorpus", "3633", "323 / 12334"]);

    let listing = run(registered(cwd.path()), &["datasets", "--json"])
        .ok()
        .json();
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
    let mut command = in_dir(cwd.path());
    command.env("QUARRY_REGISTRY", registry_arg());
    run(command, &["datasets", "--json"])
        .ok()
        .has(Stdout, &["\"nfcorpus\""]);
}

#[test]
fn eval_scores_the_pyserini_nfcorpus_run_like_pytrec_eval() {
    let cwd = tempfile::tempdir().unwrap();
    let eval = |rest: &[&str]| eval_run(registered(cwd.path()), "nfcorpus", &pyserini_run(), rest);
    let report = eval(&["--json"]).ok().json();
    assert_matches_pyserini(&report, &["ndcg@10"], 1e-9);
    assert_eq!(report["queries_evaluated"], 323);
    assert_eq!(report["split"], "test");
    assert_eq!(report["missing_qrels_docs"]["judgments"], 0);
    // The run is a top-10 cut: deeper metrics are flagged.
    assert!(
        report["warnings"].to_string().contains("recall@100"),
        "{}",
        report["warnings"]
    );

    eval(&[])
        .ok()
        .has(Stdout, &["ndcg@10", "0.3218", "323 queries"]);
}

#[test]
fn per_query_values_equal_pytrec_eval_in_json_and_trec_eval_layout() {
    let cwd = tempfile::tempdir().unwrap();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo_root().join("tests/fixtures/reference/pytrec_eval_metrics.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let case = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "nfcorpus-pyserini-bm25-top10")
        .unwrap();
    let expected = case["per_query"].as_object().unwrap();
    let metrics = "ndcg@10,mrr@10,p@5,map,recall@100";
    let eval = |rest: &[&str]| {
        let mut args = vec!["--metrics", metrics, "--per-query"];
        args.extend_from_slice(rest);
        eval_run(registered(cwd.path()), "nfcorpus", &pyserini_run(), &args)
    };

    let report = eval(&["--json"]).ok().json();
    let per_query = report["per_query"].as_object().unwrap();
    assert_eq!(per_query.len(), 323);
    assert_eq!(
        per_query.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (query, values) in per_query {
        for metric in metrics.split(',') {
            let ours = values[metric].as_f64().unwrap();
            let theirs = expected[query][metric].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() < 1e-9,
                "{query} {metric}: {ours} vs {theirs}"
            );
        }
    }

    // Text: trec_eval -q's lines only (warnings go to stderr), query order as
    // trec_eval's (ids as strings), then `all`.
    let ran = eval(&[]);
    let text = ran.ok().stdout();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 323 * 5 + 6, "{text}");
    assert!(lines.iter().all(|l| l.len() == 3), "{text}");
    let first_query = expected.keys().next().unwrap();
    assert_eq!(lines[0][0].trim_end(), "ndcg@10");
    assert_eq!(lines[0][1], first_query);
    let value: f64 = lines[0][2].parse().unwrap();
    assert!((value - expected[first_query]["ndcg@10"].as_f64().unwrap()).abs() <= 5e-5);
    assert_eq!(lines[323 * 5], ["num_q                 ", "all", "323"]);
    assert_eq!(
        lines[323 * 5 + 1],
        ["ndcg@10               ", "all", "0.3218"]
    );
    // The run is a top-10 cut: the warning about recall@100 is on stderr.
    ran.has(Stderr, &["warning", "recall@100"])
        .lacks(Stdout, &["warning"]);
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
    let eval = |run: &Path| {
        let rest = ["--metrics", "mrr@10,p@1", "--json"];
        eval_run(in_dir(dir.path()), root.to_str().unwrap(), run, &rest)
            .ok()
            .json()
    };
    let report = eval(&run);
    assert_eq!(report["dataset"], "tiny");
    // q1: d1 first -> 1; q2: d1 (unjudged) then d2 -> 1/2.
    assert_eq!(report["metrics"]["mrr@10"], 0.75);
    assert_eq!(report["metrics"]["p@1"], 0.5);

    compress(&root, "corpus.jsonl", ".gz");
    compress(&root.join("qrels"), "test.tsv", ".zst");
    let run = compress(dir.path(), "tiny.trec", ".zst");
    let packed_report = eval(&run);
    assert_eq!(packed_report["metrics"], report["metrics"]);
    // The checksum is over the uncompressed bytes, so compression does not change it.
    assert_eq!(packed_report["corpus_sha256"], report["corpus_sha256"]);
}

#[test]
fn unknown_dataset_lists_the_known_ones() {
    let cwd = tempfile::tempdir().unwrap();
    let run_file = Path::new("x.trec");
    eval_run(registered(cwd.path()), "nfcorpsu", run_file, &[])
        .exit(1)
        .has(
            Stderr,
            &["unknown dataset `nfcorpsu`", "nfcorpus", "arguana", "cosqa"],
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
        let run_file = if case.is_run { path } else { tiny_run };
        let source = if case.retrieve {
            ["--retriever", "bm25"]
        } else {
            ["--run", run_file.to_str().unwrap()]
        };
        let args = on_dataset("eval", root.to_str().unwrap(), &source);
        let err = run(in_dir(dir.path()), &args).exit(1).stderr();
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
    let eval = |rest: &[&str]| eval_run(in_dir(dir.path()), root.to_str().unwrap(), &run, rest);
    let report = eval(&["--json"]).ok().json();
    assert_eq!(report["missing_qrels_docs"]["judgments"], 1);
    assert_eq!(
        report["missing_qrels_docs"]["examples"],
        serde_json::json!(["ghost"])
    );
    assert!(report["warnings"]
        .to_string()
        .contains("missing from the corpus"));

    eval(&[]).ok().has(
        Stdout,
        &["warning: 1 qrels judgments name 1 doc ids missing"],
    );
}

#[test]
fn registry_problems_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, run) = tiny_dataset(dir.path());
    let entry =
        "[[dataset]]\nname = \"tiny\"\npath = \"tiny\"\nsplit = \"test\"\nremove_self = false\n\
                 corpus_sha256 = \"SHA\"\nurl = \"\"\nkind = \"text\"\n";
    let registry = dir.path().join("datasets.toml");
    for (registry_text, expected) in [
        // Unknown field.
        (
            format!("{}colour = \"red\"\n", entry.replace("SHA", "")),
            ["colour", registry.to_str().unwrap()],
        ),
        // Checksum mismatch (registry found in the current directory).
        (
            entry.replace("SHA", &"0".repeat(64)),
            ["sha256", "corpus.jsonl"],
        ),
    ] {
        write(dir.path(), "datasets.toml", &registry_text);
        eval_run(in_dir(dir.path()), "tiny", &run, &[])
            .exit(1)
            .has(Stderr, &expected);
    }
}

#[test]
fn usage_errors_exit_with_2() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        "eval --dataset nfcorpus",
        "eval --dataset nfcorpus --run r.trec --retriever bm25",
        "eval --dataset nfcorpus --run r.trec --metrics ndcg@0",
        "eval --dataset nfcorpus --retriever bm25 --k 10 --metrics recall@100",
        "eval --dataset nfcorpus --retriever tfidf",
        "eval --dataset nfcorpus --retriever run:",
        "build --model m --dataset nfcorpus --shard 2/2",
        "build --model m --dataset nfcorpus --shard 1",
        "frobnicate",
    ] {
        let args: Vec<&str> = args.split(' ').collect();
        run(registered(cwd.path()), &args)
            .exit(2)
            .has(Stderr, &["error"]);
    }
}

#[test]
fn bm25_on_nfcorpus_matches_pyserini_and_reuses_its_index() {
    let cwd = tempfile::tempdir().unwrap();
    let home = cwd.path().join("home");
    let run_out = cwd.path().join("bm25.trec");
    let eval = |source: &[&str]| -> Value {
        let mut args = vec![
            "--home",
            home.to_str().unwrap(),
            "eval",
            "--dataset",
            "nfcorpus",
        ];
        args.extend_from_slice(source);
        args.push("--json");
        run(registered(cwd.path()), &args).ok().json()
    };
    let built = eval(&[
        "--retriever",
        "bm25",
        "--run-out",
        run_out.to_str().unwrap(),
    ]);
    assert_eq!(built["source"]["index_reused"], false);
    assert_eq!(built["queries_evaluated"], 323);
    assert_matches_pyserini(&built, &["ndcg@10"], 1e-3);
    let published = &pyserini_reference()["meta"]["published_expected"];
    for metric in ["recall@100", "recall@1000"] {
        let expected = published[metric].as_f64().unwrap();
        assert_metric_near(&built, metric, expected, 5e-4, "published");
    }

    // Same corpus checksum: the index in the catalog is reused, same numbers.
    let reused = eval(&["--retriever", "bm25"]);
    assert_eq!(reused["source"]["index_reused"], true);
    assert_eq!(reused["source"]["index_dir"], built["source"]["index_dir"]);
    assert_eq!(reused["metrics"], built["metrics"]);

    // The written run scores the same when read back.
    let rescored = eval(&["--run", run_out.to_str().unwrap()]);
    assert_eq!(rescored["metrics"], built["metrics"]);

    // Without --metrics, the defaults deeper than --k are left out (not refused).
    let shallow = eval(&["--retriever", "bm25", "--k", "100"]);
    let mut names: Vec<&String> = shallow["metrics"].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["map", "mrr@10", "ndcg@10", "recall@100"]);
    assert_eq!(shallow["metrics"]["ndcg@10"], built["metrics"]["ndcg@10"]);
}

/// `quarry train` of the tiny Qwen2 fixture on its 16 groups into `output`,
/// with small settings, then `rest`.
fn tiny_train_args(output: &Path, rest: &[&str]) -> Vec<String> {
    let fixtures = repo_root().join("tests/fixtures/lora");
    let mut args: Vec<String> = vec![
        "train".into(),
        "--model".into(),
        fixtures.join("tiny_qwen2").display().to_string(),
        "--train".into(),
        fixtures.join("train.jsonl").display().to_string(),
        "--output".into(),
        output.display().to_string(),
    ];
    let settings = [
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
    ];
    args.extend(settings.iter().chain(rest).map(|s| s.to_string()));
    args
}

/// kill -9 in the middle of `quarry train` (checkpoints after every step, each written
/// atomically) loses at most the step under way: `--resume` ends with the adapter bytes and
/// the loss curve of an uninterrupted run.
#[test]
fn a_training_killed_mid_run_resumes_to_the_same_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |output: &Path| {
        tiny_train_args(
            output,
            &["--epochs", "4", "--checkpoint-every", "1", "--json"],
        )
    };
    let whole = tmp.path().join("whole");
    let whole_args = args(&whole);
    let split: Vec<&str> = whole_args.iter().map(String::as_str).collect();
    let whole_summary = run(in_dir(tmp.path()), &split).ok().json();
    let steps = whole_summary["total_steps"].as_u64().unwrap();
    assert_eq!(steps, 16);
    let expected = std::fs::read(whole.join("adapter_model.safetensors")).unwrap();

    let killed = tmp.path().join("killed");
    let killed_args = args(&killed);
    let mut child = in_dir(tmp.path())
        .args(&killed_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = killed.join("checkpoint.safetensors");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        // Killed a little after the first checkpoint: somewhere in steps 2 to 16.
        if checkpoint.exists() {
            std::thread::sleep(std::time::Duration::from_millis(30));
            child.kill().unwrap();
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "training finished before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.wait().unwrap();
    assert!(!killed.join("adapter_model.safetensors").exists());

    let mut resume_args = killed_args.clone();
    resume_args.push("--resume".into());
    let split: Vec<&str> = resume_args.iter().map(String::as_str).collect();
    let resumed = run(in_dir(tmp.path()), &split).ok().json();
    let from = resumed["resumed_from_step"].as_u64().unwrap();
    assert!((1..steps).contains(&from), "resumed from step {from}");
    assert_eq!(resumed["finished"], true);
    assert_eq!(resumed["loss_curve"], whole_summary["loss_curve"]);
    let adapter = std::fs::read(killed.join("adapter_model.safetensors")).unwrap();
    assert!(
        adapter == expected,
        "the resumed adapter differs from the uninterrupted one"
    );
    let picture = std::fs::read_to_string(killed.join("loss.svg")).unwrap();
    assert!(
        picture.contains(&format!("resumed after step {from}")),
        "{picture}"
    );
}

/// Without a terminal `quarry train` logs a line per micro-batch of its first step and a line
/// per step on stderr (the bar would not draw in a batch job's log), and `--json` prints the
/// summary with its loss curve.
#[test]
fn train_logs_a_line_per_step_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("adapter");
    let args = tiny_train_args(&output, &["--max-steps", "2", "--json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let trained = run(in_dir(tmp.path()), &args);
    trained
        .ok()
        .has(
            Stderr,
            &[
                "step 1 micro-batch 1: forward and backward after",
                "step 1 micro-batch 2:",
                "step 1/2: loss ",
                "step 2/2: loss ",
            ],
        )
        .lacks(Stderr, &["step 2 micro-batch"]);
    let summary = trained.json();
    assert_eq!(summary["step_losses"].as_array().unwrap().len(), 2);
    assert_eq!(summary["loss_curve"], summary["step_losses"]);
    let picture = std::fs::read_to_string(output.join("loss.svg")).unwrap();
    assert!(
        picture.starts_with("<svg ") && picture.contains("2 of 2 steps"),
        "{picture}"
    );
    assert!(output.join("adapter_model.safetensors").is_file());
}

#[test]
fn the_study_models_are_listed_and_taken_by_name() {
    let cwd = tempfile::tempdir().unwrap();
    let listing = run(registered(cwd.path()), &["datasets", "--json"])
        .ok()
        .json();
    let models = listing["models"].as_array().unwrap();
    assert_eq!(models.len(), 8);
    assert!(models
        .iter()
        .any(|m| m["hub"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"));
    // The name stands for its hub id: offline with an empty cache, the error names the repo.
    let mut command = registered(cwd.path());
    command.env("HF_HOME", cwd.path().join("hf"));
    run(
        command,
        &[
            "build",
            "--model",
            "qwen2.5-7b-instruct",
            "--dataset",
            "nfcorpus",
        ],
    )
    .exit(1)
    .has(Stderr, &["Qwen/Qwen2.5-7B-Instruct"]);
}

/// `--qrels FILE` scores against any qrels file: nfcorpus' test qrels in
/// TREC's four columns give the numbers of the dataset's own split.
#[test]
fn eval_takes_a_trec_qrels_file() {
    let cwd = tempfile::tempdir().unwrap();
    let beir = repo_root().join("data/nfcorpus/qrels/test.tsv.zst");
    let text =
        String::from_utf8(zstd::decode_all(std::fs::File::open(&beir).unwrap()).unwrap()).unwrap();
    let trec: String = text
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            format!("{} 0 {} {}\n", f[0], f[1], f[2])
        })
        .collect();
    let qrels = write(cwd.path(), "test.qrels", &trec);
    let eval = |rest: &[&str]| eval_run(registered(cwd.path()), "nfcorpus", &pyserini_run(), rest);
    let own = eval(&["--metrics", "ndcg@10,p@5", "--json"]).ok().json();
    let from_file = eval(&[
        "--metrics",
        "ndcg@10,p@5",
        "--json",
        "--qrels",
        qrels.to_str().unwrap(),
    ])
    .ok()
    .json();
    assert_eq!(from_file["metrics"], own["metrics"]);
    assert_eq!(from_file["queries_evaluated"], 323);
    eval(&["--qrels", qrels.to_str().unwrap(), "--split", "dev"]).exit(2);
}

#[test]
fn version_names_the_commit_and_backends() {
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let ran = run(quarry_command(), &["--version"]);
    ran.ok()
        .has(Stdout, &["quarry 0.1.0 (commit ", "backends: cpu"]);
    // Built from a git checkout, the hash is the commit's (it may lag a commit made after
    // the build script last ran, so only its form is checked then).
    let printed = ran.stdout();
    let hash = printed
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default()
        .to_string();
    match head {
        Some(_) => assert!(
            hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{printed}"
        ),
        None => assert_eq!(hash, "unknown", "{printed}"),
    }
}

#[test]
fn completion_scripts_cover_the_subcommands() {
    let bash = run(quarry_command(), &["completions", "bash"])
        .ok()
        .stdout();
    for needle in [
        "_quarry()",
        "eval",
        "compare",
        "--retriever",
        "complete -F _quarry",
    ] {
        assert!(bash.contains(needle), "bash completions lack {needle}");
    }
    // The script parses in bash.
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &bash).unwrap();
    let check = Command::new("bash").arg("-n").arg(script.path()).status();
    if let Ok(status) = check {
        assert!(status.success(), "bash -n rejects the completion script");
    }
    run(quarry_command(), &["completions", "fish"])
        .ok()
        .has(Stdout, &["complete -c quarry"]);
    run(quarry_command(), &["completions", "zsh"])
        .ok()
        .has(Stdout, &["#compdef quarry"]);
    run(quarry_command(), &["completions", "tcsh"])
        .exit(2)
        .has(Stderr, &["possible values: bash"]);
}

#[test]
fn a_user_registry_extends_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_root, run_file) = tiny_dataset(dir.path());
    let entry = "[[dataset]]\nname = \"tiny\"\npath = \"tiny\"\nsplit = \"test\"\n";
    write(dir.path(), "datasets.toml", entry);
    // The user's entry and every built-in one are known, from the file found in the cwd.
    let listed = run(in_dir(dir.path()), &["datasets", "--json"]).ok().json();
    let names: Vec<&str> = listed["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"tiny") && names.contains(&"nfcorpus"),
        "{names:?}"
    );
    eval_run(in_dir(dir.path()), "tiny", &run_file, &[]).ok();
    // A user entry of a built-in name replaces it.
    let shadow = entry.replace("\"tiny\"\npath", "\"nfcorpus\"\npath");
    write(dir.path(), "datasets.toml", &shadow);
    eval_run(in_dir(dir.path()), "nfcorpus", &run_file, &["--json"])
        .ok()
        .has(Stdout, &["\"queries_evaluated\": 2"]);
    // `extends_built_in = false`: the file is the whole registry.
    write(
        dir.path(),
        "datasets.toml",
        &format!("extends_built_in = false\n{entry}"),
    );
    run(
        in_dir(dir.path()),
        &["eval", "--dataset", "nfcorpus", "--retriever", "bm25"],
    )
    .exit(1)
    .has(Stderr, &["unknown dataset `nfcorpus`", "tiny"]);
}

#[test]
fn datasets_add_registers_a_folder_in_the_data_home() {
    let dir = tempfile::tempdir().unwrap();
    let (root, run_file) = tiny_dataset(dir.path());
    let home = dir.path().join("home");
    let cwd = dir.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let quarry_at = |args: &[&str]| {
        let mut command = in_dir(&cwd);
        command.arg("--home").arg(&home);
        run(command, args)
    };
    quarry_at(&[
        "datasets",
        "add",
        "mytiny",
        root.to_str().unwrap(),
        "--remove-self",
    ])
    .ok()
    .has(Stdout, &["added `mytiny`", "self hits removed"]);
    let listed = quarry_at(&["datasets", "--json"]).ok().json();
    let entry = listed["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "mytiny")
        .expect("mytiny listed")
        .clone();
    assert_eq!(entry["remove_self"], true);
    assert!(listed["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["name"] == "nfcorpus"));
    quarry_at(&[
        "eval",
        "--dataset",
        "mytiny",
        "--run",
        run_file.to_str().unwrap(),
    ])
    .ok();
    // Twice the same name, a split the folder lacks, a folder that is no dataset.
    quarry_at(&["datasets", "add", "mytiny", root.to_str().unwrap()])
        .exit(1)
        .has(Stderr, &["mytiny", "listed twice"]);
    quarry_at(&[
        "datasets",
        "add",
        "other",
        root.to_str().unwrap(),
        "--split",
        "dev",
    ])
    .exit(2)
    .has(Stderr, &["qrels/dev.tsv"]);
    quarry_at(&["datasets", "add", "none", cwd.to_str().unwrap()]).exit(1);
}
