#!/usr/bin/env bash
# The main job: install what is missing, build, run `dsv4lab demo` on the embedded
# default trace and write the report folder.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_deps
configure_and_build
OUT_DIR=${1:-$BUILD_DIR/demo}
"$BUILD_DIR/dsv4lab" demo --out "$OUT_DIR"
