#!/usr/bin/env bash
# The venv for the ranx/scipy/statsmodels reference fixtures
# (scripts/ranx_fusion_reference.py, scripts/ranx_significance_reference.py).
# Usage: scripts/make_ranx_venv.sh [venv dir, default .venv-ranx in the checkout]
set -euo pipefail
VENV="${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv-ranx}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q ranx scipy statsmodels numpy
"$VENV/bin/python" -c 'import ranx, scipy, statsmodels; print("ranx", ranx.__version__ if hasattr(ranx, "__version__") else "?")'
