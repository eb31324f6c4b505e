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

use common::{assert_exit, output_text as text, quarry_command, registry_arg};
use serde_json::Value;
use tiny_fixtures::{tiny_dataset, tiny_model};

mod common;
mod tiny_fixtures;

/// quarry with its data home at `home` and this checkout's registry.
fn quarry_cmd(home: &Path) -> Command {
    let mut cmd = quarry_command();
    cmd.env("QUARRY_HOME", home)
        .arg("--registry")
        .arg(registry_arg());
    cmd
}

fn quarry(home: &Path, args: &[&str]) -> Output {
    quarry_cmd(home).args(args).output().expect("quarry runs")
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
    // stderr is a pipe here, not a terminal: progress comes as log lines.
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("encoding: 30/30 docs"), "{log}");
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
            "bm25,dense:tiny-bert,hybrid:rrf(bm25,dense:tiny-bert)",
            "--format",
            "csv",
        ],
    );
    assert_exit(&output, 0);
    let csv = String::from_utf8_lossy(&output.stdout).into_owned();
    // The hybrid's own commas do not split the list; CSV quotes its name.
    assert!(
        csv.starts_with(
            "dataset,bm25,dense:tiny-bert,\"hybrid:rrf(k=60,bm25,dense:tiny-bert)\"\ntiny,"
        ),
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

/// `--device cuda:all` hands corpus chunks to one thread per device and writes
/// them in corpus order; with the CPU standing in for three devices the index
/// must be byte-identical to a one-device build.
#[test]
fn a_build_split_over_several_devices_writes_the_same_index() {
    use quarry_engine::build::{build_dense, BuildMode, BuildRequest, EncoderSpec};
    use quarry_engine::catalog::Catalog;
    use quarry_engine::dataset::Dataset;
    use quarry_engine::device::{ComputeDevice, Precision};

    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let data = tiny_dataset(tmp.path(), 300);
    let dataset = Dataset::resolve(data.to_str().unwrap(), None).unwrap();
    let request = |extra_devices: Vec<ComputeDevice>| BuildRequest {
        encoder: EncoderSpec {
            model: model.clone(),
            mode: BuildMode::Auto,
            precision: Precision::F32,
            device: ComputeDevice::Cpu,
            max_length: None,
            batch_tokens: None,
            lora: None,
        },
        name: None,
        store: quarry_index::dense::ElementType::F32,
        shard_rows: 16,
        chunk_docs: 8,
        hnsw: false,
        command: vec!["quarry".into()],
        extra_devices,
    };
    let progress = indicatif::ProgressBar::hidden();
    let one = tmp.path().join("one");
    build_dense(&Catalog::new(&one), &dataset, &request(vec![]), &progress).unwrap();
    let three = tmp.path().join("three");
    let outcome = build_dense(
        &Catalog::new(&three),
        &dataset,
        &request(vec![ComputeDevice::Cpu, ComputeDevice::Cpu]),
        &progress,
    )
    .unwrap();
    assert_eq!(outcome.docs_encoded, 300);
    assert_eq!(content(&index_dir(&three)), content(&index_dir(&one)));
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

/// The manifest, build.json and the query cache must name the same encoder:
/// vectors of another encoder would be searched without error and give
/// silently wrong numbers.
#[test]
fn an_index_whose_records_disagree_on_the_encoder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let model = tiny_model(tmp.path());
    let data = tiny_dataset(tmp.path(), 30);
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    assert_exit(
        &quarry(&home, &["build", "--model", model, "--dataset", data]),
        0,
    );
    let eval = ["eval", "--dataset", data, "--retriever", "dense:tiny-bert"];
    let other = "0".repeat(64);

    // The query cache encoded by another encoder.
    let cache = index_dir(&home).join("queries/manifest.json");
    let original = std::fs::read(&cache).unwrap();
    let mut edited: Value = serde_json::from_slice(&original).unwrap();
    edited["encoder_fingerprint"] = Value::from(other.clone());
    std::fs::write(&cache, serde_json::to_vec(&edited).unwrap()).unwrap();
    let output = quarry(&home, &eval);
    assert_exit(&output, 1);
    let message = text(&output);
    assert!(
        message.contains("queries/manifest.json") && message.contains("cached query vectors"),
        "{message}"
    );
    std::fs::write(&cache, &original).unwrap();
    assert_exit(&quarry(&home, &eval), 0);

    // The manifest edited to name another encoder than build.json.
    let manifest = index_dir(&home).join("manifest.json");
    let mut edited: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    edited["encoder_fingerprint"] = Value::from(other);
    std::fs::write(&manifest, serde_json::to_vec(&edited).unwrap()).unwrap();
    let output = quarry(&home, &eval);
    assert_exit(&output, 1);
    let message = text(&output);
    assert!(message.contains("records disagree"), "{message}");
}
