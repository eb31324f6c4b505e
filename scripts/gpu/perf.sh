#!/usr/bin/env bash
# GPU encoding throughput, quarry vs transformers + PyTorch: the whole measurement of issue #6
# in one device call (< 9 minutes, autotune first passes included). Run from the repository
# root on the GPU machine:
#
#   scripts/gpu/perf.sh            # needs .gpu/quarry-perf (or .gpu/quarry-perf.xz) and
#                                  # the 0.5B GGUF at /root/m/q05.gguf (MODEL=... to change)
#
# Writes under $OUT (./perf-out when unset): table.md (the summary), main/ (logs and JSON of
# quarry and the peer), second.log (a second quarry process reusing the persisted tuning),
# burn-gemm.log (burn's own matmul instead of cuBLAS, for the before/after), quarry-home/
# (the autotune cache, to carry into a later run).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-./perf-out}
mkdir -p "$OUT"
BIN=.gpu/quarry-perf
if [ ! -x "$BIN" ] && [ -f "$BIN.xz" ]; then
  xz -dkf "$BIN.xz" && chmod +x "$BIN"
fi
[ -x "$BIN" ] || { echo "no $BIN (or $BIN.xz)"; exit 1; }
MODEL=${MODEL:-/root/m/q05.gguf}
export QUARRY_HOME="$OUT/quarry-home"
# Only the cheapest autotune pass: burn tunes reductions/attention per new shape.
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}

source scripts/gpu/cublas_env.sh
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "libcublas folders: ${libdirs:-none found}"
  echo "binary: $(sha256sum "$BIN" | cut -c1-16) $(ls -l "$BIN" | awk '{print $5}') bytes"
  echo "CUBECL_AUTOTUNE_LEVEL=$CUBECL_AUTOTUNE_LEVEL"
} | tee "$OUT/device.txt"

# 1. quarry (cuBLAS GEMMs, fastest attention kernel, burn's elementwise ops) then the peer,
#    same card, one table.
QUARRY=$BIN MODEL=$MODEL OUT="$OUT/main" QUARRY_TIMEOUT=220 PEER_TIMEOUT=140 \
  GEMM=${GEMM:-auto} ATTENTION=${ATTENTION:-best} FUSED=off benches/encode_gpu.sh
chosen=$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(next((r["attention"] for r in rows if r.get("attention")), "autotune"))' "$OUT/main/quarry.jsonl" 2>/dev/null || echo autotune)

# 2. The same with the fused one-pass kernels (RMSNorm, SwiGLU, bias+heads+RoPE), checked
#    against the CPU again.
model_args=()
[ -f "$MODEL" ] && model_args=(--model "$MODEL" --check 4)
if (( SECONDS < 400 )); then
  echo "== quarry, fused kernels ($(date -u +%T)), attention $chosen"
  timeout $((SECONDS < 300 ? 110 : 470 - SECONDS)) "$BIN" bench encode --device cuda \
    --shapes 0.5b,1.5b,7b --rounds 10 --attention "$chosen" --fused on --matmul-rate cublas \
    --json "$OUT/fused.jsonl" "${model_args[@]}" 2>&1 | tee "$OUT/fused.log"
  echo "fused run exit ${PIPESTATUS[0]}"
fi
python3 benches/encode_table.py "$OUT/main/peer.jsonl" "$OUT/main/quarry.jsonl" "$OUT/fused.jsonl" \
  > "$OUT/table.md" 2>&1

# 3. A second process on the same machine: tuning persisted in $QUARRY_HOME/gpu-tuning.
# Keep the fused kernels for it only if their real-document run passed the cosine check.
fused=$(python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok = any(r["kind"] == "real" and r.get("check_min_cosine", 0) >= 0.999 for r in rows)
print("on" if ok else "off")' "$OUT/fused.jsonl" 2>/dev/null || echo off)
if (( SECONDS < 480 )); then
  echo "== second process ($(date -u +%T)), attention $chosen, fused $fused"
  start=$SECONDS
  timeout $((525 - SECONDS)) "$BIN" bench encode --device cuda --shapes 0.5b --rounds 3 \
    --attention "$chosen" --fused "$fused" --matmul-rate none --model "$MODEL" --docs 512 \
    --passes 1 --json "$OUT/second.jsonl" 2>&1 | tee "$OUT/second.log"
  echo "second process: exit ${PIPESTATUS[0]}, wall $((SECONDS - start)) s" | tee -a "$OUT/second.log"
fi

# 4. Before/after for the GEMM lever: burn's own matmul on the 0.5B shape, if time is left.
if (( SECONDS < 490 )); then
  echo "== burn GEMM baseline ($(date -u +%T))"
  timeout $((532 - SECONDS)) "$BIN" bench encode --device cuda --shapes 0.5b --rounds 3 \
    --gemm burn --attention "$chosen" --matmul-rate none \
    --json "$OUT/burn-gemm.jsonl" 2>&1 | tee "$OUT/burn-gemm.log"
fi
{
  echo; echo "second process:"; grep -h "first pass\|warm-up" "$OUT/second.log" 2>/dev/null
  echo; echo "burn GEMM:"; grep -h "steady" "$OUT/burn-gemm.log" 2>/dev/null
  echo; echo "total wall $SECONDS s"
} >> "$OUT/table.md"
cat "$OUT/table.md"
