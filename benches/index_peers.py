"""Peer side of benches/index_peers.sh: data generation, faiss IndexFlatIP,
hnswlib, and the final ratio report. Run with the /work/venvs/faiss python."""
import argparse
import json
import os
import time

import numpy as np


def gen(a):
    base_path = os.path.join(a.out, "base.npy")
    q_path = os.path.join(a.out, "queries.npy")
    if os.path.exists(base_path):
        b = np.load(base_path, mmap_mode="r")
        if b.shape == (a.n, a.dim) and b.dtype == np.float32:
            print(f"reusing {base_path} {b.shape}")
            return
    # Deterministic: PCG64 seed 0, standard normal rows normalised to unit length,
    # written in chunks so only one 3.6 GB copy ever exists (on disk).
    rng = np.random.default_rng(0)
    out = np.lib.format.open_memmap(base_path + ".tmp", mode="w+", dtype=np.float32, shape=(a.n, a.dim))
    step = 50_000
    for lo in range(0, a.n, step):
        hi = min(a.n, lo + step)
        x = rng.standard_normal((hi - lo, a.dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[lo:hi] = x
    out.flush()
    del out
    os.replace(base_path + ".tmp", base_path)
    rq = np.random.default_rng(1)
    q = rq.standard_normal((1000, a.dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.save(q_path, q)
    print(f"wrote {base_path} ({a.n} x {a.dim}) and {q_path}")


def faiss_flat(a):
    import faiss

    faiss.omp_set_num_threads(os.cpu_count())
    base = np.load(os.path.join(a.work, "base.npy"), mmap_mode="r")
    queries = np.load(os.path.join(a.work, "queries.npy"))
    t = time.perf_counter()
    index = faiss.IndexFlatIP(base.shape[1])
    step = 100_000
    for lo in range(0, base.shape[0], step):
        index.add(np.ascontiguousarray(base[lo : lo + step]))
    print(f"faiss add: {time.perf_counter() - t:.1f} s")
    index.search(queries[:1], a.k)  # warm
    n1 = 20
    t = time.perf_counter()
    for i in range(n1):
        index.search(queries[i : i + 1], a.k)
    qps1 = n1 / (time.perf_counter() - t)
    best = 1e9
    for _ in range(2):
        t = time.perf_counter()
        _, ids = index.search(queries[:256], a.k)
        best = min(best, time.perf_counter() - t)
    qps256 = 256 / best
    print(f"faiss IndexFlatIP f32: batch 1 {qps1:.2f} q/s, batch 256 {qps256:.1f} q/s")
    json.dump({"qps_batch1": qps1, "qps_batch256": qps256, "ids": ids.tolist()}, open(a.out, "w"))


def hnswlib_run(a):
    import hnswlib

    base = np.load(os.path.join(a.work, "base.npy"), mmap_mode="r")[: a.rows]
    base = np.ascontiguousarray(base)
    queries = np.load(os.path.join(a.work, "queries.npy"))[: a.nq]
    threads = os.cpu_count()
    # exact truth by brute force
    truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :10]
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.init_index(max_elements=a.rows, M=a.m, ef_construction=a.ef_construction, random_seed=100)
    t = time.perf_counter()
    index.add_items(base, np.arange(a.rows), num_threads=threads)
    build_s = time.perf_counter() - t
    path = os.path.join(a.work, f"hnswlib-{a.rows}.bin")
    index.save_index(path)
    del index
    t = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.load_index(path, max_elements=a.rows)
    reload_s = time.perf_counter() - t
    sweep = []
    for ef in [32, 64, 128, 256, 512, 1024, 2048]:
        index.set_ef(ef)
        index.knn_query(queries[:50], k=10, num_threads=threads)
        t = time.perf_counter()
        labels, _ = index.knn_query(queries, k=10, num_threads=threads)
        qps = len(queries) / (time.perf_counter() - t)
        recall = np.mean([len(set(labels[i]) & set(truth[i])) / 10 for i in range(len(queries))])
        sweep.append({"ef": ef, "qps": qps, "recall": float(recall)})
        print(f"hnswlib ef={ef}: recall@10 {recall:.4f}, {qps:.0f} q/s")
    print(f"hnswlib build {build_s:.1f} s, reload {reload_s:.3f} s")
    json.dump({"build_s": build_s, "reload_s": reload_s, "sweep": sweep}, open(a.out, "w"))


def at_recall(sweep, target=0.95):
    ok = [s for s in sweep if s["recall"] >= target]
    return max(ok, key=lambda s: s["qps"]) if ok else None


def report(a):
    w = a.work
    q = json.load(open(os.path.join(w, "quarry_flat.json")))
    f = json.load(open(os.path.join(w, "faiss_flat.json")))
    print("\n== report (ratios are quarry / peer; > 1 means quarry is faster)")
    for mode in ["f32", "f16", "int8"]:
        if mode not in q:
            continue
        m = q[mode]
        agree = np.mean([len(set(a_) & set(b_)) / len(b_) for a_, b_ in zip(m["ids"], f["ids"])])
        exact = np.mean([a_ == b_ for a_, b_ in zip(m["ids"], f["ids"])])
        line = f"flat {mode:5s}: batch 1 {m['qps_batch1']:8.2f} q/s ({m['qps_batch1'] / f['qps_batch1']:.2f}x faiss)"
        line += f"  batch 256 {m['qps_batch256']:8.1f} q/s ({m['qps_batch256'] / f['qps_batch256']:.2f}x faiss)"
        line += f"  top-10 overlap with faiss {agree:.4f}, identical lists {exact:.3f}"
        print(line)
    print(f"faiss f32  : batch 1 {f['qps_batch1']:8.2f} q/s, batch 256 {f['qps_batch256']:8.1f} q/s")
    qh = json.load(open(os.path.join(w, "quarry_hnsw.json")))
    hh = json.load(open(os.path.join(w, "hnswlib_hnsw.json")))
    a_, b_ = at_recall(qh["sweep"]), at_recall(hh["sweep"])
    if a_ and b_:
        print(
            f"hnsw @recall>=0.95: quarry ef={a_['ef']} {a_['qps']:.0f} q/s (recall {a_['recall']:.4f}), "
            f"hnswlib ef={b_['ef']} {b_['qps']:.0f} q/s (recall {b_['recall']:.4f}) -> {a_['qps'] / b_['qps']:.2f}x"
        )
    else:
        print("hnsw: recall 0.95 not reached by one side", a_, b_)
    print(
        f"hnsw build: quarry {qh['build_s']:.1f} s vs hnswlib {hh['build_s']:.1f} s ({hh['build_s'] / qh['build_s']:.2f}x); "
        f"reload: quarry {qh['reload_s']:.3f} s vs hnswlib {hh['reload_s']:.3f} s"
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--dim", type=int, required=True)
    g.add_argument("--out", required=True)
    fa = sub.add_parser("faiss")
    fa.add_argument("--work", required=True)
    fa.add_argument("--k", type=int, default=10)
    fa.add_argument("--out", required=True)
    h = sub.add_parser("hnswlib")
    h.add_argument("--work", required=True)
    h.add_argument("--rows", type=int, required=True)
    h.add_argument("--m", type=int, default=16)
    h.add_argument("--ef-construction", type=int, default=200)
    h.add_argument("--nq", type=int, default=200)
    h.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--work", required=True)
    a = p.parse_args()
    {"gen": gen, "faiss": faiss_flat, "hnswlib": hnswlib_run, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
