#!/usr/bin/env bash
# bench/imap_fetch.sh: IMAP FETCH throughput of mailsnare against Dovecot
# (issue 9 §3).
#
# Loads the same small MIME messages into a fresh mailsnare (over SMTP) and a
# fresh foreground Dovecot (as Maildir files), then times, on one IMAP
# session each, repeated
#   FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)
#   FETCH 1:* BODY.PEEK[]
# and prints messages/s (best and median of the runs). Every run's reply
# must be byte-identical to the first one of the same server (nothing is
# cached wrongly between runs) and must hold one FETCH response per message.
#
#   bench/imap_fetch.sh                      2,000 messages, 20 runs each
#   BENCH_MESSAGES=5000 BENCH_RUNS=50 bench/imap_fetch.sh
#   MAILSNARE_BIN=/path/to/mailsnare bench/imap_fetch.sh
#   BENCH_NO_DOVECOT=1 bench/imap_fetch.sh   mailsnare only
#   BENCH_CORPUS=tests/data/mime bench/imap_fetch.sh
#                                            its *.eml files instead (line ends
#                                            made CRLF): compares ENVELOPE,
#                                            BODYSTRUCTURE and BODY with
#                                            Dovecot's message by message
#   BENCH_HOLD=1 bench/imap_fetch.sh         mailsnare only, FETCH in a loop
#                                            until killed (for perf record -p)
#   BENCH_KEEP=1 bench/imap_fetch.sh         keep the temporary directory
#
# Dovecot (dovecot-imapd) is installed with apt-get when missing. Only
# 127.0.0.1 is used; every process started here is stopped on exit.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
mailsnare=${MAILSNARE_BIN:-$top/build/default/src/mailsnare}
messages=${BENCH_MESSAGES:-2000}
if [ -n "${BENCH_CORPUS:-}" ]; then
	BENCH_CORPUS=$(cd "$BENCH_CORPUS" && pwd)
	export BENCH_CORPUS
	messages=$(find "$BENCH_CORPUS" -maxdepth 1 -name '*.eml' | wc -l)
	[ "$messages" -gt 0 ] || { echo "imap_fetch.sh: no .eml files in $BENCH_CORPUS" >&2; exit 1; }
fi
runs=${BENCH_RUNS:-20}
python=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailsnare-fetch.XXXXXX")
bench_name=imap_fetch.sh
. "$top/bench/lib.sh"

case $mailsnare in /*) ;; *) mailsnare=$PWD/$mailsnare ;; esac
[ -x "$mailsnare" ] || { say "no mailsnare binary at $mailsnare (set MAILSNARE_BIN)"; exit 1; }
[ -x "$python" ] || python=$(command -v python3)

if [ -z "${BENCH_NO_DOVECOT:-}${BENCH_HOLD:-}" ] && ! command -v dovecot >/dev/null &&
    [ ! -x /usr/sbin/dovecot ]; then
	say "installing dovecot-imapd"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd </dev/null >&2 ||
		{ as_root apt-get update -q </dev/null >&2 &&
		  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd \
		      </dev/null >&2; }
fi
dovecot_bin=$(command -v dovecot || echo /usr/sbin/dovecot)

# The client side: message generation, SMTP load, Maildir writing and the
# timed FETCH loop. Python's standard library only.
cat >"$tmp/client.py" <<'EOF'
import os, socket, smtplib, statistics, sys, time

CORPUS = None
if os.environ.get("BENCH_CORPUS"):
    d = os.environ["BENCH_CORPUS"]
    CORPUS = [open(os.path.join(d, f), "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
              for f in sorted(os.listdir(d)) if f.endswith(".eml")]

def message(i):
    if CORPUS is not None:
        return CORPUS[i % len(CORPUS)]
    return generated(i)

def generated(i):
    """A small MIME message: multipart/alternative, text and HTML, with
    the fields ENVELOPE shows; about 1 KB."""
    b = "alt-%06d" % i
    return ("From: \"Sender %d\" <sender%d@example.test>\r\n"
            "To: Receiver <rcpt@example.test>, other%d@example.test\r\n"
            "Cc: \"Copy, Person\" <cc@example.test>\r\n"
            "Subject: Benchmark message %d of the FETCH test\r\n"
            "Date: Tue, 1 Dec 2026 12:%02d:%02d +0000\r\n"
            "Message-ID: <msg%d@bench.example.test>\r\n"
            "In-Reply-To: <parent%d@bench.example.test>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative; boundary=\"%s\"\r\n"
            "\r\n"
            "--%s\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 7bit\r\n"
            "\r\n"
            "Hello %d,\r\n\r\nthis is the plain text of a benchmark message.\r\n"
            "It has a few lines so that the part has a line count.\r\n"
            "\r\n"
            "--%s\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n"
            "\r\n"
            "<html><body><p>Hello %d,</p><p>this is the HTML of a benchmark=\r\n"
            " message.</p></body></html>\r\n"
            "\r\n"
            "--%s--\r\n"
            % (i, i, i, i, (i // 60) % 60, i % 60, i, i, b, b, i, b, i, b)).encode()

def load_smtp(port, n):
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    for i in range(n):
        s.sendmail("sender%d@example.test" % i, ["rcpt@example.test"], message(i))
    s.quit()

def load_maildir(path, n):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    t = int(time.time()) - n
    for i in range(n):
        data = message(i)
        name = "%d.M%dP1.bench,S=%d:2," % (t + i, i, len(data))
        with open(os.path.join(path, "cur", name), "wb") as f:
            f.write(data)

class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.n = 0
        self.read_until(b"\r\n")

    def read_until(self, end):
        while not self.buf.endswith(end):
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("connection closed")
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def command(self, text):
        """The whole reply up to the tagged line, as one bytes object."""
        self.n += 1
        tag = b"b%d" % self.n
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        parts = [b"\r\n"]         # so that a reply of just the tagged line matches too
        tail = b"\r\n"
        want = b"\r\n" + tag + b" "
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("connection closed during %s" % text)
            parts.append(chunk)
            tail = (tail + chunk)[-4096:]
            k = tail.rfind(want)
            if k >= 0 and tail.endswith(b"\r\n") and tail.find(b"\r\n", k + 2) == len(tail) - 2:
                break
        reply = b"".join(parts)
        k = reply.rfind(want) + 2
        if not reply.startswith(tag + b" OK", k):
            raise SystemExit("%s failed: %r" % (text, reply[k:k + 200]))
        return reply[2:k]

def cpu_ticks(pid):
    """User + system CPU time of a process, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])

def server_pid(pid):
    """The process that serves our session: the server itself, or for
    Dovecot (its master's pid given) the newest "imap" child."""
    best = None
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        if comm == "imap" and ppid == pid and (best is None or int(d) > best):
            best = int(d)
    return best or pid

def bench(port, user, password, n, runs, hold, pid, save):
    c = Client(port)
    c.command("LOGIN %s %s" % (user, password))
    sel = c.command("SELECT INBOX")
    if b"* %d EXISTS" % n not in sel:
        raise SystemExit("SELECT does not show %d messages: %r" % (n, sel[:300]))
    cmds = [("envelope", "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"),
            ("body", "FETCH 1:* BODY.PEEK[]")]
    while hold:
        c.command(cmds[0][1])
    pid = server_pid(pid)
    hz = os.sysconf("SC_CLK_TCK")
    for name, cmd in cmds:
        first = c.command(cmd)
        if first.count(b" FETCH (") < n:
            raise SystemExit("%s: fewer than %d FETCH responses" % (cmd, n))
        rates = []
        cpu0 = cpu_ticks(pid)
        for _ in range(runs):
            t0 = time.perf_counter()
            reply = c.command(cmd)
            dt = time.perf_counter() - t0
            if reply != first:
                raise SystemExit("%s: a later reply differs from the first one" % cmd)
            rates.append(n / dt)
        cpu = (cpu_ticks(pid) - cpu0) / hz
        print("%-8s best=%6.0f median=%6.0f msg/s  server CPU %5.2f us/msg (%6.0f msg per CPU s)"
              "  reply %d bytes" % (name, max(rates), statistics.median(rates),
                                    cpu * 1e6 / (n * runs), n * runs / cpu if cpu else 0,
                                    len(first)))
    with open(save, "wb") as f:
        f.write(c.command("FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY)"))
    c.command("LOGOUT")

if __name__ == "__main__":
    what = sys.argv[1]
    if what == "smtp":
        load_smtp(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "maildir":
        load_maildir(sys.argv[2], int(sys.argv[3]))
    else:
        bench(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
              what == "hold", int(sys.argv[7]), sys.argv[8] if len(sys.argv) > 8 else os.devnull)
EOF

free_port() {
	"$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID: until something listens on 127.0.0.1:PORT.
wait_port() {
	for _ in $(seq 100); do
		"$python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1).close()" \
		    2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

report() { # NAME OUTPUT
	local line
	while read -r line; do
		printf '%-10s %s\n' "$1" "$line"
	done <<<"$2"
}

# ---- mailsnare ------------------------------------------------------------

ms=$tmp/mailsnare
mkdir -p "$ms"
(cd "$ms" && exec "$mailsnare" serve --db "$ms/m.db" --smtp 127.0.0.1:0 --smtps off \
	--pop3 off --pop3s off --imap 127.0.0.1:0 --imaps off --http off \
	--ready-file "$ms/ready" --log-level warn >"$ms/log" 2>&1) &
ms_pid=$!
pids+=("$ms_pid")
for _ in $(seq 100); do
	[ -s "$ms/ready" ] && grep -q '^imap ' "$ms/ready" && break
	kill -0 "$ms_pid" 2>/dev/null || break
	sleep 0.1
done
smtp_port=$(sed -n 's/^smtp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$ms/ready" 2>/dev/null || true)
imap_port=$(sed -n 's/^imap 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$ms/ready" 2>/dev/null || true)
if [ -z "$smtp_port" ] || [ -z "$imap_port" ]; then
	cat "$ms/log" >&2
	say "mailsnare did not start"
	exit 1
fi
say "mailsnare (pid $ms_pid): loading $messages messages over SMTP"
"$python" "$tmp/client.py" smtp "$smtp_port" "$messages"
if [ -n "${BENCH_HOLD:-}" ]; then
	say "FETCH in a loop on pid $ms_pid (perf record -g -p $ms_pid); ^C ends"
	"$python" "$tmp/client.py" hold "$imap_port" dev dev "$messages" 0 "$ms_pid"
	exit 0
fi
say "mailsnare: $runs runs of each FETCH"
ms_out=$("$python" "$tmp/client.py" bench "$imap_port" dev dev "$messages" "$runs" "$ms_pid" \
    "$tmp/mailsnare.structure")
report mailsnare "$ms_out"

[ -z "${BENCH_NO_DOVECOT:-}" ] || exit 0

# ---- Dovecot --------------------------------------------------------------

dc=$tmp/dovecot
mkdir -p "$dc/run" "$dc/state" "$dc/home"
chmod 755 "$tmp" "$dc" "$dc/run"
dc_port=$(free_port)
# Dovecot refuses to access mail as root: as root, mail belongs to the
# dovecot user.
mail_uid=$(id -u) mail_gid=$(id -g)
if [ "$mail_uid" -eq 0 ]; then
	mail_uid=$(id -u "${DOVECOT_INTERNAL_USER:-dovecot}")
	mail_gid=$(id -g "${DOVECOT_INTERNAL_USER:-dovecot}")
fi
cat >"$dc/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $dc/run
state_dir = $dc/state
log_path = $dc/log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
default_internal_user = ${DOVECOT_INTERNAL_USER:-dovecot}
default_login_user = ${DOVECOT_LOGIN_USER:-dovenull}
mail_location = maildir:$dc/Maildir
passdb {
  driver = static
  args = password=dev
}
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$dc/home
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $dc_port
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
say "dovecot: writing $messages messages into a Maildir"
"$python" "$tmp/client.py" maildir "$dc/Maildir" "$messages"
[ "$(id -u)" -ne 0 ] || chown -R "$mail_uid:$mail_gid" "$dc/Maildir" "$dc/home"
"$dovecot_bin" -F -c "$dc/dovecot.conf" >"$dc/stdout" 2>&1 &
dc_pid=$!
pids+=("$dc_pid")
if ! wait_port "$dc_port" "$dc_pid"; then
	cat "$dc/stdout" "$dc/log" >&2 2>/dev/null || true
	say "dovecot did not start"
	exit 1
fi
say "dovecot $("$dovecot_bin" --version) (pid $dc_pid): $runs runs of each FETCH"
dc_out=$("$python" "$tmp/client.py" bench "$dc_port" bench dev "$messages" "$runs" "$dc_pid" \
    "$tmp/dovecot.structure")
report dovecot "$dc_out"
# The same messages: the same ENVELOPE, BODYSTRUCTURE and BODY, byte for byte.
if cmp -s "$tmp/mailsnare.structure" "$tmp/dovecot.structure"; then
	echo "ENVELOPE, BODYSTRUCTURE and BODY of all $messages messages: identical to Dovecot's"
else
	echo "ENVELOPE, BODYSTRUCTURE and BODY differ from Dovecot's (BENCH_KEEP=1 keeps both in $tmp):"
	"$python" - "$tmp/mailsnare.structure" "$tmp/dovecot.structure" <<'EOF'
import sys
a = open(sys.argv[1], "rb").read().split(b"\r\n* ")
b = open(sys.argv[2], "rb").read().split(b"\r\n* ")
for x, y in zip(a, b):
    if x != y:
        k = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
        print("  message %s" % x.lstrip(b"* ").split(b" ", 1)[0].decode())
        print("    mailsnare: ...%r..." % x[max(0, k - 60):k + 60])
        print("    dovecot:   ...%r..." % y[max(0, k - 60):k + 60])
EOF
fi
