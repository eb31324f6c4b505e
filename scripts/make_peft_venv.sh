#!/usr/bin/env bash
# Adds PEFT (the LoRA reference) to the transformers venv made by
# encoder/scripts/make_venv.sh; used by scripts/make_lora_fixture.py.
# Usage: scripts/make_peft_venv.sh [venv dir, default .venv-hf in the checkout]
set -euo pipefail
VENV="${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv-hf}"
[ -x "$VENV/bin/python" ] || "$(dirname "$0")/../encoder/scripts/make_venv.sh" "$VENV"
"$VENV/bin/pip" install peft
