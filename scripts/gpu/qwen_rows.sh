#!/usr/bin/env bash
# Builds and evaluates dense indexes of one GGUF model on the GPU machine, one
# (dataset, mode) pair after another, each build resumable: a later call with
# the same arguments continues where a timed-out one stopped.
#
#   scripts/gpu/qwen_rows.sh QUARRY_BIN MODEL.gguf NAME_PREFIX DATASET:MODE...
#
# e.g. scripts/gpu/qwen_rows.sh .gpu/quarry .gpu/models/q05.gguf qwen2.5-coder-0.5b \
#        cosqa:zero-shot nfcorpus:supervised
# Indexes go to $QUARRY_HOME (default .gpu/qh in the repository, git-ignored, so they
# outlive the call while the machine stays warm); burn's kernel tuning cache to $QUARRY_HOME/gpu-tuning.
# Results (eval JSON, build logs, the tuning cache as a tarball) go to $OUT.
set -uo pipefail
bin=$1 model=$2 prefix=$3; shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
export QUARRY_HOME=${QUARRY_HOME:-$root/.gpu/qh}
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
out=${OUT:-/tmp/out}; mkdir -p "$out" "$QUARRY_HOME"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/card.txt"
summary="$out/summary.tsv"
for pair in "$@"; do
  dataset=${pair%%:*} mode=${pair#*:}
  short=$([ "$mode" = zero-shot ] && echo zs || echo sup)
  name="$prefix-$short"
  log="$out/build-$name-$dataset.log"
  start=$(date +%s.%N)
  "$bin" build --model "$model" --dataset "$dataset" --mode "$mode" --device cuda --dtype bf16 \
      --name "$name" >"$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  tail -n 3 "$log"
  if [ $rc -ne 0 ]; then
    printf '%s\t%s\tbuild-failed(rc=%s)\t%.1f\n' "$dataset" "$name" "$rc" "$(python3 -c "print($end - $start)")" >>"$summary"
    continue
  fi
  "$bin" eval --dataset "$dataset" --retriever "dense:$name" --json >"$out/eval-$name-$dataset.json" 2>>"$log"
  metrics=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['metrics']; print(' '.join(f'{k}={v:.4f}' for k,v in m.items()))" "$out/eval-$name-$dataset.json")
  printf '%s\t%s\t%.1fs\t%s\n' "$dataset" "$name" "$(python3 -c "print($end - $start)")" "$metrics" >>"$summary"
done
tar -C "$QUARRY_HOME" -czf "$out/gpu-tuning.tgz" gpu-tuning 2>/dev/null || echo "no tuning cache written"
echo "=== summary"; cat "$summary"
