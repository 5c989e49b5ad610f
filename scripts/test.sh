#!/usr/bin/env bash
# The tests: install what is missing, build (CUDA kernels with nvcc and the HIP compile
# check with hipcc where those compilers exist), then run every `unit` test, plus the
# `gpu` tests when a GPU is present (without one they are reported as skipped).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_deps
configure_and_build
cd "$BUILD_DIR"
labels='unit|gpu'
if have_gpu; then log "GPU present: running unit and gpu tests"; else log "no GPU: gpu tests will be reported as skipped"; fi
ctest -L "$labels" --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" --timeout 1500
