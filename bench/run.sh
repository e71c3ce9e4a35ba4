#!/usr/bin/env bash
# bench/run.sh: mailsnare's ingest benchmark (issue 3).
#
# Builds the tree if needed (build/bench, or the build directory named by
# MAILSNARE_BUILD), installs what is missing (postfix for smtp-sink), runs
# the standard workloads against mailsnare and against Postfix's smtp-sink
# (the speed-of-light reference that stores nothing), checks after every
# mailsnare workload that the store holds exactly the acknowledged messages,
# measures the server's memory, and prints Markdown for README.
#
#   bench/run.sh                      everything (about 2-5 minutes on 2 cores)
#   MAILSNARE_BUILD=/path bench/run.sh   use an existing build directory
#   BENCH_KEEP=1 bench/run.sh         keep the temporary directory
#
# Only 127.0.0.1 is used. A benchmark is never a pass/fail test, but the
# script exits 1 when a load run reports errors or a store check fails.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MAILSNARE_BUILD:-$top/build/bench}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailsnare-bench.XXXXXX")
bench_name=run.sh
. "$top/bench/lib.sh"
failures=0
fail() { say "FAIL: $*"; failures=$((failures + 1)); }

# ---- set-up ---------------------------------------------------------------

install_missing() {
	local want=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
			want+=("$p")
	done
	[ ${#want[@]} -eq 0 ] && return 0
	say "installing ${want[*]}"
	if printf '%s\n' "${want[@]}" | grep -qx postfix; then
		# Only the smtp-sink binary is used: no mail system is configured.
		echo "postfix postfix/main_mailer_type select No configuration" |
			as_root debconf-set-selections
	fi
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" </dev/null >&2 ||
		{ as_root apt-get update -q </dev/null >&2 &&
		  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" </dev/null >&2; }
}

[ -x /usr/sbin/smtp-sink ] || install_missing postfix
if [ ! -x "$build/src/mailsnare" ] || [ ! -x "$build/bench/smtpload" ] || [ -f "$build/Makefile" ]; then
	if [ ! -f "$build/Makefile" ]; then
		install_missing build-essential autoconf automake libtool pkg-config \
			libevent-dev libssl-dev libsqlite3-dev libcriterion-dev
		[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
		mkdir -p "$build"
		(cd "$build" && "$top/configure" -q)
	fi
	say "building in $build"
	make -C "$build" -j"$(nproc)" src/mailsnare bench/smtpload >/dev/null
fi
mailsnare=$build/src/mailsnare
smtpload=$build/bench/smtpload

# 10,000 idle connections need more than 10,000 descriptors in the server
# and in the client; children inherit the limit.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- helpers --------------------------------------------------------------

# Value of key=... in a smtpload summary line.
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }

# Resident memory of a process in kB (VmRSS, VmHWM).
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

server_pid=""
server_dir=""
server_port=""

# Starts mailsnare on a fresh db in $tmp/$1; sets server_pid/dir/port.
server_start() {
	server_dir=$tmp/$1
	mkdir -p "$server_dir"
	(cd "$server_dir" && exec "$mailsnare" serve --db "$server_dir/m.db" \
		--smtp 127.0.0.1:0 --smtps off --pop3 off --pop3s off --imap off \
		--imaps off --http off --ready-file "$server_dir/ready" \
		--log-level warn --max-clients 20000 >"$server_dir/log" 2>&1) &
	server_pid=$!
	pids+=("$server_pid")

	for _ in $(seq 100); do
		[ -s "$server_dir/ready" ] && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	server_port=$(sed -n 's/^smtp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$server_dir/ready" 2>/dev/null || true)
	if [ -z "$server_port" ]; then
		cat "$server_dir/log" >&2
		say "mailsnare did not start"
		exit 1
	fi
}

# Stops the server with SIGTERM (it must exit 0) and removes its directory.
server_stop() {
	local rc=0
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$server_pid" || rc=$?
	forget_pid "$server_pid"
	[ "$rc" -eq 0 ] || fail "mailsnare exited with status $rc on SIGTERM"
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$server_dir"
}

sink_pid=""
sink_port=""

# Starts smtp-sink on a free loopback port.
sink_start() {
	local p user=()
	[ "$(id -u)" -eq 0 ] && user=(-u nobody)
	for _ in $(seq 20); do
		p=$((20000 + RANDOM % 40000))
		[ -z "$(ss -Htln "sport = :$p")" ] || continue
		/usr/sbin/smtp-sink "${user[@]}" 127.0.0.1:$p 2000 >"$tmp/sink.log" 2>&1 &
		sink_pid=$!
		for _ in $(seq 50); do
			kill -0 "$sink_pid" 2>/dev/null || break
			if [ -n "$(ss -Htln "sport = :$p")" ]; then
				pids+=("$sink_pid")
				sink_port=$p
				return 0
			fi
			sleep 0.05
		done
		kill "$sink_pid" 2>/dev/null || true
		wait "$sink_pid" 2>/dev/null || true
	done
	cat "$tmp/sink.log" >&2
	say "smtp-sink did not start"
	exit 1
}

sink_stop() {
	kill "$sink_pid" 2>/dev/null || true
	wait "$sink_pid" 2>/dev/null || true
	forget_pid "$sink_pid"
}

# load PORT ACKLOG ARGS...: one smtpload run, bounded in time; prints its
# summary line (runs in a command substitution: see load_ok).
load() {
	local port=$1 ack=$2 rc=0
	shift 2
	local ackopt=()
	[ -n "$ack" ] && ackopt=(--ack-log "$ack")
	timeout 180 "$smtpload" --host 127.0.0.1 --port "$port" --quiet \
		"${ackopt[@]}" "$@" || rc=$?
	[ "$rc" -eq 0 ] || say "smtpload $* (port $port) exited with status $rc"
}

# load_ok NAME SUMMARY MESSAGES: counts a failure unless every message was
# acknowledged without error.
load_ok() {
	if [ "$(field "$2" errors)" != 0 ] || [ "$(field "$2" messages)" != "$3" ]; then
		fail "$1: load run failed: ${2:-no summary}"
	fi
}

# check_store WORKLOAD SIZE TAG MESSAGES ACKLOG: the store holds exactly the
# messages acknowledged so far on this server (all ack logs in
# $server_dir/acked), and sampled messages are byte-identical to what was
# sent with one Received: header prepended. Prints "ok" or "FAIL" (it runs
# in a command substitution: the caller counts the failure).
check_store() {
	local name=$1 size=$2 tag=$3 messages=$4 ack=$5 db=$server_dir/m.db
	local ok=1 n line seq id hash stored hdrlen
	cat "$ack" >>"$server_dir/acked"
	n=$(wc -l <"$ack")
	if [ "$n" -ne "$messages" ]; then
		fail "$name: $n of $messages messages acknowledged"
		ok=0
	fi
	if awk '$2 == "-"' "$ack" | grep -q .; then
		fail "$name: a 250 reply without a queue id"
		ok=0
	fi
	awk '{ print $2 }' "$server_dir/acked" | sort >"$tmp/ids.acked"
	"$mailsnare" message list --db "$db" | tail -n +2 | cut -f1 | sort >"$tmp/ids.stored"
	if ! cmp -s "$tmp/ids.acked" "$tmp/ids.stored"; then
		fail "$name: store holds $(wc -l <"$tmp/ids.stored") messages, $(wc -l <"$tmp/ids.acked") acknowledged; differences:"
		comm -3 "$tmp/ids.acked" "$tmp/ids.stored" | head -5 >&2
		ok=0
	fi
	# Samples: the first, the middle and the last acknowledged message.
	for line in 1 $(((n + 1) / 2)) "$n"; do
		[ "$n" -gt 0 ] || break
		read -r seq id hash < <(sed -n "${line}p" "$ack")
		stored=$tmp/stored.eml
		"$mailsnare" message get "$id" --db "$db" >"$stored"
		hdrlen=$(($(stat -c %s "$stored") - size))
		if [ "$hdrlen" -le 0 ] ||
		   ! head -c "$hdrlen" "$stored" | head -n 1 | grep -q '^Received: ' ||
		   head -c "$hdrlen" "$stored" | tail -n +2 | grep -qv $'^[ \t]' ||
		   [ "$(head -c "$hdrlen" "$stored" | tail -c 2 | od -An -c | tr -d ' ')" != '\r\n' ]; then
			fail "$name: message $id (seq $seq) does not start with one Received: header"
			ok=0
		fi
		if ! tail -c "$size" "$stored" | cmp -s - <("$smtpload" --print "$seq" --size "$size" \
				--tag "$tag" --messages "$messages"); then
			fail "$name: message $id (seq $seq) differs from what was sent"
			ok=0
		elif [ "$(tail -c "$size" "$stored" | sha256sum | cut -d' ' -f1)" != "$hash" ]; then
			fail "$name: message $id (seq $seq) does not match its logged hash"
			ok=0
		fi
	done
	rm -f "$tmp/stored.eml"
	[ "$ok" -eq 1 ] && echo ok || echo FAIL
}

# ---- workloads ------------------------------------------------------------

# name connections messages size auth
workloads=(
	"a|1|2000|2048|dev:dev"
	"b|50|50000|2048|"
	"c|20|2000|102400|"
	"d|4|20|10485760|"
)
declare -A ours sinks checks

say "mailsnare: $("$mailsnare" version 2>/dev/null | head -n 1), build $build"

# (a)-(c) on one server; (d) on a fresh one, so that its peak RSS (VmHWM)
# is the peak of that workload.
server_start abc
for w in "${workloads[@]}"; do
	IFS='|' read -r name conns msgs size auth <<<"$w"
	[ "$name" = d ] && { server_stop; server_start d; rss_d_start=$(proc_kb "$server_pid" VmRSS); }
	authopt=()
	[ -n "$auth" ] && authopt=(--auth "$auth")
	say "workload ($name): $conns connections, $msgs messages of $size bytes${auth:+, AUTH PLAIN} -> mailsnare"
	ack=$server_dir/ack.$name
	: >"$ack"
	ours[$name]=$(load "$server_port" "$ack" --connections "$conns" --messages "$msgs" \
		--size "$size" --tag "w$name" "${authopt[@]}")
	say "  ${ours[$name]}"
	load_ok "($name)" "${ours[$name]}" "$msgs"
	[ "$name" = d ] && rss_d_peak=$(proc_kb "$server_pid" VmHWM)
	checks[$name]=$(check_store "$name" "$size" "w$name" "$msgs" "$ack")
	say "  store check: ${checks[$name]}"
	[ "${checks[$name]}" = ok ] || failures=$((failures + 1))
done
server_stop

# The same workloads against smtp-sink. It answers AUTH with 250, not 235,
# so (a) runs there without AUTH (one command per connection).
sink_start
for w in "${workloads[@]}"; do
	IFS='|' read -r name conns msgs size auth <<<"$w"
	say "workload ($name) -> smtp-sink"
	sinks[$name]=$(load "$sink_port" "" --connections "$conns" --messages "$msgs" \
		--size "$size" --tag "s$name")
	say "  ${sinks[$name]}"
	load_ok "($name) smtp-sink" "${sinks[$name]}" "$msgs"
done
sink_stop

# Memory: RSS at start vs after 100,000 stored messages, then 10,000 idle
# connections. AUTH makes the big workload deliver to the session's inbox.
server_start mem
sleep 0.5
rss_start=$(proc_kb "$server_pid" VmRSS)
say "workload: 10 connections, 100000 messages of 1024 bytes, AUTH PLAIN -> mailsnare"
: >"$server_dir/ack.e"
ours[e]=$(load "$server_port" "$server_dir/ack.e" --connections 10 --messages 100000 \
	--size 1024 --tag we --auth dev:dev)
say "  ${ours[e]}"
load_ok "(e)" "${ours[e]}" 100000
rss_100k=$(proc_kb "$server_pid" VmRSS)
checks[e]=$(check_store e 1024 we 100000 "$server_dir/ack.e")
say "  store check: ${checks[e]}"
[ "${checks[e]}" = ok ] || failures=$((failures + 1))

idle_n=10000
rss_idle_before=$(proc_kb "$server_pid" VmRSS)
idle_line=""
if [ "$(ulimit -n)" -lt $((idle_n + 100)) ]; then
	fail "ulimit -n is $(ulimit -n): cannot open $idle_n connections"
else
	say "$idle_n idle connections -> mailsnare"
	"$smtpload" --host 127.0.0.1 --port "$server_port" --idle --connections "$idle_n" \
		--hold 120 --timeout 10 >"$tmp/idle.out" 2>"$tmp/idle.err" &
	idle_pid=$!
	pids+=("$idle_pid")
	for _ in $(seq 600); do
		[ -s "$tmp/idle.out" ] && break
		kill -0 "$idle_pid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 1
	rss_idle=$(proc_kb "$server_pid" VmRSS)
	idle_line=$(cat "$tmp/idle.out")
	say "  $idle_line"
	kill "$idle_pid" 2>/dev/null || true
	wait "$idle_pid" 2>/dev/null || true
	forget_pid "$idle_pid"
	head -n 5 "$tmp/idle.err" >&2
	[ "$(field "$idle_line" idle_connections)" = "$idle_n" ] ||
		fail "only $(field "$idle_line" idle_connections) of $idle_n idle connections held"
fi
server_stop

# ---- report ---------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo
echo "| workload | mailsnare msgs/s | MB/s | p50 ms | p99 ms | max ms | smtp-sink msgs/s | ratio | store check |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for w in "${workloads[@]}"; do
	IFS='|' read -r name conns msgs size auth <<<"$w"
	o=${ours[$name]}
	s=${sinks[$name]}
	case $size in
	10485760) human="10 MB" ;;
	102400) human="100 KB" ;;
	*) human="$((size / 1024)) KB" ;;
	esac
	printf '| (%s) %s conn, %s msgs of %s%s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
		"$name" "$conns" "$msgs" "$human" "${auth:+, AUTH}" \
		"$(field "$o" msgs_per_s)" "$(field "$o" mb_per_s)" "$(field "$o" p50_ms)" \
		"$(field "$o" p99_ms)" "$(field "$o" max_ms)" "$(field "$s" msgs_per_s)" \
		"$(ratio "$(field "$o" msgs_per_s)" "$(field "$s" msgs_per_s)")" "${checks[$name]}"
done
o=${ours[e]}
printf '| (e) 10 conn, 100000 msgs of 1 KB, AUTH | %s | %s | %s | %s | %s | - | - | %s |\n' \
	"$(field "$o" msgs_per_s)" "$(field "$o" mb_per_s)" "$(field "$o" p50_ms)" \
	"$(field "$o" p99_ms)" "$(field "$o" max_ms)" "${checks[e]}"
echo
echo "smtp-sink runs (a) without AUTH (it answers AUTH with 250). Latency is"
echo "per message, from MAIL to the 250 after the data (MAIL, RCPT and DATA pipelined)."
echo
echo "| memory (server) | value |"
echo "|---|---:|"
echo "| (d) peak RSS (VmHWM), four 10 MB messages in flight | $(mb "$rss_d_peak") MB (RSS at start $(mb "$rss_d_start") MB) |"
echo "| RSS at start | $(mb "$rss_start") MB |"
echo "| RSS after 100,000 stored messages | $(mb "$rss_100k") MB (+$(mb $((rss_100k - rss_start))) MB) |"
if [ -n "$idle_line" ]; then
	held=$(field "$idle_line" idle_connections)
	per=$(awk -v a="$rss_idle" -v b="$rss_idle_before" -v n="$held" \
		'BEGIN { if (n > 0) printf "%.1f", (a - b) * 1024 / n / 1024; else print "-" }')
	echo "| RSS before / with $held idle connections | $(mb "$rss_idle_before") MB / $(mb "$rss_idle") MB |"
	echo "| RSS per idle connection | $per KB |"
fi
echo
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
echo "Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r), $(awk '/MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo); loopback only."

if [ "$failures" -gt 0 ]; then
	say "$failures failure(s), see above"
	exit 1
fi
