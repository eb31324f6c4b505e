#!/usr/bin/env bash
# Renders every SVG picture of a `quarry compare --report DIR` folder to PNG in a real browser
# (headless Chromium, Debian's `chromium` package), beside the SVG: DIR/NAME.svg -> DIR/NAME.png.
# This is how the pictures are looked at before they are committed (docs/compare-report/).
#
#   sudo apt-get install chromium fonts-dejavu-core     # once
#   scripts/render_report.sh DIR [--scale 2]
#
# Each page is the SVG at its own width and height (read from its <svg> element), shot at the
# device scale factor given (default 1). Exits 1 when Chromium is missing or a shot fails.
set -euo pipefail
usage() { echo "usage: $0 DIR [--scale N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
dir="$1"; shift
scale=1
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) [ $# -ge 2 ] || usage; scale="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[ -d "$dir" ] || { echo "error: $dir is not a folder" >&2; exit 2; }
browser="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$browser" ]; then
  echo "error: Chromium not found; install Debian's package: apt-get install chromium" >&2
  exit 1
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
shopt -s nullglob
svgs=("$dir"/*.svg)
[ ${#svgs[@]} -gt 0 ] || { echo "error: no .svg files in $dir" >&2; exit 1; }
for svg in "${svgs[@]}"; do
  head="$(head -c 400 "$svg")"
  width="$(sed -n 's/^<svg[^>]* width="\([0-9]*\)".*/\1/p' <<<"$head" | head -1)"
  height="$(sed -n 's/^<svg[^>]* height="\([0-9]*\)".*/\1/p' <<<"$head" | head -1)"
  if [ -z "$width" ] || [ -z "$height" ]; then
    echo "error: $svg has no width/height on its <svg> element" >&2
    exit 1
  fi
  png="${svg%.svg}.png"
  rm -f "$png"
  # The flags keep a headless browser off the network (this machine has none) and out of
  # the user's profile.
  "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --force-device-scale-factor="$scale" \
    --window-size="$width,$height" --screenshot="$png" "file://$(realpath "$svg")" \
    >/dev/null 2>&1 || true
  if [ ! -s "$png" ]; then
    echo "error: Chromium wrote no picture for $svg" >&2
    exit 1
  fi
  echo "$png (${width}x${height} at scale $scale)"
done
