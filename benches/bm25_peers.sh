#!/usr/bin/env bash
# BM25 throughput: quarry vs Pyserini (Lucene) vs bm25s, same machine, same run.
#
# usage: benches/bm25_peers.sh [DATASET_DIR ...]      (default: the repository's data/nfcorpus and data/cosqa)
#   DATASET_DIR: BEIR layout (corpus.jsonl, queries.jsonl, qrels/test.tsv), plain or .zst/.gz;
#   compressed files are decompressed into a temporary folder first (benches/plain_beir.sh).
# env:  PYSERINI_VENV (default .venv-pyserini in the checkout; benches/pyserini_peer.sh creates it)
#       PYSERINI_WORK (default target/pyserini-work in the checkout)
#       BM25S_VENV (default .venv-bm25s in the checkout; created with `pip install bm25s PyStemmer` if missing)
#       THREADS (default: nproc) threads for the batched searches of all three tools
#       CARGO_TARGET_DIR (default target/ in the checkout)
#
# Measures, per dataset: index build in docs/s (corpus already in memory; Pyserini: in-process
# IndexCollection with a warm JVM, its single-threaded regression setting) and search in queries/s
# for all test queries with 1,000 hits each, sequential and batched over THREADS threads (best of
# warm repeats). Pyserini's search times include handing each hit to Python, as its users see it.
# Prints every tool's numbers and the ratios quarry/peer (> 1 means quarry is faster).
# Timings are disturbed by other work on the machine: the load seen is printed first.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export PYSERINI_VENV=${PYSERINI_VENV:-$ROOT/.venv-pyserini}
export PYSERINI_WORK=${PYSERINI_WORK:-$ROOT/target/pyserini-work}
BM25S_VENV=${BM25S_VENV:-$ROOT/.venv-bm25s}
THREADS=${THREADS:-$(nproc)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ $# -eq 0 ]; then set -- "$ROOT/data/nfcorpus" "$ROOT/data/cosqa"; fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# The peers read plain files: decompress what is compressed into $OUT/data.
source "$HERE/plain_beir.sh"
plain=()
for d in "$@"; do plain+=("$(plain_beir "$d" "$OUT/data")"); done
set -- "${plain[@]}"

if [ ! -x "$BM25S_VENV/bin/python" ]; then
  python3 -m venv "$BM25S_VENV"
  "$BM25S_VENV/bin/pip" install -q bm25s PyStemmer
fi
(cd "$ROOT" && cargo build --release -q -p quarry-index --example bm25_bench)
QUARRY="$CARGO_TARGET_DIR/release/examples/bm25_bench"

echo "== machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg), rustc processes: $(pgrep -c rustc || true)"
for d in "$@"; do
  name=$(basename "$(cd "$d" && pwd)")
  echo "== $name: quarry" >&2
  RAYON_NUM_THREADS=$THREADS "$QUARRY" "$d" --hits 1000 --repeat 3 > "$OUT/$name.quarry.json"
  echo "== $name: bm25s" >&2
  "$BM25S_VENV/bin/python" "$HERE/bm25s_peer.py" "$d" --hits 1000 --repeat 3 --threads "$THREADS" > "$OUT/$name.bm25s.json"
  echo "== $name: pyserini" >&2
  PEER_THREADS=$THREADS bash "$HERE/pyserini_peer.sh" "$d" > "$OUT/$name.pyserini.log" 2>&1 \
    || { tail -20 "$OUT/$name.pyserini.log"; exit 1; }
  cp "$PYSERINI_WORK/$name/summary.json" "$OUT/$name.pyserini.json"
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT" "$THREADS" "$@" <<'PYEOF'
import json, os, sys
out, threads, datasets = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for d in datasets:
    name = os.path.basename(os.path.abspath(d))
    q = json.load(open(f'{out}/{name}.quarry.json'))
    b = json.load(open(f'{out}/{name}.bm25s.json'))
    p = json.load(open(f'{out}/{name}.pyserini.json'))
    t = p['timings']
    pys = {'build_docs_per_s': t['index_docs_per_s_inproc'],
           'search_sequential_qps': t['search_single_k1000_warm_qps'],
           'search_batch_qps': t[f'search_batch{threads}_k1000_warm_qps']}
    print(f"\n{name}: {q['docs']} docs, {q['queries']} test queries, 1000 hits, {threads} threads")
    print(f"  {'':28s} {'quarry':>10s} {'pyserini':>10s} {'bm25s':>10s} {'q/pyserini':>11s} {'q/bm25s':>9s}")
    for key, label in [('build_docs_per_s', 'index build (docs/s)'),
                       ('search_sequential_qps', 'search, 1 thread (q/s)'),
                       ('search_batch_qps', f'search, {threads} threads (q/s)')]:
        print(f"  {label:28s} {q[key]:10.1f} {pys[key]:10.1f} {b[key]:10.1f} "
              f"{q[key] / pys[key]:10.2f}x {q[key] / b[key]:8.2f}x")
    print(f"  pyserini NDCG@10 {p['metrics_pyserini']['ndcg@10']:.4f} (its own run)")
PYEOF
