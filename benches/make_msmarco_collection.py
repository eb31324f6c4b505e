#!/usr/bin/env python3
"""Writes a synthetic MS MARCO passage source for the conversion benchmark
(benches/msmarco_convert.sh): `collectionandqueries.tar.gz` holding
collection.tsv (`pid<TAB>passage`, ROWS lines of about 56 words, the real
collection's mean), queries.dev.small.tsv and qrels.dev.small.tsv (TREC). The
words are drawn at random from a 30k-word vocabulary so the text compresses
like prose, not like repeats. Seeded: the same ROWS gives the same bytes.

Usage: make_msmarco_collection.py --rows 8841823 --out DIR
"""

import argparse
import random
import subprocess
from pathlib import Path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=8_841_823)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(16)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocabulary = [
        "".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(30_000)
    ]
    with open(out / "collection.tsv", "w", encoding="utf-8") as f:
        batch = []
        for pid in range(args.rows):
            words = rng.choices(vocabulary, k=rng.randint(30, 82))
            batch.append(f"{pid}\t{' '.join(words)}\n")
            if len(batch) == 10_000:
                f.writelines(batch)
                batch.clear()
        f.writelines(batch)
    queries = [(str(1_000_000 + i), " ".join(rng.choices(vocabulary, k=6))) for i in range(6980)]
    with open(out / "queries.dev.small.tsv", "w", encoding="utf-8") as f:
        f.writelines(f"{q}\t{t}\n" for q, t in queries)
    with open(out / "qrels.dev.small.tsv", "w", encoding="utf-8") as f:
        f.writelines(f"{q}\t0\t{rng.randrange(args.rows)}\t1\n" for q, _ in queries)
    # gzip -1 keeps the set-up short; the converter's cost does not depend on the level much.
    subprocess.run(
        f"tar -cf - -C {out} collection.tsv queries.dev.small.tsv qrels.dev.small.tsv "
        f"| gzip -1 > {out}/collectionandqueries.tar.gz",
        shell=True,
        check=True,
    )
    (out / "collection.tsv").unlink()


if __name__ == "__main__":
    main()
