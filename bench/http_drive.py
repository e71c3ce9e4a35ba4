#!/usr/bin/python3
"""bench/http_drive.py: the Python side of bench/http.sh (standard library only).

  http_drive.py send --smtp H:P --size N --subject S
      delivers one message of exactly N bytes (as sent, before the server's
      Received: header) and prints the id of "250 ... queued as ID" (or the
      reply text, for servers that name no id)
  http_drive.py fill --smtp H:P --count N [--connections C] [--start K]
      delivers messages K..K+N-1 of bench/search_query.c's mix (60% about
      1.5 KB, 35% about 8 KB, 5% about 60 KB with a base64 attachment; the
      same headers and rare words) over C SMTP connections; prints
      "sent=N seconds=S msgs_per_s=R"
  http_drive.py maildev-id --web H:P --subject S
      the id of the message with subject S in MailDev's GET /api/email
  http_drive.py latency --http H:P --path PATH [--count N] [--quickack]
      N keep-alive GETs of PATH on one connection, one at a time; prints
      "p50_ms=.. p99_ms=..". With --quickack the client re-arms
      TCP_QUICKACK before every read, so it acknowledges at once instead of
      delaying its ACK: a reply the server writes in several pieces then
      no longer waits for that ACK (Nagle's algorithm, without TCP_NODELAY)
  http_drive.py sse --http H:P --smtp H:P --subscribers N --messages K
                    [--gap SECONDS] [--pid PID]
      opens N Server-Sent Events streams on /api/v1/events (one selector
      loop, non-blocking sockets), then a second process delivers K
      messages over SMTP, one every GAP seconds, noting the time of each
      250 reply; every stream's `new` event for that id is timed from it.
      A stream's arrival time is when the selector returned it readable,
      so the Python loop's own time per socket is not counted against the
      server (a socket that became readable while the loop was busy is
      counted late, never early). Prints one line of key=value: latency
      p50/p99/max in ms over every (subscriber, message) pair, how many
      arrived, and the server's RSS (VmRSS of PID) with all streams open.
      On a loaded machine this is mostly the client's own time (min_ms
      below 0: the sender process noted its 250 after the events came);
      bench/sse_client times the server's side from kernel timestamps.

Only 127.0.0.1; every socket has a timeout and every loop a deadline.
"""

import argparse
import json
import multiprocessing
import os
import re
import selectors
import smtplib
import socket
import sys
import time
import urllib.request

TIMEOUT = 60.0
VOCAB = ("the quarterly numbers look good please review attached invoice shipment "
         "delayed meeting tomorrow account balance customer support ticket resolved "
         "thanks regards team").split()


def hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def message(n):
    """Message n of bench/search_query.c's mix (the same headers, sizes and
    rare word; the filler words come from another generator)."""
    kind = n % 20
    target = 1200 if kind < 12 else 8000 if kind < 19 else 20000
    subj = ("Order %d confirmation" % n if n % 3 == 0 else
            "Weekly report %d" % n if n % 3 == 1 else
            "Password reset for user%d" % (n % 1000))
    head = ("From: Shop %d <shop%d@sender.test>\r\nTo: User %d <user%d@example.test>\r\n"
            "Subject: %s\r\nMessage-ID: <m%d@sender.test>\r\nMIME-Version: 1.0\r\n"
            % (n % 50, n % 50, n % 1000, n % 1000, subj, n))
    if kind == 19:
        head += ("Content-Type: multipart/mixed; boundary=\"bb\"\r\n\r\n--bb\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n\r\n")
    else:
        head += "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    out = [head, "Hello user%d, zanzibar%d " % (n % 1000, n % 5000)]
    size, col, seed = sum(map(len, out)), 0, (n * 2654435761) & 0xffffffff
    while size < (target // 3 if kind == 19 else target):
        seed = (seed * 1103515245 + 12345) & 0xffffffff
        w = VOCAB[(seed >> 8) % len(VOCAB)]
        col += len(w) + 1
        sep = "\r\n" if col > 70 else " "
        if col > 70:
            col = 0
        out.append(w + sep)
        size += len(w) + len(sep)
    out.append("\r\n")
    if kind == 19:
        out.append("--bb\r\nContent-Type: application/octet-stream\r\n"
                   "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
                   "Content-Transfer-Encoding: base64\r\n\r\n")
        line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n"
        while size < target * 3:
            out.append(line)
            size += len(line)
        out.append("--bb--\r\n")
    return "".join(out).encode()


def deliver(s, msg):
    """One transaction on an open smtplib session; the 250's text."""
    s.ehlo_or_helo_if_needed()
    s.mail("shop@sender.test")
    code, resp = s.rcpt("user@example.test")
    if code not in (250, 251):
        raise RuntimeError("RCPT: %d %r" % (code, resp))
    code, resp = s.data(msg)
    if code != 250:
        raise RuntimeError("DATA: %d %r" % (code, resp))
    return resp.decode("utf-8", "replace")


def queued(text):
    m = re.search(r"queued as <?([^\s>]+)>?", text)
    return m.group(1) if m else text


def cmd_send(a):
    body = "Hello, this is the benchmark's fixed-size message.\r\n"
    head = ("From: bench@sender.test\r\nTo: user@example.test\r\nSubject: %s\r\n"
            "Message-ID: <fixed-%d@sender.test>\r\n\r\n" % (a.subject, os.getpid()))
    pad = a.size - len(head) - len(body)
    if pad < 0:
        raise SystemExit("size too small")
    lines, left = [], pad
    while left > 0:
        n = min(left, 78)
        lines.append("x" * (n - 2) + "\r\n" if n >= 2 else "\r\n"[:n])
        left -= n
    msg = (head + body + "".join(lines)).encode()[:a.size]
    if not msg.endswith(b"\r\n"):
        msg = msg[:-2] + b"\r\n"
    with smtplib.SMTP(*hostport(a.smtp), timeout=TIMEOUT) as s:
        print(queued(deliver(s, msg)))


def fill_worker(smtp, first, step, count, out):
    with smtplib.SMTP(*smtp, timeout=TIMEOUT) as s:
        for n in range(first, first + count * step, step):
            deliver(s, message(n))
    out.put(count)


def cmd_fill(a):
    t0 = time.monotonic()
    q = multiprocessing.Queue()
    procs, c = [], a.connections
    for i in range(c):
        share = a.count // c + (1 if i < a.count % c else 0)
        p = multiprocessing.Process(target=fill_worker,
                                    args=(hostport(a.smtp), a.start + i, c, share, q))
        p.start()
        procs.append(p)
    sent = 0
    for p in procs:
        p.join(3600)
        if p.exitcode != 0:
            raise SystemExit("fill: a connection failed (exit %s)" % p.exitcode)
    while not q.empty():
        sent += q.get()
    dt = time.monotonic() - t0
    print("sent=%d seconds=%.1f msgs_per_s=%.0f" % (sent, dt, sent / dt))


def cmd_maildev_id(a):
    host, port = hostport(a.web)
    with urllib.request.urlopen("http://%s:%d/api/email" % (host, port), timeout=TIMEOUT) as r:
        for m in json.load(r):
            if m.get("subject") == a.subject:
                print(m["id"])
                return
    raise SystemExit("maildev-id: no message with subject %r" % a.subject)


def cmd_latency(a):
    host, port = hostport(a.http)
    s = socket.create_connection((host, port), timeout=TIMEOUT)
    req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (a.path, host, port)).encode()
    ts = []
    for _ in range(a.count):
        t0 = time.monotonic()
        s.sendall(req)
        buf, need = b"", None
        while need is None or len(buf) < need:
            if a.quickack:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            data = s.recv(1 << 20)
            if not data:
                raise SystemExit("latency: connection closed")
            buf += data
            if need is None and b"\r\n\r\n" in buf:
                head = buf.split(b"\r\n\r\n", 1)[0]
                if not head.startswith(b"HTTP/1.1 200"):
                    raise SystemExit("latency: %r" % head[:200])
                m = re.search(rb"(?im)^content-length: *(\d+)", head)
                if not m:
                    raise SystemExit("latency: no Content-Length")
                need = len(head) + 4 + int(m.group(1))
        ts.append((time.monotonic() - t0) * 1000.0)
    s.close()
    ts.sort()
    print("p50_ms=%.2f p99_ms=%.2f" % (pct(ts, 0.5), pct(ts, 0.99)))


# ---- SSE -------------------------------------------------------------------


class Stream:
    """One /api/v1/events response: head, then chunked event blocks."""

    def __init__(self, sock):
        self.sock = sock
        self.raw = b""          # undecoded bytes
        self.head = None
        self.text = b""         # de-chunked event text
        self.got = {}           # message id -> arrival time


def dechunk(st):
    while True:
        i = st.raw.find(b"\r\n")
        if i < 0:
            return
        size = int(st.raw[:i].split(b";")[0], 16)
        if len(st.raw) < i + 2 + size + 2:
            return
        if size == 0:
            raise EOFError("stream ended")
        st.text += st.raw[i + 2:i + 2 + size]
        st.raw = st.raw[i + 2 + size + 2:]


def take_events(st, t):
    while b"\n\n" in st.text:
        block, st.text = st.text.split(b"\n\n", 1)
        fields = dict(l.split(b": ", 1) for l in block.split(b"\n") if b": " in l
                      and not l.startswith(b":"))
        if fields.get(b"event") == b"new":
            st.got.setdefault(str(json.loads(fields[b"data"])["ID"]), t)


def sender(smtp, count, gap, out):
    with smtplib.SMTP(*smtp, timeout=TIMEOUT) as s:
        for i in range(count):
            time.sleep(gap)
            text = deliver(s, b"From: a@sender.test\r\nTo: b@example.test\r\n"
                           b"Subject: sse bench %d\r\n\r\nhello\r\n" % i)
            out.put((queued(text), time.monotonic()))
    out.put(None)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def cmd_sse(a):
    host, port = hostport(a.http)
    sel = selectors.DefaultSelector()
    req = ("GET /api/v1/events HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n"
           % (host, port)).encode()
    streams = []
    for _ in range(a.subscribers):
        s = socket.create_connection((host, port), timeout=TIMEOUT)
        s.sendall(req)
        s.setblocking(False)
        st = Stream(s)
        streams.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    deadline = time.monotonic() + TIMEOUT
    heads = 0

    # Every stream's head first (the server answers 200 and holds it open).
    while heads < len(streams):
        if time.monotonic() > deadline:
            raise SystemExit("sse: %d of %d streams answered" % (heads, len(streams)))
        for key, _ in sel.select(1.0):
            st = key.data
            data = st.sock.recv(65536)
            if not data:
                raise SystemExit("sse: a stream was closed before its head")
            st.raw += data
            if st.head is None and b"\r\n\r\n" in st.raw:
                st.head, st.raw = st.raw.split(b"\r\n\r\n", 1)
                if not st.head.startswith(b"HTTP/1.1 200"):
                    raise SystemExit("sse: %r" % st.head[:200])
                heads += 1
            if st.head is not None:
                dechunk(st)
                st.text = b""        # events before the start do not count
    rss_open = rss_kb(a.pid) if a.pid else 0

    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=sender, args=(hostport(a.smtp), a.messages, a.gap, q))
    p.start()
    sent, done = {}, False
    deadline = time.monotonic() + a.messages * a.gap + TIMEOUT
    while time.monotonic() < deadline:
        ready = sel.select(0.2)
        t = time.monotonic()
        for key, _ in ready:
            st = key.data
            data = st.sock.recv(65536)
            if not data:
                raise SystemExit("sse: a stream was closed by the server")
            st.raw += data
            dechunk(st)
            take_events(st, t)
        while not q.empty():
            item = q.get()
            if item is None:
                done = True
            else:
                sent[item[0]] = item[1]
        if done and all(len(st.got) >= len(sent) and all(i in st.got for i in sent)
                        for st in streams):
            break
    p.join(TIMEOUT)
    lat, missing = [], 0
    for st in streams:
        for mid, t250 in sent.items():
            if mid in st.got:
                lat.append((st.got[mid] - t250) * 1000.0)
            else:
                missing += 1
    lat.sort()
    print("subscribers=%d messages=%d events=%d missing=%d p50_ms=%.2f p99_ms=%.2f "
          "max_ms=%.2f min_ms=%.2f rss_kb=%d"
          % (len(streams), len(sent), len(lat), missing, pct(lat, 0.5), pct(lat, 0.99),
             lat[-1] if lat else float("nan"), lat[0] if lat else float("nan"), rss_open))
    for st in streams:
        st.sock.close()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--smtp", required=True)
    s.add_argument("--size", type=int, default=2048)
    s.add_argument("--subject", default="bench 2k")
    f = sub.add_parser("fill")
    f.add_argument("--smtp", required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--connections", type=int, default=4)
    f.add_argument("--start", type=int, default=0)
    m = sub.add_parser("maildev-id")
    m.add_argument("--web", required=True)
    m.add_argument("--subject", required=True)
    l = sub.add_parser("latency")
    l.add_argument("--http", required=True)
    l.add_argument("--path", required=True)
    l.add_argument("--count", type=int, default=200)
    l.add_argument("--quickack", action="store_true")
    e = sub.add_parser("sse")
    e.add_argument("--http", required=True)
    e.add_argument("--smtp", required=True)
    e.add_argument("--subscribers", type=int, default=1000)
    e.add_argument("--messages", type=int, default=50)
    e.add_argument("--gap", type=float, default=0.1)
    e.add_argument("--pid", type=int, default=0)
    a = ap.parse_args()
    {"send": cmd_send, "fill": cmd_fill, "maildev-id": cmd_maildev_id, "latency": cmd_latency,
     "sse": cmd_sse}[a.cmd](a)


if __name__ == "__main__":
    main()
