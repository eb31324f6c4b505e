//! End-to-end tests of `quarry build` / `quarry eval --retriever dense:NAME` /
//! `quarry compare` through the binary, with the tiny random BERT of
//! `encoder/fixtures/bert` (plus a small WordPiece tokenizer written here)
//! on a small BEIR folder written by the test: build then eval, a second
//! build is a no-op, an interrupted build resumes to the same bytes, and bad
//! inputs fail with clear messages.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn quarry_cmd(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quarry"));
    cmd.env_remove("QUARRY_REGISTRY")
        .env_remove("QUARRY_SHARD_ROWS")
        .env_remove("QUARRY_CHUNK_DOCS")
        .env("QUARRY_HOME", home)
        .arg("--registry")
        .arg(repo_root().join("datasets.toml"));
    cmd
}

fn quarry(home: &Path, args: &[&str]) -> Output {
    quarry_cmd(home).args(args).output().expect("quarry runs")
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{}", text(output));
}

/// A WordPiece tokenizer over 56 tokens (specials, letters, ##letters): fits
/// the fixture's vocabulary of 80; every lowercase word tokenizes.
fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    for (i, s) in specials.iter().enumerate() {
        vocab.insert(s.to_string(), Value::from(i));
    }
    for (i, c) in ('a'..='z').enumerate() {
        vocab.insert(c.to_string(), Value::from(4 + i));
        vocab.insert(format!("##{c}"), Value::from(30 + i));
    }
    let added: Vec<Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
    .to_string()
}

/// A copy of the BERT fixture with a tokenizer, named `tiny-bert` (copied so
/// the hash sidecars the build writes stay out of the repository).
fn tiny_model(dir: &Path) -> PathBuf {
    let src = repo_root().join("encoder/fixtures/bert");
    let dst = dir.join("tiny-bert");
    std::fs::create_dir_all(dst.join("1_Pooling")).unwrap();
    for file in [
        "config.json",
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        std::fs::copy(src.join(file), dst.join(file)).unwrap();
    }
    std::fs::write(dst.join("tokenizer.json"), tokenizer_json()).unwrap();
    dst
}

const WORDS: [&str; 12] = [
    "apple", "river", "stone", "cloud", "green", "light", "sound", "paper", "glass", "metal",
    "storm", "field",
];

/// A BEIR folder `tiny` with `docs` documents, 6 queries and test qrels.
fn tiny_dataset(dir: &Path, docs: usize) -> PathBuf {
    let root = dir.join("tiny");
    std::fs::create_dir_all(root.join("qrels")).unwrap();
    let mut corpus = String::new();
    for i in 0..docs {
        let words: Vec<&str> = (0..(3 + i % 9))
            .map(|j| WORDS[(i * 7 + j * 3) % 12])
            .collect();
        corpus += &serde_json::json!({"_id": format!("d{i}"), "title": WORDS[i % 12],
            "text": words.join(" ")})
        .to_string();
        corpus.push('\n');
    }
    std::fs::write(root.join("corpus.jsonl"), corpus).unwrap();
    let mut queries = String::new();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for q in 0..6 {
        queries += &serde_json::json!({"_id": format!("q{q}"),
            "text": format!("{} {}", WORDS[q], WORDS[(q + 5) % 12])})
        .to_string();
        queries.push('\n');
        qrels += &format!("q{q}\td{}\t1\nq{q}\td{}\t2\n", q * 3, (q * 5 + 1) % docs);
    }
    std::fs::write(root.join("queries.jsonl"), queries).unwrap();
    std::fs::write(root.join("qrels/test.tsv"), qrels).unwrap();
    root
}

fn index_dir(home: &Path) -> PathBuf {
    home.join("dense").join("tiny-bert@tiny")
}

/// Content files of an index (what must be byte-identical between builds):
/// everything but the checksum cache and the build record (timings, argv).
fn content(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == "verified.json" || name == "build.json" {
                continue;
            }
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            files.push((rel, std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

#[test]
fn build_then_eval_then_rebuild_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let model = tiny_model(tmp.path());
    let data = tiny_dataset(tmp.path(), 30);
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());

    let output = quarry(&home, &["build", "--model", model, "--dataset", data]);
    assert_exit(&output, 0);
    assert!(
        text(&output).contains("dense:tiny-bert"),
        "{}",
        text(&output)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(index_dir(&home).join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["dim"], 48);
    let before = content(&index_dir(&home));

    let output = quarry(
        &home,
        &[
            "eval",
            "--dataset",
            data,
            "--retriever",
            "dense:tiny-bert",
            "--json",
        ],
    );
    assert_exit(&output, 0);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["queries_evaluated"], 6);
    let ndcg = report["metrics"]["ndcg@10"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ndcg), "{ndcg}");

    // The model is not needed any more: eval works with it gone.
    let moved = tmp.path().join("moved");
    std::fs::rename(model, &moved).unwrap();
    let output = quarry(
        &home,
        &["eval", "--dataset", data, "--retriever", "dense:tiny-bert"],
    );
    assert_exit(&output, 0);
    std::fs::rename(&moved, model).unwrap();

    let started = Instant::now();
    let output = quarry(&home, &["build", "--model", model, "--dataset", data]);
    assert_exit(&output, 0);
    assert!(text(&output).contains("up to date"), "{}", text(&output));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        content(&index_dir(&home)),
        before,
        "a no-op build changed the index"
    );

    let output = quarry(
        &home,
        &[
            "compare",
            "--datasets",
            data,
            "--retrievers",
            "bm25,dense:tiny-bert",
            "--format",
            "csv",
        ],
    );
    assert_exit(&output, 0);
    let csv = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        csv.starts_with("dataset,bm25,dense:tiny-bert\ntiny,"),
        "{csv}"
    );

    // A missing index is named with the command that builds it.
    let output = quarry(
        &home,
        &["compare", "--datasets", data, "--retrievers", "dense:other"],
    );
    assert_exit(&output, 1);
    assert!(text(&output).contains("quarry build"), "{}", text(&output));

    // A new query is encoded on the next eval (the model is there again).
    let queries = std::fs::read_to_string(Path::new(data).join("queries.jsonl")).unwrap();
    std::fs::write(
        Path::new(data).join("queries.jsonl"),
        queries.replace("\"q0\",\"text\":\"", "\"q0\",\"text\":\"paper "),
    )
    .unwrap();
    let output = quarry(
        &home,
        &["eval", "--dataset", data, "--retriever", "dense:tiny-bert"],
    );
    assert_exit(&output, 0);
}

#[test]
fn an_interrupted_build_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = tiny_dataset(tmp.path(), 1200);
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    let args = ["build", "--model", model, "--dataset", data];
    let small = |cmd: &mut Command| {
        cmd.env("QUARRY_SHARD_ROWS", "4")
            .env("QUARRY_CHUNK_DOCS", "8");
    };

    let whole = tmp.path().join("whole");
    let mut cmd = quarry_cmd(&whole);
    small(&mut cmd);
    assert_exit(&cmd.args(args).output().unwrap(), 0);

    let home = tmp.path().join("interrupted");
    let mut cmd = quarry_cmd(&home);
    small(&mut cmd);
    let mut child = cmd
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let manifest = index_dir(&home).join("manifest.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_at = loop {
        if let Ok(bytes) = std::fs::read(&manifest) {
            if let Ok(m) = serde_json::from_slice::<Value>(&bytes) {
                let shards = m["shards"].as_array().map_or(0, Vec::len);
                if shards >= 3 {
                    child.kill().unwrap();
                    break shards;
                }
            }
        }
        assert!(Instant::now() < deadline, "the build never wrote 3 shards");
        if child.try_wait().unwrap().is_some() {
            panic!("the build finished before it could be interrupted");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    child.wait().unwrap();
    let m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["complete"], false, "killed after {killed_at} shards");

    let mut cmd = quarry_cmd(&home);
    small(&mut cmd);
    let output = cmd.args(args).output().unwrap();
    assert_exit(&output, 0);
    assert!(text(&output).contains("resumed after"), "{}", text(&output));
    assert_eq!(content(&index_dir(&home)), content(&index_dir(&whole)));
}

#[test]
fn a_dataset_without_corpus_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = tiny_dataset(tmp.path(), 5);
    std::fs::remove_file(data.join("corpus.jsonl")).unwrap();
    let output = quarry(
        &tmp.path().join("home"),
        &[
            "build",
            "--model",
            model.to_str().unwrap(),
            "--dataset",
            data.to_str().unwrap(),
        ],
    );
    assert_exit(&output, 1);
    let message = text(&output);
    assert!(message.contains("no corpus"), "{message}");
}

#[test]
fn an_index_of_an_unknown_format_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let model = tiny_model(tmp.path());
    let data = tiny_dataset(tmp.path(), 5);
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    std::fs::create_dir_all(index_dir(&home)).unwrap();
    std::fs::write(
        index_dir(&home).join("manifest.json"),
        r#"{"format_version": 0, "shards": []}"#,
    )
    .unwrap();
    let output = quarry(&home, &["build", "--model", model, "--dataset", data]);
    assert_exit(&output, 1);
    let message = text(&output);
    assert!(
        message.contains("unsupported format version 0") && message.contains("delete the folder"),
        "{message}"
    );
    let output = quarry(
        &home,
        &["eval", "--dataset", data, "--retriever", "dense:tiny-bert"],
    );
    assert_exit(&output, 1);
    assert!(
        text(&output).contains("unsupported format version 0"),
        "{}",
        text(&output)
    );
}

#[test]
fn cuda_without_the_feature_is_a_usage_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let output = quarry(
        tmp.path(),
        &[
            "build",
            "--model",
            "m",
            "--dataset",
            "nfcorpus",
            "--device",
            "cuda",
        ],
    );
    assert_exit(&output, 2);
    assert!(
        text(&output).contains("--features cuda"),
        "{}",
        text(&output)
    );
}
