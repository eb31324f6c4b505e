"""Peer side of benches/index_peers.sh: data generation, faiss IndexFlatIP,
hnswlib, and the final ratio report. Run with the python of the venv index_peers.sh makes
(.venv-faiss in the checkout)."""
import argparse
import json
import os
import time

import numpy as np


def unit_rows(x):
    """Scales each row of `x` to unit length, in place, and returns it."""
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def reusable(a):
    """True (and says so) when `a.out` already holds a base of a.n x a.dim f32 rows: the data
    is deterministic, so generating it again would give the same."""
    base_path = os.path.join(a.out, "base.npy")
    if os.path.exists(base_path):
        b = np.load(base_path, mmap_mode="r")
        if b.shape == (a.n, a.dim) and b.dtype == np.float32:
            print(f"reusing {base_path} {b.shape}")
            return True
    return False


def write_data(a, draw_base, draw_queries, detail=""):
    """Writes `a.out`/base.npy, a.n x a.dim f32 rows (`draw_base(count)` gives the next `count`),
    then queries.npy (`draw_queries()`). The base goes to a memmap in chunks, so only one 3.6 GB
    copy ever exists (on disk), and is renamed into place only once complete."""
    base_path = os.path.join(a.out, "base.npy")
    q_path = os.path.join(a.out, "queries.npy")
    out = np.lib.format.open_memmap(base_path + ".tmp", mode="w+", dtype=np.float32, shape=(a.n, a.dim))
    step = 50_000
    for lo in range(0, a.n, step):
        hi = min(a.n, lo + step)
        out[lo:hi] = draw_base(hi - lo)
    out.flush()
    del out
    os.replace(base_path + ".tmp", base_path)
    np.save(q_path, draw_queries())
    print(f"wrote {base_path} ({a.n} x {a.dim}{detail}) and {q_path}")


def gen(a):
    """Uniform random unit vectors: PCG64 seed 0 for the base, 1 for the 1,000 queries."""
    if reusable(a):
        return
    rng = np.random.default_rng(0)
    write_data(
        a,
        lambda n: unit_rows(rng.standard_normal((n, a.dim), dtype=np.float32)),
        lambda: unit_rows(np.random.default_rng(1).standard_normal((1000, a.dim), dtype=np.float32)),
    )


def gen_clustered(a):
    """Vectors with the structure real embeddings have, for the HNSW comparison.

    Uniform random unit vectors in 896 dimensions have no neighbourhood structure
    (every pair is at nearly the same angle), so no graph index reaches recall 0.95
    on them at a sane ef. Sentence/code embeddings instead concentrate near a
    low-dimensional set with clusters. Model: a mixture of `centres` Gaussian
    clusters in a `latent`-dimensional space, mapped into `dim` dimensions by one
    fixed random linear map, plus small isotropic noise, then L2-normalised.
    Queries are fresh draws from the same mixture (not copies of base rows).
    Deterministic (PCG64 seeds 10/11/12)."""
    os.makedirs(a.out, exist_ok=True)
    if reusable(a):
        return
    model = np.random.default_rng(10)
    centres = model.standard_normal((a.centres, a.latent), dtype=np.float32)
    mix = model.standard_normal((a.latent, a.dim), dtype=np.float32) / np.sqrt(a.latent)

    def draw(rng, n):
        which = rng.integers(0, a.centres, n)
        z = centres[which] + a.spread * rng.standard_normal((n, a.latent), dtype=np.float32)
        x = z @ mix + a.noise * rng.standard_normal((n, a.dim), dtype=np.float32)
        return unit_rows(x).astype(np.float32)

    rng = np.random.default_rng(11)
    write_data(
        a,
        lambda n: draw(rng, n),
        lambda: draw(np.random.default_rng(12), 1000),
        f", {a.centres} clusters in {a.latent} latent dims",
    )


def best_over_threads(faiss, index, queries, k, label):
    """Queries/s of `index` at batch 1 (20 single queries) and batch 256 (best of 2), and the
    batch's ids. OpenMP barriers spin: on a shared machine faiss can be faster with 1 thread
    than with all cores, so its best over thread counts is reported (the fair peer)."""
    qps1, qps256, ids = 0.0, 0.0, None
    for threads in sorted({1, os.cpu_count()}):
        faiss.omp_set_num_threads(threads)
        index.search(queries[:1], k)  # warm
        n1 = 20
        t = time.perf_counter()
        for i in range(n1):
            index.search(queries[i : i + 1], k)
        q1 = n1 / (time.perf_counter() - t)
        best = 1e9
        for _ in range(2):
            t = time.perf_counter()
            _, ids = index.search(queries[:256], k)
            best = min(best, time.perf_counter() - t)
        print(f"{label} threads={threads}: batch 1 {q1:.2f} q/s, batch 256 {256 / best:.1f} q/s")
        qps1, qps256 = max(qps1, q1), max(qps256, 256 / best)
    return qps1, qps256, ids


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
    qps1, qps256, ids = best_over_threads(faiss, index, queries, a.k, "faiss IndexFlatIP")
    print(f"faiss IndexFlatIP f32 (best over thread counts): batch 1 {qps1:.2f} q/s, batch 256 {qps256:.1f} q/s")
    result = {"qps_batch1": qps1, "qps_batch256": qps256, "ids": ids.tolist()}
    del index
    # The peer of quarry's 8-bit scan: faiss's own 8-bit scalar quantizer (SQ8), trained on a
    # sample of the base, scanned exhaustively; recall@k against the exact f32 lists.
    t = time.perf_counter()
    sq = faiss.IndexScalarQuantizer(base.shape[1], faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq.train(np.ascontiguousarray(base[: min(base.shape[0], 100_000)]))
    for lo in range(0, base.shape[0], step):
        sq.add(np.ascontiguousarray(base[lo : lo + step]))
    print(f"faiss SQ8 train + add: {time.perf_counter() - t:.1f} s")
    sq1, sq256, sq_ids = best_over_threads(faiss, sq, queries, a.k, "faiss SQ8")
    recall = np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(sq_ids.tolist(), result["ids"])])
    print(f"faiss IndexScalarQuantizer SQ8 (best over thread counts): batch 1 {sq1:.2f} q/s, "
          f"batch 256 {sq256:.1f} q/s, recall@{a.k} vs exact {recall:.4f}")
    result["sq8"] = {"qps_batch1": sq1, "qps_batch256": sq256, "recall": recall}
    json.dump(result, open(a.out, "w"))


# Fine steps below 32: "fastest at recall >= 0.95" must not hinge on a coarse grid.
EF_SWEEP = [10, 12, 14, 16, 18, 20, 24, 28, 32, 48, 64, 96, 128, 192, 256, 384, 512]
# Timed passes over the query set per ef (the best counts); dense_bench's SWEEP_REPEATS.
SWEEP_REPEATS = 5


def hnswlib_run(a):
    import hnswlib

    base = np.load(os.path.join(a.work, "base.npy"), mmap_mode="r")[: a.rows]
    base = np.ascontiguousarray(base)
    queries = np.load(os.path.join(a.work, "queries.npy"))[: a.nq]
    cores = os.cpu_count()
    # exact truth by brute force (top 10 by score, ties by row), 100 queries at a time
    truth = []
    for lo in range(0, len(queries), 100):
        s = queries[lo : lo + 100] @ base.T
        part = np.argpartition(-s, 10, axis=1)[:, :10]
        for row, cand in zip(s, part):
            truth.append(sorted(cand, key=lambda j: (-row[j], j)))
    truth = np.array(truth)
    path = os.path.join(a.work, f"hnswlib-{a.rows}.bin")
    build_s = float("nan")
    if not a.query_only:
        index = hnswlib.Index(space="ip", dim=base.shape[1])
        index.init_index(max_elements=a.rows, M=a.m, ef_construction=a.ef_construction, random_seed=100)
        t = time.perf_counter()
        index.add_items(base, np.arange(a.rows), num_threads=cores)
        build_s = time.perf_counter() - t
        index.save_index(path)
        del index
    t = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.load_index(path, max_elements=a.rows)
    reload_s = time.perf_counter() - t
    sweep = []
    # Same protocol as dense_bench: the whole query set as one batch, spread over
    # `threads` threads (1 = one query at a time; cores = batch over all cores),
    # best of SWEEP_REPEATS passes (one pass of 1,000 queries lasts ~0.2 s: too short
    # to be stable on its own).
    for threads in sorted({1, cores}):
        for ef in EF_SWEEP:
            index.set_ef(ef)
            index.knn_query(queries[:50], k=10, num_threads=threads)
            best = float("inf")
            for _ in range(SWEEP_REPEATS):
                t = time.perf_counter()
                labels, _ = index.knn_query(queries, k=10, num_threads=threads)
                best = min(best, time.perf_counter() - t)
            qps = len(queries) / best
            recall = np.mean([len(set(labels[i]) & set(truth[i])) / 10 for i in range(len(queries))])
            sweep.append({"ef": ef, "threads": threads, "qps": qps, "recall": float(recall)})
            print(f"hnswlib threads={threads} ef={ef}: recall@10 {recall:.4f}, {qps:.0f} q/s")
    print(f"hnswlib build {build_s:.1f} s, reload {reload_s:.3f} s")
    json.dump({"build_s": build_s, "reload_s": reload_s, "sweep": sweep}, open(a.out, "w"))


def evict(a):
    """Drops one index directory's files from the page cache (posix_fadvise
    DONTNEED on those files only), for a cold-open measurement."""
    for root, _, files in os.walk(a.dir):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def at_recall(sweep, target=0.95):
    ok = [s for s in sweep if s["recall"] >= target]
    return max(ok, key=lambda s: s["qps"]) if ok else None


def hnsw_sweep_report(label, qh, hh, verbose):
    """Queries/s at the fastest ef reaching recall@10 >= 0.95 for each peer, per thread count;
    with `verbose`, every ef present in both sweeps."""
    threads = sorted({s["threads"] for s in qh["sweep"]})
    for t in threads:
        qs = [s for s in qh["sweep"] if s["threads"] == t]
        hs = [s for s in hh["sweep"] if s["threads"] == t]
        a_, b_ = at_recall(qs), at_recall(hs)
        if a_ and b_:
            print(
                f"hnsw {label}, {t} thread(s), fastest at recall@10 >= 0.95: quarry ef={a_['ef']} "
                f"{a_['qps']:.0f} q/s (recall {a_['recall']:.4f}), hnswlib ef={b_['ef']} "
                f"{b_['qps']:.0f} q/s (recall {b_['recall']:.4f}) -> {a_['qps'] / b_['qps']:.2f}x"
            )
        else:
            print(f"hnsw {label}, {t} thread(s): recall@10 >= 0.95 not reached by both within the ef sweep")
        if not verbose:
            continue
        peer = {y["ef"]: y for y in hs}
        for x in qs:
            y = peer.get(x["ef"])
            if y is None:
                continue
            print(
                f"  ef={x['ef']:4d}: quarry recall {x['recall']:.4f} {x['qps']:8.0f} q/s | "
                f"hnswlib recall {y['recall']:.4f} {y['qps']:8.0f} q/s | {x['qps'] / y['qps']:.2f}x"
            )


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
    if "sq8" in f and "int8" in q:
        s, m = f["sq8"], q["int8"]
        print(
            f"flat int8 vs faiss SQ8: batch 1 {m['qps_batch1'] / s['qps_batch1']:.2f}x, "
            f"batch 256 {m['qps_batch256'] / s['qps_batch256']:.2f}x "
            f"(faiss SQ8 recall@10 vs exact {s['recall']:.4f}; quarry rescores its 8-bit candidates exactly)"
        )
    hw = a.hnsw_work or w
    if not os.path.exists(os.path.join(hw, "quarry_hnsw.json")):
        return  # the hnsw part was not run
    qh = json.load(open(os.path.join(hw, "quarry_hnsw.json")))
    hh = json.load(open(os.path.join(hw, "hnswlib_hnsw.json")))
    # The sweep of the build run, then the query-only rounds from the persisted graphs.
    sweeps = [("build run", qh, hh)]
    for r in range(1, 10):
        qa, ha = (os.path.join(hw, f"{who}_hnsw_again{r}.json") for who in ("quarry", "hnswlib"))
        if os.path.exists(qa) and os.path.exists(ha):
            sweeps.append((f"round {r}", json.load(open(qa)), json.load(open(ha))))
    for label, qrun, hrun in sweeps:
        hnsw_sweep_report(label, qrun, hrun, verbose=label == "build run")
    print(
        f"hnsw build: quarry {qh['build_s']:.1f} s vs hnswlib {hh['build_s']:.1f} s ({hh['build_s'] / qh['build_s']:.2f}x); "
        f"reload: quarry {qh['reload_s'] * 1e3:.1f} ms vs hnswlib {hh['reload_s'] * 1e3:.1f} ms"
    )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--dim", type=int, required=True)
    g.add_argument("--out", required=True)
    gc = sub.add_parser("gen-clustered")
    gc.add_argument("--n", type=int, required=True)
    gc.add_argument("--dim", type=int, required=True)
    gc.add_argument("--centres", type=int, default=2000)
    gc.add_argument("--latent", type=int, default=128)
    gc.add_argument("--spread", type=float, default=1.0)
    gc.add_argument("--noise", type=float, default=0.1)
    gc.add_argument("--out", required=True)
    fa = sub.add_parser("faiss")
    fa.add_argument("--work", required=True)
    fa.add_argument("--k", type=int, default=10)
    fa.add_argument("--out", required=True)
    h = sub.add_parser("hnswlib")
    h.add_argument("--work", required=True)
    h.add_argument("--rows", type=int, required=True)
    h.add_argument("--m", type=int, default=16)
    h.add_argument("--ef-construction", type=int, default=200)
    h.add_argument("--nq", type=int, default=1000)
    h.add_argument("--query-only", action="store_true", help="reload the graph saved by an earlier run, sweep only")
    h.add_argument("--out", required=True)
    ev = sub.add_parser("evict")
    ev.add_argument("--dir", required=True)
    r = sub.add_parser("report")
    r.add_argument("--work", required=True)
    r.add_argument("--hnsw-work", help="directory of the HNSW runs (default: --work)")
    a = p.parse_args()
    {"gen": gen, "gen-clustered": gen_clustered, "faiss": faiss_flat, "hnswlib": hnswlib_run, "evict": evict, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
