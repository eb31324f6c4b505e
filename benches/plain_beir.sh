# Sourced by benches/bm25_peers.sh and benches/pyserini_peer.sh, whose peers read a BEIR folder
# uncompressed. The repository ships its datasets zstd-compressed (data/<name>/*.zst).
#
#   plain_beir DIR DEST   prints a folder holding DIR's corpus.jsonl, queries.jsonl and
#                         qrels/test.tsv uncompressed: DIR itself when they are, else
#                         DEST/<name of DIR>/, filled from DIR's .zst (or .gz) files.
plain_beir() {
  local dir=$1 dest=$2 name f
  name=$(basename "$(cd "$dir" && pwd)")
  if [ -f "$dir/corpus.jsonl" ] && [ -f "$dir/queries.jsonl" ] && [ -f "$dir/qrels/test.tsv" ]; then
    (cd "$dir" && pwd)
    return
  fi
  mkdir -p "$dest/$name/qrels"
  for f in corpus.jsonl queries.jsonl qrels/test.tsv; do
    if [ -f "$dir/$f" ]; then
      cp "$dir/$f" "$dest/$name/$f"
    elif [ -f "$dir/$f.zst" ]; then
      zstd -dcq "$dir/$f.zst" >"$dest/$name/$f"
    elif [ -f "$dir/$f.gz" ]; then
      gzip -dc "$dir/$f.gz" >"$dest/$name/$f"
    else
      echo "$dir: no $f (nor $f.zst, $f.gz)" >&2
      return 1
    fi
  done
  (cd "$dest/$name" && pwd)
}
