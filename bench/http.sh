#!/usr/bin/env bash
# bench/http.sh: the HTTP API's performance (issue 12's "Performance").
#
#  1. A store of HTTP_N (100,000) messages of mixed sizes, filled through
#     the store as SMTP stores (bench/search_query fill: 60% ~1.5 KB, 35%
#     ~8 KB, 5% ~60 KB with an attachment), served by mailsnare; `wrk`
#     (one connection, HTTP_DURATION seconds each) times
#     GET /api/v1/messages?limit=50, /api/v1/search with subject:, to: and
#     a bare word, and /api/v1/message/{ID} of a 2 KB message delivered
#     over SMTP: p50/p99 and requests/s.
#  2. HTTP_SUBSCRIBERS (1,000) Server-Sent Events streams on /api/v1/events
#     and the time from each SMTP 250 to each stream's `new` event, messages
#     one at a time, 0.1 s apart: bench/sse_client (C, epoll, SO_TIMESTAMPNS:
#     the kernel's receive time of the 250 and of every event, which on
#     loopback is the server's write, apart from when the client read them)
#     and bench/http_drive.py sse (one Python selector loop, as before).
#  3. Server RSS: at start on an empty store, at start on the full one,
#     after the HTTP runs, with every stream open, and the peak.
#  4. MailDev 3.0.0 (npm, run with node from build/maildev) beside a fresh
#     mailsnare, both filled over SMTP with the same HTTP_MAILDEV_N (10,000)
#     messages of the same mix (bench/http_drive.py fill): ingest rate, the
#     newest 50 (MailDev 3's GET /api/email/summary?limit=50 and
#     /api/email?limit=50&sort=desc, which has whole messages), every message
#     (GET /api/email; mailsnare's largest page, 5,000),
#     and one 2 KB message (GET /api/email/:id), with the RSS of both.
#
#   bench/http.sh                          everything (10-20 minutes on 2 cores)
#   HTTP_N=20000 HTTP_SUBSCRIBERS=200 HTTP_MAILDEV_N=2000 HTTP_DURATION=3 bench/http.sh
#                                          a quick run at small sizes
#   HTTP_MAILDEV=0 bench/http.sh           without MailDev (no npm needed)
#   HTTP_SEARCH_ONLY=1 bench/http.sh       only the /api/v1/search rows of 1.
#   HTTP_SSE_ONLY=1 bench/http.sh          only part 2, on an empty store
#   MAILSNARE_BUILD=/path bench/http.sh    an existing build directory
#   BENCH_KEEP=1 bench/http.sh             keep the temporary directory
#
# Installs wrk (Debian) when missing, and MailDev with npm into
# build/maildev. Only 127.0.0.1 is used. Prints Markdown for README; a
# benchmark is never a pass/fail test, but the script exits 1 when a run
# had errors (non-2xx replies, socket errors, events that did not arrive).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MAILSNARE_BUILD:-$top/build/bench}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailsnare-http.XXXXXX")
bench_name=http.sh
. "$top/bench/lib.sh"
n=${HTTP_N:-100000}
subs=${HTTP_SUBSCRIBERS:-1000}
sse_msgs=${HTTP_SSE_MESSAGES:-50}
dur=${HTTP_DURATION:-10}
maildev_n=${HTTP_MAILDEV_N:-10000}
maildev_dir=$top/build/maildev
python=/usr/bin/python3
drive=$top/bench/http_drive.py
failures=0
fail() { say "FAIL: $*"; failures=$((failures + 1)); }

# ---- set-up ---------------------------------------------------------------

command -v wrk >/dev/null 2>&1 || {
	say "installing wrk"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk </dev/null >&2 ||
		{ as_root apt-get update -q </dev/null >&2 &&
		  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk </dev/null >&2; }
}
if [ ! -f "$build/Makefile" ]; then
	[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
	mkdir -p "$build"
	(cd "$build" && "$top/configure" -q)
fi
say "building in $build"
make -C "$build" -j"$(nproc)" src/mailsnare bench/search_query bench/sse_client >/dev/null
mailsnare=$build/src/mailsnare

# Every stream is a descriptor in the server and in the client.
ulimit -n $((subs * 2 + 1000)) 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- helpers --------------------------------------------------------------

proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

server_pid=""
smtp_port=""
http_port=""
# mailsnare_start DIR DB: the server on DB with SMTP and HTTP only.
mailsnare_start() {
	mkdir -p "$1"
	(cd "$1" && exec "$mailsnare" serve --db "$2" --smtp 127.0.0.1:0 --smtps off \
		--pop3 off --pop3s off --imap off --imaps off --http 127.0.0.1:0 \
		--ready-file "$1/ready" --log-level warn --max-clients $((subs + 1000)) \
		>"$1/log" 2>&1) &
	server_pid=$!
	pids+=("$server_pid")
	for _ in $(seq 300); do
		[ -s "$1/ready" ] && grep -q '^http ' "$1/ready" && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	smtp_port=$(sed -n 's/^smtp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1/ready" 2>/dev/null || true)
	http_port=$(sed -n 's/^http 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1/ready" 2>/dev/null || true)
	if [ -z "$smtp_port" ] || [ -z "$http_port" ]; then
		cat "$1/log" >&2
		say "mailsnare did not start"
		exit 1
	fi
}
mailsnare_stop() {
	local rc=0
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$server_pid" || rc=$?
	forget_pid "$server_pid"
	[ "$rc" -eq 0 ] || fail "mailsnare exited with status $rc on SIGTERM"
}

# A free loopback port (nothing listens there now).
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		[ -n "$(ss -Htln "sport = :$p")" ] || { echo "$p"; return 0; }
	done
	say "no free port"
	exit 1
}

# wrk's duration ("267.00us", "1.23ms", "1.02s", "1.5m") in ms.
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) printf "%.2f", v / 1000
		else if (v ~ /ms$/) printf "%.2f", v + 0
		else if (v ~ /m$/) printf "%.0f", v * 60000
		else if (v ~ /s$/) printf "%.0f", v * 1000
		else printf "?" }'
}

# CPU seconds (user + system) of a process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# wrk_row LABEL URL [PID]: one connection for $dur seconds; a row
# | label | p50 ms | p99 ms | requests/s | server CPU ms per request | bytes per reply |
# (the CPU of PID, mailsnare by default: what a loaded machine inflates less).
wrk_row() {
	local out p50 p99 rps reqs bytes err pid=${3:-$server_pid} c0 c1 cpu
	c0=$(cpu_ticks "$pid")
	out=$(timeout $((dur + 120)) wrk -t1 -c1 -d"${dur}s" --timeout 30s --latency "$2" 2>&1) ||
		{ fail "wrk $2: $out"; echo "| $1 | ? | ? | ? | ? | |"; return; }
	c1=$(cpu_ticks "$pid")
	p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
	p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
	rps=$(awk '$1 == "Requests/sec:" { printf "%.0f", $2 }' <<<"$out")
	reqs=$(sed -n 's/^ *\([0-9]*\) requests in .*, \([0-9.]*[KMG]*B\) read.*/\1 \2/p' <<<"$out")
	bytes=$(awk -v r="${reqs% *}" -v b="${reqs#* }" 'BEGIN {
		m = 1; if (b ~ /KB$/) m = 1024; if (b ~ /MB$/) m = 1048576; if (b ~ /GB$/) m = 1073741824
		if (r > 0) printf "%.0f", (b + 0) * m / r }')
	cpu=$(awk -v t=$((c1 - c0)) -v r="${reqs% *}" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { if (r > 0) printf "%.2f", t * 1000 / hz / r; else printf "?" }')
	err=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
	[ -z "$err" ] || fail "$1: $err"
	echo "| $1 | $(to_ms "$p50") | $(to_ms "$p99") | $rps | $cpu | ${bytes:-?}${err:+ ($err)} |"
}

# ack_row LABEL PATH: the same GET from a client that delays its ACKs (as
# wrk, curl and most do) and from one that acknowledges at once.
ack_row() {
	local d q
	d=$("$python" "$drive" latency --http "127.0.0.1:$http_port" --path "$2" --count 200) ||
		{ fail "latency $2"; d=""; }
	q=$("$python" "$drive" latency --http "127.0.0.1:$http_port" --path "$2" --count 200 --quickack) ||
		{ fail "latency $2 (quick ACK)"; q=""; }
	echo "| $1 | $(sed -n 's/.*p50_ms=\([^ ]*\).*/\1/p' <<<"$d") | $(sed -n 's/.*p50_ms=\([^ ]*\).*/\1/p' <<<"$q") |"
}

urlq() { "$python" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

echo "### HTTP API ($(date -u +%Y-%m-%d), load average at start $(cut -d' ' -f1-3 /proc/loadavg))"
echo

sse_only=${HTTP_SSE_ONLY:-0}
if [ "$sse_only" != 0 ]; then
	mailsnare_start "$tmp/sse" "$tmp/sse/m.db"
	rss_empty=$(proc_kb "$server_pid" VmRSS)
	rss_full=$rss_empty
	rss_after=$rss_empty
	n=0
else

# ---- 1. requests on a full store -------------------------------------------

mailsnare_start "$tmp/empty" "$tmp/empty/m.db"
sleep 0.5
rss_empty=$(proc_kb "$server_pid" VmRSS)
mailsnare_stop

say "filling a store with $n messages"
/usr/bin/time -f "%e s" -o "$tmp/fill.time" "$build/bench/search_query" fill "$tmp/h.db" "$n"
mailsnare_start "$tmp/full" "$tmp/h.db"
sleep 0.5
rss_full=$(proc_kb "$server_pid" VmRSS)
id2k=$("$python" "$drive" send --smtp "127.0.0.1:$smtp_port" --size 2048 --subject "bench 2k")
base=http://127.0.0.1:$http_port

echo "$n stored messages ($(du -m "$tmp/h.db" | cut -f1) MB db, filled in $(cat "$tmp/fill.time")),"
echo "one \`wrk\` connection for $dur s per row:"
echo
echo "| request | p50 ms | p99 ms | requests/s | server CPU ms/request | bytes per reply |"
echo "|---|---:|---:|---:|---:|---:|"
search_only=${HTTP_SEARCH_ONLY:-0}
if [ "$search_only" = 0 ]; then
	wrk_row 'GET /api/v1/messages?limit=50' "$base/api/v1/messages?limit=50"
	wrk_row 'GET /api/v1/messages?start=5000&limit=50' "$base/api/v1/messages?start=5000&limit=50"
fi
for q in "subject:report" 'subject:"order 99"' "to:user42@example.test" "zanzibar4999" "quarterly" \
	'"numbers look"'; do
	wrk_row "GET /api/v1/search?query=\`$q\`" "$base/api/v1/search?query=$(urlq "$q")&limit=50"
done
if [ "$search_only" != 0 ]; then
	wrk_row 'GET /api/v1/search?query=`quarterly`&start=5000' \
		"$base/api/v1/search?query=quarterly&start=5000&limit=50"
	mailsnare_stop
	echo
	echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	[ "$failures" -eq 0 ] || { say "$failures failures"; exit 1; }
	exit 0
fi
wrk_row "GET /api/v1/message/{ID} (2 KB)" "$base/api/v1/message/$id2k"
wrk_row "GET /api/v1/message/{ID}/raw (2 KB)" "$base/api/v1/message/$id2k/raw"
echo
echo "The same requests from a Python client on one keep-alive connection, 200 times"
echo "one after another, p50 ms: acknowledging as clients do (delayed ACK) and at once"
echo "(TCP_QUICKACK re-armed before every read; the difference is a reply written in"
echo "pieces waiting for the client's ACK):"
echo
echo "| request | delayed ACK | quick ACK |"
echo "|---|---:|---:|"
ack_row 'GET /api/v1/messages?limit=50' "/api/v1/messages?limit=50"
ack_row 'GET /api/v1/search?query=`zanzibar4999`' "/api/v1/search?query=zanzibar4999&limit=50"
ack_row "GET /api/v1/message/{ID} (2 KB)" "/api/v1/message/$id2k"
echo
rss_after=$(proc_kb "$server_pid" VmRSS)
fi

# ---- 2. Server-Sent Events subscribers ---------------------------------------

say "$subs SSE subscribers, $sse_msgs messages (C client)"
csse=$(timeout 600 "$build/bench/sse_client" "$http_port" "$smtp_port" "$subs" "$sse_msgs" 100) ||
	{ fail "sse_client: $csse"; }
cfield() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$csse"; }
[ "$(cfield missing)" = 0 ] || fail "SSE (C client): $(cfield missing) events did not arrive"
echo "$subs \`/api/v1/events\` streams, $sse_msgs messages over SMTP 0.1 s apart"
echo "($(cfield events) events; load average $(cut -d' ' -f1-3 /proc/loadavg)), bench/sse_client:"
echo "the server's side is each event's kernel receive time minus its 250's (on"
echo "loopback, when the server wrote them); the client's, when it read them:"
echo
echo "| | p50 ms | p99 ms | max ms |"
echo "|---|---:|---:|---:|"
echo "| server: 250 to the stream's event | $(cfield server_p50_ms) | $(cfield server_p99_ms) | $(cfield server_max_ms) |"
echo "| server: 250 to the first stream's, per message | $(cfield first_p50_ms) | | $(cfield first_max_ms) |"
echo "| server: 250 to the last stream's, per message | $(cfield fanout_p50_ms) | | $(cfield fanout_max_ms) |"
echo "| client: 250 read to event read | $(cfield client_p50_ms) | $(cfield client_p99_ms) | $(cfield client_max_ms) |"
echo

say "$subs SSE subscribers, $sse_msgs messages (Python client)"
sse=$(timeout 600 "$python" "$drive" sse --http "127.0.0.1:$http_port" --smtp "127.0.0.1:$smtp_port" \
	--subscribers "$subs" --messages "$sse_msgs" --gap 0.1 --pid "$server_pid") ||
	{ fail "sse driver: $sse"; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$sse"; }
[ "$(field missing)" = 0 ] || fail "SSE: $(field missing) events did not arrive"
rss_subs=$(field rss_kb)
echo "The same with bench/http_drive.py sse (one Python selector loop; the 250 read by"
echo "a second process), time from each 250 to each stream's \`new\` event"
echo "($(field events) events; load average $(cut -d' ' -f1-3 /proc/loadavg)):"
echo
echo "| p50 ms | p99 ms | max ms | missing |"
echo "|---:|---:|---:|---:|"
echo "| $(field p50_ms) | $(field p99_ms) | $(field max_ms) | $(field missing) |"
echo
rss_end=$(proc_kb "$server_pid" VmRSS)
rss_peak=$(proc_kb "$server_pid" VmHWM)
mailsnare_stop

if [ "$sse_only" != 0 ]; then
	echo "Server RSS: $(mb "$rss_empty") MB at start on an empty store, $(mb "${rss_subs:-0}") MB with"
	echo "$subs streams open, $(mb "$rss_end") MB after them; peak $(mb "$rss_peak") MB."
else
echo "Server RSS: $(mb "$rss_empty") MB at start on an empty store, $(mb "$rss_full") MB at start"
echo "on $n messages, $(mb "$rss_after") MB after the requests above, $(mb "${rss_subs:-0}") MB with"
echo "$subs streams open, $(mb "$rss_end") MB after them; peak $(mb "$rss_peak") MB."
fi
echo

# wait_idle PID: until the process used under 2% of a core over a second
# (at most 120 s).
wait_idle() {
	local c0 c1
	for _ in $(seq 120); do
		c0=$(cpu_ticks "$1")
		sleep 1
		c1=$(cpu_ticks "$1")
		[ $((c1 - c0)) -le 2 ] && return 0
	done
	say "pid $1 still busy after 120 s"
}

# ---- 3. beside MailDev ------------------------------------------------------

if [ "${HTTP_MAILDEV:-1}" != 0 ] && [ "$sse_only" = 0 ]; then
	if [ ! -f "$maildev_dir/node_modules/maildev/package.json" ]; then
		say "installing maildev@3.0.0 into $maildev_dir"
		mkdir -p "$maildev_dir"
		npm install --no-save --no-audit --no-fund --no-package-lock --loglevel=error \
			--prefix "$maildev_dir" maildev@3.0.0 >&2
	fi
	md_smtp=$(free_port)
	md_web=$(free_port)
	mkdir -p "$tmp/maildev-mail"
	node "$maildev_dir/node_modules/maildev/dist/bin/maildev.js" --ip 127.0.0.1 \
		--web-ip 127.0.0.1 --smtp "$md_smtp" --web "$md_web" \
		--mail-directory "$tmp/maildev-mail" --silent >"$tmp/maildev.log" 2>&1 &
	md_pid=$!
	pids+=("$md_pid")
	for _ in $(seq 300); do
		[ -n "$(ss -Htln "sport = :$md_web")" ] && [ -n "$(ss -Htln "sport = :$md_smtp")" ] && break
		kill -0 "$md_pid" 2>/dev/null || { cat "$tmp/maildev.log" >&2; say "maildev did not start"; exit 1; }
		sleep 0.1
	done
	md_rss0=$(proc_kb "$md_pid" VmRSS)
	say "filling MailDev with $maildev_n messages over SMTP"
	md_fill=$(timeout 3600 "$python" "$drive" fill --smtp "127.0.0.1:$md_smtp" --count "$maildev_n")
	"$python" "$drive" send --smtp "127.0.0.1:$md_smtp" --size 2048 --subject "bench 2k" >/dev/null
	md_id=$("$python" "$drive" maildev-id --web "127.0.0.1:$md_web" --subject "bench 2k")

	mailsnare_start "$tmp/cmp" "$tmp/cmp/m.db"
	ms_rss0=$(proc_kb "$server_pid" VmRSS)
	say "filling mailsnare with $maildev_n messages over SMTP"
	ms_fill=$(timeout 3600 "$python" "$drive" fill --smtp "127.0.0.1:$smtp_port" --count "$maildev_n")
	ms_id=$("$python" "$drive" send --smtp "127.0.0.1:$smtp_port" --size 2048 --subject "bench 2k")
	# Both servers may still be busy after their last 250 (mailsnare
	# indexes the burst for search once it is quiet): time the requests
	# once each has been idle for a second, not its catch-up.
	wait_idle "$md_pid"
	wait_idle "$server_pid"

	echo "Beside MailDev 3.0.0 (node $(node --version)), each filled over SMTP with the same"
	echo "$maildev_n messages (4 connections, bench/http_drive.py):"
	echo
	echo "| server | request | p50 ms | p99 ms | requests/s | server CPU ms/request | bytes per reply |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	md=http://127.0.0.1:$md_web/api
	wrk_row "MailDev | GET /api/email/summary?limit=50" "$md/email/summary?limit=50" "$md_pid"
	wrk_row "MailDev | GET /api/email?limit=50&sort=desc" "$md/email?limit=50&sort=desc" "$md_pid"
	wrk_row "MailDev | GET /api/email (all $((maildev_n + 1)))" "$md/email" "$md_pid"
	wrk_row "MailDev | GET /api/email/:id (2 KB)" "$md/email/$md_id" "$md_pid"
	wrk_row "mailsnare | GET /api/v1/messages?limit=50" "http://127.0.0.1:$http_port/api/v1/messages?limit=50"
	# A page is at most 5,000 summaries (LIST_LIMIT_MAX).
	all=$((maildev_n + 1 < 5000 ? maildev_n + 1 : 5000))
	wrk_row "mailsnare | GET /api/v1/messages?limit=$all (the largest page)" \
		"http://127.0.0.1:$http_port/api/v1/messages?limit=$all"
	wrk_row "mailsnare | GET /api/v1/message/{ID} (2 KB)" "http://127.0.0.1:$http_port/api/v1/message/$ms_id"
	echo
	echo "| server | SMTP fill | RSS empty MB | RSS full, after the requests MB |"
	echo "|---|---|---:|---:|"
	echo "| MailDev | $(sed 's/.*msgs_per_s=\([0-9]*\).*/\1/' <<<"$md_fill") msgs/s | $(mb "$md_rss0") | $(mb "$(proc_kb "$md_pid" VmRSS)") |"
	echo "| mailsnare | $(sed 's/.*msgs_per_s=\([0-9]*\).*/\1/' <<<"$ms_fill") msgs/s | $(mb "$ms_rss0") | $(mb "$(proc_kb "$server_pid" VmRSS)") |"
	echo
	mailsnare_stop
	kill "$md_pid" 2>/dev/null || true
	wait "$md_pid" 2>/dev/null || true
	forget_pid "$md_pid"
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$failures" -eq 0 ] || { say "$failures failures"; exit 1; }
