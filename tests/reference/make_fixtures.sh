#!/usr/bin/env bash
# Recreates the pytrec_eval reference fixtures that
# tests/tests/pytrec_reference.rs checks quarry's metrics against.
#
# Creates (once) a venv at $PYTREC_VENV (default .venv-pytrec in the checkout) with
# pytrec_eval-terrier (trec_eval 9 bindings) and zstandard (to read the
# embedded .zst qrels), then runs make_fixtures.py from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${PYTREC_VENV:-$PWD/.venv-pytrec}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet "pytrec_eval-terrier==0.5.11" "zstandard>=0.22"
"$VENV/bin/python" tests/reference/make_fixtures.py "$@"
