#!/usr/bin/env bash
# The supervised setting's real run (issue #7) on one GPU, resumable across device calls:
# mine BM25 hard negatives for nfcorpus train, LoRA-train Qwen2.5-Coder-0.5B-Instruct with
# `quarry train` (checkpoint every 5 steps; a call that times out is resumed by the next),
# then build + evaluate the trained encoder (supervised prompts) on nfcorpus test, and time
# PyTorch + PEFT on the same step shape (scripts/gpu/peft_train_step.py) for the peer ratio.
#
#   scripts/gpu/lora_nfcorpus.sh QUARRY_BIN GGUF [MAX_STEPS] [TUNING.tgz]
set -uo pipefail
bin=$1 model=$2 steps=${3:-74} tuning=${4:-}
export QUARRY_HOME=${QUARRY_HOME:-/root/qh-lora}
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
out=${OUT:-/tmp/out}; work=${WORK:-/root/lora}
mkdir -p "$out" "$QUARRY_HOME" "$work"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/card.txt"
if [ -n "$tuning" ] && [ ! -d "$QUARRY_HOME/gpu-tuning" ]; then tar -C "$QUARRY_HOME" -xzf "$tuning"; fi
if [ ! -f "$work/train.jsonl" ]; then
  "$bin" mine --dataset nfcorpus --retriever bm25 --split train --depth 200 --negatives 30 \
      --output "$work/train.jsonl" --json | tee "$out/mine.json" | head -c 600; echo
fi
resume=(); [ -f "$work/adapter/checkpoint.safetensors" ] && resume=(--resume)
start=$SECONDS
timeout "${TRAIN_TIMEOUT:-420}" "$bin" train --model "$model" --train "$work/train.jsonl" \
    --output "$work/adapter" --device cuda --dtype bf16 --max-steps "$steps" \
    --checkpoint-every 5 --json "${resume[@]}" >"$out/train.json" 2>"$out/train.log"
echo "train exit $? after $((SECONDS - start)) s"; tail -c 300 "$out/train.log" | tr '\r' '\n' | tail -3
python3 - "$out/train.json" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1]))
print(f"quarry train: step {s['step']}/{s['total_steps']} finished={s['finished']} "
      f"{s['tokens']} tokens in {s['seconds']:.1f}s = {s['tokens_per_second']:.0f} tok/s, "
      f"mean loss {s['mean_loss']}, last loss {s['last_loss']}")
PY
cp "$work"/adapter/*.json "$out/" 2>/dev/null
if [ -f "$work/adapter/adapter_config.json" ] && [ -f "$work/adapter/adapter_model.safetensors" ]; then
  "$bin" build --model "$model" --lora "$work/adapter" --mode supervised --dataset nfcorpus \
      --device cuda --dtype bf16 --name q05-supervised-lora 2>&1 | tail -2
  "$bin" eval --dataset nfcorpus --retriever dense:q05-supervised-lora --json >"$out/eval-lora.json"
  python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['metrics']; print('trained adapter, nfcorpus test:', ' '.join(f'{k}={v:.4f}' for k,v in m.items()))" "$out/eval-lora.json"
  if [ "${PEER:-1}" = 1 ]; then
    timeout 120 python3 scripts/gpu/peft_train_step.py --batch 32 --micro-batch 8 --group-size 8 \
        --query-len 32 --passage-len 192 --steps 3 | tee "$out/peer.json"
  fi
fi
