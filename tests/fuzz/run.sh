#!/bin/sh
# Runs every fuzz target on its seed corpus for SECONDS each (default 30).
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
# Builds first (build.sh; FUZZ_OUT picks the build directory). New inputs
# go to a temporary copy of each corpus, findings to a temporary directory;
# exits 1 on any finding after printing the target and the reproducer.
# FUZZ_JOBS=N runs N targets at a time (default 1).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-30}
[ $# -gt 0 ] && shift
out=$("$here/build.sh" ${FUZZ_OUT:+"$FUZZ_OUT"})
targets=${*:-$(cd "$here" && ls fuzz_*.c | sed 's/\.c$//')}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailsnare-fuzz.XXXXXX")
jobs=${FUZZ_JOBS:-1}

run_one() {
	t=$1
	mkdir -p "$tmp/$t/corpus" "$tmp/$t/crashes"
	cp "$here/corpus/$t/"* "$tmp/$t/corpus/" 2>/dev/null || true
	# -timeout=5: a linear parser never needs 5 s for one input; a
	# blowup (the LIST matcher's old backtracking) is a finding.
	if "$out/$t" -max_total_time="$secs" -timeout=5 -rss_limit_mb=1024 \
	    -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix="$tmp/$t/crashes/" "$tmp/$t/corpus" >"$tmp/$t/log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t/log")
		rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$tmp/$t/log")
		echo "ok   $t: $execs runs, $rate/s"
	else
		echo "FAIL $t: see $tmp/$t/log"
		for f in "$tmp/$t/crashes/"*; do
			[ -e "$f" ] && echo "     reproduce: $out/$t $f"
		done
		grep -m3 -E "ERROR|runtime error|invariant failed" "$tmp/$t/log" | sed 's/^/     /'
		return 1
	fi
}

status=0
n=0
pids=
for t in $targets; do
	run_one "$t" >"$tmp/$t.result" 2>&1 &
	pids="$pids $!"
	n=$((n + 1))
	if [ "$n" -ge "$jobs" ]; then
		for p in $pids; do wait "$p" || status=1; done
		pids=
		n=0
	fi
done
for p in $pids; do wait "$p" || status=1; done
for t in $targets; do cat "$tmp/$t.result"; done
if [ "$status" -eq 0 ]; then
	rm -rf "$tmp"
else
	echo "findings kept in $tmp" >&2
fi
exit "$status"
