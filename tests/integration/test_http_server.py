#!/usr/bin/python3
"""The HTTP listener itself: the start-up line and ready file, keep-alive,
gzip, bounds on the request line and headers, max-clients, the https
listener with the server's certificate, and shutdown with a client
connected. Cross-protocol: read state and deletes through the API are
IMAP's \\Seen and EXPUNGE, and IMAP's STORE is the API's Read."""

import gzip
import os
import re
import socket
import ssl
import time

import harness
import http_helpers as hh
import imap_helpers as ih
from harness import SOCK_TIMEOUT


class ListenerTest(harness.TestCase):
    server_args = ("--https", "127.0.0.1:0")

    def test_startup_line_and_ready_file(self):
        host, port = self.server.addr("http")
        log = self.server.read_log().decode("utf-8", "replace")
        self.assertIn("http   %s:%d (web and API: http://%s:%d/)\n" % (host, port, host, port),
                      log)
        thost, tport = self.server.addr("https")
        self.assertIn("https  %s:%d (TLS, web and API: https://%s:%d/)\n"
                      % (thost, tport, thost, tport), log)
        self.assertNotIn("http: not implemented", log)

    def test_keep_alive(self):
        c = hh.connection(self.server)
        try:
            for _ in range(3):
                r = hh.request(self.server, "GET", "/livez", conn=c)
                self.assertEqual(r.status, 200)
            sock = c.sock
            r = hh.request(self.server, "GET", "/api/v1/info", conn=c)
            self.assertEqual(r.status, 200)
            self.assertIs(c.sock, sock, "the connection was not kept open")
        finally:
            c.close()

    def test_gzip(self):
        r = hh.request(self.server, "GET", "/api/v1/info",
                       headers={"Accept-Encoding": "gzip, deflate"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        self.assertIn("Accept-Encoding", r.header("Vary"))
        self.assertIn("Version", r.json())
        c = hh.connection(self.server)
        c.request("GET", "/api/v1/info", headers={"Accept-Encoding": "gzip"})
        raw = c.getresponse().read()
        c.close()
        self.assertEqual(raw[:2], b"\x1f\x8b")
        self.assertIn(b'"Version"', gzip.decompress(raw))
        r = hh.request(self.server, "GET", "/api/v1/info")
        self.assertIsNone(r.header("Content-Encoding"))

    def raw_exchange(self, data, timeout=SOCK_TIMEOUT):
        with socket.create_connection(self.server.addr("http"), timeout=timeout) as s:
            s.sendall(data)
            out = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    break
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"Connection: close" not in out:
                    break
            return out

    def test_headers_too_large(self):
        out = self.raw_exchange(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " +
                                b"a" * (70 * 1024) + b"\r\n\r\n")
        self.assertTrue(out == b"" or re.match(rb"HTTP/1\.[01] (400|413|431) ", out), out[:200])
        out = self.raw_exchange(b"GET /" + b"a" * (70 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(out == b"" or re.match(rb"HTTP/1\.[01] (400|413|414) ", out), out[:200])
        # the server is still answering
        self.assertEqual(hh.request(self.server, "GET", "/livez").status, 200)

    def test_https(self):
        r = hh.request(self.server, "GET", "/api/v1/info", tls=True)
        self.assertEqual(r.status, 200)
        self.assertIn("Version", r.json())
        host, port = self.server.addr("https")
        with socket.create_connection((host, port), timeout=SOCK_TIMEOUT) as s:
            with harness.insecure_context().wrap_socket(s) as t:
                der = t.getpeercert(binary_form=True)
        with open(self.server.cert_path(), "r") as f:
            pem = f.read()
        self.assertEqual(ssl.DER_cert_to_PEM_cert(der).strip(), pem.strip()[:len(
            ssl.DER_cert_to_PEM_cert(der).strip())])

    def test_cross_protocol_read_state_and_delete(self):
        auth = ih.new_inbox(self.server, "hx")
        mid = hh.smtp_deliver(self.server, ih.simple_message("cross"), auth=auth)
        m = ih.imap_login(self.server, *auth)
        try:
            m.select("INBOX")
            typ, data = m.fetch("1", "(FLAGS)")
            self.assertNotIn(b"\\Seen", data[0])
            # API read -> IMAP \Seen
            hh.get_json(self, self.server, "/api/v1/message/" + mid, auth=auth)
            typ, data = m.fetch("1", "(FLAGS)")
            self.assertIn(b"\\Seen", data[0])
            # IMAP STORE -\Seen -> API Read false
            m.store("1", "-FLAGS", "(\\Seen)")
            d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
            self.assertIs(d["messages"][0]["Read"], False)
            m.store("1", "+FLAGS", "(\\Seen)")
            d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
            self.assertIs(d["messages"][0]["Read"], True)
            # API delete -> IMAP EXPUNGE
            r = hh.request(self.server, "DELETE", "/api/v1/messages", {"IDs": [mid]}, auth=auth)
            self.assertEqual(r.body, b"ok")
            typ, data = m.noop()
            self.assertEqual(m.untagged_responses.get("EXPUNGE"), [b"1"])
            typ, data = m.search(None, "ALL")
            self.assertEqual(data, [b""])
        finally:
            ih.imap_logout(m)

    def test_pop3_dele_gone_from_api(self):
        import poplib
        auth = ih.new_inbox(self.server, "hp")
        mid = hh.smtp_deliver(self.server, ih.simple_message("pop"), auth=auth)
        p = poplib.POP3(*self.server.addr("pop3"), timeout=SOCK_TIMEOUT)
        p.user(auth[0])
        p.pass_(auth[1])
        p.dele(1)
        p.quit()
        r = hh.request(self.server, "GET", "/api/v1/message/" + mid, auth=auth)
        self.assertEqual(r.status, 404)


class StreamTest(harness.TestCase):
    """A client that does not read a large message costs a few chunks, not
    the message; one that goes away mid-stream leaves nothing behind."""

    @classmethod
    def setUpClass(cls):
        # Under ASan freed memory sits in its quarantine (256 MB by
        # default) and shows in RSS: measure what the server holds.
        if "ASAN_OPTIONS" in os.environ:
            cls._asan = os.environ["ASAN_OPTIONS"]
            os.environ["ASAN_OPTIONS"] = cls._asan + ":quarantine_size_mb=1"
        try:
            super().setUpClass()
        finally:
            if hasattr(cls, "_asan"):
                os.environ["ASAN_OPTIONS"] = cls._asan

    def large_message(self, auth, mb):
        line = b"x" * 998 + b"\r\n"
        body = line * (mb * 1024 * 1024 // len(line))
        return hh.smtp_deliver(self.server, ih.simple_message("large", body=body), auth=auth)

    def test_slow_reader_bounded(self):
        auth = ih.new_inbox(self.server, "hs")
        mid = self.large_message(auth, 16)
        pid = self.server.proc.pid
        before = harness.rss_kb(pid)
        socks = []
        try:
            for _ in range(4):
                s = socket.create_connection(self.server.addr("http"), timeout=SOCK_TIMEOUT)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(b"GET /api/v1/message/%s/raw HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: " % mid.encode() +
                          hh.basic(*auth)["Authorization"].encode() + b"\r\n\r\n")
                socks.append(s)
            time.sleep(1.5)
            grown = harness.rss_kb(pid) - before
            self.assertLess(grown, 12 * 1024, "4 stalled readers of a 16 MB message "
                            "grew the server by %d KiB" % grown)
            # the others are served meanwhile
            self.assertEqual(hh.request(self.server, "GET", "/livez").status, 200)
            # meanwhile a reader that reads gets it all, intact
            r = hh.request(self.server, "GET", "/api/v1/message/%s/raw" % mid, auth=auth)
            rest = r.body
            self.assertEqual(rest, self.server.message_bytes(mid))
        finally:
            for s in socks:
                s.close()          # gone mid-stream
        time.sleep(0.3)
        self.assertEqual(hh.request(self.server, "GET", "/livez").status, 200)


class MaxClientsTest(harness.TestCase):
    server_args = ("--max-clients", "3")

    def test_http_counts_in_max_clients(self):
        held = [hh.connection(self.server) for _ in range(3)]
        try:
            for c in held:
                c.request("GET", "/livez")
                self.assertEqual(c.getresponse().read(), b"")
            # a fourth is closed without an answer
            with socket.create_connection(self.server.addr("http"), timeout=SOCK_TIMEOUT) as s:
                s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(s.recv(4096), b"")
            self.assertIn(b"http: refusing connection", self.server.read_log())
        finally:
            for c in held:
                c.close()
        # the slots come back once they close
        deadline = time.monotonic() + 10
        while True:
            try:
                r = hh.request(self.server, "GET", "/livez")
                if r.status == 200:
                    break
            except (ConnectionError, OSError):
                pass
            self.assertLess(time.monotonic(), deadline, "slots never freed")
            time.sleep(0.1)


class ShutdownTest(harness.TestCase):

    def test_sigterm_with_idle_http_client(self):
        c = hh.connection(self.server)
        c.request("GET", "/livez")
        self.assertEqual(c.getresponse().status, 200)
        t0 = time.monotonic()
        self.server.stop()            # exit status 0 checked there
        self.assertLess(time.monotonic() - t0, 5, "shutdown waited for the idle client")
        c.close()
        type(self).server = None


if __name__ == "__main__":
    harness.main()
