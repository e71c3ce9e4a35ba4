#!/usr/bin/python3
"""The HTTP listener's bounds answer their own status codes in plain text,
as the rest of the API does, not libevent's HTML 400: a header section over
64 KiB is 431, a request line over 16 KiB 414, a body over its limit 413
as soon as its head is read (the body is not waited for), a malformed
request line 400. Each with Connection: close, and the connection then
closed; other clients are served meanwhile. Over http and https."""

import re
import socket
import ssl
import time

import harness
import http_helpers as hh
from harness import SOCK_TIMEOUT

# include/mailsnare/http.h
HTTP_HEADERS_MAX = 64 * 1024
HTTP_LINE_MAX = 16 * 1024
HTTP_LINGER_S = 2
HTTP_BODY_MAX = 5 * 1024 * 1024

STATUS = {
    400: b"HTTP/1.1 400 Bad Request\r\n",
    413: b"HTTP/1.1 413 Content Too Large\r\n",
    414: b"HTTP/1.1 414 URI Too Long\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
}


def read_all(s, seconds=5.0):
    """Everything the server sends until it closes, and whether it did
    close (not a reset, not the end of the time)."""
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, False
        if not d:
            return out, True
        out += d
    return out, False


def parse(reply):
    """(status line with its CRLF, {lower-case name: value}, body)."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError("no complete head in %r" % reply[:300])
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    return lines[0] + b"\r\n", headers, body


class Limits:
    """The cases, over a connection made by self.connect()."""

    tls = False

    def connect(self):
        host, port = self.server.addr("https" if self.tls else "http")
        s = socket.create_connection((host, port), timeout=SOCK_TIMEOUT)
        if self.tls:
            s = harness.insecure_context().wrap_socket(s)
        return s

    def refused(self, data, code, prefix=b""):
        """Sends data, expects the reply code (after the replies of
        prefix's requests), plain text, Connection: close, then the close
        of the connection; the body's text."""
        with self.connect() as s:
            try:
                s.sendall(prefix + data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply, closed = read_all(s)
        for _ in range(prefix.count(b"HTTP/1.1\r\n")):
            line, headers, rest = parse(reply)
            self.assertTrue(line.startswith(b"HTTP/1.1 200 "), line)
            reply = rest[int(headers["content-length"]):]
        line, headers, body = parse(reply)
        self.assertEqual(line, STATUS[code])
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(headers.get("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertNotIn(b"<", body)
        self.assertTrue(closed, "the connection stays open after the %d" % code)
        return body

    def livez(self):
        r = hh.request(self.server, "GET", "/livez", tls=self.tls)
        self.assertEqual(r.status, 200)

    def test_headers_over_64k_431(self):
        body = self.refused(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024) +
                            b"\r\n\r\n", 431)
        self.assertIn(b"64 KiB", body)
        # many small header lines, the same
        self.refused(b"GET /livez HTTP/1.1\r\n" + b"X-A: b\r\n" * 10000 + b"\r\n", 431)
        # a head just under the bound is served
        pad = HTTP_HEADERS_MAX - 200
        with self.connect() as s:
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * pad + b"\r\n\r\n")
            self.assertTrue(hh.read_reply(s)[0].startswith(b"HTTP/1.1 200 "))
        self.livez()

    def test_request_line_over_16k_414(self):
        body = self.refused(b"GET /livez?q=" + b"a" * (20 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                            414)
        self.assertIn(b"16 KiB", body)
        # refused before the line ends: a line that never does
        self.refused(b"GET /" + b"a" * (HTTP_LINE_MAX + 10), 414)
        # a 15 KiB request line is served
        with self.connect() as s:
            s.sendall(b"GET /livez?q=" + b"a" * (15 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(hh.read_reply(s)[0].startswith(b"HTTP/1.1 200 "))
        self.livez()

    def test_body_over_limit_413_without_the_body(self):
        """The 413 comes once the head is read: the client has not sent a
        byte of its body (and waits for the reply)."""
        for path, size in ((b"/api/v1/messages", HTTP_BODY_MAX + 1),
                           (b"/api/v1/send", 10 ** 12)):
            start = time.monotonic()
            body = self.refused(b"PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                                % (path, size), 413)
            self.assertEqual(body, b"request body too large")
            self.assertLess(time.monotonic() - start, HTTP_LINGER_S, path)
        # a client sending its body anyway reads the reply (no reset)
        self.refused(b"PUT /api/v1/tags HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                     % (HTTP_BODY_MAX + 1) + b"x" * (1024 * 1024), 413)
        self.livez()

    def test_after_requests_on_the_connection(self):
        """On a keep-alive connection, after pipelined requests."""
        get = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
        self.refused(b"GET /livez HTTP/1.1\r\nX: " + b"a" * (70 * 1024) + b"\r\n\r\n", 431,
                     prefix=get * 2)
        self.refused(b"GET /" + b"a" * (20 * 1024) + b" HTTP/1.1\r\n\r\n", 414, prefix=get)
        self.refused(b"POST /api/v1/inboxes HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                     % (HTTP_BODY_MAX + 1), 413, prefix=get)

    def test_malformed_request_lines_400(self):
        for data in (b"garbage\r\n\r\n", b"\x00\x01\x02\xff\xfe\r\n\r\n",
                     b"GET / HTTP/9.9\r\n\r\n", b"GET /\r\n\r\n", b"GET\r\n\r\n",
                     b"GET / HTTP/1.1 extra\r\n\r\n", b"GET / FTP/1.0\r\n\r\n",
                     b"\r\n\r\n", b"GET / HTTP/1.1\r\nno colon here\r\n\r\n"):
            body = self.refused(data, 400)
            self.assertEqual(body, b"Bad Request", data)
        self.livez()

    def test_others_served_meanwhile(self):
        """A client with 60 KiB of headers on their way holds nothing up;
        the bytes that cross 64 KiB get it its 431."""
        with self.connect() as a:
            a.sendall(b"GET /livez HTTP/1.1\r\n" + (b"X-A: " + b"a" * 1000 + b"\r\n") * 60)
            for _ in range(3):
                self.livez()
            a.sendall((b"X-A: " + b"a" * 1000 + b"\r\n") * 10)
            reply, closed = read_all(a)
        self.assertEqual(parse(reply)[0], STATUS[431])
        self.assertTrue(closed)
        self.livez()


class HttpLimitsTest(Limits, harness.TestCase):
    pass


class HttpsLimitsTest(Limits, harness.TestCase):
    server_args = ("--https", "127.0.0.1:0")
    tls = True


if __name__ == "__main__":
    import unittest
    unittest.main()
