#!/usr/bin/env bash
# CPU encoding speed, quarry vs PyTorch, on the same token ids in one run:
# all-MiniLM-L6-v2 over the first N nfcorpus documents (default 300).
# Prints both tokens/s, their ratio, quarry's worst cosine against the torch
# embeddings, and the load average (other processes skew timings).
#
#   benches/cpu_encode_peer.sh [N] [BATCH_TOKENS]
#
# Needs: the model (scripts/fetch_models.sh --only minilm) and a Python with
# torch + transformers: $BENCH_PYTHON, default .venv-hf/bin/python in the checkout
# (encoder/scripts/make_venv.sh makes it).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
count="${1:-300}"
batch_tokens="${2:-}"
models_dir="${QUARRY_MODELS:-$repo_root/models}"
model="$models_dir/all-MiniLM-L6-v2"
python="${BENCH_PYTHON:-$repo_root/.venv-hf/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

zstd -dc data/nfcorpus/corpus.jsonl.zst > "$work/corpus.jsonl"
cargo build --release -q -p quarry-encoder --example cpu_encode_bench
bench="${CARGO_TARGET_DIR:-$repo_root/target}/release/examples/cpu_encode_bench"

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
torch_line="$("$python" benches/cpu_encode_peer.py "$model" "$work/corpus.jsonl" "$count" "$work" | tee /dev/stderr | grep 'torch tokens/s')"
quarry_line="$("$bench" "$model" "$work" $batch_tokens | tee /dev/stderr | grep 'quarry tokens/s')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
torch_rate="${torch_line##* }"
quarry_rate="${quarry_line##* }"
awk -v q="$quarry_rate" -v t="$torch_rate" 'BEGIN { printf "quarry/torch tokens/s ratio: %.2f\n", q / t }'
