#!/usr/bin/env bash
# The main job: BM25 and all-MiniLM-L6-v2 on the embedded nfcorpus, scored against its test
# qrels (nDCG@10), printed as one comparison table.
#
#   1. fetch all-MiniLM-L6-v2 (scripts/fetch_models.sh --only minilm; skipped when present)
#   2. cargo build --release
#   3. quarry build: encode the corpus + queries once into <home>/dense/all-minilm-l6-v2@nfcorpus
#      (a second run finds it built and returns at once; an interrupted one resumes)
#   4. quarry compare --datasets nfcorpus --retrievers bm25,dense:all-minilm-l6-v2
#
# Usage: scripts/main.sh [--device cuda]   (extra flags go to `quarry build`)
# Environment: QUARRY_HOME (index home, default <repo>/.quarry), QUARRY_MODELS (models dir).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
models_dir="${QUARRY_MODELS:-$repo_root/models}"
export QUARRY_HOME="${QUARRY_HOME:-$repo_root/.quarry}"

scripts/fetch_models.sh --only minilm --models-dir "$models_dir"
features=()
for arg in "$@"; do
  case "$arg" in cuda*|--device=cuda*) features=(--features cuda) ;; esac
done
cargo build --release -p quarry-cli "${features[@]}"
quarry="${CARGO_TARGET_DIR:-$repo_root/target}/release/quarry"

"$quarry" build --model "$models_dir/all-MiniLM-L6-v2" --dataset nfcorpus "$@"
"$quarry" compare --datasets nfcorpus --retrievers bm25,dense:all-minilm-l6-v2 --metric ndcg@10
