//! End-to-end tests of `quarry index info|verify|search|hnsw` on a small dense
//! index written with quarry-index's writer: what each prints, and that
//! corruption of a shard or of the HNSW graph fails with a non-zero exit and
//! a message naming the damaged file.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml) so
//! cargo builds the binary first and passes its path.

use std::path::Path;

use common::quarry;
use common::Stream::{Stderr, Stdout};
use quarry_index::dense::{ElementType, IndexSpec, IndexWriter};
use serde_json::Value;

const FP: &str = "test-encoder/v1";
const DIM: usize = 8;
const ROWS: usize = 300;

mod common;

#[path = "../../index/tests/common/vectors.rs"]
mod shared_vectors;

/// Deterministic unit vectors of the tests' width, row-major.
fn vectors(n: usize, seed: u64) -> Vec<f32> {
    shared_vectors::unit_vectors(n, DIM, seed)
}

/// 300 rows in 3 shards (128, 128, 44).
fn make_index(dir: &Path) -> Vec<f32> {
    let data = vectors(ROWS, 3);
    let spec = IndexSpec {
        encoder_fingerprint: FP.into(),
        corpus_checksum: "sha256:test".into(),
        dim: DIM,
        element_type: ElementType::F32,
        shard_rows: 128,
    };
    let mut w = IndexWriter::create_or_resume(dir, spec).unwrap();
    let ids: Vec<String> = (0..ROWS).map(|i| format!("doc-{i}")).collect();
    w.push_batch(&ids, &data).unwrap();
    w.finish().unwrap();
    data
}

/// `quarry ARGS`, which must succeed, its stdout parsed as JSON.
fn json(args: &[&str]) -> Value {
    quarry(args).ok().json()
}

#[test]
fn info_verify_search_and_hnsw() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let data = make_index(&dir);
    let d = dir.to_str().unwrap();

    let info = json(&["index", "info", d, "--json"]);
    assert_eq!(info["rows"], ROWS);
    assert_eq!(info["dim"], DIM);
    assert_eq!(info["element_type"], "f32");
    assert_eq!(info["encoder_fingerprint"], FP);
    assert_eq!(info["shards"].as_array().unwrap().len(), 3);
    assert!(info["hnsw"].is_null());
    quarry(&["index", "info", d])
        .ok()
        .has(Stdout, &["rows             300"]);

    let verify = json(&["index", "verify", d, "--json"]);
    for s in verify["shards"].as_array().unwrap() {
        assert_eq!(s["status"], "verified now");
    }

    // A stored row as the query: itself first, score = its squared norm = 1.
    let hits = json(&["index", "search", d, "--row", "200", "-k", "3", "--json"]);
    let first = &hits["results"][0]["hits"][0];
    assert_eq!(first["doc_id"], "doc-200");
    assert_eq!(first["row"], 200);
    assert!((first["score"].as_f64().unwrap() - 1.0).abs() < 1e-5);
    assert_eq!(hits["results"][0]["hits"].as_array().unwrap().len(), 3);

    // Queries from a JSON file: two queries, the best hit of each is the row it copies.
    let qfile = tmp.path().join("q.json");
    let q: Vec<Vec<f32>> = [7usize, 250]
        .iter()
        .map(|&r| data[r * DIM..(r + 1) * DIM].to_vec())
        .collect();
    std::fs::write(&qfile, serde_json::to_string(&q).unwrap()).unwrap();
    let search_file = [
        "index",
        "search",
        d,
        "--query-file",
        qfile.to_str().unwrap(),
    ];
    let hits = json(&[&search_file[..], &["-k", "5", "--json"]].concat());
    assert_eq!(hits["results"][0]["hits"][0]["doc_id"], "doc-7");
    assert_eq!(hits["results"][1]["hits"][0]["doc_id"], "doc-250");

    // Wrong dimension: refused, naming the query file.
    std::fs::write(&qfile, "[0.1, 0.2, 0.3]").unwrap();
    quarry(&search_file)
        .fails()
        .has(Stderr, &["q.json", "dimension"]);

    // Another encoder's queries: refused.
    quarry(&["index", "search", d, "--row", "1", "--encoder", "other/v2"])
        .fails()
        .has(Stderr, &["encoder mismatch"]);

    // HNSW: build, then search it; the row finds itself.
    quarry(&["index", "hnsw", d, "--m", "8", "--ef-construction", "64"])
        .ok()
        .has(Stdout, &["recall@10"]);
    let info = json(&["index", "info", d, "--json"]);
    assert_eq!(info["hnsw"]["m"], 8);
    let hits = json(&[
        "index", "search", d, "--row", "42", "--hnsw", "--ef", "32", "--json",
    ]);
    assert_eq!(hits["method"], "hnsw");
    assert_eq!(hits["results"][0]["hits"][0]["doc_id"], "doc-42");
    assert!(json(&["index", "verify", d, "--json"])["rows"] == ROWS);
}

#[test]
fn corruption_fails_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    make_index(&dir);
    let d = dir.to_str().unwrap();
    quarry(&["index", "hnsw", d, "--m", "8"]).ok();

    // A flipped byte in the middle shard's rows.
    let shard = dir.join("shard-00001.qvs");
    let original = std::fs::read(&shard).unwrap();
    let mut bytes = original.clone();
    bytes[1000] ^= 0x01;
    std::fs::write(&shard, &bytes).unwrap();
    quarry(&["index", "verify", d])
        .fails()
        .has(Stderr, &["shard-00001.qvs", "corrupt data", "checksum"]);
    // The rewritten file is no longer "verified": a plain search checks it too.
    quarry(&["index", "search", d, "--row", "0"])
        .fails()
        .has(Stderr, &["shard-00001.qvs"]);

    // Truncated shard: caught at open (size differs from the manifest's).
    std::fs::write(&shard, &original[..original.len() - 10]).unwrap();
    quarry(&["index", "info", d])
        .fails()
        .has(Stderr, &["shard-00001.qvs"]);
    std::fs::write(&shard, &original).unwrap();
    quarry(&["index", "verify", d]).ok();

    // A flipped byte in the HNSW graph: verify names the graph file.
    let graph = dir.join("hnsw").join("graph.qhg");
    let mut g = std::fs::read(&graph).unwrap();
    let at = g.len() / 2;
    g[at] ^= 0x10;
    std::fs::write(&graph, &g).unwrap();
    quarry(&["index", "verify", d])
        .fails()
        .has(Stderr, &["graph.qhg", "checksum"]);
    quarry(&["index", "search", d, "--row", "0", "--hnsw"])
        .fails()
        .has(Stderr, &["graph.qhg"]);
}
