#!/usr/bin/env python3
"""Reference fusion output from ranx (PyPI), for engine/src/fusion.rs tests.

Creates the venv if needed and writes tests/fixtures/reference/ranx_fusion.json:
two runs (seeded random rankings, distinct scores, partly overlapping docs)
and ranx's fused scores for RRF (k = 60, 10) and min-max normalised weighted
sum (ranx `wsum`, weights [alpha, 1 - alpha]).

    scripts/make_ranx_venv.sh            # .venv-ranx in the checkout
    .venv-ranx/bin/python scripts/ranx_fusion_reference.py
"""
import json
import random
from importlib.metadata import version
from pathlib import Path

from ranx import Run, fuse

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/reference/ranx_fusion.json"

rng = random.Random(20091119)  # RRF paper year; any fixed seed works
pool = [f"d{i:02d}" for i in range(40)]
first, second = {}, {}
for q in range(6):
    qid = f"q{q}"
    # BM25-like scores for the first run, cosine-like for the second; a
    # one-hit query and a query where the runs share nothing are included.
    n1 = 1 if q == 4 else rng.randint(5, 25)
    n2 = rng.randint(5, 25)
    docs1 = rng.sample(pool[:20] if q == 5 else pool, n1)
    docs2 = rng.sample(pool[20:] if q == 5 else pool, n2)
    first[qid] = {d: round(rng.uniform(0.5, 30.0), 6) for d in docs1}
    second[qid] = {d: round(rng.uniform(-0.2, 0.95), 6) for d in docs2}
    for run in (first[qid], second[qid]):
        assert len(set(run.values())) == len(run), "scores must be distinct (ranx tie order is unspecified)"

cases = []
for k in (60, 10):
    fused = fuse([Run(first), Run(second)], method="rrf", params={"k": k}).to_dict()
    cases.append({"method": "rrf", "k": k, "fused": fused})
for alpha in (0.3, 0.5, 0.8):
    fused = fuse(
        [Run(first), Run(second)], norm="min-max", method="wsum", params={"weights": [alpha, 1 - alpha]}
    ).to_dict()
    cases.append({"method": "interp", "alpha": alpha, "fused": fused})

fixture = {
    "tool": f"ranx {version('ranx')}",
    "first": first,
    "second": second,
    "cases": [{**c, "fused": {q: dict(v) for q, v in c["fused"].items()}} for c in cases],
}
OUT.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
print(f"wrote {OUT}")
