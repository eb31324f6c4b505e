#!/usr/bin/env bash
# How long `quarry compare` takes from built indexes: 3 retrievers (bm25, dense:all-minilm-l6-v2,
# their RRF hybrid) x 2 datasets (nfcorpus, cosqa) x 5 metrics, with a paired t-test against
# bm25 (and once with the randomization test), each run a fresh process timed by hyperfine.
# The peer, in the same run on the same machine: ranx's `compare` over the same qrels and the
# run files quarry wrote (benches/compare_peer.py), which scores and tests but does not
# retrieve. The means are checked first: against pytrec_eval on the same files (trec_eval's
# semantics, which quarry follows) they must agree; against ranx they differ where scores
# tie, because ranx orders ties its own way (the summary counts those queries).
#
#   benches/compare_speed.sh [RUNS]       (default 10 timed runs per command)
#
# Needs: the release binary (cargo build --release -p quarry-cli), all-MiniLM-L6-v2
# (scripts/fetch_models.sh --only minilm), hyperfine (Debian), and the ranx venv
# (scripts/make_ranx_venv.sh, which also installs pytrec-eval-terrier). Indexes are built into QUARRY_HOME (default <repo>/.quarry)
# when missing; that build is not timed. Output: a table of ranges, raw hyperfine JSON in
# benches/results/compare-speed/.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
runs="${1:-10}"
quarry="${CARGO_TARGET_DIR:-$repo_root/target}/release/quarry"
models_dir="${QUARRY_MODELS:-$repo_root/models}"
export QUARRY_HOME="${QUARRY_HOME:-$repo_root/.quarry}"
venv="${RANX_VENV:-$repo_root/.venv-ranx}"
out="$repo_root/benches/results/compare-speed"
for need in "$quarry" "$venv/bin/python"; do
  [ -x "$need" ] || { echo "error: $need is missing (see the header of $0)" >&2; exit 1; }
done
command -v hyperfine >/dev/null || { echo "error: hyperfine is missing (apt-get install hyperfine)" >&2; exit 1; }
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

datasets=(nfcorpus cosqa)
dense=dense:all-minilm-l6-v2
hybrid="hybrid:rrf(bm25,$dense)"
metrics=mrr@10,ndcg@10,recall@100,recall@200,recall@1000
for d in "${datasets[@]}"; do
  "$quarry" build --model "$models_dir/all-MiniLM-L6-v2" --dataset "$d" >/dev/null
  # BM25's index is built on first use: do it before timing.
  "$quarry" eval --dataset "$d" --retriever bm25 --metrics ndcg@10 >/dev/null
done

compare=("$quarry" compare --datasets "$(IFS=,; echo "${datasets[*]}")"
  --retrievers "bm25,$dense,$hybrid" --metrics "$metrics" --baseline bm25)
quote() { printf '%q ' "$@"; }
hyperfine --runs "$runs" --warmup 1 --export-json "$out/quarry-t.json" \
  "$(quote "${compare[@]}" --test t) >/dev/null"
hyperfine --runs "$runs" --warmup 1 --export-json "$out/quarry-randomization.json" \
  "$(quote "${compare[@]}" --test randomization) >/dev/null"
hyperfine --runs "$runs" --warmup 1 --export-json "$out/quarry-report.json" \
  "$(quote "${compare[@]}" --test t --report "$work/report") >/dev/null"
"${compare[@]}" --test t --format json >"$out/quarry-table.json"

# The peer: the same runs as TREC files, scored and tested by ranx.
specs=()
for d in "${datasets[@]}"; do
  files=()
  for r in bm25 "$dense" "$hybrid"; do
    f="$work/$d-$(echo "$r" | tr -c 'a-z0-9\n' _).trec"
    "$quarry" eval --dataset "$d" --retriever "$r" --metrics ndcg@10 --run-out "$f" >/dev/null
    files+=("$f")
  done
  zstd -dcq "data/$d/qrels/test.tsv.zst" >"$work/$d.qrels.tsv"
  specs+=("$d:$work/$d.qrels.tsv:$(IFS=,; echo "${files[*]}")")
done
peer() { "$venv/bin/python" benches/compare_peer.py --metrics "$metrics" --test "$1" "${specs[@]}"; }
for i in $(seq 1 "$runs"); do peer student; done >"$out/ranx-student.jsonl"
for i in $(seq 1 3); do peer fisher; done >"$out/ranx-fisher.jsonl"

"$venv/bin/python" - "$out" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def times(name):
    return json.loads((out / name).read_text())["results"][0]["times"]
q_t, q_r, q_rep = times("quarry-t.json"), times("quarry-randomization.json"), times("quarry-report.json")
student = [json.loads(l) for l in (out / "ranx-student.jsonl").read_text().splitlines()]
fisher = [json.loads(l) for l in (out / "ranx-fisher.jsonl").read_text().splitlines()]
table = json.loads((out / "quarry-table.json").read_text())
# Means must agree before times are compared.
worst_trec, worst_ranx = 0.0, 0.0
for row in table["rows"]:
    ranx = student[0]["means"][row["dataset"]]
    trec = student[0]["trec_eval_means"][row["dataset"]]
    for r in range(len(table["retrievers"])):
        for m, metric in enumerate(table["metrics"]):
            mean = row["cells"][r][m]["mean"]
            worst_trec = max(worst_trec, abs(mean - trec[f"r{r}"][metric]))
            worst_ranx = max(worst_ranx, abs(mean - ranx[f"r{r}"][metric]))
rng = lambda xs: f"{min(xs):.3f}-{max(xs):.3f} s"
whole = lambda rs: [r["import_s"] + r["read_s"] + r["first_compare_s"] for r in rs]
warm = lambda rs: [r["warm_compare_s"] for r in rs]
print(f"largest |quarry mean - pytrec_eval mean| over 2 datasets x 3 retrievers x 5 metrics: {worst_trec:.2e}")
print(f"largest |quarry mean - ranx mean| (ranx orders tied scores its own way): {worst_ranx:.2e}")
print("| what | time (range over runs) | ratio peer/quarry |")
print("|---|---|---|")
print(f"| quarry compare, t-test (retrieve + score + test), process | {rng(q_t)} | |")
print(f"| quarry compare, randomization 10k | {rng(q_r)} | |")
print(f"| quarry compare, t-test + --report (md, tex, csv, json, SVG) | {rng(q_rep)} | |")
print(f"| ranx compare, student, import + read runs + first compare (in process) | {rng(whole(student))} | {min(whole(student))/max(q_t):.1f}x-{max(whole(student))/min(q_t):.1f}x |")
print(f"| ranx compare, student, warm (numba compiled, runs in memory) | {rng(warm(student))} | {min(warm(student))/max(q_t):.2f}x-{max(warm(student))/min(q_t):.2f}x |")
print(f"| ranx compare, fisher 10k, warm | {rng(warm(fisher))} | {min(warm(fisher))/max(q_r):.1f}x-{max(warm(fisher))/min(q_r):.1f}x |")
EOF
