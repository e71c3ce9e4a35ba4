#!/bin/sh
# The Debian package end to end (README "Installing"): build it with
# dpkg-buildpackage from a copy of this tree, install it with apt-get, check
# its user, files and unit, run the installed binary as that user on free
# loopback ports with its own db, send a message and read it back (CLI and
# HTTP), then purge the package and check that nothing of it is left.
#
# Needs root (apt-get, the system user) and dpkg-dev, debhelper, fakeroot;
# exits 77 (skip) without them, or if a mailsnare package is already
# installed (it is not ours to purge). `make check-deb` runs it; CI too.
set -eu

SKIP=77
src=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "test-deb: $*"; }

[ "$(id -u)" -eq 0 ] || { say "skipped: needs root"; exit $SKIP; }
for tool in dpkg-buildpackage dh fakeroot apt-get python3 setpriv; do
	command -v $tool >/dev/null 2>&1 || { say "skipped: no $tool"; exit $SKIP; }
done
if dpkg-query -W -f='${Status}' mailsnare 2>/dev/null | grep -q 'installed'; then
	say "skipped: a mailsnare package is installed already; not purging it"
	exit $SKIP
fi

work=$(mktemp -d /tmp/mailsnare-deb.XXXXXX)
installed=no
server=
cleanup() {
	status=$?
	[ -n "$server" ] && kill "$server" 2>/dev/null || :
	if [ "$installed" = yes ]; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q \
			-o DPkg::Lock::Timeout=300 mailsnare >/dev/null 2>&1 || :
	fi
	rm -rf "$work"
	exit $status
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { say "FAIL: $*"; exit 1; }

# 1. A copy of the tree, without builds, VCS or npm's downloads.
mkdir "$work/mailsnare"
(cd "$src" && tar --exclude=./build --exclude=./.git --exclude=./tests/integration/node_modules \
	--exclude=./debian/mailsnare --exclude=./debian/.debhelper -cf - .) |
	(cd "$work/mailsnare" && tar -xf -)
chmod -R u+w "$work/mailsnare"

# 2. The package; the test suite runs elsewhere (nocheck).
say "building the package"
if ! (cd "$work/mailsnare" && DEB_BUILD_OPTIONS="nocheck parallel=2" \
	nice dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
	tail -n 60 "$work/build.log"
	fail "dpkg-buildpackage -us -uc -b"
fi
deb=$(ls "$work"/mailsnare_*.deb)
say "built $(basename "$deb")"

# 3. Installed as a user would.
installed=yes
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "$deb" \
	>"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "apt-get install $deb"; }

getent passwd mailsnare >/dev/null || fail "no user mailsnare"
getent group mailsnare >/dev/null || fail "no group mailsnare"
[ "$(stat -c %U:%a /var/lib/mailsnare)" = mailsnare:750 ] ||
	fail "/var/lib/mailsnare: $(stat -c %U:%a /var/lib/mailsnare), want mailsnare:750"
for f in /usr/bin/mailsnare /etc/mailsnare/mailsnare.conf /lib/systemd/system/mailsnare.service \
	/usr/share/man/man1/mailsnare.1.gz /usr/share/man/man5/mailsnare.conf.5.gz \
	/usr/share/bash-completion/completions/mailsnare; do
	[ -f "$f" ] || fail "not installed: $f"
done
grep -qx 'ExecStart=/usr/bin/mailsnare serve -c /etc/mailsnare/mailsnare.conf' \
	/lib/systemd/system/mailsnare.service || fail "the unit's ExecStart"
if command -v systemd-analyze >/dev/null 2>&1; then
	systemd-analyze verify /lib/systemd/system/mailsnare.service ||
		fail "systemd-analyze verify of the installed unit"
fi
/usr/bin/mailsnare version >"$work/version" || fail "mailsnare version"
grep -q '^mailsnare ' "$work/version" && grep -q '^SQLite ' "$work/version" ||
	fail "mailsnare version printed: $(cat "$work/version")"
say "installed: $(head -n 1 "$work/version"), user mailsnare, unit, man pages"

# 4. The installed binary, as its user (setpriv execs: no process between), from / (no conf/ there): the
# installed config is the one read, as the hostname it sets shows.
echo 'hostname = deb-test.invalid' >>/etc/mailsnare/mailsnare.conf
run="$work/run"
mkdir "$run"
chown mailsnare:mailsnare "$run"
chmod 755 "$work"
(cd / && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$run" \
	setpriv --reuid=mailsnare --regid=mailsnare --init-groups /usr/bin/mailsnare serve --db "$run/m.db" \
	--ready-file "$run/ready" --smtp 127.0.0.1:0 --http 127.0.0.1:0 --pop3 127.0.0.1:0 \
	--imap 127.0.0.1:0 --smtps off --pop3s off --imaps off >"$work/server.log" 2>&1) &
server=$!

python3 - "$run" <<'PY' || { cat "$work/server.log"; fail "send and read back"; }
import json, os, smtplib, subprocess, sys, time, urllib.request
run = sys.argv[1]
deadline = time.monotonic() + 60
while not (os.path.exists(run + "/ready") and open(run + "/ready").read().endswith("\n")):
    if time.monotonic() > deadline:
        sys.exit("no ready file")
    time.sleep(0.1)
addr = dict(line.split() for line in open(run + "/ready"))
def hostport(proto):
    host, port = addr[proto].rsplit(":", 1)
    return host, int(port)
with smtplib.SMTP(*hostport("smtp"), timeout=30) as s:
    code, banner = s.ehlo()
    assert code == 250 and banner.startswith(b"deb-test.invalid"), banner
    s.sendmail("a@example.test", ["b@example.test"],
               b"From: a@example.test\r\nTo: b@example.test\r\n"
               b"Subject: from the package\r\n\r\nhello, installed mailsnare\r\n")
AS_USER = ["setpriv", "--reuid=mailsnare", "--regid=mailsnare", "--init-groups"]
out = subprocess.run(AS_USER + ["/usr/bin/mailsnare", "message", "list", "--db", run + "/m.db"],
                     stdout=subprocess.PIPE, check=True, timeout=30).stdout.decode().splitlines()
assert len(out) == 2 and out[1].split("\t")[5] == "from the package", out
raw = subprocess.run(AS_USER + ["/usr/bin/mailsnare", "message", "get", out[1].split("\t")[0],
                                "--db", run + "/m.db"],
                     stdout=subprocess.PIPE, check=True, timeout=30).stdout
assert raw.endswith(b"\r\n\r\nhello, installed mailsnare\r\n"), raw
host, port = hostport("http")
with urllib.request.urlopen("http://%s:%d/api/v1/messages" % (host, port), timeout=30) as r:
    msgs = json.load(r)["messages"]
assert [m["Subject"] for m in msgs] == ["from the package"], msgs
print("test-deb: sent and read back (CLI and HTTP)")
PY
kill -TERM "$server"
wait "$server" || fail "the server's exit status after SIGTERM: $?"
server=

# 4b. The lookup order, told by which file a bad value is reported from:
# conf/mailsnare.conf in the current directory before the installed one.
mkdir -p "$run/project/conf"
echo 'durability = sometimes' >"$run/project/conf/mailsnare.conf"
err=$(cd "$run/project" && /usr/bin/mailsnare inbox list --db "$run/m.db" 2>&1) &&
	fail "a bad conf/mailsnare.conf was not read"
case $err in "mailsnare: conf/mailsnare.conf:1: durability: invalid value"*) ;;
*) fail "conf/mailsnare.conf first: $err" ;; esac
echo 'durability = sometimes' >>/etc/mailsnare/mailsnare.conf
err=$(cd / && /usr/bin/mailsnare inbox list --db "$run/m.db" 2>&1) &&
	fail "a bad /etc/mailsnare/mailsnare.conf was not read"
case $err in "mailsnare: /etc/mailsnare/mailsnare.conf:"*": durability: invalid value"*) ;;
*) fail "/etc/mailsnare/mailsnare.conf without conf/: $err" ;; esac
say "config lookup: conf/mailsnare.conf, then /etc/mailsnare/mailsnare.conf"

# 5. Purged: files, user, group and state all gone.
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q -o DPkg::Lock::Timeout=300 mailsnare \
	>"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "apt-get purge"; }
installed=no
for f in /usr/bin/mailsnare /etc/mailsnare /var/lib/mailsnare /lib/systemd/system/mailsnare.service; do
	[ ! -e "$f" ] || fail "left after purge: $f"
done
! getent passwd mailsnare >/dev/null || fail "user mailsnare left after purge"
! getent group mailsnare >/dev/null || fail "group mailsnare left after purge"
say "purged: no files, user or group left"
say "PASS"
