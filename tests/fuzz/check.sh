#!/bin/sh
# make-check-sized fuzzing: every target on its seed corpus for a few
# seconds (FUZZ_SECONDS, default 2; all together well under a minute on
# two cores). Targets are built into FUZZ_OUT (default ./fuzz-targets of
# the directory it runs in: the build directory under make check).
# Exits 77 (SKIP) when clang is missing, 1 on any finding.
here=$(cd "$(dirname "$0")" && pwd)
command -v "${CC:-clang}" >/dev/null 2>&1 || { echo "clang not found: SKIP"; exit 77; }
FUZZ_OUT=${FUZZ_OUT:-$(pwd)/fuzz-targets} FUZZ_JOBS=${FUZZ_JOBS:-4} \
    exec "$here/run.sh" "${FUZZ_SECONDS:-2}"
