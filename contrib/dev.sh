#!/bin/sh
# Set-up, build and run in one step on Debian 12 (README "Quick start").
#   contrib/dev.sh run [serve options]   install what is missing, build, run the server
#   contrib/dev.sh check                 install what is missing, build, run the whole test suite
#   contrib/dev.sh check-sanitizers      the same, built with ASan and UBSan
#   contrib/dev.sh build                 install what is missing and build only
#   contrib/dev.sh check-deb             build, install, use and purge the Debian package
# Builds go to build/default and build/sanitize, out of the source tree.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
DEPS="build-essential autoconf automake libtool pkg-config libevent-dev libssl-dev
libsqlite3-dev libcriterion-dev zlib1g-dev libjansson-dev python3 python3-pytest swaks curl openssl sqlite3 fetchmail mutt isync
clang libcurl4-openssl-dev postfix php-cli git-email
debhelper dpkg-dev fakeroot systemd"
# The web page's browser tests (tests/integration/test_web.py) run Chromium.
DEPS="$DEPS chromium"
# The imapflow test needs Node.js and npm; one installed from elsewhere
# (NodeSource, nvm) will do, and Debian's npm would conflict with it.
command -v node >/dev/null 2>&1 || DEPS="$DEPS nodejs"
command -v npm >/dev/null 2>&1 || DEPS="$DEPS npm"

missing_deps() {
	for p in $DEPS; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
			printf '%s ' "$p"
	done
}

install_deps() {
	missing=$(missing_deps)
	[ -z "$missing" ] && return 0
	echo "dev.sh: installing $missing"
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing </dev/null ||
		{ $sudo apt-get update -q </dev/null &&
		  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing </dev/null; }
}

build() {
	dir="$top/build/$1"; shift
	[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
	mkdir -p "$dir"
	cd "$dir"
	[ -f Makefile ] || "$top/configure" -q "$@"
	make -j"$(nproc)" >/dev/null
}

check() {
	dir="$top/build/$1"
	if ! make -C "$dir" -j"$(nproc)" check; then
		find "$dir/tests" -name '*.log' ! -name test-suite.log -exec grep -l -E '^(FAIL|ERROR)|FAILED|Error' {} + 2>/dev/null |
			while read -r f; do echo "==== $f"; tail -n 60 "$f"; done
		exit 1
	fi
}

cmd=${1:-run}
[ $# -gt 0 ] && shift
case $cmd in
run)
	install_deps
	build default
	exec "$top/build/default/src/mailsnare" serve "$@"
	;;
build)
	install_deps
	build default
	;;
check)
	install_deps
	build default
	check default
	;;
check-sanitizers)
	install_deps
	build sanitize --enable-sanitizers
	check sanitize
	;;
check-deb)
	install_deps
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo sh "$top/contrib/test-deb.sh"
	;;
*)
	echo "usage: contrib/dev.sh run|build|check|check-sanitizers|check-deb" >&2
	exit 2
	;;
esac
