#!/usr/bin/env bash
# Creates the Python reference environment (transformers + torch + sentence-transformers)
# used by make_fixtures.py and the other parity scripts. It is ~5 GB (PyPI's torch wheel pulls
# the CUDA libraries): the default, .venv-hf in the checkout, is git-ignored (/.venv*/).
# Usage: encoder/scripts/make_venv.sh [venv dir, default .venv-hf in the checkout]
set -euo pipefail
VENV="${1:-$(cd "$(dirname "$0")/../.." && pwd)/.venv-hf}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install torch transformers safetensors sentence-transformers gguf accelerate numpy
# Other scripts wait for this marker before using the venv.
touch "$VENV/.ready"
