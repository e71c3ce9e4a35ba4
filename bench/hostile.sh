#!/bin/sh
# bench/hostile.sh: hostile and heavy clients (issue 11): each row of the
# issue's table and the long IMAP commands, with a second client pinging;
# prints the worst stall and the RSS growth per row. Builds in
# build/bench (or MAILSNARE_BUILD), without sanitizers.
#   bench/hostile.sh [--quick] [ROW ...]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${MAILSNARE_BUILD:-$top/build/bench}
if [ ! -f "$build/Makefile" ]; then
	[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
	mkdir -p "$build"
	(cd "$build" && "$top/configure" -q)
fi
make -C "$build" -j"$(nproc)" src/mailsnare >/dev/null
ulimit -n 4096 2>/dev/null || true
exec /usr/bin/python3 "$top/bench/hostile.py" "$build/src/mailsnare" "$@"
