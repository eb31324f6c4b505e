#!/usr/bin/env bash
# The venv for the ranx/scipy/statsmodels reference fixtures
# (scripts/ranx_fusion_reference.py, scripts/ranx_significance_reference.py) and the peer of
# benches/compare_speed.sh (ranx, with pytrec_eval for trec_eval's means).
# Usage: scripts/make_ranx_venv.sh [venv dir, default .venv-ranx in the checkout]
set -euo pipefail
VENV="${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv-ranx}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q ranx scipy statsmodels numpy pytrec-eval-terrier
"$VENV/bin/python" -c 'import ranx, scipy, statsmodels; print("ranx", ranx.__version__ if hasattr(ranx, "__version__") else "?")'
