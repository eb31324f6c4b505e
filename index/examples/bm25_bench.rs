//! Times quarry's BM25 index build and search on a BEIR-layout dataset.
//!
//! usage: bm25_bench DATASET_DIR [--split test] [--hits 1000] [--repeat 3]
//!   DATASET_DIR holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv
//!   (uncompressed: benches/plain_beir.sh makes such a folder from data/NAME).
//!
//! Prints one JSON object: build docs/s (analysis + tantivy indexing + merge +
//! manifest, corpus already in memory, as the peers time it) and queries/s
//! for the split's queries with `--hits` results each, both sequential (one
//! thread) and batched over all cores (rayon), best of `--repeat` warm runs.
//! Run by benches/bm25_peers.sh in a release build.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use quarry_index::bm25::{Bm25Doc, Bm25Index};

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::new(file)
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            (!line.trim().is_empty()).then(|| {
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
            })
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dataset: Option<PathBuf> = None;
    let (mut split, mut hits, mut repeat) = ("test".to_string(), 1000usize, 3usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--split" => split = args.next().expect("--split value"),
            "--hits" => hits = args.next().expect("--hits value").parse().expect("number"),
            "--repeat" => {
                repeat = args
                    .next()
                    .expect("--repeat value")
                    .parse()
                    .expect("number")
            }
            _ => dataset = Some(PathBuf::from(arg)),
        }
    }
    let dataset =
        dataset.expect("usage: bm25_bench DATASET_DIR [--split test] [--hits 1000] [--repeat 3]");

    let corpus = read_jsonl(&dataset.join("corpus.jsonl"));
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let docs: Vec<(String, String, String)> = corpus
        .iter()
        .map(|d| (text(d, "_id"), text(d, "title"), text(d, "text")))
        .collect();
    let qrels_path = dataset.join("qrels").join(format!("{split}.tsv"));
    let qrels = std::fs::read_to_string(&qrels_path)
        .unwrap_or_else(|e| panic!("{}: {e}", qrels_path.display()));
    let qids: BTreeSet<&str> = qrels
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    let queries: Vec<String> = read_jsonl(&dataset.join("queries.jsonl"))
        .iter()
        .filter(|q| qids.contains(q["_id"].as_str().unwrap_or("")))
        .map(|q| text(q, "text"))
        .collect();
    let query_refs: Vec<&str> = queries.iter().map(String::as_str).collect();

    let tmp = tempfile::tempdir().expect("tempdir");
    let mut build_s = f64::INFINITY;
    let mut index = None;
    for round in 0..repeat.max(1) {
        let dir = tmp.path().join(format!("bm25-{round}"));
        let start = Instant::now();
        let built = Bm25Index::build(
            &dir,
            "bench",
            docs.iter()
                .map(|(id, title, text)| Bm25Doc { id, title, text }),
        )
        .expect("build");
        build_s = build_s.min(start.elapsed().as_secs_f64());
        index = Some(built);
    }
    let index = index.expect("built");

    let mut total_hits = 0usize;
    let mut sequential_s = f64::INFINITY;
    let mut batch_s = f64::INFINITY;
    for _ in 0..repeat.max(1) + 1 {
        let start = Instant::now();
        total_hits = 0;
        for q in &query_refs {
            total_hits += index.search(q, hits).expect("search").len();
        }
        sequential_s = sequential_s.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let results = index.search_batch(&query_refs, hits).expect("search");
        batch_s = batch_s.min(start.elapsed().as_secs_f64());
        assert_eq!(results.iter().map(Vec::len).sum::<usize>(), total_hits);
    }
    let out = serde_json::json!({
        "tool": "quarry",
        "dataset": dataset.display().to_string(),
        "docs": docs.len(),
        "queries": queries.len(),
        "hits": hits,
        "threads": rayon::current_num_threads(),
        "build_s": build_s,
        "build_docs_per_s": docs.len() as f64 / build_s,
        "search_sequential_s": sequential_s,
        "search_sequential_qps": queries.len() as f64 / sequential_s,
        "search_batch_s": batch_s,
        "search_batch_qps": queries.len() as f64 / batch_s,
        "total_hits": total_hits,
    });
    println!("{out}");
}
