#!/usr/bin/env bash
# Dense store vs faiss (IndexFlatIP) and hnswlib, same run, same vectors.
#
#   benches/index_peers.sh [N_FLAT] [N_HNSW] [PARTS]   (defaults 1000000 200000 "flat open hnsw")
#
# 1. creates $VENV (default .venv-faiss in the checkout: faiss-cpu + hnswlib + numpy) if missing;
# 2. flat: N_FLAT × 896 deterministic random unit vectors (numpy PCG64, seed 0)
#    and query vectors in $WORK/base.npy / queries.npy, written once;
#    hnsw: N_HNSW × 896 clustered vectors (a 2000-centre Gaussian mixture in a
#    128-d latent space mapped to 896-d, plus noise, normalised; queries are
#    fresh draws) in $WORK/clustered/, written once. Random unit vectors have no
#    neighbourhood structure, so no graph index reaches recall 0.95 on them at
#    a sane ef; see gen_clustered in index_peers.py;
# 3. builds the release bench binary `dense_bench` (quarry-index example);
# 4. runs quarry (flat f32, flat f16, 8-bit + rescoring; open; hnsw) and the
#    peers (faiss IndexFlatIP, hnswlib with the same M / ef_construction) on
#    those files and prints queries/s and ratios; top-10 agreement with faiss
#    is checked, HNSW recall@10 is against the exact scan, swept over ef with
#    1 thread and with all cores.
# Memory: at most one 3.6 GB f32 copy of the base per process (mmap where possible).
# Env: VENV, WORK (vectors and indexes, ~8 GB at the defaults; default target/bench-index in
# the checkout), CARGO_TARGET_DIR (default target/ in the checkout), DENSE_BENCH.
set -euo pipefail
N_FLAT=${1:-1000000}
N_HNSW=${2:-200000}
PARTS=${3:-flat open hnsw}
DIM=896
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv-faiss}
WORK=${WORK:-$ROOT/target/bench-index}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q faiss-cpu hnswlib numpy
fi
PY="$VENV/bin/python"

"$PY" "$ROOT/benches/index_peers.py" gen --n "$N_FLAT" --dim $DIM --out "$WORK"
HW="$WORK/clustered"
"$PY" "$ROOT/benches/index_peers.py" gen-clustered --n "$N_HNSW" --dim $DIM --out "$HW"

# DENSE_BENCH=path skips the build (a binary built earlier from this tree).
if [ -z "${DENSE_BENCH:-}" ]; then
  (cd "$ROOT" && cargo build -q --release -p quarry-index --example dense_bench)
fi
BENCH=${DENSE_BENCH:-$CARGO_TARGET_DIR/release/examples/dense_bench}

load() { echo "load: $(cut -d' ' -f1-3 /proc/loadavg), rustc running: $(pgrep -c rustc || true)"; }
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(load)"
case " $PARTS " in *" flat "*)
  echo "== flat, N=$N_FLAT x $DIM, k=10 ($(load))"
  "$BENCH" flat --base "$WORK/base.npy" --queries "$WORK/queries.npy" --work "$WORK" --k 10 --out "$WORK/quarry_flat.json"
  "$PY" "$ROOT/benches/index_peers.py" faiss --work "$WORK" --k 10 --out "$WORK/faiss_flat.json"
esac
case " $PARTS " in *" open "*)
  echo "== open the 1M-row index + first query ($(load))"
  # warm: files in the page cache (the usual case: an index just built or used)
  "$BENCH" open --work "$WORK" --queries "$WORK/queries.npy"
  # cold: the index's files dropped from the page cache first (posix_fadvise
  # DONTNEED on these files only), so open and the first query read the disk
  "$PY" "$ROOT/benches/index_peers.py" evict --dir "$WORK/quarry-f16"
  "$BENCH" open --work "$WORK" --queries "$WORK/queries.npy" --only f16 --label cold
esac
case " $PARTS " in *" hnsw "*)
  echo "== hnsw, N=$N_HNSW x $DIM clustered, M=16, ef_construction=200 ($(load))"
  "$BENCH" hnsw --base "$HW/base.npy" --queries "$HW/queries.npy" --work "$HW" --rows "$N_HNSW" --m 16 --ef-construction 200 --out "$HW/quarry_hnsw.json"
  echo "($(load))"
  "$PY" "$ROOT/benches/index_peers.py" hnswlib --work "$HW" --rows "$N_HNSW" --m 16 --ef-construction 200 --out "$HW/hnswlib_hnsw.json"
  echo "($(load))"
  # The load of a shared machine changes between the two runs above; sweep
  # again from the persisted graphs, alternating peers, to see the spread.
  for r in 1 2; do
    echo "== hnsw query sweep again, round $r ($(load))"
    "$BENCH" hnsw-query --queries "$HW/queries.npy" --work "$HW" --rows "$N_HNSW" --out "$HW/quarry_hnsw_again$r.json" | grep -E 'ef=(16|24|48):'
    "$PY" "$ROOT/benches/index_peers.py" hnswlib --query-only --work "$HW" --rows "$N_HNSW" --out "$HW/hnswlib_hnsw_again$r.json" | grep -E 'ef=(16|24|48):'
  done
esac
"$PY" "$ROOT/benches/index_peers.py" report --work "$WORK" --hnsw-work "$HW"
