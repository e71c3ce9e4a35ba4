#!/usr/bin/env python3
"""Hostile clients (issue 11, "How it is shown"): each row of the issue's
table, and the long IMAP commands that now work in slices, run against a
fresh server while a second client (logged in to an inbox of its own)
sends IMAP NOOP every 20 ms. For each row it prints the worst NOOP round
trip during the row (the stall every other client saw) and the server's
RSS growth (peak VmRSS from /proc during the row, less VmRSS before it).
Targets: no stall over 50 ms, no pre-authentication client able to make
the server hold more than 1 MB, at most 20 failed logins a second from
one address.

  bench/hostile.py MAILSNARE [--quick] [ROW ...]

ROW names pick rows (default: all); --quick makes the big ones smaller.
Each row is bounded to seconds. Only 127.0.0.1 is used; each server runs
on free ports with its own temp db."""

import base64
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
os.environ["MAILSNARE_BIN"] = os.path.abspath(sys.argv[1])
import harness  # noqa: E402
from http_helpers import read_reply as http_reply  # noqa: E402

QUICK = "--quick" in sys.argv
PICK = [a for a in sys.argv[2:] if not a.startswith("--")]
TIMEOUT = 120


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Pinger:
    """NOOP every 20 ms on a logged-in IMAP session; the longest round trip
    and the peak RSS while a row runs."""

    def __init__(self, srv, user, pw):
        self.srv = srv
        self.sock = socket.create_connection(srv.addr("imap"), timeout=TIMEOUT)
        self.f = self.sock.makefile("rb")
        self.f.readline()
        self.sock.sendall(b'p LOGIN "%s" "%s"\r\n' % (user.encode(), pw.encode()))
        while not self.f.readline().startswith(b"p "):
            pass
        self.stop = threading.Event()
        self.worst = 0.0
        self.peak = 0
        self.n = 0
        self.th = threading.Thread(target=self.run, daemon=True)

    def run(self):
        pid = self.srv.proc.pid
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.sock.sendall(b"n NOOP\r\n")
            while not self.f.readline().startswith(b"n "):
                pass
            dt = time.monotonic() - t0
            self.worst = max(self.worst, dt)
            self.n += 1
            self.peak = max(self.peak, rss_kb(pid))
            time.sleep(0.02)

    def __enter__(self):
        self.base = rss_kb(self.srv.proc.pid)
        self.peak = self.base
        self.th.start()
        return self

    def __exit__(self, *exc):
        time.sleep(0.1)
        self.stop.set()
        self.th.join(TIMEOUT)
        self.peak = max(self.peak, rss_kb(self.srv.proc.pid))
        self.sock.close()
        return False


# ---- client plumbing ----------------------------------------------------------

def connect(srv, proto, tls=False):
    s = socket.create_connection(srv.addr(proto), timeout=TIMEOUT)
    if tls:
        s = harness.insecure_context().wrap_socket(s)
    return s


class Imap:
    def __init__(self, srv, user=None, pw=None):
        self.s = connect(srv, "imap")
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.n = 0
        if user:
            self.cmd('LOGIN "%s" "%s"' % (user, pw))

    def send(self, text):
        self.n += 1
        tag = b"t%d" % self.n
        self.s.sendall(tag + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return tag

    def wait(self, tag):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("closed")
            if line.startswith(tag + b" "):
                return lines, line
            lines.append(line)

    def cmd(self, text):
        return self.wait(self.send(text))

    def close(self):
        self.s.close()


def smtp_fill(srv, user, pw, count, size, subject=lambda i: "m%d" % i, body=None, headers=b""):
    """count messages of about size bytes to user's INBOX, pipelined BDAT;
    headers (CRLF-ended fields) go after Message-ID."""
    s = connect(srv, "smtp")
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO bench\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (user, pw)).encode()) + b"\r\n")
    assert f.readline().startswith(b"235")
    line = (b"x" * 76 + b"\r\n")
    fill = body if body is not None else line * max(1, size // len(line))
    batch = 100 if size < 100000 else 1
    for at in range(0, count, batch):
        out = []
        for i in range(at, min(count, at + batch)):
            msg = (b"From: user%d@example.test\r\nTo: rcpt@example.test\r\nSubject: %s\r\n"
                   b"Message-ID: <m%d@example.test>\r\n" % (i, subject(i).encode(), i)) + headers + b"\r\n" + fill
            out.append(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
                       b"BDAT %d LAST\r\n" % len(msg) + msg)
        s.sendall(b"".join(out))
        for _ in range(3 * len(out)):
            r = f.readline()
            assert r.startswith(b"250"), r
    s.close()


# ---- the rows --------------------------------------------------------------------

def row_list_pattern(srv, user, pw, ping):
    c = Imap(srv, user, pw)
    c.cmd("CREATE " + "a" * 255)
    with ping:
        c.cmd('LIST "" "%s"' % ("*a" * 8 + "b"))
    c.close()
    return '255 x "a", LIST "*a" x 8 + "b"'


def pipeline_unread(srv, proto, cmd, total, tls=False):
    """Writes total bytes of cmd before login, never reading; returns when
    the server stops reading (or all is sent)."""
    s = connect(srv, proto, tls)
    s.settimeout(3)
    chunk = cmd * (65536 // len(cmd))
    sent = 0
    try:
        while sent < total:
            sent += s.send(chunk)
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    return s, sent


def row_pipeline(proto, cmd, tls=False):
    def row(srv, user, pw, ping):
        total = (8 if QUICK else 30) * 1024 * 1024
        with ping:
            s, sent = pipeline_unread(srv, proto, cmd, total, tls)
            time.sleep(0.5)
        s.close()
        return "%d MB offered, %.1f MB taken before the server stopped reading" % (
            total >> 20, sent / 1048576)
    return row


def row_login_literal(srv, user, pw, ping):
    conns = []
    with ping:
        for _ in range(20):
            s = connect(srv, "imap")
            s.settimeout(3)
            s.recv(4096)
            s.sendall(b"a LOGIN {33554431+}\r\n")
            try:
                for _ in range(64):
                    s.send(b"x" * 65536)
            except (socket.timeout, OSError):
                pass
            conns.append(s)
        time.sleep(0.5)
    for s in conns:
        s.close()
    return "20 connections, 4 MB of literal each offered"


def row_smtp_parallel(srv, user, pw, ping):
    n, size = (10, 8) if QUICK else (20, 28)
    body = (b"x" * 998 + b"\r\n") * (size * 1024 * 1024 // 1000)
    clients = []
    for _ in range(n):
        s = connect(srv, "smtp")
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO b\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        while not f.readline().startswith(b"354"):
            pass
        clients.append((s, f))
    senders = [threading.Thread(target=s.sendall, args=(body,)) for s, _ in clients]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    with ping:
        for s, _ in clients:
            s.sendall(b".\r\n")
        for _, f in clients:
            assert f.readline().startswith(b"250")
    for s, _ in clients:
        s.close()
    return "%d x %d MB finishing together" % (n, size)


def row_search_body(needle_kb):
    def row(srv, user, pw, ping):
        n, size = (10, 8) if QUICK else (20, 16)
        smtp_fill(srv, user, pw, n, size * 1024 * 1024)
        c = Imap(srv, user, pw)
        c.cmd("SELECT INBOX")
        needle = "q" * (needle_kb * 1024)
        with ping:
            if needle_kb > 1:
                tag = c.send(b"SEARCH BODY {%d+}\r\n%s" % (len(needle), needle.encode()))
                c.wait(tag)
            else:
                c.cmd("SEARCH BODY " + needle)
        c.close()
        return "%d x %d MB, needle %d KiB" % (n, size, needle_kb)
    return row


def row_search_body_sjis(srv, user, pw, ping):
    """SEARCH CHARSET UTF-8 BODY over parts in Shift_JIS, which iconv
    converts (before: a whole part in one slice)."""
    n, size = (5, 8) if QUICK else (10, 16)
    line = ("日本語のテキストです。半角ｶﾀｶﾅも。" * 2).encode("shift_jis") + b"\r\n"
    body = line * (size * 1024 * 1024 // len(line))
    smtp_fill(srv, user, pw, n, len(body), body=body,
              headers=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=Shift_JIS\r\n"
                      b"Content-Transfer-Encoding: 8bit\r\n")
    c = Imap(srv, user, pw)
    c.cmd("SELECT INBOX")
    needle = "見つからない".encode()
    with ping:
        lines, ok = c.wait(c.send(b"SEARCH CHARSET UTF-8 BODY {%d+}\r\n%s" % (len(needle), needle)))
    assert ok.split()[1] == b"OK" and lines == [b"* SEARCH\r\n"], (lines, ok)
    c.close()
    return "%d x %d MB Shift_JIS, needle not there" % (n, size)


def row_subscribe_list(srv, user, pw, ping):
    n = 20000 if QUICK else 90000
    c = Imap(srv, user, pw)
    with ping:
        out = b"".join(b"s%d SUBSCRIBE box%06d\r\n" % (i, i) for i in range(n))
        done = threading.Event()
        limited = [0]

        def reader():
            for _ in range(n):
                line = c.f.readline()
                if b"[LIMIT]" in line:
                    limited[0] += 1
            done.set()
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        c.s.sendall(out)
        done.wait(TIMEOUT)
        c.cmd('LIST "" "*"')
    c.close()
    return "%d SUBSCRIBE (%d refused with [LIMIT]), LIST \"\" \"*\"" % (n, limited[0])


def row_slow_clients(srv, user, pw, ping):
    conns = []
    with ping:
        for _ in range(50):
            conns.append(connect(srv, "imap"))
            conns.append(connect(srv, "imaps"))   # no ClientHello ever
        for _ in range(2):
            for s in conns[::2]:
                s.send(b"a")
            time.sleep(1)
        c = Imap(srv, user, pw)     # a real client still gets in
        c.cmd("NOOP")
        c.close()
    for s in conns:
        s.close()
    return "50 trickling + 50 silent TLS connections; a new client logged in"


def row_wrong_passwords(srv, user, pw, ping):
    stop = time.monotonic() + 5
    answers = [0]
    lock = threading.Lock()

    def guesser():
        while time.monotonic() < stop:
            try:
                c = Imap(srv)
                while time.monotonic() < stop:
                    _, r = c.cmd('LOGIN "%s" "wrong"' % user)
                    if b" NO " not in r:
                        break
                    with lock:
                        answers[0] += 1
                c.close()
            except (OSError, EOFError):
                pass
    with ping:
        ths = [threading.Thread(target=guesser, daemon=True) for _ in range(30)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(TIMEOUT)
    return "30 connections for 5 s: %.1f failed logins/s" % (answers[0] / 5.0)


def big_mailbox(srv, user, pw, n=20000):
    n = n // 4 if QUICK else n
    smtp_fill(srv, user, pw, n, 300, subject=lambda i: "s%06d" % ((i * 7919) % n))
    return n


def row_sort(crit, n=20000):
    def row(srv, user, pw, ping):
        n_msgs = big_mailbox(srv, user, pw, n)
        c = Imap(srv, user, pw)
        c.cmd("SELECT INBOX")
        c.cmd("FETCH 1 FLAGS")
        with ping:
            c.cmd(crit)
        c.close()
        return "%s over %d messages" % (crit.split(" UTF-8")[0], n_msgs)
    return row


def row_list_many(srv, user, pw, ping):
    c = Imap(srv, user, pw)
    n = 9990
    out = b"".join(b"c%d CREATE box%05d\r\n" % (i, i) for i in range(n))
    c.s.sendall(out)
    for _ in range(n):
        c.f.readline()
    with ping:
        c.cmd('LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))')
    c.close()
    return "LIST-STATUS of %d mailboxes" % (n + 5)


def row_expunge(srv, user, pw, ping):
    n = big_mailbox(srv, user, pw)
    c = Imap(srv, user, pw)
    c.cmd("SELECT INBOX")
    c.cmd("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    with ping:
        c.cmd("EXPUNGE")
    c.close()
    return "EXPUNGE of %d messages" % n


# ---- HTTP rows (h26) ----------------------------------------------------------------

def http_conn(srv, timeout=TIMEOUT):
    return socket.create_connection(srv.addr("http"), timeout=timeout)


def auth_header(user, pw):
    return b"Authorization: Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()) + b"\r\n"


def row_http_pipeline(srv, user, pw, ping):
    req = b"GET /api/v1/messages HTTP/1.1\r\nHost: b\r\n\r\n"
    total = (8 if QUICK else 30) * 1024 * 1024
    with ping:
        s, sent = pipeline_unread(srv, "http", req, total)
        time.sleep(0.5)
    s.close()
    return "%d MB of pipelined GETs offered, %.1f MB taken" % (total >> 20, sent / 1048576)


def row_http_slowloris(srv, user, pw, ping):
    conns = []
    with ping:
        for _ in range(100):
            s = http_conn(srv, timeout=1)
            s.sendall(b"GET /livez HTTP/1.1\r\n")
            conns.append(s)
        closed = 0
        for _ in range(14):
            for s in conns:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            time.sleep(1)
        for s in conns:
            try:
                if s.recv(1) == b"":
                    closed += 1
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        c = http_conn(srv)
        c.sendall(b"GET /livez HTTP/1.1\r\nHost: b\r\n\r\n")
        ok = http_reply(c)[0].startswith(b"HTTP/1.1 200")
        c.close()
    for s in conns:
        s.close()
    return "100 requests a byte a second for 14 s: %d closed; a new client %s" % (
        closed, "served" if ok else "NOT served")


def row_http_raw_slow(srv, user, pw, ping):
    size = (8 if QUICK else 28) * 1024 * 1024
    smtp_fill(srv, user, pw, 1, size)
    s = http_conn(srv)
    s.sendall(b"GET /api/v1/message/latest/raw HTTP/1.1\r\nHost: b\r\n" +
              auth_header(user, pw) + b"\r\n")
    got = 0
    with ping:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stop = time.monotonic() + 5
        while time.monotonic() < stop:
            got += len(s.recv(4096))
            time.sleep(0.01)
    s.close()
    return "GET raw of %d MB read at ~400 KB/s for 5 s (%.1f MB read)" % (size >> 20,
                                                                       got / 1048576)


def row_http_send(srv, user, pw, ping):
    size = (6 if QUICK else 20) * 1024 * 1024
    att = base64.b64encode(os.urandom(size))
    body = (b'{"From":{"Email":"a@example.test"},"To":[{"Email":"b@example.test"}],'
            b'"Subject":"big","Attachments":[{"Filename":"a.bin","Content":"' + att + b'"}]}')
    s = http_conn(srv)
    head = (b"POST /api/v1/send HTTP/1.1\r\nHost: b\r\n" + auth_header(user, pw) +
            b"Content-Length: %d\r\n\r\n" % len(body))
    s.sendall(head + body[:-1])
    with ping:
        s.sendall(body[-1:])
        status, text = http_reply(s)
    s.close()
    assert status.startswith(b"HTTP/1.1 200"), (status, text)
    return "POST /api/v1/send of %.0f MB of JSON (%d MB attachment)" % (len(body) / 1048576,
                                                                       size >> 20)


def ws_open(srv):
    s = http_conn(srv, timeout=3)
    s.sendall(b"GET /api/events HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    return s


def row_ws_ping_flood(srv, user, pw, ping):
    ping_frame = b"\x89\xfd" + b"\x00" * 4 + b"x" * 125      # masked (key 0), 125 bytes
    total = (8 if QUICK else 30) * 1024 * 1024
    with ping:
        s = ws_open(srv)
        s, sent = s, 0
        chunk = ping_frame * 512
        try:
            while sent < total:
                sent += s.send(chunk)
        except (socket.timeout, OSError):
            pass
        time.sleep(0.5)
    s.close()
    return "%d MB of websocket pings, pongs never read: %.1f MB taken" % (total >> 20,
                                                                         sent / 1048576)


def row_http_waiters(srv, user, pw, ping):
    n = 1000
    conns = []
    for i in range(n):
        s = http_conn(srv)
        s.sendall(b"GET /api/v1/wait?timeout=3600&query=subject:m0 HTTP/1.1\r\nHost: b\r\n" +
                  auth_header(user, pw) + b"\r\n")
        conns.append(s)
    time.sleep(1)
    with ping:
        smtp_fill(srv, user, pw, 1, 300)
        answered = 0
        for s in conns:
            if http_reply(s)[0].startswith(b"HTTP/1.1 200"):
                answered += 1
    for s in conns:
        s.close()
    return "%d waiters (timeout 3600 s) woken by one message: %d answered" % (n, answered)


def row_http_search_phrase(srv, user, pw, ping):
    """A phrase search over 100,000 messages, 10 times, while the pinger
    pings: with search-threads (HOSTILE_SEARCH_THREADS, default 2) the
    loop goes on; with 0 it holds every client for the whole search. On
    a copy of HOSTILE_SEARCH_DB (made by `build/bench/search_query fill
    DB 100000`), in a server of its own."""
    import shutil
    import tempfile
    db = os.environ.get("HOSTILE_SEARCH_DB")
    if not db:
        return "skipped: set HOSTILE_SEARCH_DB (bench/search_query fill DB 100000)"
    threads = os.environ.get("HOSTILE_SEARCH_THREADS", "2")
    tmp = tempfile.mkdtemp(prefix="hostile-search-")
    try:
        copy = os.path.join(tmp, "q.db")
        for ext in ("", "-wal"):
            if os.path.exists(db + ext):
                shutil.copyfile(db + ext, copy + ext)
        with harness.Server("--log-level", "warn", "--db", copy,
                            "--search-threads", threads) as big:
            big.db = copy    # for the CLI call
            big.inbox_add("ping", "ping")
            p = Pinger(big, "ping", "ping")
            s = http_conn(big)
            req = (b"GET /api/v1/search?query=%22numbers%20look%22 HTTP/1.1\r\n"
                   b"Host: b\r\n\r\n")
            t0 = time.monotonic()
            with p:
                for _ in range(10):
                    s.sendall(req)
                    status, _body = http_reply(s)
                    if b" 200 " not in status:
                        raise AssertionError(status)
            wall = (time.monotonic() - t0) / 10
            s.close()
            ping.worst, ping.base, ping.peak = p.worst, p.base, p.peak
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return "10 phrase searches, 100,000 messages, search-threads=%s: %.0f ms each" % (
        threads, wall * 1000)


ROWS = [
    ("list-pattern", row_list_pattern),
    ("imap-pipeline", row_pipeline("imap", b"a CAPABILITY\r\n")),
    ("imaps-pipeline", row_pipeline("imaps", b"a CAPABILITY\r\n", tls=True)),
    ("smtp-pipeline", row_pipeline("smtp", b"NOOP\r\n")),
    ("pop3-pipeline", row_pipeline("pop3", b"CAPA\r\n")),
    ("login-literal", row_login_literal),
    ("smtp-parallel", row_smtp_parallel),
    ("search-body", row_search_body(1)),
    ("search-body-64k", row_search_body(64)),
    ("search-body-sjis", row_search_body_sjis),
    ("subscribe-list", row_subscribe_list),
    ("slow-clients", row_slow_clients),
    ("wrong-passwords", row_wrong_passwords),
    ("sort", row_sort("SORT (SUBJECT) UTF-8 ALL")),
    ("thread", row_sort("THREAD REFERENCES UTF-8 ALL")),
    ("sort-100k", row_sort("SORT (SUBJECT) UTF-8 ALL", 100000)),
    ("thread-100k", row_sort("THREAD REFERENCES UTF-8 ALL", 100000)),
    ("list-status", row_list_many),
    ("expunge", row_expunge),
    ("http-pipeline", row_http_pipeline),
    ("http-slowloris", row_http_slowloris),
    ("http-raw-slow", row_http_raw_slow),
    ("http-send", row_http_send),
    ("ws-ping-flood", row_ws_ping_flood),
    ("http-waiters", row_http_waiters),
    ("http-search-phrase", row_http_search_phrase),
]


def main():
    print("%-16s %9s %9s  %s" % ("row", "stall ms", "RSS +MB", "what"))
    for name, fn in ROWS:
        if PICK and name not in PICK:
            continue
        with harness.Server("--log-level", "warn") as srv:
            srv.inbox_add("bench", "bench")
            srv.inbox_add("ping", "ping")
            ping = Pinger(srv, "ping", "ping")
            t0 = time.monotonic()
            try:
                what = fn(srv, "bench", "bench", ping)
            except (OSError, EOFError, AssertionError) as e:
                ping.stop.set()
                what = "did not finish: %s: %s" % (type(e).__name__, e)
            if os.environ.get("HOSTILE_LOG"):
                sys.stderr.write(srv.read_log().decode(errors="replace")[-3000:])
            print("%-16s %9.1f %9.1f  %s (%.0f s)" % (
                name, ping.worst * 1000, (ping.peak - ping.base) / 1024.0, what,
                time.monotonic() - t0), flush=True)
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print("Machine: %d CPUs, %s; loopback only." % (os.cpu_count(), cpu))


main()
