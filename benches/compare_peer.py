#!/usr/bin/env python3
"""The peer of benches/compare_speed.sh: ranx's `compare` (per-metric means and a
paired test of every run against the first) over the same qrels and TREC run files
quarry compared, timed in one process.

    compare_peer.py --metrics m1,m2 --test student|fisher DATASET:QRELS_TSV:RUN1,RUN2,RUN3 ...

QRELS_TSV is a BEIR qrels file (header line, query-id corpus-id score; plain text).
Prints one JSON object: seconds for importing ranx, reading the files, the first compare
(numba compiles its kernels then) and the same compare again (warm), ranx's means, and the
means pytrec_eval (trec_eval 9) gives the same files, untimed: ranx orders tied scores its
own way, trec_eval by doc id (descending), which is what quarry follows.
"""
import argparse
import json
import time

started = time.perf_counter()
from ranx import Qrels, Run, compare  # noqa: E402

imported = time.perf_counter() - started


def read_qrels(path):
    judged = {}
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, g = line.rstrip("\n").split("\t")
            judged.setdefault(q, {})[d] = int(g)
    return Qrels(judged)


def trec_eval_means(qrels, run, metrics):
    """Means over the queries with a relevant judgment, as trec_eval computes them:
    ndcg_cut.k, recall.k, and recip_rank on the run cut to its top k in trec_eval's
    order (score descending, then doc id descending)."""
    import pytrec_eval

    judged = qrels.to_dict()
    hits = run.to_dict()
    full = {q: dict(hits.get(q, {})) for q in judged}
    measures = set()
    for m in metrics:
        name, k = m.split("@")
        if name == "ndcg":
            measures.add(f"ndcg_cut.{k}")
        elif name == "recall":
            measures.add(f"recall.{k}")
    base = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(full)
    scored = [q for q, docs in judged.items() if any(g >= 1 for g in docs.values())]
    out = {}
    for m in metrics:
        name, k = m.split("@")
        if name == "mrr":
            def order(h):
                return sorted(sorted(h.items(), key=lambda x: x[0], reverse=True), key=lambda x: x[1], reverse=True)
            cut = {q: dict(order(h)[: int(k)]) for q, h in full.items()}
            values = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(cut)
            out[m] = sum(values[q]["recip_rank"] for q in scored) / len(scored)
        else:
            key = f"ndcg_cut_{k}" if name == "ndcg" else f"recall_{k}"
            out[m] = sum(base[q][key] for q in scored) / len(scored)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--test", default="student", choices=["student", "fisher"])
    parser.add_argument("--permutations", type=int, default=10_000)
    parser.add_argument("datasets", nargs="+")
    args = parser.parse_args()
    metrics = args.metrics.split(",")

    t0 = time.perf_counter()
    loaded = []
    for spec in args.datasets:
        name, qrels_path, runs = spec.split(":", 2)
        qrels = read_qrels(qrels_path)
        run_list = []
        for i, path in enumerate(runs.split(",")):
            run = Run.from_file(path, kind="trec")
            run.name = f"r{i}"
            run_list.append(run)
        loaded.append((name, qrels, run_list))
    read_s = time.perf_counter() - t0

    def once():
        out = {}
        for name, qrels, run_list in loaded:
            report = compare(
                qrels,
                runs=run_list,
                metrics=metrics,
                stat_test=args.test,
                n_permutations=args.permutations,
                max_p=0.05,
                make_comparable=True,
            )
            out[name] = report.to_dict()
        return out

    t1 = time.perf_counter()
    first = once()
    first_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    once()
    warm_s = time.perf_counter() - t2
    means = {
        name: {r: {m: d[r]["scores"][m] for m in metrics} for r in d["model_names"]}
        for name, d in first.items()
    }
    trec_eval = {
        name: {run.name: trec_eval_means(qrels, run, metrics) for run in run_list}
        for name, qrels, run_list in loaded
    }
    print(
        json.dumps(
            {
                "import_s": imported,
                "read_s": read_s,
                "first_compare_s": first_s,
                "warm_compare_s": warm_s,
                "means": means,
                "trec_eval_means": trec_eval,
            }
        )
    )


if __name__ == "__main__":
    main()
