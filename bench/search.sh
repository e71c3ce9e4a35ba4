#!/usr/bin/env bash
# bench/search.sh: what search costs (issue 12's "Performance").
#
#  1. Query time with 100,000 stored messages of mixed sizes (60% ~1.5 KB,
#     35% ~8 KB, 5% ~60 KB with an attachment; bench/search_query.c fills
#     the store through store_message_add, as SMTP stores): the API's first
#     page (50 rows, newest first) and its total, p50/p95 wall and p50 CPU.
#  2. SMTP ingest (bench/smtpload) into a server of this build and of the
#     same tree built with -DMAILSNARE_NO_SEARCH_INDEX (store_message_add
#     then skips the index), runs alternated, messages/s and CPU seconds of
#     the server per 10,000 messages: until the last 250, and until the
#     server is idle again (it indexes new mail after the burst).
#
#   bench/search.sh                    everything (a few minutes on 2 cores)
#   SEARCH_N=20000 bench/search.sh     a smaller store
#   MAILSNARE_BUILD=/path bench/search.sh   an existing build directory
#   BENCH_KEEP=1 bench/search.sh       keep the temporary directory
#   SEARCH_PARTS=4 bench/search.sh     the split rows in 4 parts (default 2)
#
# Only 127.0.0.1 is used. Prints Markdown for README.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MAILSNARE_BUILD:-$top/build/bench}
noindex=$top/build/bench-noindex
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailsnare-search.XXXXXX")
bench_name=search.sh
. "$top/bench/lib.sh"
n=${SEARCH_N:-100000}
ingest=${SEARCH_INGEST:-20000}

build_tree() {   # DIR [CPPFLAGS]
	if [ ! -f "$1/Makefile" ]; then
		[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
		mkdir -p "$1"
		(cd "$1" && "$top/configure" -q ${2:+CPPFLAGS="$2"})
	fi
	say "building in $1"
	make -C "$1" -j"$(nproc)" src/mailsnare bench/smtpload bench/search_query >/dev/null
}
build_tree "$build"
build_tree "$noindex" -DMAILSNARE_NO_SEARCH_INDEX

# ---- 1. queries -------------------------------------------------------------

say "filling a store with $n messages"
/usr/bin/time -f "%e s wall, %U s user, %S s sys" -o "$tmp/fill.time" \
	"$build/bench/search_query" fill "$tmp/q.db" "$n"
echo "### Search, $n stored messages ($(du -m "$tmp/q.db" | cut -f1) MB db; filled in $(cat "$tmp/fill.time"))"
echo
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$build/bench/search_query" time "$tmp/q.db" \
	"subject:report" 'subject:"order 99"' "to:user42@" "from:shop7@" \
	"addressed:user42@" "zanzibar4999" "zanzibar17" "quarterly" \
	'"numbers look"' "is:unread" "has:attachment larger:50kb" ""
echo
# The same split by body id as the server's search pool (search-threads):
# SEARCH_PARTS parts, each on a thread and reader connection of its own.
echo "split into ${SEARCH_PARTS:-2} parts (the search pool's way):"
echo
"$build/bench/search_query" split "$tmp/q.db" "${SEARCH_PARTS:-2}" \
	"subject:report" 'subject:"order 99"' "to:user42@" "from:shop7@" \
	"addressed:user42@" "zanzibar4999" "zanzibar17" "quarterly" \
	'"numbers look"' "is:unread" "has:attachment larger:50kb"
echo

# ---- 2. ingest with and without the index -----------------------------------

server_pid=""
server_port=""
start_server() {   # BINARY DIR
	mkdir -p "$2"
	(cd "$2" && exec "$1" serve --db "$2/m.db" --smtp 127.0.0.1:0 --smtps off \
		--pop3 off --pop3s off --imap off --imaps off --http off \
		--ready-file "$2/ready" --log-level warn >"$2/log" 2>&1) &
	server_pid=$!
	pids+=("$server_pid")
	for _ in $(seq 100); do
		[ -s "$2/ready" ] && break
		sleep 0.1
	done
	server_port=$(sed -n 's/^smtp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$2/ready")
	[ -n "$server_port" ] || { cat "$2/log" >&2; say "mailsnare did not start"; exit 1; }
}
stop_server() {
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$server_pid" || true
	forget_pid "$server_pid"
}
# CPU seconds (user + system) of a process so far.
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat"; }

echo "### SMTP ingest with and without the search index ($ingest messages per run, 8 connections)"
echo
echo "| build | size | run | messages/s | server CPU s per 10k, to the last 250 | ... and until the index caught up |"
echo "|---|---|---|---|---|---|"
for size in 2048 16384; do
	for run in 1 2; do
		for variant in index noindex; do
			bin=$build/src/mailsnare
			[ "$variant" = noindex ] && bin=$noindex/src/mailsnare
			dir=$tmp/ingest-$variant-$size-$run
			start_server "$bin" "$dir"
			out=$(timeout 300 "$build/bench/smtpload" --host 127.0.0.1 --port "$server_port" \
				--connections 8 --messages "$ingest" --size "$size" --quiet)
			cpu=$(cpu_s "$server_pid")
			# The server indexes after the burst, once it has been quiet
			# for half a second (serve.c): its CPU until it is idle again
			# (under 0.02 s of CPU in each of two seconds running).
			total=$cpu idle=0
			for _ in $(seq 600); do
				sleep 1
				now=$(cpu_s "$server_pid")
				if awk -v a="$now" -v b="$total" 'BEGIN { exit !(a - b < 0.02) }'; then
					idle=$((idle + 1))
					[ "$idle" -ge 2 ] && break
				else
					idle=0
				fi
				total=$now
			done
			stop_server
			rate=$(sed -n 's/.*\bmsgs_per_s=\([^ ]*\).*/\1/p' <<<"$out")
			per10k() { awk -v c="$1" -v n="$ingest" 'BEGIN { printf "%.2f", c * 10000 / n }'; }
			echo "| $variant | $size | $run | ${rate:-?} | $(per10k "$cpu") | $(per10k "$total") |"
			rm -rf "$dir"
		done
	done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
