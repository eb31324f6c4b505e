#!/usr/bin/env bash
# GPU encoding throughput, quarry vs transformers + PyTorch: the whole measurement of issue #6
# in one device call (< 9 minutes, first passes included). Run from the repository root on
# the GPU machine:
#
#   scripts/gpu/perf.sh            # needs .gpu/quarry-perf (or .gpu/quarry-perf.xz) and
#                                  # the 0.5B GGUF at .gpu/models/q05.gguf (MODEL=... to change)
#
# Writes under $OUT (./perf-out when unset): table.md (the summary), main/ (logs and JSON of
# quarry and the peer), second.log (a second quarry process reusing the persisted tuning),
# levers.jsonl (the 0.5B shape with one lever undone at a time), quarry-home/ (the tuning
# cache, to carry into a later run).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-./perf-out}
mkdir -p "$OUT"
BIN=.gpu/quarry-perf
if [ ! -x "$BIN" ] && [ -f "$BIN.xz" ]; then
  xz -dkf "$BIN.xz" && chmod +x "$BIN"
fi
[ -x "$BIN" ] || { echo "no $BIN (or $BIN.xz)"; exit 1; }
MODEL=${MODEL:-.gpu/models/q05.gguf}
export QUARRY_HOME=${QUARRY_HOME:-$OUT/quarry-home}
# Only the cheapest autotune pass: burn tunes what it still runs itself per new shape.
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}

source scripts/gpu/cublas_env.sh
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "libcublas folders: ${libdirs:-none found}"
  echo "binary: $(sha256sum "$BIN" | cut -c1-16) $(ls -l "$BIN" | awk '{print $5}') bytes"
  echo "CUBECL_AUTOTUNE_LEVEL=$CUBECL_AUTOTUNE_LEVEL"
} | tee "$OUT/device.txt"

# 1. quarry as `quarry build` runs it (cuBLAS GEMMs, fused kernels, fused attention), with the
#    CPU cosine check, then the peer; same card, one table.
QUARRY=$BIN MODEL=$MODEL OUT="$OUT/main" QUARRY_TIMEOUT=200 PEER_TIMEOUT=150 \
  GEMM=${GEMM:-auto} ATTENTION=${ATTENTION:-fused} FUSED=${FUSED:-on} benches/encode_gpu.sh

# 2. The levers one at a time on the 0.5B shape: attention through cuBLAS (scores
#    materialised), then burn's op-by-op graph for everything but the GEMMs.
: > "$OUT/levers.jsonl"
for lever in "--attention cublas --fused on" "--attention cublas --fused off"; do
  if (( SECONDS < 420 )); then
    echo "== lever: $lever ($(date -u +%T))"
    # shellcheck disable=SC2086
    timeout 60 "$BIN" bench encode --device cuda --shapes 0.5b --rounds 10 $lever \
      --matmul-rate none --json "$OUT/levers.jsonl" 2>&1 | tail -2
  fi
done
python3 benches/encode_table.py "$OUT/main/peer.jsonl" "$OUT/main/quarry.jsonl" \
  "$OUT/levers.jsonl" > "$OUT/table.md" 2>&1

# 3. A second process on the same machine: tuning persisted in $QUARRY_HOME/gpu-tuning.
if (( SECONDS < 470 )) && [ -f "$MODEL" ]; then
  echo "== second process ($(date -u +%T))"
  start=$SECONDS
  timeout $((525 - SECONDS)) "$BIN" bench encode --device cuda --shapes 0.5b --rounds 3 \
    --matmul-rate none --model "$MODEL" --docs 512 --passes 1 \
    --json "$OUT/second.jsonl" 2>&1 | tee "$OUT/second.log"
  echo "second process: exit ${PIPESTATUS[0]}, wall $((SECONDS - start)) s" | tee -a "$OUT/second.log"
fi
{
  echo; echo "second process:"; grep -h "first pass\|warm-up\|wall" "$OUT/second.log" 2>/dev/null
  echo; echo "total wall $SECONDS s"
} >> "$OUT/table.md"
cat "$OUT/table.md"
