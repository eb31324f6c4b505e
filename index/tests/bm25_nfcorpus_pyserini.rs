//! BM25 over all of nfcorpus must reproduce Pyserini's BEIR "flat" run.
//!
//! References (real Pyserini 2.4.0 / Lucene 10.5, made by
//! `benches/pyserini_peer.sh`): `pyserini_bm25_flat_nfcorpus_test.top10.trec`
//! (top 10 per test query) and `pyserini_bm25_flat_nfcorpus_test.json`
//! (per-query NDCG@10 of the 1000-deep run, and that run's sha256, which the
//! test's whole run must equal). The test reads the embedded dataset itself (a few lines of
//! zstd + JSON); dataset handling proper lives in `quarry-engine`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use quarry_index::bm25::{adjust_score_ties_as_anserini, Bm25Doc, Bm25Hit, Bm25Index};
use sha2::{Digest, Sha256};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn zst_lines(path: &Path) -> Vec<String> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let decoder = zstd::stream::read::Decoder::new(file).expect("zstd stream");
    BufReader::new(decoder)
        .lines()
        .map(|l| l.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    zst_lines(path)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or("")
}

/// qrels: query id -> doc id -> relevance.
fn qrels(path: &Path) -> BTreeMap<String, HashMap<String, i64>> {
    let mut out: BTreeMap<String, HashMap<String, i64>> = BTreeMap::new();
    for (i, line) in zst_lines(path).iter().enumerate() {
        let parts: Vec<&str> = line.split('\t').collect();
        if i == 0 && parts.get(2).is_some_and(|s| s.parse::<i64>().is_err()) {
            continue; // header
        }
        let rel = parts[2].trim().parse().expect("relevance");
        out.entry(parts[0].to_string())
            .or_default()
            .insert(parts[1].to_string(), rel);
    }
    out
}

/// Writes a TREC run (scores with `decimals` decimals) for debugging.
fn write_run<'a>(
    path: &str,
    runs: impl Iterator<Item = (&'a str, &'a Vec<Bm25Hit>)>,
    decimals: usize,
) {
    let mut out = String::new();
    for (qid, hits) in runs {
        for (rank, h) in hits.iter().enumerate() {
            out.push_str(&format!(
                "{qid} Q0 {} {} {:.decimals$} quarry\n",
                h.doc_id,
                rank + 1,
                h.score
            ));
        }
    }
    std::fs::write(path, out).expect("write run");
}

/// trec_eval's ndcg_cut.10 on a run as Pyserini writes it (scores with 6
/// decimals; ties ordered by doc id descending, as trec_eval sorts).
/// `hits` carry Pyserini's tie-adjusted scores, so that order is Lucene's.
fn ndcg_at_10(hits: &[Bm25Hit], qrels: &HashMap<String, i64>) -> f64 {
    let mut ranked: Vec<(f64, &str)> = hits
        .iter()
        .map(|h| {
            (
                format!("{:.6}", h.score).parse::<f64>().unwrap(),
                h.doc_id.as_str(),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(a.1)));
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, (_, d))| {
            let rel = qrels.get(*d).copied().unwrap_or(0).max(0) as f64;
            rel / ((i + 2) as f64).log2()
        })
        .sum();
    let mut ideal: Vec<i64> = qrels.values().copied().filter(|&r| r > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, &r)| r as f64 / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 {
        0.0
    } else {
        dcg / idcg
    }
}

fn recall_at(hits: &[Bm25Hit], qrels: &HashMap<String, i64>, depth: usize) -> f64 {
    let relevant = qrels.values().filter(|&&r| r > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = hits
        .iter()
        .take(depth)
        .filter(|h| qrels.get(&h.doc_id).is_some_and(|&r| r > 0))
        .count();
    found as f64 / relevant as f64
}

#[test]
fn nfcorpus_matches_pyserini_bm25_flat() {
    let data = repo_root().join("data/nfcorpus");
    let reference = repo_root().join("tests/fixtures/reference");

    let corpus = jsonl(&data.join("corpus.jsonl.zst"));
    let docs = corpus.iter().map(|d| Bm25Doc {
        id: field(d, "_id"),
        title: field(d, "title"),
        text: field(d, "text"),
    });
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bm25");
    let index = Bm25Index::build(&dir, "nfcorpus-test", docs).expect("build");
    assert_eq!(index.num_docs(), corpus.len());
    // Reopening gives the same index; another checksum asks for a rebuild.
    assert!(Bm25Index::open_if_current(&dir, "nfcorpus-test")
        .expect("open")
        .is_some());
    assert!(Bm25Index::open_if_current(&dir, "other")
        .expect("open")
        .is_none());

    let qrels = qrels(&data.join("qrels/test.tsv.zst"));
    let queries: HashMap<String, String> = jsonl(&data.join("queries.jsonl.zst"))
        .iter()
        .map(|q| (field(q, "_id").to_string(), field(q, "text").to_string()))
        .collect();
    let qids: Vec<&String> = qrels.keys().collect();
    assert_eq!(qids.len(), 323);
    let texts: Vec<&str> = qids.iter().map(|q| queries[*q].as_str()).collect();
    let results = index.search_batch(&texts, 1000).expect("search");
    // Debugging aid: QUARRY_BM25_DUMP_RUN=path writes the run (raw Lucene
    // scores, 9 decimals, query's own id kept) and path.pyserini (as Pyserini
    // writes it: tie-adjusted scores, own id dropped).
    let dump = std::env::var("QUARRY_BM25_DUMP_RUN").ok();
    if let Some(path) = &dump {
        write_run(path, qids.iter().map(|q| q.as_str()).zip(&results), 9);
    }
    // As Pyserini: scores tie-adjusted on the full list, then the query's own id dropped.
    let runs: BTreeMap<&str, Vec<Bm25Hit>> = qids
        .iter()
        .zip(results)
        .map(|(qid, mut hits)| {
            adjust_score_ties_as_anserini(&mut hits);
            let hits: Vec<Bm25Hit> = hits.into_iter().filter(|h| h.doc_id != **qid).collect();
            (qid.as_str(), hits)
        })
        .collect();
    // Single-query search agrees with the batch.
    let mut single = index.search(texts[0], 1000).expect("search");
    adjust_score_ties_as_anserini(&mut single);
    single.retain(|h| h.doc_id != *qids[0]);
    assert_eq!(single, runs[qids[0].as_str()]);
    // The same query through tantivy's own search API scores the same.
    let query = index.query_for_terms(&index.analyze(texts[0]));
    let top = index
        .searcher()
        .search(
            &query,
            &tantivy::collector::TopDocs::with_limit(5).order_by_score(),
        )
        .expect("tantivy search");
    let direct = index.search(texts[0], 5).expect("search");
    let scores: Vec<f32> = top.iter().map(|(s, _)| *s).collect();
    assert_eq!(scores, direct.iter().map(|h| h.score).collect::<Vec<_>>());

    if let Some(path) = &dump {
        write_run(
            &format!("{path}.pyserini"),
            runs.iter().map(|(q, h)| (*q, h)),
            6,
        );
    }

    // --- top 10 against Pyserini's run file
    let trec_path = reference.join("pyserini_bm25_flat_nfcorpus_test.top10.trec");
    let mut pyserini: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for line in std::fs::read_to_string(&trec_path).expect("trec").lines() {
        let p: Vec<&str> = line.split_whitespace().collect();
        pyserini
            .entry(p[0].to_string())
            .or_default()
            .push((p[2].to_string(), p[4].parse().expect("score")));
    }
    let mut same_top10 = 0;
    let mut score_mismatches = Vec::new();
    let mut list_mismatches = Vec::new();
    for (qid, hits) in &runs {
        let expected = pyserini.get(*qid).cloned().unwrap_or_default();
        let got: Vec<&str> = hits.iter().take(10).map(|h| h.doc_id.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|(d, _)| d.as_str()).collect();
        if got == want {
            same_top10 += 1;
        } else {
            list_mismatches.push(format!(
                "{qid}: pyserini {want:?}\n        quarry   {got:?}"
            ));
        }
        for (hit, (doc, score)) in hits.iter().zip(&expected) {
            if hit.doc_id == *doc && format!("{:.6}", hit.score) != format!("{score:.6}") {
                score_mismatches.push(format!(
                    "{qid} {doc}: pyserini {score:.6} quarry {:.6}",
                    hit.score
                ));
            }
        }
    }

    // --- per-query NDCG@10 against Pyserini's evaluation
    let json_path = reference.join("pyserini_bm25_flat_nfcorpus_test.json");
    let reference_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json")).expect("json");
    let per_query = reference_json["per_query"].as_object().expect("per_query");
    let mut ndcg_sum = 0.0;
    let (mut r100, mut r1000) = (0.0, 0.0);
    let mut ndcg_diffs = Vec::new();
    for (qid, hits) in &runs {
        let q = &qrels[*qid];
        let ndcg = ndcg_at_10(hits, q);
        ndcg_sum += ndcg;
        r100 += recall_at(hits, q, 100);
        r1000 += recall_at(hits, q, 1000);
        let expected = per_query[*qid].as_f64().expect("ndcg");
        if (ndcg - expected).abs() > 1e-9 {
            ndcg_diffs.push((qid.to_string(), expected, ndcg));
        }
    }
    let n = runs.len() as f64;
    let mean_ndcg = ndcg_sum / n;
    eprintln!(
        "nfcorpus BM25: {same_top10}/{} queries with Pyserini's exact top-10 list; \
         {} top-10 scores differ from Pyserini's run file; {} queries differ in NDCG@10 {:?}; \
         NDCG@10 {mean_ndcg:.6} (pyserini {:.6}), R@100 {:.4}, R@1000 {:.4}",
        runs.len(),
        score_mismatches.len(),
        ndcg_diffs.len(),
        ndcg_diffs,
        reference_json["ndcg@10"].as_f64().unwrap(),
        r100 / n,
        r1000 / n
    );
    for m in list_mismatches.iter().chain(&score_mismatches) {
        eprintln!("  {m}");
    }
    assert!(
        (mean_ndcg - 0.3218).abs() <= 0.003,
        "mean NDCG@10 {mean_ndcg}"
    );
    assert_eq!(same_top10, runs.len(), "top-10 lists differ from Pyserini");
    assert!(score_mismatches.is_empty(), "scores differ from Pyserini");
    assert!(
        ndcg_diffs.is_empty(),
        "per-query NDCG@10 differs from Pyserini"
    );

    // --- the whole 1000-deep run, line for line: the fixture's meta carries the sha256 of
    // Pyserini's run.trec lines without the run tag, sorted bytewise (benches/pyserini_peer.sh).
    let mut lines: Vec<String> = runs
        .iter()
        .flat_map(|(qid, hits)| {
            hits.iter().enumerate().map(move |(rank, h)| {
                format!("{qid} Q0 {} {} {:.6}\n", h.doc_id, rank + 1, h.score)
            })
        })
        .collect();
    lines.sort();
    let digest = hex::encode(Sha256::digest(lines.concat().as_bytes()));
    let meta = &reference_json["meta"];
    assert_eq!(
        lines.len() as u64,
        meta["run_lines"].as_u64().expect("meta.run_lines"),
        "the 1000-deep run has another number of lines than Pyserini's"
    );
    assert_eq!(
        digest,
        meta["run_sha256"].as_str().expect("meta.run_sha256"),
        "the 1000-deep run differs from Pyserini's (same lines count): rerun with \
         QUARRY_BM25_DUMP_RUN=PATH and diff PATH.pyserini against benches/pyserini_peer.sh's run.trec"
    );
}
