#!/usr/bin/env bash
# Runs quarry's CUDA integration tests on the GPU machine, which has no Rust toolchain. Build
# each test binary on the build machine, strip and pack it under .gpu/tests/ (git-ignored):
#
#   cargo test --release -p quarry-encoder --features cuda --test cuda_fused --no-run
#   # the path cargo prints: target/release/deps/cuda_fused-HASH
#   strip -o /tmp/cuda_fused target/release/deps/cuda_fused-HASH
#   mkdir -p .gpu/tests && xz -6 -c /tmp/cuda_fused > .gpu/tests/cuda_fused.xz
#
# then carry .gpu/tests/*.xz and run this from the repository root. Exit status 1 if any
# test binary fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/gpu/cublas_env.sh
export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-minimal}
status=0
for packed in .gpu/tests/*.xz; do
  name=$(basename "$packed" .xz)
  xz -dc "$packed" > "/tmp/$name" && chmod +x "/tmp/$name"
  echo "== $name ($(date -u +%T))"
  timeout "${TEST_TIMEOUT:-300}" "/tmp/$name" --nocapture --test-threads 1 || status=1
done
exit $status
