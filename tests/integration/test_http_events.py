"""Live events over HTTP: the Server-Sent Events stream /api/v1/events, the
Mailpit-style websocket /api/events, and /api/v1/wait. Messages arrive
over SMTP, flags change over IMAP, deletes come from the API; every event
is checked by its type and data, scoped by the credentials used."""

import base64
import hashlib
import imaplib
import json
import os
import socket
import struct
import threading
import time

import harness
from harness import SOCK_TIMEOUT
from http_helpers import basic, request
from imap_helpers import simple_message, smtp_send

WAIT = 10.0


class SSE:
    """A raw EventSource: parses `id:`/`event:`/`data:` blocks."""

    def __init__(self, server, auth=None, headers=None, rcvbuf=None, tls=False):
        host, port = server.addr("https" if tls else "http")
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.settimeout(SOCK_TIMEOUT)
        if rcvbuf:
            # Before connect, so that the window offered stays this small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        if tls:
            self.sock = harness.insecure_context().wrap_socket(self.sock)
        h = {"Host": "%s:%d" % (host, port), "Accept": "text/event-stream"}
        if auth:
            h.update(basic(*auth))
        h.update(headers or {})
        req = "GET /api/v1/events HTTP/1.1\r\n" + "".join(
            "%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.sock.sendall(req.encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.head = head
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        self.text = ""

    def _fill(self, deadline):
        self.sock.settimeout(max(0.05, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("stream closed")
        self.buf += data

    def _until(self, sep, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while sep not in self.buf:
            self._fill(deadline)
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _dechunk(self, deadline):
        # One chunk at a time: "size\r\ndata\r\n".
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        size_line, rest = self.buf.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(rest) < size + 2:
            self._fill(deadline)
            size_line, rest = self.buf.split(b"\r\n", 1)
        self.text += rest[:size].decode()
        self.buf = rest[size + 2:]
        if size == 0:
            raise EOFError("stream ended")

    def event(self, timeout=WAIT, want=None):
        """The next event (skipping comments and, if `want`, other types)."""
        deadline = time.monotonic() + timeout
        while True:
            while "\n\n" not in self.text:
                if time.monotonic() > deadline:
                    raise AssertionError("no event within %.0f s" % timeout)
                self._dechunk(deadline)
            block, self.text = self.text.split("\n\n", 1)
            fields = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    continue
                k, _, v = line.partition(": ")
                fields[k] = v
            if "event" not in fields:
                continue
            if want and fields["event"] not in want:
                continue
            return fields["event"], json.loads(fields["data"]), fields.get("id")

    def close(self):
        self.sock.close()


class WebSocket:
    """A minimal RFC 6455 client: handshake, masked frames, unmasked reads."""

    def __init__(self, server, path="/api/events", origin=None, auth=None):
        host, port = server.addr("http")
        self.sock = socket.create_connection((host, port), timeout=SOCK_TIMEOUT)
        self.key = base64.b64encode(os.urandom(16)).decode()
        h = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: " + self.key,
             "Sec-WebSocket-Version: 13"]
        if origin:
            h.append("Origin: " + origin)
        if auth:
            h.extend("%s: %s" % kv for kv in basic(*auth).items())
        self.sock.sendall(("\r\n".join(h) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                break
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode()
        self.status = int(self.head.split(" ", 2)[1])

    def expected_accept(self):
        digest = hashlib.sha1((self.key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
        return base64.b64encode(digest.digest()).decode()

    def _need(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("websocket closed")
            self.buf += data

    def frame(self):
        self._need(2)
        op, ln = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        assert not self.buf[1] & 0x80, "server frames are never masked"
        off = 2
        if ln == 126:
            self._need(4)
            ln, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif ln == 127:
            self._need(10)
            ln, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + ln)
        payload, self.buf = self.buf[off:off + ln], self.buf[off + ln:]
        return op, payload

    def message(self, want=None):
        while True:
            op, payload = self.frame()
            if op == 0x1:
                m = json.loads(payload)
                if want is None or m["Type"] in want:
                    return m

    def send(self, op, payload=b""):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | op, 0x80 | len(payload)]) + mask + masked)

    def close(self):
        self.sock.close()


class EventsTest(harness.TestCase):
    def test_sse_new_update_delete_stats(self):
        ev = SSE(self.server)
        self.addCleanup(ev.close)
        self.assertEqual(ev.status, 200, ev.head)
        self.assertIn(b"content-type: text/event-stream", ev.head.lower())
        msg_id = smtp_send(self.server, "dev", "dev", simple_message("sse one"))
        kind, data, eid = ev.event(want=("new",))
        self.assertEqual((data["ID"], data["Subject"], data["Read"], data["Inbox"]),
                         (msg_id, "sse one", False, "dev"))
        self.assertEqual(data["RcptTo"], ["rcpt@example.test"])
        self.assertTrue(eid.isdigit())
        kind, data, _ = ev.event(want=("stats",))
        self.assertEqual(data["Total"], len(self.server.message_ids()))

        # \Seen set over IMAP is an update with Read true.
        host, port = self.server.addr("imap")
        m = imaplib.IMAP4(host, port, timeout=SOCK_TIMEOUT)
        m.login("dev", "dev")
        m.select("INBOX")
        typ, _ = m.uid("SEARCH", None, "ALL")
        m.store(b"*", "+FLAGS", "(\\Seen Important)")
        m.logout()
        kind, data, _ = ev.event(want=("update",))
        self.assertEqual(data["ID"], msg_id)
        self.assertTrue(data["Read"])
        self.assertEqual(data["Tags"], ["Important"])

        r = request(self.server, "DELETE", "/api/v1/messages", body={"IDs": [msg_id]})
        self.assertEqual(r.status, 200, r)
        kind, data, _ = ev.event(want=("delete",))
        self.assertEqual(data, {"ID": msg_id})

    def test_sse_resumes_from_last_event_id(self):
        first = SSE(self.server)
        one = smtp_send(self.server, "dev", "dev", simple_message("resume one"))
        _, _, eid = first.event(want=("new",))
        first.close()
        two = smtp_send(self.server, "dev", "dev", simple_message("resume two"))
        three = smtp_send(self.server, "dev", "dev", simple_message("resume three"))
        again = SSE(self.server, headers={"Last-Event-ID": eid})
        self.addCleanup(again.close)
        got = [again.event(want=("new",))[1]["ID"] for _ in range(2)]
        self.assertEqual(got, [two, three])
        self.assertNotIn(one, got)

    def test_sse_is_scoped_by_credentials(self):
        self.server.inbox_add("ev-a", "pw-a")
        self.server.inbox_add("ev-b", "pw-b")
        ev = SSE(self.server, auth=("ev-a", "pw-a"))
        self.addCleanup(ev.close)
        smtp_send(self.server, "ev-b", "pw-b", simple_message("for b"))
        mine = smtp_send(self.server, "ev-a", "pw-a", simple_message("for a"))
        kind, data, _ = ev.event(want=("new",))
        self.assertEqual((data["ID"], data["Subject"]), (mine, "for a"))
        kind, data, _ = ev.event(want=("stats",))
        self.assertEqual(data["Total"], 1)

    def test_cross_origin_refused(self):
        host, port = self.server.addr("http")
        ev = SSE(self.server, headers={"Origin": "http://evil.example"})
        self.addCleanup(ev.close)
        self.assertEqual(ev.status, 403)
        same = SSE(self.server, headers={"Origin": "http://%s:%d" % (host, port)})
        self.addCleanup(same.close)
        self.assertEqual(same.status, 200)
        ws = WebSocket(self.server, origin="http://evil.example")
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 403, ws.head)

    def test_one_event_to_many_streams(self):
        """Every stream of a fan-out gets the event, the same id and data,
        for several events in a row (each written once and shared)."""
        sse = [SSE(self.server) for _ in range(40)]
        ws = [WebSocket(self.server) for _ in range(10)]
        for c in sse + ws:
            self.addCleanup(c.close)
        ids = [smtp_send(self.server, "dev", "dev", simple_message("fan %d" % i))
               for i in range(3)]
        seen = set()
        for c in sse:
            got = [c.event(want=("new",)) for _ in ids]
            self.assertEqual([(d["ID"], d["Subject"]) for _, d, _ in got],
                             [(i, "fan %d" % n) for n, i in enumerate(ids)])
            seen.add(tuple((e, json.dumps(d, sort_keys=True)) for _, d, e in got))
        self.assertEqual(len(seen), 1)
        for c in ws:
            got = [c.message(want=("new",))["Data"] for _ in ids]
            self.assertEqual([d["ID"] for d in got], ids)

    def test_burst_to_many_streams_in_order(self):
        """200 SSE and 20 websocket streams each get every `new` of a burst
        from 4 SMTP clients at once (several messages to a commit, several
        commits to a pass), in the order of the ids, none twice: a sentinel
        delivered last is the next `new` after the burst. A stream that
        never reads meanwhile does not hold the others up, and what it has
        when it reads at last is the same sequence (or its start, if it was
        cut off at the bound)."""
        sse = [SSE(self.server) for _ in range(200)]
        ws = [WebSocket(self.server) for _ in range(20)]
        lazy = SSE(self.server, rcvbuf=4096)
        for c in sse + ws + [lazy]:
            self.addCleanup(c.close)
        ids, errors = [], []

        def burst(k):
            try:
                for i in range(10):
                    ids.append(smtp_send(self.server, "dev", "dev",
                                         simple_message("burst %d.%d" % (k, i))))
            except Exception as e:  # reported below, not lost in the thread
                errors.append(e)
        threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), 40)
        want = sorted(ids, key=int)
        want.append(smtp_send(self.server, "dev", "dev", simple_message("sentinel")))
        for n, c in enumerate(sse):
            got = [c.event(want=("new",))[1]["ID"] for _ in want]
            self.assertEqual(got, want, "SSE stream %d" % n)
        for n, c in enumerate(ws):
            got = [c.message(want=("new",))["Data"]["ID"] for _ in want]
            self.assertEqual(got, want, "websocket %d" % n)
        got = []
        try:
            while len(got) < len(want):
                got.append(lazy.event(want=("new",))[1]["ID"])
        except EOFError:
            pass
        self.assertEqual(got, want[:len(got)])

    def test_parallel_fanout_with_slow_and_closing_streams(self):
        """The fan-out's writes are made by the loop and writer threads
        together (src/fanout.c): 240 SSE and 60 websocket streams that
        read, 100 messages sent fast from 4 SMTP clients, each event about
        3 KB. Beside them, streams that never read (their sockets fill: the
        partial writes and EAGAINs are queued, in order, behind the kernel's
        buffers), others of another inbox's scope that never read either
        and see 16 KB events besides, and so are ended past the bound, and
        20 streams closed by their clients during the burst.
        (A stream left unread while the burst goes on would pass the
        bound too: the readers are read all along.) Every reading
        stream gets every `new` exactly once, in id order, its framing
        intact (chunked SSE, websocket frames); the slow ones, when read at
        last, the same sequence or its start; the server stays up."""
        self.server.inbox_add("fan-a", "pw-a")
        self.server.inbox_add("fan-b", "pw-b")
        auth = ("fan-a", "pw-a")
        sse = [SSE(self.server, auth=auth) for _ in range(240)]
        ws = [WebSocket(self.server, auth=auth) for _ in range(60)]
        slow = [SSE(self.server, auth=auth, rcvbuf=4096) for _ in range(4)]
        cut = [SSE(self.server, rcvbuf=4096) for _ in range(3)]
        closing = [SSE(self.server, auth=auth) for _ in range(14)] + \
            [WebSocket(self.server) for _ in range(6)]
        for c in sse + ws + slow + cut + closing:
            self.addCleanup(c.close)
        for c in ws:
            self.assertEqual(c.status, 101, c.head)
        pad = "\r\n ".join(" ".join("p%04d" % i for _ in range(10)) for i in range(45))
        big = "\r\n ".join(" ".join("w%05d" % i for _ in range(10)) for i in range(250))
        ids, errors = [], []

        def burst(k):
            try:
                for i in range(25):
                    ids.append(smtp_send(self.server, "fan-a", "pw-a",
                                         simple_message("fan %d.%d %s" % (k, i, pad))))
                    # Only the all-inbox streams see these: they pass the bound.
                    smtp_send(self.server, "fan-b", "pw-b", simple_message(big))
                    if i == 5 and k < len(closing) // 5:
                        for c in closing[k * 5:(k + 1) * 5]:
                            c.close()
            except Exception as e:  # reported below, not lost in the thread
                errors.append(e)
        threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        want_n = 100
        got = {id(c): [] for c in sse + ws}
        deadline = time.monotonic() + 120
        while any(len(v) < want_n for v in got.values()):
            self.assertLess(time.monotonic(), deadline, "events missing")
            for c in sse:
                if len(got[id(c)]) < want_n:
                    got[id(c)].append(c.event(want=("new",))[1]["ID"])
            for c in ws:
                if len(got[id(c)]) < want_n:
                    got[id(c)].append(c.message(want=("new",))["Data"]["ID"])
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), want_n)
        want = sorted(ids, key=int)
        want.append(smtp_send(self.server, "fan-a", "pw-a", simple_message("sentinel")))
        for n, c in enumerate(sse):
            got[id(c)].append(c.event(want=("new",))[1]["ID"])
            self.assertEqual(got[id(c)], want, "SSE stream %d" % n)
        for n, c in enumerate(ws):
            got[id(c)].append(c.message(want=("new",))["Data"]["ID"])
            self.assertEqual(got[id(c)], want, "websocket %d" % n)
        for n, c in enumerate(slow):
            self.assertEqual([c.event(want=("new",))[1]["ID"] for _ in want], want,
                             "slow stream %d" % n)
        for n, c in enumerate(cut):
            seen = []
            with self.assertRaises(EOFError, msg="stream %d was not ended" % n):
                while True:
                    seen.append(c.event(want=("new",))[1]["ID"])
            mine = [i for i in seen if i in set(want)]
            self.assertEqual(mine, want[:len(mine)], "cut stream %d" % n)
            self.assertLess(len(mine), len(want))
        r = request(self.server, "GET", "/api/v1/info")
        self.assertEqual(r.status, 200, r)

    def test_stream_that_does_not_read_ends_at_the_bound(self):
        """A stream whose client does not read is ended once about 1 MB
        waits for it (the end of the chunked reply; an EventSource
        reconnects with Last-Event-ID); what it got is the start of the
        sequence, in order. Two streams that read get all of it."""
        lazy = SSE(self.server, rcvbuf=4096)
        readers = [SSE(self.server) for _ in range(2)]
        for c in readers + [lazy]:
            self.addCleanup(c.close)
        n = 100
        got = [[] for _ in readers]

        def read(k):
            try:
                while len(got[k]) < n:
                    got[k].append(readers[k].event(want=("new",))[1]["ID"])
            except (AssertionError, EOFError, OSError) as e:
                got[k].append(repr(e))
        threads = [threading.Thread(target=read, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        # Each `new` event is about 16 KB here (a long subject): 100 of
        # them are well past the bound and the kernel's buffers (64 KB
        # asked for the server's side, 4 KB for the client's).
        subject = "\r\n ".join(" ".join("w%05d" % i for j in range(10))
                                for i in range(900))
        ids = [smtp_send(self.server, "dev", "dev", simple_message(subject + " %d" % i))
               for i in range(n)]
        for t in threads:
            t.join(60)
        for k in range(2):
            self.assertEqual(got[k], ids, "reader %d" % k)
        seen = []
        with self.assertRaises(EOFError):
            while True:
                seen.append(lazy.event(want=("new",))[1]["ID"])
        self.assertLess(len(seen), n)
        self.assertEqual(seen, ids[:len(seen)])

    def test_websocket_frames(self):
        ws = WebSocket(self.server)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101, ws.head)
        self.assertIn("Sec-WebSocket-Accept: " + ws.expected_accept(), ws.head)
        msg_id = smtp_send(self.server, "dev", "dev", simple_message("over the websocket"))
        m = ws.message(want=("new",))
        self.assertEqual(sorted(m), ["Data", "Type"])
        self.assertEqual((m["Data"]["ID"], m["Data"]["Subject"]), (msg_id, "over the websocket"))
        self.assertEqual(ws.message(want=("stats",))["Data"]["Total"],
                         len(self.server.message_ids()))
        ws.send(0x9, b"are you there")
        while True:
            op, payload = ws.frame()
            if op == 0xA:
                break
        self.assertEqual(payload, b"are you there")
        ws.send(0x8, b"\x03\xe8")
        while True:
            op, payload = ws.frame()
            if op == 0x8:
                break
        self.assertEqual(payload, b"\x03\xe8")

    def test_websocket_bad_handshakes(self):
        host, port = self.server.addr("http")
        r = request(self.server, "GET", "/api/events")
        self.assertEqual(r.status, 400)
        r = request(self.server, "GET", "/api/events",
                    headers={"Upgrade": "websocket", "Connection": "Upgrade",
                             "Sec-WebSocket-Key": "short", "Sec-WebSocket-Version": "13"})
        self.assertEqual(r.status, 400)
        # An unmasked client frame is a protocol error: the server closes.
        ws = WebSocket(self.server)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101)
        ws.sock.sendall(b"\x81\x02hi")
        with self.assertRaises(EOFError):
            while True:
                ws.frame()


class EventsTlsTest(harness.TestCase):
    server_args = ("--https", "127.0.0.1:0")

    def test_sse_over_tls_beside_plain(self):
        """Over TLS the event goes through the connection's bufferevent (the
        plain streams are written directly): both get the same events."""
        tls = [SSE(self.server, tls=True) for _ in range(3)]
        plain = SSE(self.server)
        for c in tls + [plain]:
            self.addCleanup(c.close)
        self.assertEqual([c.status for c in tls], [200] * 3)
        ids = [smtp_send(self.server, "dev", "dev", simple_message("tls %d" % i))
               for i in range(3)]
        for c in tls + [plain]:
            self.assertEqual([c.event(want=("new",))[1]["ID"] for _ in ids], ids)


class WaitTest(harness.TestCase):
    def test_already_there_and_next_to_arrive(self):
        old = smtp_send(self.server, "dev", "dev", simple_message("wait old"))
        r = request(self.server, "GET", "/api/v1/wait?query=subject:%22wait%20old%22&timeout=5")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["ID"], old)
        self.assertEqual(r.json()["Subject"], "wait old")

        result = {}

        def waiter():
            result["r"] = request(self.server, "GET",
                                  "/api/v1/wait?query=subject:later&timeout=20&after=" + old,
                                  conn=None)

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.5)
        smtp_send(self.server, "dev", "dev", simple_message("not this one"))
        new = smtp_send(self.server, "dev", "dev", simple_message("later it came"))
        t.join(WAIT + 20)
        self.assertFalse(t.is_alive())
        r = result["r"]
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["ID"], r.json()["Subject"]), (new, "later it came"))
        # Waiting did not mark it read.
        r = request(self.server, "GET", "/api/v1/messages")
        read = {m["ID"]: m["Read"] for m in r.json()["messages"]}
        self.assertFalse(read[new])

    def test_timeout_and_bad_parameters(self):
        t0 = time.monotonic()
        r = request(self.server, "GET", "/api/v1/wait?query=subject:never&timeout=1")
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertEqual(r.status, 408)
        self.assertEqual(r.json(), {"Error": "timeout: no matching message"})
        for q in ("timeout=-1", "timeout=abc", "timeout=999999", "after=x",
                  "query=before:notadate"):
            r = request(self.server, "GET", "/api/v1/wait?" + q)
            self.assertEqual(r.status, 400, (q, r))

    def test_scoped_wait_ignores_other_inboxes(self):
        self.server.inbox_add("wt-a", "pw-a")
        self.server.inbox_add("wt-b", "pw-b")
        result = {}

        def waiter():
            result["r"] = request(self.server, "GET", "/api/v1/wait?timeout=20",
                                  auth=("wt-a", "pw-a"))

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.5)
        smtp_send(self.server, "wt-b", "pw-b", simple_message("for b only"))
        mine = smtp_send(self.server, "wt-a", "pw-a", simple_message("for a"))
        t.join(WAIT + 20)
        r = result["r"]
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["ID"], mine)

    def test_many_waiters_each_answered_by_its_own_query(self):
        # One new message wakes the waiters whose query it matches, and
        # only those: the evaluation shared between waiters of the same
        # query text (and tz) must not leak into another's.
        host, port = self.server.addrs["http"]
        queries = [("subject:alpha", ""), ("subject:beta", ""), ("", ""),
                   ("before:2000-01-01", ""), ("before:2000-01-01", "Pacific/Kiritimati")]
        mark = smtp_send(self.server, "dev", "dev", simple_message("before the waiters"))
        socks = []
        for i in range(40):
            q, tz = queries[i % len(queries)]
            path = "/api/v1/wait?timeout=3&after=%s&query=%s&tz=%s" % (mark, q, tz)
            c = socket.create_connection((host, port), timeout=SOCK_TIMEOUT)
            c.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                       % path).encode())
            socks.append((q, c))
        time.sleep(0.5)
        mid = smtp_send(self.server, "dev", "dev", simple_message("alpha news"))
        got = {}
        for i, (q, c) in enumerate(socks):
            data = b""
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
            c.close()
            status = int(data.split(b" ", 2)[1])
            got.setdefault(q, set()).add(status)
            if status == 200:
                body = json.loads(data.split(b"\r\n\r\n", 1)[1])
                self.assertEqual(body["ID"], mid)
                self.assertEqual(body["Subject"], "alpha news")
        self.assertEqual(got, {"subject:alpha": {200}, "": {200},
                               "subject:beta": {408}, "before:2000-01-01": {408}})


if __name__ == "__main__":
    harness.main()
