#!/usr/bin/env bash
# Fuzz every parser of untrusted input for a bounded time (issue #20 item 4). Not run by CI.
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 120 s, all targets)
# env:   FUZZ_SANITIZER  address (default) or none
#        FUZZ_JOBS       parallel fuzzing processes per target (default 1)
#
# Builds fuzz/ with a nightly compiler and libFuzzer's coverage instrumentation (the flags
# cargo-fuzz passes; `cargo fuzz run TARGET` works on the same layout for those who have it),
# then runs each target from its committed seeds (fuzz/seeds/TARGET, made by
# fuzz/make_seeds.py) plus the repository's own fixture files of that format. New inputs
# go to fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET (both git-ignored). A crash is
# a panic, an abort, a leak-free out-of-memory (-rss_limit_mb), or one allocation larger
# than the input justifies (the guard in fuzz/src/lib.rs). Every crash becomes a regression
# test in tests/tests/fuzz_regressions.rs. The summary table is printed last; the exit
# status is 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-120}
shift || true
all_targets=(gguf safetensors npy corpus queries qrels trec_run registry retriever_spec)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
sanitizer=${FUZZ_SANITIZER:-address}
jobs=${FUZZ_JOBS:-1}
triple=x86_64-unknown-linux-gnu

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi

flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters"
flags+=" -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares"
flags+=" --cfg fuzzing -Cforce-frame-pointers"
if [ "$sanitizer" = address ]; then flags+=" -Zsanitizer=address"; fi

echo "== building fuzz targets (nightly, sanitizer: $sanitizer)" >&2
(cd fuzz && RUSTFLAGS="$flags" cargo +nightly build --release --target "$triple" --bins)
bin_dir=$root/fuzz/target/$triple/release

# The repository's own files of each format, used as extra seeds.
fixtures_for() {
  case $1 in
    gguf) git ls-files '*.gguf' ;;
    safetensors) git ls-files '*.safetensors' ;;
    trec_run) git ls-files '*.trec' ;;
    registry) echo datasets.toml ;;
    *) ;;
  esac
}

# -jobs makes libFuzzer fork workers that log to fuzz-N.log in the current folder.
parallel=()
if [ "$jobs" -gt 1 ]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi

summary=()
failed=0
for target in "${targets[@]}"; do
  corpus=$root/fuzz/corpus/$target
  artifacts=$root/fuzz/artifacts/$target
  extra=$(mktemp -d)
  mkdir -p "$corpus" "$artifacts"
  for f in $(fixtures_for "$target"); do cp "$f" "$extra/$(echo "$f" | tr / _)"; done
  max_len=65536
  case $target in gguf | safetensors) max_len=1048576 ;; esac
  log=$root/fuzz/artifacts/$target.log
  echo "== $target: $seconds s" >&2
  set +e
  "$bin_dir/$target" "$corpus" "$root/fuzz/seeds/$target" "$extra" \
    -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 \
    -timeout=10 -artifact_prefix="$artifacts/" -print_final_stats=1 \
    "${parallel[@]}" >"$log" 2>&1
  rc=$?
  set -e
  if [ "$jobs" -gt 1 ]; then cat fuzz-*.log >>"$log" && rm -f fuzz-*.log; fi
  rm -rf "$extra"
  runs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  crashes=$(find "$artifacts" -type f | wc -l)
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    echo "!! $target: exit $rc, $crashes crash file(s) in $artifacts; log: $log" >&2
    tail -30 "$log" >&2
  fi
  summary+=("$(printf '%-15s %8s s %12s runs %8s edges %4s crashes' "$target" "$seconds" "$runs" "${cov:-?}" "$crashes")")
done
echo
printf 'target          %10s %17s %14s %12s\n' time executions coverage crashes
printf '%s\n' "${summary[@]}"
exit $failed
