//! End-to-end tests of `quarry index info|verify|search|hnsw` on a small dense
//! index written with quarry-index's writer: what each prints, and that
//! corruption of a shard or of the HNSW graph fails with a non-zero exit and
//! a message naming the damaged file.
//!
//! Declared as an integration test of quarry-cli (see cli/Cargo.toml) so
//! cargo builds the binary first and passes its path.

use std::path::Path;
use std::process::{Command, Output};

use quarry_index::dense::{ElementType, IndexSpec, IndexWriter};
use serde_json::Value;

const FP: &str = "test-encoder/v1";
const DIM: usize = 8;
const ROWS: usize = 300;

fn quarry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(args)
        .env_remove("QUARRY_REGISTRY")
        .env_remove("QUARRY_HOME")
        .output()
        .expect("quarry runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "quarry failed: {}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn info_verify_search_and_hnsw() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let data = make_index(&dir);
    let d = dir.to_str().unwrap();

    let info = json(&quarry(&["index", "info", d, "--json"]));
    assert_eq!(info["rows"], ROWS);
    assert_eq!(info["dim"], DIM);
    assert_eq!(info["element_type"], "f32");
    assert_eq!(info["encoder_fingerprint"], FP);
    assert_eq!(info["shards"].as_array().unwrap().len(), 3);
    assert!(info["hnsw"].is_null());
    let text = quarry(&["index", "info", d]);
    assert!(text.status.success());
    assert!(
        stdout(&text).contains("rows             300"),
        "{}",
        stdout(&text)
    );

    let verify = json(&quarry(&["index", "verify", d, "--json"]));
    for s in verify["shards"].as_array().unwrap() {
        assert_eq!(s["status"], "verified now");
    }

    // A stored row as the query: itself first, score = its squared norm = 1.
    let hits = json(&quarry(&[
        "index", "search", d, "--row", "200", "-k", "3", "--json",
    ]));
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
    let hits = json(&quarry(&[
        "index",
        "search",
        d,
        "--query-file",
        qfile.to_str().unwrap(),
        "-k",
        "5",
        "--json",
    ]));
    assert_eq!(hits["results"][0]["hits"][0]["doc_id"], "doc-7");
    assert_eq!(hits["results"][1]["hits"][0]["doc_id"], "doc-250");

    // Wrong dimension: refused, naming the query file.
    std::fs::write(&qfile, "[0.1, 0.2, 0.3]").unwrap();
    let bad = quarry(&[
        "index",
        "search",
        d,
        "--query-file",
        qfile.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("q.json"), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("dimension"), "{}", stderr(&bad));

    // Another encoder's queries: refused.
    let other = quarry(&["index", "search", d, "--row", "1", "--encoder", "other/v2"]);
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("encoder mismatch"),
        "{}",
        stderr(&other)
    );

    // HNSW: build, then search it; the row finds itself.
    let built = quarry(&["index", "hnsw", d, "--m", "8", "--ef-construction", "64"]);
    assert!(built.status.success(), "{}", stderr(&built));
    assert!(stdout(&built).contains("recall@10"), "{}", stdout(&built));
    let info = json(&quarry(&["index", "info", d, "--json"]));
    assert_eq!(info["hnsw"]["m"], 8);
    let hits = json(&quarry(&[
        "index", "search", d, "--row", "42", "--hnsw", "--ef", "32", "--json",
    ]));
    assert_eq!(hits["method"], "hnsw");
    assert_eq!(hits["results"][0]["hits"][0]["doc_id"], "doc-42");
    assert!(json(&quarry(&["index", "verify", d, "--json"]))["rows"] == ROWS);
}

#[test]
fn corruption_fails_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    make_index(&dir);
    let d = dir.to_str().unwrap();
    assert!(quarry(&["index", "hnsw", d, "--m", "8"]).status.success());

    // A flipped byte in the middle shard's rows.
    let shard = dir.join("shard-00001.qvs");
    let original = std::fs::read(&shard).unwrap();
    let mut bytes = original.clone();
    bytes[1000] ^= 0x01;
    std::fs::write(&shard, &bytes).unwrap();
    let out = quarry(&["index", "verify", d]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("shard-00001.qvs"), "{err}");
    assert!(
        err.contains("corrupt data") && err.contains("checksum"),
        "{err}"
    );
    // The rewritten file is no longer "verified": a plain search checks it too.
    let out = quarry(&["index", "search", d, "--row", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("shard-00001.qvs"), "{}", stderr(&out));

    // Truncated shard: caught at open (size differs from the manifest's).
    std::fs::write(&shard, &original[..original.len() - 10]).unwrap();
    let out = quarry(&["index", "info", d]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("shard-00001.qvs"), "{}", stderr(&out));
    std::fs::write(&shard, &original).unwrap();
    assert!(quarry(&["index", "verify", d]).status.success());

    // A flipped byte in the HNSW graph: verify names the graph file.
    let graph = dir.join("hnsw").join("graph.qhg");
    let mut g = std::fs::read(&graph).unwrap();
    let at = g.len() / 2;
    g[at] ^= 0x10;
    std::fs::write(&graph, &g).unwrap();
    let out = quarry(&["index", "verify", d]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("graph.qhg"), "{err}");
    assert!(err.contains("checksum"), "{err}");
    let out = quarry(&["index", "search", d, "--row", "0", "--hnsw"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("graph.qhg"), "{}", stderr(&out));
}
