#!/usr/bin/env bash
# Where the time of one encode batch goes (issue #6), in one device call:
#  1. quarry's steady tokens/s on the fixed shape (no profiler);
#  2. the same binary under Nsight Compute, one timed batch: every kernel's duration,
#     summed per kind by scripts/gpu/ncu_summary.py (ncu serialises kernels, so the sum
#     against step 1's wall time shows how much is launch/host gap);
#  3. the peer (transformers + PyTorch) under torch.profiler on the same shape.
# Needs .gpu/quarry-perf (or .xz). SHAPE (0.5b), FUSED (on), ATTENTION (fused).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-./profile-out}
mkdir -p "$OUT"
BIN=.gpu/quarry-perf
if [ ! -x "$BIN" ] && [ -f "$BIN.xz" ]; then xz -dkf "$BIN.xz" && chmod +x "$BIN"; fi
if [ ! -x "$BIN" ] && [ -f .gpu/quarry.xz ]; then xz -dc .gpu/quarry.xz > "$BIN" && chmod +x "$BIN"; fi
SHAPE=${SHAPE:-0.5b}
FUSED=${FUSED:-on}
ATTENTION=${ATTENTION:-fused}
export QUARRY_HOME=${QUARRY_HOME:-$OUT/quarry-home}
export CUBECL_AUTOTUNE_LEVEL=minimal
source scripts/gpu/cublas_env.sh
args=(bench encode --device cuda --shapes "$SHAPE" --attention "$ATTENTION" --fused "$FUSED"
      --matmul-rate none)
echo "== quarry plain ($(date -u +%T))"
timeout 120 "$BIN" "${args[@]}" --rounds 10 --json "$OUT/plain.jsonl" 2>&1 | tail -5
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "== quarry under ncu ($(date -u +%T)): $NCU"
timeout 240 "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
  --log-file "$OUT/ncu.csv" "$BIN" "${args[@]}" --rounds 1 > "$OUT/ncu-run.log" 2>&1
echo "ncu exit $?"; tail -3 "$OUT/ncu-run.log"
python3 scripts/gpu/ncu_summary.py "$OUT/ncu.csv" "$OUT/plain.jsonl" | tee "$OUT/quarry-kernels.md"
echo "== peer under torch.profiler ($(date -u +%T))"
timeout 120 python3 scripts/gpu/peer_profile.py --shape "$SHAPE" 2>&1 | tee "$OUT/peer-kernels.md"
