#!/usr/bin/env bash
# Issue #16's benchmark: `quarry datasets fetch --from` converting a synthetic MS MARCO
# collection of ROWS lines (default 8,841,823, the real count) from collectionandqueries.tar.gz,
# against the Python conversion Pyserini users run (benches/msmarco_peer_convert.py), on the same
# machine in the same run. Prints rows/s and peak RSS (GNU time) of each, and their ratio.
# Peak RSS must stay under 1 GiB and not grow with ROWS: run with ROWS=1000000 to compare.
#
# Usage: benches/msmarco_convert.sh            (ROWS, RUNS, WORK, QUARRY override)
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rows="${ROWS:-8841823}"
runs="${RUNS:-2}"
work="${WORK:-${TMPDIR:-/tmp}/quarry-msmarco-bench-$rows}"
quarry="${QUARRY:-$repo_root/target/release/quarry}"
[ -x "$quarry" ] || { echo "build first: cargo build --release -p quarry-cli" >&2; exit 1; }
mkdir -p "$work"
if [ ! -f "$work/src/collectionandqueries.tar.gz" ]; then
  echo "making $rows synthetic passages in $work/src" >&2
  python3 "$repo_root/benches/make_msmarco_collection.py" --rows "$rows" --out "$work/src"
fi
base=https://msmarco.example.invalid/msmarcoranking/collectionandqueries.tar.gz
cat > "$work/datasets.toml" <<TOML
[[dataset]]
name = "msmarco-synthetic"
split = "test"
remove_self = false
corpus_sha256 = ""
url = ""
kind = "text"
docs = $rows
format = "msmarco-passage"

[[dataset.download]]
url = "$base"
role = "collection"
member = "collection.tsv"

[[dataset.download]]
url = "$base"
role = "queries"
member = "queries.dev.small.tsv"

[[dataset.download]]
url = "$base"
role = "qrels"
member = "qrels.dev.small.tsv"
TOML
measure() { # label, command...: prints "label seconds peak_kib"
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > /dev/null 2> "$work/$label.log" \
    || { cat "$work/$label.log" >&2; exit 1; }
  echo "$label $(cat "$work/time.txt")"
}
results=()
for run in $(seq 1 "$runs"); do
  rm -rf "$work/home"
  results+=("$(measure quarry "$quarry" --registry "$work/datasets.toml" --home "$work/home" \
    datasets fetch msmarco-synthetic --from "$work/src")")
  results+=("$(measure peer python3 "$repo_root/benches/msmarco_peer_convert.py" \
    "$work/src/collectionandqueries.tar.gz" "$work/peer.jsonl")")
  rm -f "$work/peer.jsonl"
done
printf '%s\n' "${results[@]}" > "$work/results.txt"
python3 - "$rows" "$work/results.txt" <<'PY'
import sys
rows = int(sys.argv[1])
by = {}
for line in open(sys.argv[2]):
    label, secs, kib = line.split()
    by.setdefault(label, []).append((float(secs), int(kib)))
print(f"rows: {rows:,}; runs: {len(by['quarry'])}")
print("| tool | seconds (range) | rows/s (range) | peak RSS MiB (max) |")
print("| --- | --- | --- | --- |")
for label in ("quarry", "peer"):
    s = [x[0] for x in by[label]]
    m = max(x[1] for x in by[label]) / 1024
    print(f"| {label} | {min(s):.1f}-{max(s):.1f} | {rows/max(s):,.0f}-{rows/min(s):,.0f} | {m:.0f} |")
q = [x[0] for x in by["quarry"]]
p = [x[0] for x in by["peer"]]
print(f"speed ratio quarry/peer (peer seconds / quarry seconds): {min(p)/max(q):.2f}x-{max(p)/min(q):.2f}x")
PY
