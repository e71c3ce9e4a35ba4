#!/usr/bin/python3
"""Read state and deletes of many messages at once (PUT /api/v1/messages
without IDs, DELETE /api/v1/messages without IDs, DELETE /api/v1/search,
and long IDs lists) are done a slice per loop pass: every message is
changed, IMAP sees it, the reply comes after the last slice, and another
client is answered while the job runs."""

import select
import smtplib
import socket
import time

import harness
import http_helpers as hh
import imap_helpers as ih
from harness import CRLF, SOCK_TIMEOUT

N = 2000


def fill(server, auth, n, subject="bulk"):
    host, port = server.addr("smtp")
    with smtplib.SMTP(host, port, timeout=SOCK_TIMEOUT) as s:
        s.login(*auth)
        for i in range(n):
            s.sendmail("a@example.test", ["b@example.test"],
                       CRLF.join([b"Subject: %s %d" % (subject.encode(), i), b"", b"x", b""]))


def raw_request(server, method, path, auth):
    """Sends a request on a socket of its own; the reply is read later."""
    sock = socket.create_connection(server.addr("http"), timeout=SOCK_TIMEOUT)
    sock.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
                  "Content-Length: 0\r\n\r\n"
                  % (method, path, hh.basic(*auth)["Authorization"])).encode())
    return sock


def read_reply(sock):
    """The whole reply (status line, headers, a Content-Length body)."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(body) >= length:
                break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data


class BulkTest(harness.TestCase):

    def envelope(self, auth):
        d = hh.get_json(self, self.server, "/api/v1/messages?limit=1", auth=auth)
        return d["total"], d["unread"]

    def test_read_all_then_delete_all_in_slices(self):
        auth = ih.new_inbox(self.server, "b")
        other = ih.new_inbox(self.server, "o")
        fill(self.server, auth, N)
        fill(self.server, other, 3)
        self.assertEqual(self.envelope(auth), (N, N))
        r = hh.request(self.server, "PUT", "/api/v1/messages", body=b'{"Read":true}', auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(self.envelope(auth), (N, 0))
        self.assertEqual(self.envelope(other), (3, 3))
        m = ih.imap_login(self.server, *auth)
        try:
            m.select("INBOX", readonly=True)
            typ, data = m.search(None, "UNSEEN")
            self.assertEqual((typ, data), ("OK", [b""]))
        finally:
            ih.imap_logout(m)
        # While the delete runs, another client is answered: its reply is
        # there before the delete's first byte (one pass would answer the
        # delete first).
        big = raw_request(self.server, "DELETE", "/api/v1/messages", auth)
        time.sleep(0.002)
        small = raw_request(self.server, "GET", "/livez", auth)
        ready, _, _ = select.select([big, small], [], [], SOCK_TIMEOUT)
        self.assertEqual(ready, [small])
        small_reply = read_reply(small)
        big_reply = read_reply(big)
        self.assertTrue(small_reply.startswith(b"HTTP/1.1 200 "), small_reply)
        self.assertTrue(big_reply.startswith(b"HTTP/1.1 200 "), big_reply)
        self.assertTrue(big_reply.endswith(b"\r\n\r\nok"), big_reply)
        self.assertEqual(self.envelope(auth), (0, 0))
        self.assertEqual(self.envelope(other), (3, 3))

    def test_search_delete_and_ids_in_slices(self):
        auth = ih.new_inbox(self.server, "s")
        fill(self.server, auth, 300, "keep")
        fill(self.server, auth, 300, "drop")
        r = hh.request(self.server, "DELETE", "/api/v1/search?query=subject:drop", auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        d = hh.get_json(self, self.server, "/api/v1/messages?limit=5000", auth=auth)
        self.assertEqual(d["total"], 300)
        self.assertTrue(all(s["Subject"].startswith("keep ") for s in d["messages"]))
        ids = [s["ID"] for s in d["messages"]]
        body = ('{"IDs":[%s],"Read":true}' % ",".join('"%s"' % i for i in ids[:250])).encode()
        r = hh.request(self.server, "PUT", "/api/v1/messages", body=body, auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(self.envelope(auth), (300, 50))
        body = ('{"IDs":[%s]}' % ",".join('"%s"' % i for i in ids[:290] + ["999999999", "x"]))
        r = hh.request(self.server, "DELETE", "/api/v1/messages", body=body.encode(), auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual(sorted(s["ID"] for s in d["messages"]), sorted(ids[290:]))
        self.assertEqual(self.envelope(auth), (10, 10))


if __name__ == "__main__":
    harness.main()
