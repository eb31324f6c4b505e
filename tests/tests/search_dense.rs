//! End-to-end test of `quarry search` with a dense index: the tiny random
//! BERT of `encoder/fixtures/bert` is built into a dense index of a small
//! BEIR folder with `quarry build`; the shell, which encodes each query with
//! the model it loads once, must rank exactly as `quarry eval --retriever
//! dense:NAME` (which goes through the query-embedding cache), and hybrids
//! and `:rank` must list the dense retriever.
//!
//! The model and dataset helpers are those of tests/tests/build.rs.
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn quarry(home: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quarry"))
        .env_remove("QUARRY_REGISTRY")
        .env("QUARRY_HOME", home)
        .arg("--registry")
        .arg(repo_root().join("datasets.toml"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quarry runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
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

/// Doc ids of result lines, per query block (ended by the latency line).
fn result_blocks(stdout: &str) -> Vec<Vec<String>> {
    let mut blocks = vec![Vec::new()];
    for line in stdout.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && trimmed.contains(" hits, ") {
            blocks.push(Vec::new());
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.len() >= 3
            && fields[0].ends_with('.')
            && fields[0].trim_end_matches('.').parse::<usize>().is_ok()
        {
            blocks.last_mut().unwrap().push(fields[2].to_string());
        }
    }
    blocks.pop();
    blocks
}

#[test]
fn dense_shell_ranks_as_dense_eval_and_fuses_with_bm25() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let model = tiny_model(tmp.path());
    let data = tiny_dataset(tmp.path(), 30);
    let (model, data) = (model.to_str().unwrap(), data.to_str().unwrap());
    let output = quarry(&home, &["build", "--model", model, "--dataset", data], "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    let run_path = tmp.path().join("dense.trec");
    let output = quarry(
        &home,
        &[
            "eval",
            "--dataset",
            data,
            "--retriever",
            "dense:tiny-bert",
            "--k",
            "5",
            "--metrics",
            "ndcg@5",
            "--run-out",
            run_path.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let mut eval_run: HashMap<String, Vec<String>> = HashMap::new();
    for line in std::fs::read_to_string(&run_path).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        eval_run
            .entry(f[0].to_string())
            .or_default()
            .push(f[2].to_string());
    }
    let queries: Vec<(String, String)> =
        std::fs::read_to_string(Path::new(data).join("queries.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["_id"].as_str().unwrap().into(),
                    v["text"].as_str().unwrap().into(),
                )
            })
            .collect();

    let input: String = queries
        .iter()
        .map(|(_, q)| format!("{q}\n"))
        .collect::<String>()
        + ":rank d3\n:retriever hybrid:rrf(bm25,dense:tiny-bert)\n"
        + &queries[0].1
        + "\n:retriever dense:nope\n";
    let output = quarry(
        &home,
        &[
            "search",
            "--dataset",
            data,
            "--retriever",
            "dense:tiny-bert",
            "--k",
            "5",
        ],
        &input,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let blocks = result_blocks(&stdout);
    assert_eq!(blocks.len(), queries.len() + 1, "{stdout}");
    for ((id, query), block) in queries.iter().zip(&blocks) {
        assert_eq!(block, &eval_run[id], "{query}: shell vs eval run\n{stdout}");
    }
    assert_eq!(blocks.last().unwrap().len(), 5, "{stdout}");
    assert!(stdout.contains("  bm25: "), "{stdout}");
    assert!(stdout.contains("  dense:tiny-bert: "), "{stdout}");
    assert!(
        stdout.contains("hybrid:rrf(k=60,bm25,dense:tiny-bert)"),
        "{stdout}"
    );
    assert!(stderr.contains("no dense index `nope`"), "{stderr}");
}
