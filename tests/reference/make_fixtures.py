"""Scores run files with pytrec_eval and writes the per-query values that
quarry's metrics must reproduce (tests/tests/pytrec_reference.rs).

Run through make_fixtures.sh (it sets up the venv), from the repository root.

Cases:
  synthetic  a run + qrels generated here, deterministically (seeded), with
             score ties, run queries without qrels, qrels queries without
             results, queries whose judgments are all grade 0, grades 0/1/2,
             and doc ids whose byte order differs from numeric order.
  nfcorpus   Pyserini's BM25 run on nfcorpus (top 10 of 1000, committed
             reference) against data/nfcorpus/qrels/test.tsv.zst.

How each quarry metric maps onto pytrec_eval (trec_eval 9):
  ndcg@k    ndcg_cut.k
  recall@k  recall.k
  p@k       P.k
  map       map
  map@k     map_cut.k
  success@k success.k
  r-prec    Rprec
  mrr@k     recip_rank on the run cut to its top k. trec_eval's recip_rank
            has no cutoff, so the script sorts each query's hits the way
            trec_eval does (score descending, ties by doc id descending),
            keeps the first k and scores that run.

Queries: every query of the qrels is given to pytrec_eval, those without
hits as an empty ranking (pytrec_eval then scores them 0, like trec_eval -c).
The mean is over the queries with at least one judgment of grade >= 1, the
set quarry averages over; all-zero-grade queries are listed separately.
"""

import argparse
import io
import json
import random
import sys
from pathlib import Path

import pytrec_eval
import zstandard

FIXTURES = Path("tests/fixtures/reference")
SYNTHETIC_DIR = FIXTURES / "synthetic"
OUT = FIXTURES / "pytrec_eval_metrics.json"

CUTOFFS = {
    "ndcg": [1, 3, 5, 10, 100, 1000],
    "mrr": [1, 3, 5, 10, 100],
    "recall": [1, 5, 10, 100, 1000],
    "p": [1, 5, 10, 20],
    "map": [5, 10, 100, 1000],
    "success": [1, 5, 10, 100],
}
METRICS = (
    [f"ndcg@{k}" for k in CUTOFFS["ndcg"]]
    + [f"mrr@{k}" for k in CUTOFFS["mrr"]]
    + [f"recall@{k}" for k in CUTOFFS["recall"]]
    + [f"p@{k}" for k in CUTOFFS["p"]]
    + ["map"]
    + [f"map@{k}" for k in CUTOFFS["map"]]
    + [f"success@{k}" for k in CUTOFFS["success"]]
    + ["r-prec"]
)


def open_text(path):
    data = Path(path).read_bytes()
    if str(path).endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data.decode("utf-8")


def read_qrels(path):
    lines = open_text(path).splitlines()
    assert lines[0].split("\t") == ["query-id", "corpus-id", "score"], path
    qrels = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        qid, did, grade = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(grade)
    return qrels


def read_run(path):
    run = {}
    for line in open_text(path).splitlines():
        if not line.strip():
            continue
        qid, _q0, did, _rank, score, _tag = line.split()
        assert did not in run.get(qid, {}), (qid, did)
        run.setdefault(qid, {})[did] = float(score)
    return run


def trec_eval_order(hits):
    """hits: {doc: score} -> [(doc, score)] in trec_eval's order."""
    items = sorted(hits.items(), key=lambda h: h[0], reverse=True)  # doc id descending
    return sorted(items, key=lambda h: h[1], reverse=True)  # stable: score descending


def evaluate(qrels, run):
    # Every qrels query is evaluated; no hits -> empty ranking (scored 0).
    full_run = {qid: dict(run.get(qid, {})) for qid in qrels}
    measures = (
        {f"ndcg_cut.{k}" for k in CUTOFFS["ndcg"]}
        | {f"recall.{k}" for k in CUTOFFS["recall"]}
        | {f"P.{k}" for k in CUTOFFS["p"]}
        | {"map", "Rprec"}
        | {"map_cut." + ",".join(str(k) for k in CUTOFFS["map"])}
        | {"success." + ",".join(str(k) for k in CUTOFFS["success"])}
    )
    base = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(full_run)
    per_query = {qid: {} for qid in qrels}
    for qid, values in base.items():
        for k in CUTOFFS["ndcg"]:
            per_query[qid][f"ndcg@{k}"] = values[f"ndcg_cut_{k}"]
        for k in CUTOFFS["recall"]:
            per_query[qid][f"recall@{k}"] = values[f"recall_{k}"]
        for k in CUTOFFS["p"]:
            per_query[qid][f"p@{k}"] = values[f"P_{k}"]
        per_query[qid]["map"] = values["map"]
        for k in CUTOFFS["map"]:
            per_query[qid][f"map@{k}"] = values[f"map_cut_{k}"]
        for k in CUTOFFS["success"]:
            per_query[qid][f"success@{k}"] = values[f"success_{k}"]
        per_query[qid]["r-prec"] = values["Rprec"]
    for k in CUTOFFS["mrr"]:
        cut_run = {qid: dict(trec_eval_order(hits)[:k]) for qid, hits in full_run.items()}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut_run)
        for qid, values in rr.items():
            per_query[qid][f"mrr@{k}"] = values["recip_rank"]
    assert set(base) == set(qrels), "pytrec_eval skipped a query"

    with_relevant = sorted(q for q, docs in qrels.items() if any(g >= 1 for g in docs.values()))
    without_relevant = sorted(q for q in qrels if q not in set(with_relevant))
    without_results = sorted(q for q in with_relevant if not run.get(q))
    mean = {m: sum(per_query[q][m] for q in with_relevant) / len(with_relevant) for m in METRICS}
    return {
        "per_query": {q: per_query[q] for q in with_relevant},
        "mean": mean,
        "queries_without_results": without_results,
        "queries_without_relevant": without_relevant,
        "run_queries_without_qrels": sorted(q for q in run if q not in qrels),
    }


def make_synthetic():
    """Writes synthetic/qrels.tsv and synthetic/run.trec (seeded, so the
    files are the same on every run)."""
    rng = random.Random(20261125)
    docs = [f"d{i}" for i in range(1, 121)]  # d10 < d9 byte-wise: exercises tie order
    qrels_lines = ["query-id\tcorpus-id\tscore"]
    run_lines = []
    for q in range(1, 41):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 25))
        if q % 10 == 3:
            grades = [0] * len(judged)  # judged, none relevant: left out of means
        else:
            grades = [rng.choice([0, 1, 1, 2]) for _ in judged]
            if q % 10 == 4:
                grades[0] = 2  # make sure a relevant doc exists for no-result queries
        for did, g in zip(judged, grades):
            qrels_lines.append(f"{qid}\t{did}\t{g}")
        if q % 10 == 4:
            continue  # in qrels, no results at all
        depth = rng.choice([3, 8, 15, 40, 110])
        # Retrieve a mix of judged and unjudged docs; coarse scores -> many ties.
        pool = list(dict.fromkeys(judged[: rng.randint(0, len(judged))] + rng.sample(docs, 60)))
        if depth == 110:
            pool = list(docs)  # deep query: recall@100 and ndcg@100 cut inside the list
        rng.shuffle(pool)
        retrieved = pool[:depth]
        for rank, did in enumerate(retrieved, 1):
            score = rng.choice([0.5, 1.0, 1.5, 2.0, 2.5, 3.0]) if q % 2 else round(rng.uniform(-1, 5), 3)
            # Written in a rank order that is NOT trec_eval's: the rank column must be ignored.
            run_lines.append(f"{qid} Q0 {did} {rank} {score} synthetic")
    for q in range(41, 44):  # run queries without qrels: ignored
        for rank, did in enumerate(rng.sample(docs, 5), 1):
            run_lines.append(f"q{q} Q0 {did} {rank} {1.0 / rank} synthetic")
    SYNTHETIC_DIR.mkdir(parents=True, exist_ok=True)
    (SYNTHETIC_DIR / "qrels.tsv").write_text("\n".join(qrels_lines) + "\n")
    (SYNTHETIC_DIR / "run.trec").write_text("\n".join(run_lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--case",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "QRELS", "RUN"),
        help="score one more run file (paths relative to the repository root), e.g. quarry's own BM25 run",
    )
    args = parser.parse_args()
    make_synthetic()
    cases = [
        ("synthetic", SYNTHETIC_DIR / "qrels.tsv", SYNTHETIC_DIR / "run.trec"),
        (
            "nfcorpus-pyserini-bm25-top10",
            Path("data/nfcorpus/qrels/test.tsv.zst"),
            FIXTURES / "pyserini_bm25_flat_nfcorpus_test.top10.trec",
        ),
    ] + [(name, Path(qrels), Path(run)) for name, qrels, run in args.case]
    out = {
        "meta": {
            "made_by": "tests/reference/make_fixtures.sh",
            "pytrec_eval": "pytrec_eval-terrier 0.5.11 (trec_eval 9)",
            "metric_mapping": {
                "ndcg@k": "ndcg_cut.k",
                "recall@k": "recall.k",
                "p@k": "P.k",
                "map": "map",
                "map@k": "map_cut.k",
                "success@k": "success.k",
                "r-prec": "Rprec",
                "mrr@k": "recip_rank on the run cut to its top k in trec_eval order",
            },
            "mean_over": "qrels queries with at least one judgment of grade >= 1",
        },
        "metrics": METRICS,
        "cases": [],
    }
    for name, qrels_path, run_path in cases:
        result = evaluate(read_qrels(qrels_path), read_run(run_path))
        out["cases"].append({"name": name, "qrels": str(qrels_path), "run": str(run_path), **result})
        print(f"{name}: {len(result['per_query'])} queries; "
              + ", ".join(f"{m}={result['mean'][m]:.4f}" for m in ("ndcg@10", "mrr@10", "recall@100", "map")),
              file=sys.stderr)
    OUT.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main()
