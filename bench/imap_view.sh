#!/bin/sh
# bench/imap_view.sh: IMAP view benchmark (issue 9 §3): SMTP ingest into a
# 100,000-message INBOX with 0 and with 20 IDLE sessions selected on it,
# and SELECT of that mailbox. Builds in build/bench (or MAILSNARE_BUILD).
#   bench/imap_view.sh [--fill N] [--measure N] [--idlers N] [--selects N]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${MAILSNARE_BUILD:-$top/build/bench}
if [ ! -f "$build/Makefile" ]; then
	[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
	mkdir -p "$build"
	(cd "$build" && "$top/configure" -q)
fi
make -C "$build" -j"$(nproc)" src/mailsnare bench/smtpload >/dev/null
ulimit -n 4096 2>/dev/null || true
exec /usr/bin/python3 "$top/bench/imap_view.py" "$build/src/mailsnare" "$build/bench/smtpload" "$@"
