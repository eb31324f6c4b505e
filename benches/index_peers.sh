#!/usr/bin/env bash
# Dense store vs faiss (IndexFlatIP) and hnswlib, same run, same vectors.
#
#   benches/index_peers.sh [N_FLAT] [N_HNSW]      (defaults 1000000 50000)
#
# 1. creates /work/venvs/faiss (faiss-cpu + hnswlib + numpy) if missing;
# 2. writes N_FLAT × 896 deterministic random unit vectors (numpy PCG64, seed 0)
#    and 256 query vectors to $WORK/base.npy / queries.npy, once;
# 3. builds the release bench binary `dense_bench` (quarry-index example);
# 4. runs quarry (flat f32, flat f16, hnsw) and the peers on those files and
#    prints queries/s and ratios; top-10 agreement with faiss is checked.
# Memory: at most one 3.6 GB f32 copy of the base per process (mmap where possible).
set -euo pipefail
N_FLAT=${1:-1000000}
N_HNSW=${2:-50000}
DIM=896
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-/work/venvs/faiss}
WORK=${WORK:-/work/bench-index}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q faiss-cpu hnswlib numpy
fi
PY="$VENV/bin/python"

"$PY" "$ROOT/benches/index_peers.py" gen --n "$N_FLAT" --dim $DIM --out "$WORK"

cargo build -q --release -p quarry-index --example dense_bench
BENCH="$CARGO_TARGET_DIR/release/examples/dense_bench"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load: $(cut -d' ' -f1-3 /proc/loadavg), rustc running: $(pgrep -c rustc || true)"
echo "== flat, N=$N_FLAT x $DIM, k=10"
"$BENCH" flat --base "$WORK/base.npy" --queries "$WORK/queries.npy" --work "$WORK" --k 10 --out "$WORK/quarry_flat.json"
"$PY" "$ROOT/benches/index_peers.py" faiss --work "$WORK" --k 10 --out "$WORK/faiss_flat.json"
echo "== open 1M-row index + first query"
"$BENCH" open --work "$WORK" --queries "$WORK/queries.npy"
echo "== hnsw, N=$N_HNSW x $DIM"
"$BENCH" hnsw --base "$WORK/base.npy" --queries "$WORK/queries.npy" --work "$WORK" --rows "$N_HNSW" --m 16 --ef-construction 200 --out "$WORK/quarry_hnsw.json"
"$PY" "$ROOT/benches/index_peers.py" hnswlib --work "$WORK" --rows "$N_HNSW" --m 16 --ef-construction 200 --out "$WORK/hnswlib_hnsw.json"
"$PY" "$ROOT/benches/index_peers.py" report --work "$WORK"
