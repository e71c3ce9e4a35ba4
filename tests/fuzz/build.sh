#!/bin/sh
# Builds every libFuzzer target of tests/fuzz/ with clang against the
# project's pure parser sources (compiled here, not libmailsnare.a from gcc).
#   tests/fuzz/build.sh [OUTDIR]     (default: build/fuzz-targets in the tree)
# Prints OUTDIR; exits 77 without clang.
# Needs clang (Debian: apt-get install -y clang) and libevent's headers.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/build/fuzz-targets}
CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "build.sh: $CC not found (apt-get install -y clang)" >&2
	exit 77
fi
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer $san -I$top/include -I$top/src -I$here -D_GNU_SOURCE
    $(pkg-config --cflags libevent libcrypto 2>/dev/null || true) -Wall -Wextra -Werror -Wno-unused-parameter -Wno-unused-function"
libs="$(pkg-config --libs libevent libcrypto 2>/dev/null || echo -levent -lcrypto)"
# The pure modules: no sockets, no store (DESIGN.md).
srcs="imap_parse imap_seqset imap_fetchattr imap_search imap_date imap_mutf7 imap_match
    smtp_parse smtp_data pop3_parse mime mime_header mime_address mime_decode mime_blob base64
    sasl msg_search msg_search_tz ws"

mkdir -p "$out/obj"
# An object is rebuilt when its source, any header or this script is newer.
newest=$(ls -t "$top"/include/mailsnare/*.h "$top"/src/*.h "$0" | head -1)
# Compiles run in parallel (make check has a time budget); any failure fails.
pids=
objs=
for s in $srcs; do
	o="$out/obj/$s.o"
	if [ ! -f "$o" ] || [ "$top/src/$s.c" -nt "$o" ] || [ "$newest" -nt "$o" ]; then
		# shellcheck disable=SC2086
		$CC $cflags -fsanitize=fuzzer-no-link -c "$top/src/$s.c" -o "$o" &
		pids="$pids $!"
	fi
	objs="$objs $o"
done
rc=0
for p in $pids; do wait "$p" || rc=1; done
[ "$rc" -eq 0 ] || { echo "build.sh: compiling failed" >&2; exit 1; }
pids=
for t in "$here"/fuzz_*.c; do
	name=$(basename "$t" .c)
	# shellcheck disable=SC2086
	$CC $cflags -fsanitize=fuzzer "$t" $objs $libs -o "$out/$name" &
	pids="$pids $!"
done
# shellcheck disable=SC2086
$CC $cflags "$here/gen_blob_seeds.c" $objs $libs -o "$out/gen_blob_seeds" &
pids="$pids $!"
for p in $pids; do wait "$p" || rc=1; done
[ "$rc" -eq 0 ] || { echo "build.sh: linking failed" >&2; exit 1; }
echo "$out"
