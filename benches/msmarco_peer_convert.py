#!/usr/bin/env python3
"""The peer of the MS MARCO conversion benchmark: what Pyserini users run to
turn collection.tsv into JSONL (the logic of Anserini's
tools/scripts/msmarco/convert_collection_to_jsonl.py: one {"id", "contents"}
object a line), reading the member straight from the tar.gz as quarry does.
It writes plain JSONL (no zstd in Python's standard library), so it does less
work than quarry, which also compresses and hashes.

Usage: msmarco_peer_convert.py ARCHIVE OUT.jsonl
"""

import json
import sys
import tarfile


def main():
    archive, target = sys.argv[1], sys.argv[2]
    rows = 0
    with tarfile.open(archive, "r|gz") as tar, open(target, "w", encoding="utf-8") as out:
        for member in tar:
            if member.name != "collection.tsv":
                continue
            reader = tar.extractfile(member)
            for raw in reader:
                pid, text = raw.decode("utf-8").rstrip("\n").split("\t", 1)
                out.write(json.dumps({"id": pid, "contents": text}) + "\n")
                rows += 1
            break
    print(rows)


if __name__ == "__main__":
    main()
