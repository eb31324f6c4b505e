#!/usr/bin/env python3
"""Reference significance tests from ranx, scipy and statsmodels (PyPI), for
engine/src/significance/ tests.

Writes tests/fixtures/reference/ranx_significance.json: qrels and three runs
(seeded synthetic rankings with distinct scores, so no tie order is left to
chance), ranx's per-query scores for five metrics, and for every pair
(baseline, other) and metric:
- ranx's paired Student's t-test p-value (scipy.stats.ttest_rel, two-sided);
- ranx's Fisher randomization test p-value at 100,000 permutations (seed 42);
- the same randomization test with ties counted as extreme (numpy): ranx
  compares two float means with `>=`, so a permutation whose difference
  equals the observed one counts or not by rounding noise; on metrics with
  few distinct values (P@10, MRR, recall) that moves ranx's p (0.033 here
  for P@10 where the tie-inclusive p is 0.045 and the strict one 0.028).
  `ties` lists the metrics where counting ties changes the numpy estimate;
- a paired bootstrap test at 100,000 resamples (numpy; no peer tool has one:
  the definition is Sakai 2006's studentized bootstrap, written out below);
- Holm and Bonferroni adjustments of the t-test p-values of each metric's
  family (every other run against the baseline), from statsmodels;
- the 95% confidence interval of each run's mean (scipy.stats.t.interval).

    scripts/make_ranx_venv.sh            # .venv-ranx in the checkout
    .venv-ranx/bin/python scripts/ranx_significance_reference.py
"""
import json
import random
from importlib.metadata import version
from pathlib import Path

import numpy as np
import scipy.stats
from ranx import Qrels, Run, compare, evaluate
from statsmodels.stats.multitest import multipletests

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/reference/ranx_significance.json"
METRICS = ["ndcg@10", "mrr@10", "recall@100", "precision@10", "map"]
PERMUTATIONS = 100_000
SEED = 42

rng = random.Random(20070606)  # Smucker et al., CIKM '07; any fixed seed works
docs = [f"d{i:03d}" for i in range(300)]
qrels, runs = {}, {"baseline": {}, "better": {}, "similar": {}}
for q in range(80):
    qid = f"q{q:02d}"
    relevant = rng.sample(docs, rng.randint(1, 8))
    qrels[qid] = {d: rng.choice([1, 1, 2, 3]) for d in relevant}
    # A few judged non-relevant docs, as real qrels have.
    for d in rng.sample(docs, 3):
        qrels[qid].setdefault(d, 0)
    for name, pull in (("baseline", 0.0), ("better", 0.6), ("similar", 0.05)):
        scores = {}
        for d in rng.sample(docs, 60):
            base = rng.uniform(0.0, 1.0)
            if d in relevant:
                base += rng.uniform(0.0, 0.5) + pull * rng.random()
            scores[d] = round(base, 9)
        for d in relevant:
            if rng.random() < 0.7 + pull / 3:
                scores.setdefault(d, round(rng.uniform(0.4, 1.5) + pull, 9))
        assert len(set(scores.values())) == len(scores), "scores must be distinct"
        runs[name][qid] = scores

ranx_qrels = Qrels(qrels)
ranx_runs = {}
per_query = {}
for name, run in runs.items():
    r = Run(run, name=name)
    ranx_runs[name] = r
    scores = evaluate(ranx_qrels, r, METRICS, return_mean=False)
    per_query[name] = {m: [float(x) for x in scores[m]] for m in METRICS}
query_ids = sorted(qrels)  # ranx orders queries by id


def bootstrap_p(a, b, resamples, seed):
    """Sakai (2006): studentized paired bootstrap, differences shifted to mean 0."""
    d = np.asarray(a) - np.asarray(b)
    n = len(d)
    sd = d.std(ddof=1)
    if sd == 0:
        return 1.0 if d.mean() == 0 else 0.0
    t_obs = d.mean() / (sd / np.sqrt(n))
    w = d - d.mean()
    g = np.random.default_rng(seed)
    count = 0
    for start in range(0, resamples, 10_000):
        idx = g.integers(0, n, size=(min(10_000, resamples - start), n))
        s = w[idx]
        sds = s.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = s.mean(axis=1) / (sds / np.sqrt(n))
        # A resample of identical values has no spread: |t| is 0/0; count it
        # as not extreme, as the Rust side does.
        count += int(np.sum(np.abs(np.nan_to_num(t, nan=0.0)) >= abs(t_obs)))
    return count / resamples


def randomization_p(a, b, permutations, seed):
    """Fisher's randomization test by sign flips; returns (ties counted, strict)."""
    d = np.asarray(a) - np.asarray(b)
    observed = abs(d.sum())
    slack = 1e-12 * np.abs(d).sum()
    g = np.random.default_rng(seed)
    inclusive = strict = 0
    for start in range(0, permutations, 10_000):
        signs = g.choice([-1.0, 1.0], size=(min(10_000, permutations - start), len(d)))
        sums = np.abs(signs @ d)
        inclusive += int(np.sum(sums >= observed - slack))
        strict += int(np.sum(sums > observed + slack))
    return inclusive / permutations, strict / permutations


names = list(runs)
tests = {}
for stat_test in ("student", "fisher"):
    report = compare(
        ranx_qrels,
        runs=[ranx_runs[n] for n in names],
        metrics=METRICS,
        stat_test=stat_test,
        n_permutations=PERMUTATIONS,
        random_seed=SEED,
        max_p=0.05,
    )
    tests[stat_test] = {
        f"baseline|{other}": {
            m: float(report.comparisons[("baseline", other)][m]["p_value"]) for m in METRICS
        }
        for other in names[1:]
    }
tests["bootstrap"] = {
    f"baseline|{other}": {
        m: bootstrap_p(per_query[other][m], per_query["baseline"][m], PERMUTATIONS, SEED)
        for m in METRICS
    }
    for other in names[1:]
}
tests["fisher_ties_counted"] = {}
ties = set()
for other in names[1:]:
    tests["fisher_ties_counted"][f"baseline|{other}"] = {}
    for m in METRICS:
        inclusive, strict = randomization_p(
            per_query[other][m], per_query["baseline"][m], PERMUTATIONS, SEED
        )
        tests["fisher_ties_counted"][f"baseline|{other}"][m] = inclusive
        if inclusive != strict:
            ties.add(m)
corrections = {}
for method in ("holm", "bonferroni"):
    corrections[method] = {}
    for m in METRICS:
        family = [tests["student"][f"baseline|{o}"][m] for o in names[1:]]
        _, adjusted, _, _ = multipletests(family, alpha=0.05, method=method)
        corrections[method][m] = [float(x) for x in adjusted]
intervals = {}
for name in names:
    intervals[name] = {}
    for m in METRICS:
        x = np.asarray(per_query[name][m])
        lo, hi = scipy.stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy.stats.sem(x))
        intervals[name][m] = [float(lo), float(hi)]

OUT.write_text(
    json.dumps(
        {
            "tools": {
                "ranx": version("ranx"),
                "scipy": version("scipy"),
                "statsmodels": version("statsmodels"),
                "numpy": version("numpy"),
            },
            "metrics": METRICS,
            "permutations": PERMUTATIONS,
            "seed": SEED,
            "qrels": qrels,
            "runs": runs,
            "query_ids": query_ids,
            "per_query": per_query,
            "p_values": tests,
            "ties": sorted(ties),
            "corrections": corrections,
            "intervals": intervals,
        },
        indent=1,
        sort_keys=True,
    )
    + "\n"
)
print(f"wrote {OUT}")
