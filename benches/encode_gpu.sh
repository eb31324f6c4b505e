#!/usr/bin/env bash
# quarry vs transformers + PyTorch encoding throughput, one card, one call (issue #6).
# Runs `quarry bench encode` (burn-cuda) and benches/encode_peer.py on the same GPU,
# one after the other, and prints a table with `ratio N.NNx` per workload.
#
# Environment (all optional):
#   QUARRY     quarry binary built with --features cuda      [.gpu/quarry-perf]
#   MODEL      real model for the real-document run (GGUF)  [.gpu/models/q05.gguf]
#   OUT        folder for logs and JSON results             [$OUT or ./bench-out]
#   SHAPES     fixed shapes                                 [0.5b,1.5b,7b]
#   DOCS       nfcorpus documents (0: all 3,633)            [0]
#   CHECK      documents re-encoded on the CPU for the cosine check [4]
#   GEMM       auto | cublas | burn                         [auto]
#   ATTENTION  autotune | flash2|4|8 | flash-unit | fallback | best [best]
#   FUSED      on | off: one-pass RMSNorm/SwiGLU/RoPE kernels [off]
#   ROUNDS     timed batches per fixed shape                [10]
#   QUARRY_TIMEOUT / PEER_TIMEOUT  seconds                  [300 / 180]
set -uo pipefail
cd "$(dirname "$0")/.."
QUARRY=${QUARRY:-.gpu/quarry-perf}
MODEL=${MODEL:-.gpu/models/q05.gguf}
OUT=${OUT:-./bench-out}
SHAPES=${SHAPES:-0.5b,1.5b,7b}
DOCS=${DOCS:-0}
CHECK=${CHECK:-4}
GEMM=${GEMM:-auto}
ATTENTION=${ATTENTION:-best}
ROUNDS=${ROUNDS:-10}
FUSED=${FUSED:-off}
mkdir -p "$OUT"
export QUARRY_HOME=${QUARRY_HOME:-$OUT/quarry-home}
: > "$OUT/quarry.jsonl"
: > "$OUT/peer.jsonl"

model_args=()
if [ -f "$MODEL" ]; then
  model_args=(--model "$MODEL" --docs "$DOCS" --check "$CHECK" --dump "$OUT/nfcorpus-ids.json")
else
  echo "no model at $MODEL: fixed shapes only"
fi

echo "== quarry ($(date -u +%T))"
start=$SECONDS
timeout "${QUARRY_TIMEOUT:-300}" "$QUARRY" bench encode --device cuda --shapes "$SHAPES" \
  --rounds "$ROUNDS" --gemm "$GEMM" --attention "$ATTENTION" --fused "$FUSED" --matmul-rate cublas \
  --json "$OUT/quarry.jsonl" "${model_args[@]}" 2>&1 | tee "$OUT/quarry.log"
echo "quarry exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"

echo "== transformers + PyTorch ($(date -u +%T))"
start=$SECONDS
peer_args=()
[ -f "$OUT/nfcorpus-ids.json" ] && peer_args=(--dump "$OUT/nfcorpus-ids.json" --gguf "$MODEL")
timeout "${PEER_TIMEOUT:-180}" python3 benches/encode_peer.py --shapes "$SHAPES" --rounds "$ROUNDS" \
  --json "$OUT/peer.jsonl" "${peer_args[@]}" 2>&1 | tee "$OUT/peer.log"
echo "peer exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"

python3 benches/encode_table.py "$OUT/peer.jsonl" "$OUT/quarry.jsonl" | tee "$OUT/table.md"
