//! Release bench for the dense store, driven by `benches/index_peers.sh`
//! (which runs faiss / hnswlib on the same `.npy` files and prints ratios).
//!
//! dense_bench flat --base B.npy --queries Q.npy --work DIR --k 10 --out R.json
//! dense_bench open --work DIR --queries Q.npy
//! dense_bench hnsw --base B.npy --queries Q.npy --work DIR --rows N --m 16 --ef-construction 200 --out R.json

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use quarry_index::dense::npy::NpyVectors;
use quarry_index::dense::{
    hnsw::recall_at_k, DenseIndex, ElementType, HnswIndex, HnswParams, IndexSpec, IndexWriter,
};

const FP: &str = "bench-random-unit-vectors";

fn args() -> (String, HashMap<String, String>) {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().expect("subcommand");
    let mut map = HashMap::new();
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        map.insert(k.trim_start_matches("--").to_string(), v);
    }
    (cmd, map)
}

/// Builds (or resumes) an index of the first `rows` base rows at `et`.
fn ensure_index(base: &NpyVectors, dir: &Path, et: ElementType, rows: usize) -> DenseIndex {
    let spec = IndexSpec {
        encoder_fingerprint: FP.into(),
        corpus_checksum: format!("{}:{rows}", base.path().display()),
        dim: base.cols,
        element_type: et,
        shard_rows: 1 << 16,
    };
    let mut w = IndexWriter::create_or_resume(dir, spec).unwrap();
    if !w.is_complete() {
        let t = Instant::now();
        let done = w.rows_done() as usize;
        let mut v = vec![0f32; base.cols];
        for r in done..rows {
            base.row_into(r, &mut v);
            w.push(&format!("d{r}"), &v).unwrap();
        }
        w.finish().unwrap();
        println!(
            "built {} in {:.1} s",
            dir.display(),
            t.elapsed().as_secs_f64()
        );
    }
    DenseIndex::open(dir).unwrap()
}

fn ids_json(res: &[Vec<quarry_index::dense::Hit>]) -> serde_json::Value {
    serde_json::Value::from(
        res.iter()
            .map(|h| h.iter().map(|x| x.row).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
    )
}

fn flat(a: &HashMap<String, String>) {
    let base = NpyVectors::open(Path::new(&a["base"])).unwrap();
    let queries = NpyVectors::open(Path::new(&a["queries"])).unwrap();
    let work = PathBuf::from(&a["work"]);
    let k: usize = a["k"].parse().unwrap();
    let q256 = queries.rows_vec(0, 256);
    let dim = base.cols;
    let mut out = serde_json::Map::new();
    for et in [ElementType::F32, ElementType::F16] {
        let index = ensure_index(&base, &work.join(format!("quarry-{et}")), et, base.rows);
        index.search(FP, &q256[..dim], k).unwrap(); // warm the page cache
        let n1 = 20;
        let t = Instant::now();
        for i in 0..n1 {
            index.search(FP, &q256[i * dim..(i + 1) * dim], k).unwrap();
        }
        let qps1 = n1 as f64 / t.elapsed().as_secs_f64();
        let mut best = f64::MAX;
        let mut res = Vec::new();
        for _ in 0..2 {
            let t = Instant::now();
            res = index.search(FP, &q256, k).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let qps256 = 256.0 / best;
        println!(
            "quarry flat {et} ({}): batch 1 {qps1:.2} q/s, batch 256 {qps256:.1} q/s",
            index.isa_name()
        );
        out.insert(
            et.to_string(),
            serde_json::json!({"qps_batch1": qps1, "qps_batch256": qps256, "ids": ids_json(&res)}),
        );
        if et == ElementType::F32 {
            // 8-bit scan + exact f32 rescoring of the best `cands` per query.
            let cands: usize = a.get("candidates").map_or(100, |c| c.parse().unwrap());
            let t = Instant::now();
            index.prepare_rescored();
            println!("int8 codes built in {:.2} s", t.elapsed().as_secs_f64());
            index.search_rescored(FP, &q256[..dim], k, cands).unwrap();
            let t = Instant::now();
            for i in 0..n1 {
                index
                    .search_rescored(FP, &q256[i * dim..(i + 1) * dim], k, cands)
                    .unwrap();
            }
            let qps1 = n1 as f64 / t.elapsed().as_secs_f64();
            let mut best = f64::MAX;
            let mut fast = Vec::new();
            for _ in 0..2 {
                let t = Instant::now();
                fast = index.search_rescored(FP, &q256, k, cands).unwrap();
                best = best.min(t.elapsed().as_secs_f64());
            }
            let qps256 = 256.0 / best;
            let recall = recall_at_k(&res, &fast, k);
            println!(
                "quarry int8+rescore f32 ({cands} candidates): batch 1 {qps1:.2} q/s, batch 256 {qps256:.1} q/s, recall@{k} vs exact f32 {recall:.4}"
            );
            out.insert(
                "int8".into(),
                serde_json::json!({"qps_batch1": qps1, "qps_batch256": qps256, "ids": ids_json(&fast), "recall_vs_exact": recall}),
            );
        }
        drop(index);
    }
    std::fs::write(&a["out"], serde_json::to_vec(&out).unwrap()).unwrap();
}

fn open(a: &HashMap<String, String>) {
    let queries = NpyVectors::open(Path::new(&a["queries"])).unwrap();
    let work = PathBuf::from(&a["work"]);
    // "as found": whatever the page cache holds now; the second open right
    // after is the warm case.
    let label = a.get("label").map_or("as found", |l| l.as_str());
    for et in ["f32", "f16"] {
        if a.get("only").is_some_and(|o| o != et) {
            continue;
        }
        for pass in [label, "again, warm"] {
            let t = Instant::now();
            let index = DenseIndex::open(&work.join(format!("quarry-{et}"))).unwrap();
            let open_ms = t.elapsed().as_secs_f64() * 1e3;
            let q = queries.rows_vec(0, 1);
            let t2 = Instant::now();
            index.search(FP, &q, 10).unwrap();
            println!(
                "open {} rows {et} ({pass}): open {open_ms:.2} ms; first query {:.1} ms",
                index.rows(),
                t2.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

/// ef values swept by both HNSW benches (index_peers.py's EF_SWEEP).
const EF_SWEEP: [usize; 17] = [
    10, 12, 14, 16, 18, 20, 24, 28, 32, 48, 64, 96, 128, 192, 256, 384, 512,
];

/// Timed passes over the query set per ef; the best counts (one pass of 1,000 queries lasts
/// ~0.2 s, too short to be stable on its own). index_peers.py times hnswlib the same way.
const SWEEP_REPEATS: usize = 5;

fn hnsw(a: &HashMap<String, String>) {
    let base = NpyVectors::open(Path::new(&a["base"])).unwrap();
    let queries = NpyVectors::open(Path::new(&a["queries"])).unwrap();
    let work = PathBuf::from(&a["work"]);
    let rows: usize = a["rows"].parse().unwrap();
    let params = HnswParams {
        m: a["m"].parse().unwrap(),
        ef_construction: a["ef-construction"].parse().unwrap(),
        ef_search: 64,
    };
    let dir = work.join(format!("quarry-hnsw-{rows}"));
    let index = ensure_index(&base, &dir, ElementType::F32, rows);
    let nq: usize = a.get("nq").map_or(1000, |n| n.parse().unwrap());
    let q = queries.rows_vec(0, nq);
    let report = HnswIndex::build(&index, params, &q[..200 * base.cols], 10).unwrap();
    println!(
        "quarry hnsw build ({rows} rows, M={}, efC={}): {:.1} s, recall@10 at ef {} = {:.4}",
        params.m,
        params.ef_construction,
        report.build_seconds,
        params.ef_search,
        report.entry.recall_at_k
    );
    drop(index);
    sweep(&dir, &q, nq, base.cols, report.build_seconds, &a["out"]);
}

/// Reloads the persisted graph of `dir` and sweeps ef at 1 thread and all cores.
fn sweep(dir: &Path, q: &[f32], nq: usize, dim: usize, build_s: f64, out: &str) {
    let index = DenseIndex::open(dir).unwrap();
    let t = Instant::now();
    let graph = HnswIndex::load(&index).unwrap();
    let reload_s = t.elapsed().as_secs_f64();
    println!("quarry hnsw reload: {:.1} ms", reload_s * 1e3);
    let truth = index.search(FP, q, 10).unwrap();
    let mut sweep_results = Vec::new();
    // Same protocol as index_peers.py's hnswlib run: the whole query set as one
    // batch over `threads` threads (1 = one query at a time; all cores).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1, cores];
    thread_counts.dedup();
    for threads in thread_counts {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for ef in EF_SWEEP {
            pool.install(|| {
                graph
                    .search(&index, FP, &q[..50 * dim], 10, Some(ef))
                    .unwrap();
                let mut best = f64::INFINITY;
                let mut res = Vec::new();
                for _ in 0..SWEEP_REPEATS {
                    let t = Instant::now();
                    res = graph.search(&index, FP, q, 10, Some(ef)).unwrap();
                    best = best.min(t.elapsed().as_secs_f64());
                }
                let qps = nq as f64 / best;
                let recall = recall_at_k(&truth, &res, 10);
                println!(
                    "quarry hnsw threads={threads} ef={ef}: recall@10 {recall:.4}, {qps:.0} q/s"
                );
                sweep_results.push(
                    serde_json::json!({"ef": ef, "threads": threads, "qps": qps, "recall": recall}),
                );
            });
        }
    }
    let json =
        serde_json::json!({"build_s": build_s, "reload_s": reload_s, "sweep": sweep_results});
    std::fs::write(out, serde_json::to_vec(&json).unwrap()).unwrap();
}

/// Query sweep only, on a graph built earlier by `hnsw` (for interleaving
/// quarry's and hnswlib's sweeps on a machine whose load changes).
fn hnsw_query(a: &HashMap<String, String>) {
    let queries = NpyVectors::open(Path::new(&a["queries"])).unwrap();
    let work = PathBuf::from(&a["work"]);
    let rows: usize = a["rows"].parse().unwrap();
    let nq: usize = a.get("nq").map_or(1000, |n| n.parse().unwrap());
    let q = queries.rows_vec(0, nq);
    let dir = work.join(format!("quarry-hnsw-{rows}"));
    sweep(&dir, &q, nq, queries.cols, f64::NAN, &a["out"]);
}

fn main() {
    let (cmd, a) = args();
    match cmd.as_str() {
        "flat" => flat(&a),
        "open" => open(&a),
        "hnsw" => hnsw(&a),
        "hnsw-query" => hnsw_query(&a),
        other => panic!("unknown subcommand {other}"),
    }
}
