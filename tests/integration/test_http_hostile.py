#!/usr/bin/python3
"""The HTTP listener and the websocket against hostile clients (issue 11):
pipelined requests never read, requests trickled a byte a second, the
bounds on request lines, headers and bodies with their status codes,
malformed lengths and encodings, websocket frames that break RFC 6455 and
a ping flood whose pongs are never read, and the send API's bounds on
JSON depth, attachments and base64. Small sizes, bounded time; timing
itself is bench/hostile.py's."""

import base64
import json
import os
import re
import socket
import struct
import threading
import time

import harness
import http_helpers as hh
from http_helpers import read_reply
from harness import SOCK_TIMEOUT

# include/mailsnare/http.h
HTTP_SLOW_S = 10
HTTP_BODY_MAX = 5 * 1024 * 1024


def sanitized():
    """An ASan build keeps freed memory in quarantine: its RSS says
    nothing of what the server holds."""
    with open(harness.binary(), "rb") as f:
        return b"__asan_init" in f.read()


SANITIZED = sanitized()


def connect(server, timeout=SOCK_TIMEOUT):
    return socket.create_connection(server.addr("http"), timeout=timeout)


def exchange(server, data):
    """Sends data; the first reply's status line and body (b"" if none)."""
    with connect(server) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            return read_reply(s)
        except (EOFError, ConnectionResetError):
            return b"", b""


def closed_within(s, seconds):
    """Reads (and drops) until the peer closes: True, or False at the end
    of the time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


class LimitsTest(harness.TestCase):
    """Each bound answers its status code, and the server goes on."""

    def status(self, data):
        line, body = exchange(self.server, data)
        m = re.match(rb"HTTP/1\.[01] (\d+) ", line)
        return (int(m.group(1)) if m else None), body

    def test_header_bounds(self):
        big = b"a" * (70 * 1024)
        cases = [
            (b"GET /livez HTTP/1.1\r\nX: " + big + b"\r\n\r\n", 431),
            (b"GET /livez HTTP/1.1\r\n" + b"X-A: b\r\n" * 12000 + b"\r\n", 431),
            (b"GET /livez?" + big + b" HTTP/1.1\r\n\r\n", 414),
            (b"PUT /api/v1/messages HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
            (b"PUT /api/v1/messages HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 400),
            (b"PUT /api/v1/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"ffffffffffffffff\r\n", 413),
        ]
        for data, want in cases:
            self.assertEqual(self.status(data)[0], want, data[:80])
        self.assertEqual(hh.request(self.server, "GET", "/livez").status, 200)

    def test_body_over_5mb(self):
        """5 MB for every request but the send API's (whose limit is the
        message size as base64), told from the request line before the
        body comes."""
        self.server.inbox_add("bigsend", "pw")
        body = b"[" * (HTTP_BODY_MAX + 1)
        for path in (b"/api/v1/messages", b"/api/v1/tags", b"/livez"):
            code, _ = self.status(b"PUT %s HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                                  % (path, len(body)) + body)
            self.assertEqual(code, 413, path)
        for path in (b"/api/v1/send", b"/api/v1/inboxes/bigsend/send",
                     b"http://x/api/v1/send?a=b"):
            code, text = self.status(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                                     b"\r\n" % (path, len(body)) + body)
            self.assertEqual(code, 400, path)
            self.assertTrue(text.startswith(b"invalid JSON: "), text[:80])
        # the same on a keep-alive connection after another request
        with connect(self.server) as s:
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(read_reply(s)[0].startswith(b"HTTP/1.1 200"))
            s.sendall(b"PUT /api/v1/messages HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                      % len(body))
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertTrue(read_reply(s)[0].startswith(b"HTTP/1.1 413"))

    def test_versions_and_uris(self):
        line, _ = exchange(self.server, b"GET /livez HTTP/1.0\r\n\r\n")
        self.assertTrue(line.startswith(b"HTTP/1.0 200 "), line)
        line, _ = exchange(self.server, b"GET http://x/livez HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(line.startswith(b"HTTP/1.1 200 "), line)

    def test_percent_encoding(self):
        get = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
        self.assertEqual(self.status(get % b"/api/v1/message/1%00/raw")[0], 400)
        self.assertEqual(self.status(get % b"/api/v1/message/%zz")[0], 404)
        self.assertEqual(self.status(get % b"/api/v1/message/%C0%AF")[0], 404)
        self.assertEqual(self.status(get % b"/api/v1/inboxes/%C0%AF/api/v1/messages")[0], 404)
        # a NUL or an overlong sequence in a query is a term like another
        self.assertEqual(self.status(get % b"/api/v1/search?query=a%00b")[0], 200)
        self.assertEqual(self.status(get % b"/api/v1/search?query=%C0%AF%FF")[0], 200)

    def test_paging_and_query_bounds(self):
        get = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
        self.assertEqual(self.status(get % b"/api/v1/messages?limit=-5")[0], 400)
        self.assertEqual(self.status(get % b"/api/v1/messages?start=-3")[0], 400)
        code, body = self.status(get % b"/api/v1/messages?limit=99999999999999999999")
        self.assertEqual(code, 200)
        code, body = self.status(get % b"/api/v1/messages?start=9223372036854775807")
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body)["messages"], [])
        # 4.9 KB: over the query's bound, under the request line's (16 KiB)
        terms = b"+".join(b"t%d" % i for i in range(1000))
        code, body = self.status(get % (b"/api/v1/search?query=" + terms))
        self.assertEqual((code, body), (400, b"Error: query longer than 4096 bytes"))
        code, body = self.status(get % (b"/api/v1/search?query=" + b"%22" * 2001))
        self.assertEqual(code, 200)

    def test_send_bounds(self):
        base = {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}],
                "Subject": "s", "Text": "t"}
        deep = b'{"From":' + b"[" * 100000 + b"]" * 100000 + b"}"
        r = hh.request(self.server, "POST", "/api/v1/send", deep)
        self.assertEqual(r.status, 400)
        self.assertIn(b"maximum parsing depth", r.body)
        r = hh.request(self.server, "PUT", "/api/v1/messages", deep)
        self.assertEqual(r.status, 400)
        many = dict(base, Attachments=[{"Filename": "a%d" % i, "Content": "aGk="}
                                       for i in range(10000)])
        r = hh.request(self.server, "POST", "/api/v1/send", many)
        self.assertEqual((r.status, r.body), (400, b"Attachments: want an array (at most 100)"))
        for junk in ("!!!!garbage***", "aGk", "\u00e9\u00e9\u00e9\u00e9"):
            r = hh.request(self.server, "POST", "/api/v1/send",
                           dict(base, Attachments=[{"Filename": "a", "Content": junk}]))
            self.assertEqual((r.status, r.body),
                             (400, b"Attachments[0]: Content is not base64"), junk)
        self.assertEqual(hh.request(self.server, "POST", "/api/v1/send", base).status, 200)


class SlowClientsTest(harness.TestCase):

    def test_pipelined_requests_never_read(self):
        """16 MB of pipelined GETs, no reply read: the server stops reading
        instead of holding them (it held all 16 MB before)."""
        pid = self.server.proc.pid
        before = harness.rss_kb(pid)
        s = connect(self.server, timeout=3)
        data = b"GET /api/v1/messages HTTP/1.1\r\nHost: x\r\n\r\n" * 400000
        sent = 0
        try:
            while sent < len(data):
                sent += s.send(data[sent:sent + 65536])
        except (socket.timeout, OSError):
            pass
        time.sleep(0.5)
        grown = harness.rss_kb(pid) - before
        self.assertLess(sent, len(data), "the server read every request")
        if not SANITIZED:
            self.assertLess(grown, 6 * 1024, "RSS grew by %d KiB" % grown)
        self.assertEqual(hh.request(self.server, "GET", "/livez").status, 200)
        s.close()

    def test_trickled_request_closed_idle_kept(self):
        """A request a byte a second is closed after HTTP_SLOW_S; a
        keep-alive connection idle as long is not."""
        idle = hh.connection(self.server)
        self.assertEqual(hh.request(self.server, "GET", "/livez", conn=idle).status, 200)
        slow = connect(self.server)
        slow.sendall(b"GET /livez HTTP/1.1\r\n")
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < HTTP_SLOW_S + 10:
            try:
                slow.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_within(slow, 1.0):
                closed = True
                break
        took = time.monotonic() - start
        self.assertTrue(closed, "a request trickled for %.0f s is still open" % took)
        self.assertGreaterEqual(took, HTTP_SLOW_S - 1)
        r = hh.request(self.server, "GET", "/livez", conn=idle)
        self.assertEqual(r.status, 200)
        idle.close()
        slow.close()


class TlsHandshakeTest(harness.TestCase):
    server_args = ("--https", "127.0.0.1:0", "--login-timeout", "3")

    def test_trickled_handshake_closed_at_login_timeout(self):
        """A TLS handshake a byte every half second is closed after
        login-timeout, as the mail protocols' are (before: held while
        each byte kept evhttp's inactivity timeout away); a real TLS
        client connecting then is served."""
        hello = bytes.fromhex("16030100c8010000c40303") + bytes(200)
        s = socket.create_connection(self.server.addr("https"), timeout=5)
        start, closed = time.monotonic(), False
        for b in hello:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_within(s, 0.5):
                closed = True
                break
        took = time.monotonic() - start
        s.close()
        self.assertTrue(closed, "a handshake trickled for %.0f s is still open" % took)
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 20)
        r = hh.request(self.server, "GET", "/livez", tls=True)
        self.assertEqual(r.status, 200)


# ---- websocket ---------------------------------------------------------------------

def ws_open(server):
    s = connect(server)
    s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise EOFError("closed in the handshake")
        head += chunk
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s


def frame(op, payload=b"", fin=True, mask=True, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | op
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = b"\x11\x22\x33\x44"
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def ws_read_frame(s):
    f = s.makefile("rb")
    h = f.read(2)
    n = h[1] & 0x7f
    if n == 126:
        n = struct.unpack(">H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", f.read(8))[0]
    return h[0] & 0x0f, f.read(n)


class WebsocketTest(harness.TestCase):

    def test_protocol_errors_close(self):
        bad = {
            "length 2^63": frame(1, length=1 << 63),
            "length over 64 KiB": frame(1, length=70000),
            "unmasked": frame(1, b"hi", mask=False),
            "RSV bits": b"\xc1\x80abcd",
            "fragmented ping": frame(9, b"x", fin=False),
            "ping over 125 bytes": frame(9, b"x" * 126),
        }
        for name, data in bad.items():
            s = ws_open(self.server)
            s.sendall(data)
            self.assertTrue(closed_within(s, 5), name)
            s.close()

    def test_fragments_ping_close(self):
        s = ws_open(self.server)
        # fragments of a text message (with invalid UTF-8: the stream is
        # one-way, client data is dropped), a ping between them
        s.sendall(frame(1, b"\xff", fin=False) + frame(9, b"p1") + frame(0, b"\xfe", fin=False) +
                  frame(0, b"c"))
        self.assertEqual(ws_read_frame(s), (0xa, b"p1"))
        s.sendall(frame(8, b"\x03\xe8"))
        self.assertEqual(ws_read_frame(s), (0x8, b"\x03\xe8"))
        self.assertTrue(closed_within(s, 5))
        s.close()

    def test_ping_flood_never_read(self):
        """Pings whose pongs are never read: the client is let go at 1 MB
        of them (they were all held before: 60 MB for 65 MB of pings)."""
        pid = self.server.proc.pid
        before = harness.rss_kb(pid)
        s = ws_open(self.server)
        s.settimeout(3)
        burst = frame(9, b"x" * 125) * 512
        sent = 0
        try:
            while sent < 32 * 1024 * 1024:
                sent += s.send(burst)
        except (socket.timeout, OSError):
            pass
        grown = harness.rss_kb(pid) - before
        self.assertLess(sent, 32 * 1024 * 1024)
        if not SANITIZED:
            self.assertLess(grown, 8 * 1024, "RSS grew by %d KiB" % grown)
        self.assertTrue(closed_within(s, 10), "the flooding client is still connected")
        s.close()
        self.assertEqual(hh.request(self.server, "GET", "/livez").status, 200)


class LargeSendTest(harness.TestCase):
    """Send bodies of 256 KiB or more are built in a thread (at most 4 at
    once, the others queued): the same replies as on the loop."""

    base = {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}],
            "Subject": "big", "Text": "t"}

    def big(self, size, **extra):
        data = base64.b64encode(os.urandom(size)).decode()
        return dict(self.base, Attachments=[{"Filename": "a.bin", "Content": data}], **extra)

    def test_built_and_stored(self):
        r = hh.request(self.server, "POST", "/api/v1/send", self.big(600000, Tags=["bulk"]))
        self.assertEqual(r.status, 200, r)
        mid = r.json()["ID"]
        m = hh.get_json(self, self.server, "/api/v1/message/" + mid)
        self.assertEqual([a["Size"] for a in m["Attachments"]], [600000])
        self.assertEqual(m["Tags"], ["bulk"])

    def test_errors(self):
        pad = "x" * 400000
        r = hh.request(self.server, "POST", "/api/v1/send", b'{"From": "' + pad.encode())
        self.assertEqual(r.status, 400)
        self.assertTrue(r.body.startswith(b"invalid JSON: "), r.body[:80])
        body = dict(self.base, Attachments=[{"Filename": "a", "Content": "!" * 400000}])
        r = hh.request(self.server, "POST", "/api/v1/send", body)
        self.assertEqual((r.status, r.body), (400, b"Attachments[0]: Content is not base64"))
        r = hh.request(self.server, "POST", "/api/v1/send", dict(self.big(400000), To=[]))
        self.assertEqual((r.status, r.body), (400, b"No valid recipient addresses found"))

    def test_parallel_and_gone(self):
        bodies = [json.dumps(self.big(300000, Subject="p%d" % i)).encode() for i in range(6)]
        # six clients that go before their reply, then six that wait for it
        for b in bodies:
            s = connect(self.server)
            s.sendall(b"POST /api/v1/send HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % len(b) + b)
            s.close()
        results = [None] * len(bodies)

        def one(i):
            results[i] = hh.request(self.server, "POST", "/api/v1/send", bodies[i])
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual([r.status for r in results], [200] * len(bodies), results)
        ids = {r.json()["ID"] for r in results}
        self.assertEqual(len(ids), len(bodies))
        for r in results:
            m = hh.get_json(self, self.server, "/api/v1/message/" + r.json()["ID"])
            self.assertEqual(m["Attachments"][0]["Size"], 300000)


if __name__ == "__main__":
    import unittest
    unittest.main()
