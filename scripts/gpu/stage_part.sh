#!/usr/bin/env bash
# Moves a model file larger than one device call may carry (64 MiB) onto the GPU machine, one
# piece per call: pieces are made here with `split -b 50M FILE .gpu/parts/NAME.` and each call
# carries the next one. Calls must follow each other while the machine is warm (git-ignored
# files in the checkout there survive only that long). The GPU scripts look for the 0.5B model
# at .gpu/models/q05.gguf (MODEL=... for another path).
#
#   scripts/gpu/stage_part.sh PIECE DEST            # append PIECE to DEST.partial
#   e.g. scripts/gpu/stage_part.sh .gpu/parts/q05.gguf.aa .gpu/models/q05.gguf
#   scripts/gpu/stage_part.sh --finish DEST SHA256  # check and rename DEST.partial to DEST
#
# Pieces must be appended in order; a repeated piece is detected by its recorded name.
set -euo pipefail
if [ "$1" = --finish ]; then
  dest=$2 want=$3
  [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$want" ] && { echo "ok $dest"; exit 0; }
  got=$(sha256sum "$dest.partial" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    echo "sha256 of $dest.partial is $got, expected $want" >&2
    exit 1
  fi
  mv "$dest.partial" "$dest"; rm -f "$dest.pieces"
  echo "ok $dest"
  exit 0
fi
piece=$1 dest=$2
mkdir -p "$(dirname "$dest")"
name=$(basename "$piece")
if grep -qxF "$name" "$dest.pieces" 2>/dev/null; then
  echo "$name already appended"
else
  cat "$piece" >>"$dest.partial"
  echo "$name" >>"$dest.pieces"
fi
echo "$(wc -l <"$dest.pieces") pieces, $(stat -c %s "$dest.partial") bytes in $dest.partial"
