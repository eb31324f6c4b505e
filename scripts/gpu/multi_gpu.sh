#!/usr/bin/env bash
# `quarry build --device cuda:all` against one GPU on a multi-GPU machine: same model, same
# corpus, one build on cuda:0 and one split over every visible GPU; prints both wall times
# and both evaluations (the split build must score the same).
#
#   scripts/gpu/multi_gpu.sh QUARRY_BIN MODEL.gguf DATASET [TUNING.tgz]
#
# TUNING.tgz: a `<home>/gpu-tuning` folder from an earlier run on a card of the same
# architecture; its device-0-0 entries are copied for every other GPU so that no card pays
# for first-pass autotune (burn keys the cache by device index). QUARRY_HOME defaults to
# .gpu/qh-multi in the repository.
set -uo pipefail
bin=$1 model=$2 dataset=$3 tuning=${4:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
export QUARRY_HOME=${QUARRY_HOME:-$root/.gpu/qh-multi}
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
out=${OUT:-/tmp/out}; mkdir -p "$out" "$QUARRY_HOME"
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader | tee "$out/cards.txt"
gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
if [ -n "$tuning" ]; then
  tar -C "$QUARRY_HOME" -xzf "$tuning"
  base=$(ls -d "$QUARRY_HOME"/gpu-tuning/autotune/*/device-0-0-cuda)
  for ((i = 1; i < gpus; i++)); do cp -r "$base" "${base%-0-0-cuda}-0-$i-cuda"; done
fi
for device in cuda:0 cuda:all; do
  name=multi-${device#cuda:}
  start=$(date +%s.%N)
  "$bin" build --model "$model" --dataset "$dataset" --device "$device" --dtype bf16 \
      --name "$name" >"$out/build-$name.log" 2>&1
  rc=$?
  wall=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
  tail -n 2 "$out/build-$name.log"
  "$bin" eval --dataset "$dataset" --retriever "dense:$name" --json >"$out/eval-$name.json"
  ndcg=$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['metrics']['ndcg@10'], 4))" "$out/eval-$name.json")
  printf '%s\texit %s\twall %ss\tndcg@10 %s\n' "$device" "$rc" "$wall" "$ndcg" | tee -a "$out/summary.tsv"
done
echo "=== $gpus GPUs"; cat "$out/summary.tsv"
