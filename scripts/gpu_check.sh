#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build with CUDA, run the `gpu` tests, compute-sanitizer
# (memcheck + racecheck) on every gpu test with one seed, and the benchmarks with their
# PyTorch peers. Logs and JSON go to OUTDIR (default build-cuda/gpu-check).
#
#   scripts/gpu_check.sh [--skip-build] [--only tests|sanitize|bench] [OUTDIR]
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${DSV4LAB_BUILD_DIR:-$ROOT/build-cuda}
skip_build=0; only=all
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-build) skip_build=1 ;;
    --only) only=$2; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) break ;;
  esac
  shift
done
OUT=${1:-$BUILD/gpu-check}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
PY=$(command -v python3)
status=0

if [ $skip_build = 0 ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSV4LAB_CUDA=ON >"$OUT/configure.log" 2>&1 \
    || { tail -30 "$OUT/configure.log"; exit 2; }
  cmake --build "$BUILD" -j "$(nproc)" >"$OUT/build.log" 2>&1 || { grep -E -A5 'error|FAILED' "$OUT/build.log" | head -60; exit 2; }
fi

if [ $only = all ] || [ $only = tests ]; then
  (cd "$BUILD" && ctest -L gpu --output-on-failure) 2>&1 | tee "$OUT/gpu_tests.log" | tail -25 || status=1
  grep -q "tests failed" "$OUT/gpu_tests.log" && status=1
fi

if [ $only = all ] || [ $only = sanitize ]; then
  : >"$OUT/sanitize.txt"
  for t in "$BUILD"/tests/gpu_test_*; do
    name=$(basename "$t")
    [ "$name" = gpu_test_numerics ] && continue  # 1.6e9 evaluations: too slow under the sanitizer
    # racecheck is slow on shared-memory-heavy kernels: a suite that has a `sanitizer_smoke`
    # case (a few launches covering every kernel path) runs only that one under racecheck.
    smoke=0
    "$t" --list_content 2>&1 | grep -q '^sanitizer_smoke' && smoke=1
    for tool in memcheck racecheck; do
      filter='!@long'
      [ $tool = racecheck ] && [ $smoke = 1 ] && filter=sanitizer_smoke
      DSV4LAB_SEEDS=1 DSV4LAB_SANITIZER=1 timeout "${DSV4LAB_SANITIZE_TIMEOUT:-300}" compute-sanitizer --tool $tool --error-exitcode 9 "$t" --run_test="$filter" \
        >"$OUT/sanitize_${name}_${tool}.log" 2>&1
      rc=$?
      log="$OUT/sanitize_${name}_${tool}.log"
      summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -1)
      # A suite that never touches the device (a CPU check of device math) passes with nothing
      # to instrument: compute-sanitizer exits 255 after the tests report no errors.
      if [ $rc = 255 ] && grep -q 'before first instrumented API call' "$log" && grep -q 'No errors detected' "$log"; then
        rc=0
        summary="no device work to check (the tests passed)"
      fi
      printf 'compute-sanitizer %-9s %-24s rc=%d  %s\n' $tool "$name" $rc "$summary" | tee -a "$OUT/sanitize.txt"
      [ $rc = 0 ] || status=1
    done
  done
fi

if [ $only = all ] || [ $only = bench ]; then
  for b in "$BUILD"/gpu/bench/bench_*; do
    [ -x "$b" ] || continue
    op=$(basename "$b"); op=${op#bench_}
    "$b" --json "$OUT/bench_$op.json" >"$OUT/bench_$op.log" 2>&1 || { echo "bench_$op failed"; tail -5 "$OUT/bench_$op.log"; status=1; continue; }
    if [ -f "$ROOT/gpu/bench/peer_$op.py" ]; then
      "$PY" "$ROOT/gpu/bench/peer_$op.py" --json "$OUT/peer_$op.json" >"$OUT/peer_$op.log" 2>&1 \
        && "$PY" "$ROOT/gpu/bench/compare.py" "$OUT/bench_$op.json" "$OUT/peer_$op.json" --out "$OUT/merged_$op.json" \
        | tee "$OUT/table_$op.txt" || { echo "peer_$op failed"; tail -5 "$OUT/peer_$op.log"; }
    else
      tail -20 "$OUT/bench_$op.log"
    fi
  done
fi
exit $status
