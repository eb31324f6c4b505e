#!/usr/bin/env bash
# The supervised setting's real run (issue 7): LoRA-train Qwen2.5-Coder-0.5B-Instruct on the
# nfcorpus train groups with `quarry train --device cuda`, build + evaluate the trained encoder
# on nfcorpus test, and time one PyTorch + PEFT training step of the same shape (peer ratio).
#
# Usage (on the GPU machine, from the repository root):
#   scripts/gpu/train_nfcorpus.sh QUARRY_BIN GGUF TRAIN_GROUPS.jsonl [MAX_STEPS] [MICRO_BATCH]
#     QUARRY_BIN   quarry built with `cargo build --release -p quarry-cli --features cuda`
#     GGUF         /root/m/q05.gguf (Qwen2.5-Coder-0.5B-Instruct)
#     TRAIN_GROUPS nfcorpus train groups with BM25 hard negatives (`quarry mine`)
#     MAX_STEPS    cap on optimiser steps (default: one epoch = groups / 32 steps); the whole
#                  script must fit the GPU time, so start with a small cap (e.g. 20), read the
#                  s/step it prints and size the real run from it
#     MICRO_BATCH  queries per forward/backward (default 4; 8 passages each of <= 192 tokens)
# PEFT: the GPU machine has none; carry its wheel (pip download peft --no-deps -d wheels/)
# and this script installs it into a temporary folder on PYTHONPATH.
set -euo pipefail
QUARRY="$1"; GGUF="$2"; GROUPS="$3"; MAX_STEPS="${4:-}"; MICRO="${5:-4}"
OUT="${OUT:-/tmp/quarry-lora-nfcorpus}"
HOME_DIR="${QUARRY_HOME_DIR:-/tmp/quarry-home}"
mkdir -p "$OUT"
STEPS_ARG=(); [ -n "$MAX_STEPS" ] && STEPS_ARG=(--max-steps "$MAX_STEPS")

echo "== quarry train (bf16 base, f32 adapters, rank 32, group 8, batch 32, micro-batch $MICRO)"
rm -rf "$OUT/adapter"
/usr/bin/time -v "$QUARRY" train --model "$GGUF" --train "$GROUPS" --output "$OUT/adapter" \
  --device cuda --dtype bf16 --micro-batch "$MICRO" "${STEPS_ARG[@]}" --checkpoint-every 0 \
  --json 2> "$OUT/train.stderr" | tee "$OUT/train.json"
grep -E "Maximum resident|Elapsed" "$OUT/train.stderr" || true
python3 -c "import json,sys; s=json.load(open('$OUT/train.json')); print(f\"quarry train: {s['step']} steps, {s['tokens']} tokens in {s['seconds']:.1f}s = {s['tokens_per_second']:.0f} tokens/s, {s['seconds']/max(1,s['step']-(s['resumed_from_step'] or 0)):.2f} s/step, mean loss {s['mean_loss']}\")"

echo "== build + eval (supervised prompts, trained adapter) on nfcorpus test"
"$QUARRY" --home "$HOME_DIR" build --model "$GGUF" --lora "$OUT/adapter" --mode supervised \
  --dataset nfcorpus --device cuda --dtype bf16 --name q05-supervised-lora
"$QUARRY" --home "$HOME_DIR" eval --dataset nfcorpus --retriever dense:q05-supervised-lora

echo "== peer: PyTorch + PEFT, same shape and batch"
if ! python3 -c "import peft" 2>/dev/null; then
  WHEEL=$(ls wheels/peft-*.whl 2>/dev/null | head -1 || true)
  if [ -n "$WHEEL" ]; then
    python3 -m pip install --no-deps --target /tmp/peft-site "$WHEEL" >/dev/null
    export PYTHONPATH="/tmp/peft-site:${PYTHONPATH:-}"
  fi
fi
python3 scripts/gpu/peft_train_step.py --batch 32 --micro-batch "$MICRO" --group-size 8 \
  --query-len 32 --passage-len 192 --steps 3 | tee "$OUT/peer.json"
python3 -c "import json; q=json.load(open('$OUT/train.json')); p=json.load(open('$OUT/peer.json')); print(f\"tokens/s quarry {q['tokens_per_second']:.0f}, PyTorch+PEFT {p['tokens_per_second']:.0f}: quarry/peer = {q['tokens_per_second']/p['tokens_per_second']:.3f}\")"
