#!/usr/bin/env bash
# bench/imap_stress.sh: the randomized multi-session IMAP stress driver
# (tests/integration/imap_model.py, issue 9) for as long as asked.
#
#   bench/imap_stress.sh [seconds] [sessions]     defaults 600 and 50
#   MAILSNARE_BIN=/path/to/mailsnare bench/imap_stress.sh 60 20
#   STRESS_SEED=123 bench/imap_stress.sh          replay a run's choices
#   HTTP=6 bench/imap_stress.sh 600 30            plus 6 HTTP API actors and two
#                                                 event streams (http_model.py)
#   STRESS_LAX=check,... HTTP=6 ...               count the named checks' failures
#                                                 instead of stopping (see LAX_CHECKS)
#
# Runs against MAILSNARE_BIN, else build/default/src/mailsnare (a build
# with --enable-sanitizers works too: the server's log is checked for
# AddressSanitizer and UBSan reports). Prints the seed, commands/s overall,
# commands per verb, the final model check, and the first error with the
# session's transcript; with HTTP=n also requests per kind and events per
# stream. Only 127.0.0.1 is used. Exits 1 when an error was
# found.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-600}
sessions=${2:-50}
http=${HTTP:-0}
bin=${MAILSNARE_BIN:-$top/build/default/src/mailsnare}

say() { printf 'imap_stress.sh: %s\n' "$*" >&2; }

if [ ! -x "$bin" ]; then
	say "no mailsnare binary at $bin (build it, or set MAILSNARE_BIN)"
	exit 2
fi
case $seconds$sessions$http in
*[!0-9]*) say "usage: [HTTP=n] bench/imap_stress.sh [seconds] [sessions]"; exit 2 ;;
esac

# Each session is one connection, each HTTP actor two (its companion IMAP
# view), plus SMTP, POP3, the event streams and the final checks.
ulimit -n 4096 2>/dev/null || true

say "mailsnare: $("$bin" version 2>/dev/null | head -n 1) ($bin)"
say "$sessions sessions and $http HTTP actors for $seconds s"
export MAILSNARE_BIN=$bin
export PYTHONPATH=$top/tests/integration
export PYTHONDONTWRITEBYTECODE=1
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
/usr/bin/python3 "$top/tests/integration/imap_model.py" --seconds "$seconds" \
	--sessions "$sessions" --http "$http" || rc=$?
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r); loopback only."
exit "$rc"
