//! End-to-end test of `quarry search` with a dense index: the tiny random
//! BERT of `encoder/fixtures/bert` is built into a dense index of a small
//! BEIR folder with `quarry build`; the shell, which encodes each query with
//! the model it loads once, must rank exactly as `quarry eval --retriever
//! dense:NAME` (which goes through the query-embedding cache), and hybrids
//! and `:rank` must list the dense retriever.
//!
//! The model, dataset and build helpers are those of tests/tests/tiny_fixtures.
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml).

use std::collections::HashMap;

use common::result_blocks;
use common::Stream::{Stderr, Stdout};
use serde_json::Value;
use tiny_fixtures::{TinyDense, DENSE};

mod common;
mod tiny_fixtures;

#[test]
fn dense_shell_ranks_as_dense_eval_and_fuses_with_bm25() {
    let tiny = TinyDense::new(30);
    tiny.build().ok();

    let run_path = tiny.path("dense.trec");
    let run_out = run_path.to_str().unwrap();
    let rest = ["--k", "5", "--metrics", "ndcg@5", "--run-out", run_out];
    tiny.eval(DENSE, &rest).ok();
    let mut eval_run: HashMap<String, Vec<String>> = HashMap::new();
    for line in std::fs::read_to_string(&run_path).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        eval_run
            .entry(f[0].to_string())
            .or_default()
            .push(f[2].to_string());
    }
    let queries: Vec<(String, String)> = std::fs::read_to_string(tiny.data.join("queries.jsonl"))
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
    let searched = tiny.search(DENSE, &["--k", "5"], &input);
    let stdout = searched.ok().stdout();
    let blocks = result_blocks(&stdout);
    assert_eq!(blocks.len(), queries.len() + 1, "{stdout}");
    for ((id, query), block) in queries.iter().zip(&blocks) {
        assert_eq!(block, &eval_run[id], "{query}: shell vs eval run\n{stdout}");
    }
    assert_eq!(blocks.last().unwrap().len(), 5, "{stdout}");
    searched
        .has(
            Stdout,
            &[
                "  bm25: ",
                "  dense:tiny-bert: ",
                "hybrid:rrf(k=60,bm25,dense:tiny-bert)",
            ],
        )
        .has(Stderr, &["no dense index `nope`"]);
}

#[test]
fn switching_to_a_dataset_without_the_dense_index_falls_back_to_bm25() {
    let tiny = TinyDense::new(12);
    tiny.build().ok();
    // nfcorpus has no tiny-bert index: the switch happens, with bm25 and a note.
    let input = ":dataset nfcorpus\nstatin breast cancer\n";
    let searched = tiny.search(DENSE, &[], input);
    searched
        .ok()
        .has(Stdout, &["dataset nfcorpus (3633 docs), retriever bm25"])
        .has(Stderr, &["note:", "using bm25"]);
    assert_eq!(result_blocks(&searched.stdout()).len(), 1);
}
