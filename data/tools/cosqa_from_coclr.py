#!/usr/bin/env python3
"""Converts CoSQA's code-retrieval split, as its authors publish it, into data/cosqa (BEIR layout).

Source: GitHub Jun-jie-Huang/CoCLR at commit 14ebcacf9e9bc3e7109102632bc63047876f27d2,
folder data/search/: code_idx_map.txt (JSON: code string -> snippet index),
cosqa-retrieval-test-500.json and cosqa-retrieval-dev-500.json (items with idx, doc, code,
retrieval_idx).

  corpus.jsonl     one line per snippet of code_idx_map, in index order:
                   {"_id": "c<index>", "title": "", "text": <code>}
  queries.jsonl    the test items' queries, then the dev items': {"_id": <idx>, "text": <doc>}
  qrels/test.tsv   query-id, corpus-id (c<retrieval_idx>), score 1; qrels/dev.tsv likewise

Checks that every item's code maps to its retrieval_idx in code_idx_map, and prints each
output file's sha256 (data/SOURCES.md lists them; the bundled copies are these files,
zstd-compressed).

usage: python3 data/tools/cosqa_from_coclr.py COCLR_DATA_SEARCH_DIR OUT_DIR
"""
import json
import os
import sys

from outputs import write_files


def line(obj):
    return json.dumps(obj, ensure_ascii=False) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(src, "code_idx_map.txt"), encoding="utf-8") as f:
        code_to_idx = json.load(f)
    by_idx = {idx: code for code, idx in code_to_idx.items()}
    if sorted(by_idx) != list(range(len(by_idx))):
        sys.exit("code_idx_map.txt: snippet indexes are not 0..N-1")
    splits = {}
    for split in ("test", "dev"):
        with open(os.path.join(src, "cosqa-retrieval-%s-500.json" % split), encoding="utf-8") as f:
            items = json.load(f)
        for item in items:
            if code_to_idx.get(item["code"]) != item["retrieval_idx"]:
                sys.exit("%s item %s: code does not map to retrieval_idx %s" % (split, item["idx"], item["retrieval_idx"]))
        splits[split] = items
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    files = {
        "corpus.jsonl": "".join(line({"_id": "c%d" % i, "title": "", "text": by_idx[i]}) for i in range(len(by_idx))),
        "queries.jsonl": "".join(line({"_id": it["idx"], "text": it["doc"]}) for s in ("test", "dev") for it in splits[s]),
    }
    for split, items in splits.items():
        rows = "".join("%s\tc%d\t1\n" % (it["idx"], it["retrieval_idx"]) for it in items)
        files["qrels/%s.tsv" % split] = "query-id\tcorpus-id\tscore\n" + rows
    write_files(out, files)


if __name__ == "__main__":
    main()
