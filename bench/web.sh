#!/usr/bin/env bash
# bench/web.sh: the web page on a full store (issue 13's "Performance").
#
# A store of WEB_N (100,000) messages of mixed sizes (bench/search_query
# fill, as bench/http.sh), served by mailsnare; headless Chromium
# (Debian's chromium, driven by bench/web.js with puppeteer-core from npm
# in build/web-bench) opens the page WEB_LOADS (5) times and times each
# from navigation start until the list shows its first page of 50, then
# scrolls to the end of the list WEB_SCROLLS (10) times: each scroll must
# bring the next page (on demand; the store is never listed whole).
#
#   bench/web.sh                       100,000 messages (a few minutes on 2 cores)
#   WEB_N=10000 bench/web.sh           a quick run
#   MAILSNARE_BUILD=/path bench/web.sh an existing build directory
#
# Prints Markdown for README. Not a pass/fail test; exits 1 on errors.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MAILSNARE_BUILD:-$top/build/bench}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailsnare-web.XXXXXX")
bench_name=web.sh
. "$top/bench/lib.sh"
n=${WEB_N:-100000}
loads=${WEB_LOADS:-5}
scrolls=${WEB_SCROLLS:-10}
prefix=$top/build/web-bench

[ -x /usr/bin/chromium ] || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null >&2
if [ ! -f "$build/Makefile" ]; then
	[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
	mkdir -p "$build"
	(cd "$build" && "$top/configure" -q)
fi
say "building in $build"
make -C "$build" -j2 src/mailsnare bench/search_query >/dev/null
[ -f "$prefix/node_modules/puppeteer-core/package.json" ] ||
	npm install --no-save --no-audit --no-fund --no-package-lock --loglevel=error \
		--prefix "$prefix" puppeteer-core@25.16.0 >&2

say "filling a store with $n messages"
"$build/bench/search_query" fill "$tmp/w.db" "$n"
(cd "$tmp" && exec "$build/src/mailsnare" serve --db "$tmp/w.db" --smtp 127.0.0.1:0 --smtps off \
	--pop3 off --pop3s off --imap off --imaps off --http 127.0.0.1:0 \
	--ready-file "$tmp/ready" --log-level warn >"$tmp/log" 2>&1) &
pids+=("$!")
for _ in $(seq 300); do
	[ -s "$tmp/ready" ] && grep -q '^http ' "$tmp/ready" && break
	sleep 0.1
done
http=$(sed -n 's/^http \(.*\)$/\1/p' "$tmp/ready")
[ -n "$http" ] || { cat "$tmp/log" >&2; say "mailsnare did not start"; exit 1; }

out=$(NODE_PATH=$prefix/node_modules node "$top/bench/web.js" \
	"{\"url\": \"http://$http/\", \"loads\": $loads, \"scrolls\": $scrolls}")
/usr/bin/python3 - "$n" "$out" <<'PY'
import json, statistics, sys
n, r = int(sys.argv[1]), json.loads(sys.argv[2])
loads = sorted(r["loads"])
print("### Web page (%d stored messages)" % n)
print()
print("| measure | value |")
print("|---|---:|")
print("| navigation start to the first 50 rows shown, median of %d loads | %.0f ms |"
      % (len(loads), statistics.median(loads)))
print("| the same, slowest load | %.0f ms |" % loads[-1])
print("| bytes on the wire of the first load (page, scripts, styles, API replies) | %d |" % r["bytes"])
ok = all(s["after"] == s["before"] + 50 for s in r["scrolls"])
ms = sorted(s["ms"] for s in r["scrolls"])
print("| scroll to the end: next 50 rows shown, median of %d | %.0f ms |" % (len(ms), statistics.median(ms)))
print("| rows in the list after %d scrolls (of %d) | %d |" % (len(ms), n, r["scrolls"][-1]["after"]))
print()
if r["errors"] or not ok:
    print("errors: %r, pages of 50 each: %s" % (r["errors"], ok))
    sys.exit(1)
PY
