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
use std::path::Path;
use std::process::Output;

use common::{output_text as text, output_with_stdin, quarry_command, registry_arg, result_blocks};
use serde_json::Value;
use tiny_fixtures::{tiny_dataset, tiny_model};

mod common;
mod tiny_fixtures;

/// quarry with its data home at `home`, `stdin` piped in.
fn quarry(home: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = quarry_command();
    command
        .env("QUARRY_HOME", home)
        .arg("--registry")
        .arg(registry_arg())
        .args(args);
    output_with_stdin(command, stdin)
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
