#!/usr/bin/env bash
# Creates the Python venv used by the weights/tokenizer reference scripts in this folder
# (gguf_reference_*.py): the `gguf` package (llama.cpp's own reader + dequantiser) and
# transformers' tokenizer (its GGUF -> tokenizer conversion), without torch.
# Usage: encoder/scripts/setup_weights_venv.sh [VENV_DIR]   (default $QUARRY_GGUF_VENV, else .venv-gguf in the checkout)
set -euo pipefail
venv="${1:-${QUARRY_GGUF_VENV:-$(cd "$(dirname "$0")/../.." && pwd)/.venv-gguf}}"
if [ -f "$venv/.ready" ]; then echo "$venv ready"; exit 0; fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "gguf>=0.17" numpy "transformers>=4.46" tokenizers sentencepiece protobuf
touch "$venv/.ready"
echo "$venv ready"
