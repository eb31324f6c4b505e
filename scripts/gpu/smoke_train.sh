#!/usr/bin/env bash
# First call of a GPU session for issue #7, before the model is staged: checks that a new CUDA
# build runs the training and encoding paths at all, on inputs that need no upload, so a broken
# build costs one short call rather than the whole staged model.
#
#   OUT=$OUT scripts/gpu/smoke_train.sh     # carry .gpu/quarry.xz (and .whl for the peer)
#
# 1. Unpacks the binary to .gpu/bin/quarry (git-ignored, kept while the machine is warm) and
#    mines the nfcorpus training groups to .gpu/lora/train.jsonl (the real run reuses both).
# 2. Two training steps of the tiny Qwen2 fixture on 16 real nfcorpus groups: CPU f32, CUDA f32
#    (burn's kernels) and CUDA bf16 (cuBLAS frozen GEMMs, forward and dX = dY Wᵀ). The losses
#    should agree (bf16 loosely: temperature 0.01 scales score errors by 100).
# 3. The encoding path: the 0.5B shape with random weights (cuBLAS GEMMs) and the tiny model on
#    real documents, checked against the CPU (min cosine).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/smoke-out}
mkdir -p "$OUT" .gpu/bin .gpu/lora
export QUARRY_HOME=${QUARRY_HOME:-.gpu/qh}
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
source scripts/gpu/cublas_env.sh
# A carried tuning cache (inference shapes, from an earlier card) saves the eval's first pass.
mkdir -p "$QUARRY_HOME"
for cache in ${TUNING_CACHE:-}; do tar xzf "$cache" -C "$QUARRY_HOME" && echo "tuning cache $cache"; done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/card.txt"
xz -dc .gpu/quarry.xz >.gpu/bin/quarry && chmod +x .gpu/bin/quarry
BIN=.gpu/bin/quarry
sha256sum $BIN | cut -c1-16

OUT=$OUT BIN=$BIN WORK=.gpu/lora scripts/gpu/lora_nfcorpus.sh mine || echo "mine failed"
head -16 .gpu/lora/train.jsonl >.gpu/lora/smoke.jsonl
rm -rf .gpu/tiny && cp -r tests/fixtures/lora/tiny_qwen2 .gpu/tiny
# Byte-level tokens: the prompts alone take > 128 of them, the fixture's position limit.
sed -i 's/"max_position_embeddings": 128/"max_position_embeddings": 512/' .gpu/tiny/config.json

for run in "cpu f32" "cuda f32" "cuda bf16"; do
  set -- $run
  rm -rf ".gpu/smoke-$1-$2"
  start=$SECONDS
  timeout 150 "$BIN" train --model .gpu/tiny --train .gpu/lora/smoke.jsonl \
    --output ".gpu/smoke-$1-$2" --device "$1" --dtype "$2" --max-steps 2 --batch 4 \
    --micro-batch 2 --group-size 4 --dropout 0 --query-max-len 200 --passage-max-len 320 \
    --json >"$OUT/smoke-$1-$2.json" 2>"$OUT/smoke-$1-$2.log"
  rc=$?
  python3 - "$OUT/smoke-$1-$2.json" "$run" "$rc" "$((SECONDS - start))" <<'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
    print(f"train {sys.argv[2]:10} rc {sys.argv[3]} {sys.argv[4]:>4}s  mean_loss {s['mean_loss']:.6f} "
          f"last_loss {s['last_loss']:.6f} step_seconds {[round(x, 2) for x in s['step_seconds']]}")
except Exception as e:
    print(f"train {sys.argv[2]:10} rc {sys.argv[3]} {sys.argv[4]:>4}s  no summary ({e})")
PY
  [ $rc -eq 0 ] || tail -c 600 "$OUT/smoke-$1-$2.log"
done

start=$SECONDS
timeout 200 "$BIN" bench encode --device cuda --shapes 0.5b --rounds 2 --model .gpu/tiny \
  --docs 64 --passes 1 --check 16 --matmul-rate none --json "$OUT/encode.jsonl" \
  >"$OUT/encode.log" 2>&1
echo "bench encode rc $? after $((SECONDS - start)) s"
grep -v '^\s*$' "$OUT/encode.log" | tr '\r' '\n' | grep -iE "tok|cos|error|panic" | tail -8
