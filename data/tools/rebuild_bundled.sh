#!/usr/bin/env bash
# Rebuilds every dataset bundled under data/ from its upstream files and checks the result
# against the bundled copy, file by file (sha256 of the decompressed content).
#
# usage: data/tools/rebuild_bundled.sh [--from DIR] [--write]
#   --from DIR  read the upstream files from DIR/<owner>/<repo>/<path> instead of downloading
#               them (raw files of GitHub at the pinned commits below)
#   --write     replace the bundled .zst copies with the rebuilt files (zstd -19)
# Exit status 1 if any rebuilt file differs from the bundled one.
#
# Sources (data/SOURCES.md says more):
#   nfcorpus            KID-22/Cocktail dataset/nfcorpus.zip: the original BEIR files, CRLF -> LF
#   cosqa               Jun-jie-Huang/CoCLR data/search/*: data/tools/cosqa_from_coclr.py
#   arguana fiqa quora scidocs trec-covid, msmarco-dl19 msmarco-dl20 msmarco-dev-small
#                       castorini/anserini-tools topics + qrels: data/tools/beir_from_anserini.py
#   msmarco-train-triples-sample  naver/splade data/toy_data/triplets/raw.tsv, unchanged
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
from=""
write=0
while [ $# -gt 0 ]; do
  case $1 in
    --from) from=${2:?--from needs a folder}; shift 2 ;;
    --write) write=1; shift ;;
    *) sed -n 2,9p "$0"; exit 2 ;;
  esac
done

COCKTAIL="KID-22/Cocktail d070bccd55e643c8c9d018ef65e5825099e97550"
COCLR="Jun-jie-Huang/CoCLR 14ebcacf9e9bc3e7109102632bc63047876f27d2"
ANSERINI="castorini/anserini-tools 5b819c1a45c8a0a3ec9426f476694f44a29dfaf3"
SPLADE="naver/splade 8dcd33a054d790e74aceda25b128c1b188c5d9c1"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# upstream "OWNER/REPO COMMIT" PATH -> prints the local path of that file
upstream() {
  local repo=${1% *} commit=${1#* } path=$2
  if [ -n "$from" ]; then
    echo "$from/$repo/$path"
    return
  fi
  local out="$work/src/$repo/$path"
  if [ ! -f "$out" ]; then
    mkdir -p "$(dirname "$out")"
    curl -fsSL --retry 3 -o "$out.part" "https://raw.githubusercontent.com/$repo/$commit/$path"
    mv "$out.part" "$out"
  fi
  echo "$out"
}

built=$work/built
mkdir -p "$built"

# nfcorpus
mkdir -p "$work/nfc" "$built/nfcorpus/qrels"
unzip -q -o "$(upstream "$COCKTAIL" dataset/nfcorpus.zip)" -d "$work/nfc"
sed 's/\r$//' "$work/nfc/corpus/human.jsonl" >"$built/nfcorpus/corpus.jsonl"
sed 's/\r$//' "$work/nfc/queries.jsonl" >"$built/nfcorpus/queries.jsonl"
for split in train dev test; do
  sed 's/\r$//' "$work/nfc/qrels/$split.tsv" >"$built/nfcorpus/qrels/$split.tsv"
done

# cosqa
mkdir -p "$work/coclr"
for f in code_idx_map.txt cosqa-retrieval-test-500.json cosqa-retrieval-dev-500.json; do
  cp "$(upstream "$COCLR" "data/search/$f")" "$work/coclr/$f"
done
python3 data/tools/cosqa_from_coclr.py "$work/coclr" "$built/cosqa" >/dev/null

# BEIR queries + qrels
for name in arguana fiqa quora scidocs trec-covid; do
  python3 data/tools/beir_from_anserini.py \
    "$(upstream "$ANSERINI" "topics/topics.beir-v1.0.0-$name.test.tsv.gz")" \
    "$(upstream "$ANSERINI" "qrels/qrels.beir-v1.0.0-$name.test.txt")" \
    "$built/$name" >/dev/null
done

# MS MARCO queries + qrels
python3 data/tools/beir_from_anserini.py "$(upstream "$ANSERINI" topics/topics.dl19-passage.txt)" \
  "$(upstream "$ANSERINI" qrels/qrels.dl19-passage.txt)" "$built/msmarco-dl19" --judged-only >/dev/null
python3 data/tools/beir_from_anserini.py "$(upstream "$ANSERINI" topics/topics.dl20.txt)" \
  "$(upstream "$ANSERINI" qrels/qrels.dl20-passage.txt)" "$built/msmarco-dl20" --judged-only >/dev/null
python3 data/tools/beir_from_anserini.py "$(upstream "$ANSERINI" topics/topics.msmarco-passage.dev-subset.txt)" \
  "$(upstream "$ANSERINI" qrels/qrels.msmarco-passage.dev-subset.txt)" "$built/msmarco-dev-small" >/dev/null

# MS MARCO training triples sample
mkdir -p "$built/msmarco-train-triples-sample"
cp "$(upstream "$SPLADE" data/toy_data/triplets/raw.tsv)" "$built/msmarco-train-triples-sample/triples.tsv"

differ=0
printf '%-60s %s\n' file status
while IFS= read -r rel; do
  bundled=$root/data/$rel.zst
  if [ ! -f "$bundled" ]; then
    status="NEW (no bundled copy)"
    differ=1
  elif [ "$(sha256sum <"$built/$rel" | cut -d' ' -f1)" = "$(zstd -dc "$bundled" | sha256sum | cut -d' ' -f1)" ]; then
    status=same
  else
    status=DIFFERS
    differ=1
  fi
  printf '%-60s %s\n' "data/$rel" "$status"
  if [ "$write" = 1 ]; then zstd -q -19 -f "$built/$rel" -o "$bundled"; fi
done < <(cd "$built" && find . -type f | sed 's|^\./||' | sort)
exit $differ
