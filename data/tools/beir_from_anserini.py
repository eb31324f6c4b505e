#!/usr/bin/env python3
"""Converts an Anserini topics file and qrels file into quarry's BEIR layout (queries + qrels).

Source: GitHub castorini/anserini-tools at commit 5b819c1a45c8a0a3ec9426f476694f44a29dfaf3:
  BEIR:     topics/topics.beir-v1.0.0-<name>.test.tsv.gz, qrels/qrels.beir-v1.0.0-<name>.test.txt
            (arguana, fiqa, quora, scidocs, trec-covid)
  MS MARCO: topics/topics.dl19-passage.txt + qrels/qrels.dl19-passage.txt (--judged-only),
            topics/topics.dl20.txt + qrels/qrels.dl20-passage.txt (--judged-only),
            topics/topics.msmarco-passage.dev-subset.txt + qrels/qrels.msmarco-passage.dev-subset.txt

  queries.jsonl   {"_id": <qid>, "text": <text>} per topic line (id, tab, text kept verbatim,
                  leading spaces included), in the topics file's order; with --judged-only
                  only topics the qrels judge (DL19/DL20 topic files list 200 each)
  qrels/test.tsv  header "query-id, corpus-id, score", then each qrels line
                  ("qid iter docid grade") in file order, every grade kept (0 included)

Prints each output file's sha256 (data/SOURCES.md; the bundled copies are these files,
zstd-compressed). data/tools/rebuild_bundled.sh runs this for every dataset it applies to.

usage: python3 data/tools/beir_from_anserini.py TOPICS QRELS OUT_DIR [--judged-only]
"""
import gzip
import json
import os
import sys

from outputs import write_files


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        return f.read()


def main():
    args = [a for a in sys.argv[1:] if a != "--judged-only"]
    judged_only = "--judged-only" in sys.argv[1:]
    if len(args) != 3:
        sys.exit(__doc__)
    topics_path, qrels_path, out = args
    qrels = []
    for n, line in enumerate(read_text(qrels_path).splitlines(), 1):
        fields = line.split()
        if len(fields) != 4:
            sys.exit("%s:%d: expected 4 fields (qid iter docid grade), got %d" % (qrels_path, n, len(fields)))
        qrels.append((fields[0], fields[2], int(fields[3])))
    judged = {q for q, _, _ in qrels}
    queries = []
    for n, line in enumerate(read_text(topics_path).split("\n"), 1):
        if line == "":
            continue
        if "\t" not in line:
            sys.exit("%s:%d: no tab between the topic id and its text" % (topics_path, n))
        qid, text = line.rstrip("\r").split("\t", 1)
        if judged_only and qid not in judged:
            continue
        queries.append({"_id": qid, "text": text})
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    files = {
        "queries.jsonl": "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries),
        "qrels/test.tsv": "query-id\tcorpus-id\tscore\n" + "".join("%s\t%s\t%d\n" % r for r in qrels),
    }
    write_files(out, files)


if __name__ == "__main__":
    main()
