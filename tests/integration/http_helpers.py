"""Helpers for the HTTP API tests: requests over http.client with a
timeout, HTTP Basic credentials, and mail delivered over SMTP.

Python standard library only; every connection has a timeout."""

import base64
import gzip
import http.client
import json

import harness
import imap_helpers
from harness import SOCK_TIMEOUT


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8")

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:300])


def read_reply(s):
    """One reply read off a raw socket: its status line and body
    (Content-Length framed; for tests and benches that speak HTTP by hand)."""
    f = s.makefile("rb")
    status = f.readline()
    n = 0
    while True:
        line = f.readline()
        if not line:
            raise EOFError("closed in the headers")
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
        if line == b"\r\n":
            break
    return status, f.read(n)


def basic(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return {"Authorization": "Basic " + token}


def connection(server, tls=False, timeout=SOCK_TIMEOUT):
    host, port = server.addr("https" if tls else "http")
    if tls:
        return http.client.HTTPSConnection(host, port, timeout=timeout,
                                           context=harness.insecure_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)


def request(server, method, path, body=None, headers=None, auth=None, conn=None,
            tls=False):
    """One request; a JSON-able body (dict/list) is sent as JSON."""
    h = dict(headers or {})
    if auth is not None:
        h.update(basic(*auth))
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    own = conn is None
    c = conn or connection(server, tls)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        if (r.getheader("Content-Encoding") or "") == "gzip":
            data = gzip.decompress(data)
        return Response(r.status, r.reason, r.getheaders(), data)
    finally:
        if own:
            c.close()


def get_json(test, server, path, auth=None, status=200):
    r = request(server, "GET", path, auth=auth)
    test.assertEqual(r.status, status, "GET %s: %r" % (path, r))
    test.assertEqual(r.header("Content-Type"), "application/json", path)
    return r.json()


def smtp_deliver(server, msg, mail_from="sender@example.test", rcpts=("rcpt@example.test",),
                 auth=None):
    """Delivers msg (bytes) over SMTP (as `auth` if given: into that inbox,
    else into dev); returns the id from "queued as"."""
    user, password = auth if auth is not None else (None, None)
    return imap_helpers.smtp_send(server, user, password, msg, mail_from, rcpts,
                                  helo="http-test.example")
