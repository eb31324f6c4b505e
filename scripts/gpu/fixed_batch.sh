#!/usr/bin/env bash
# Issue #7's precision check on the real model: a few LoRA steps on ONE fixed batch
# (docs/train-evidence/nfcorpus_fixed8.jsonl: 8 nfcorpus queries, 1 positive + 7 BM25
# negatives each, so every step sees the same 8 x 64 scores), in quarry and in PyTorch + PEFT
# on the same card, against the CPU f32 reference (docs/train-evidence/nfcorpus_fixed8_peft_f32.json).
# A loop that learns takes this batch's loss well below ln 64 = 4.159 within a few steps.
#
#   OUT=$OUT BIN=.gpu/bin/quarry scripts/gpu/fixed_batch.sh RUN...
#
# RUN: `quarry:DTYPE:GEMM:ADAPTER` (DTYPE bf16|f32, GEMM cublas|burn, ADAPTER f32|model: the
# dtype the LoRA branch computes in) or `peft:DTYPE`. Environment: BIN (default .gpu/bin/quarry,
# where scripts/gpu/smoke_train.sh unpacks it), MODEL (default .gpu/models/q05.gguf), STEPS (6),
# LR (1e-4), QUARRY_HOME (.gpu/qh), PEFT_WHEELS (folder of the gguf wheel, which the GPU image's
# transformers needs to read a GGUF; installed into .gpu/py). Paths are relative to the
# repository root; adapters go to .gpu/fixed-*.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.gpu/bin/quarry}
MODEL=${MODEL:-.gpu/models/q05.gguf}
STEPS=${STEPS:-6}
LR=${LR:-1e-4}
OUT=${OUT:-/tmp/fixed-out}
export QUARRY_HOME=${QUARRY_HOME:-.gpu/qh}
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
mkdir -p "$OUT" "$QUARRY_HOME"
source scripts/gpu/cublas_env.sh
batch=docs/train-evidence/nfcorpus_fixed8.jsonl

for run in "$@"; do
  IFS=: read -r engine dtype gemm adapter <<<"$run"
  start=$SECONDS
  case $engine in
  quarry)
    rm -rf ".gpu/fixed-$dtype-$gemm-$adapter"
    # The real run's shapes (micro-batch 8 x group 8, queries 32, passages 192): with the
    # carried tuning cache no kernel is tuned again.
    timeout "${RUN_TIMEOUT:-400}" "$BIN" train --model "$MODEL" --train "$batch" \
      --output ".gpu/fixed-$dtype-$gemm-$adapter" --device cuda --dtype "$dtype" \
      --gemm "$gemm" --adapter-dtype "$adapter" --batch 8 --micro-batch 8 --group-size 8 \
      --dropout 0 --warmup-ratio 0 --epochs "$STEPS" --lr "$LR" --json \
      >"$OUT/fixed-$engine-$dtype-$gemm-$adapter.json" 2>"$OUT/fixed-$engine-$dtype-$gemm-$adapter.log"
    echo "$run: exit $? after $((SECONDS - start)) s"
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('  losses', [round(x,4) for x in s['step_losses']], 'step s', [round(x,1) for x in s['step_seconds']])" \
      "$OUT/fixed-$engine-$dtype-$gemm-$adapter.json" || tail -c 800 "$OUT/fixed-$engine-$dtype-$gemm-$adapter.log"
    ;;
  peft)
    if [ -n "${PEFT_WHEELS:-}" ] && [ ! -d .gpu/py ]; then
      python3 -m pip install --no-deps --no-index --target .gpu/py "$PEFT_WHEELS"/gguf-*.whl -q
    fi
    PYTHONPATH=$PWD/.gpu/py${PYTHONPATH:+:$PYTHONPATH} timeout "${RUN_TIMEOUT:-400}" \
      python3 scripts/peft_real_model_steps.py run "$MODEL" "$batch" --lr "$LR" \
      --steps "$STEPS" --dtype "$dtype" --device cuda >"$OUT/fixed-peft-$dtype.json" \
      2>"$OUT/fixed-peft-$dtype.log"
    echo "$run: exit $? after $((SECONDS - start)) s"
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print('  losses', [round(x,4) for x in s['losses']])" \
      "$OUT/fixed-peft-$dtype.json" || tail -c 800 "$OUT/fixed-peft-$dtype.log"
    ;;
  *) echo "unknown run $run" >&2 ;;
  esac
done
tar czf "$OUT/gpu-tuning.tgz" -C "$QUARRY_HOME" gpu-tuning 2>/dev/null
