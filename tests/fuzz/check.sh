#!/bin/sh
# make-check-sized fuzzing: every target on its seed corpus and beyond
# for FUZZ_SECONDS (default 10, issue 11 asks CI for 10-20 s; four at a
# time, so about a minute in all on two cores). Targets are built into FUZZ_OUT (default ./fuzz-targets of
# the directory it runs in: the build directory under make check).
# Exits 77 (SKIP) when clang is missing, 1 on any finding.
here=$(cd "$(dirname "$0")" && pwd)
command -v "${CC:-clang}" >/dev/null 2>&1 || { echo "clang not found: SKIP"; exit 77; }
FUZZ_OUT=${FUZZ_OUT:-$(pwd)/fuzz-targets} FUZZ_JOBS=${FUZZ_JOBS:-4} \
    exec "$here/run.sh" "${FUZZ_SECONDS:-10}"
