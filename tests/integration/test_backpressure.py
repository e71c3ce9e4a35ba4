#!/usr/bin/env python3
"""Output back-pressure (issue 11): a client that pipelines commands and
never reads the replies makes the server queue a bounded amount (a few
hundred KiB, CONN_OUTPUT_MAX), not the replies of everything it sent, in
every protocol, plain and TLS; other clients are served meanwhile; and
once the client reads, every reply arrives, none lost, in order."""

import socket
import ssl
import threading
import time
import unittest

import harness

# Before the fix a client could make the server hold ~25 replies' worth of
# bytes for every byte it sent; the bound here is the server's whole
# growth in resident memory while the client does not read.
RSS_GROWTH_MAX_KB = 24 * 1024


rss_kb = harness.rss_kb


class BackpressureTest(harness.TestCase):
    def connect(self, proto, tls=False):
        host, port = self.server.addr(proto)
        sock = socket.create_connection((host, port), timeout=15)
        if tls:
            sock = harness.insecure_context().wrap_socket(sock, server_hostname="localhost")
        self.addCleanup(sock.close)
        return sock

    @staticmethod
    def read_until(sock, want, limit, deadline):
        """Reads until `want` occurs `limit` times; returns the count."""
        buf, count = b"", 0
        while count < limit and time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            cut = buf.rfind(b"\n") + 1
            count += buf[:cut].count(want)
            buf = buf[cut:]
        return count

    def flood(self, proto, tls, greeting_lines, command, reply_marker, n):
        sock = self.connect(proto, tls)
        sock.settimeout(15)
        greeting = b""
        while greeting.count(b"\r\n") < greeting_lines:
            chunk = sock.recv(4096)
            self.assertTrue(chunk, "no greeting")
            greeting += chunk
        pid = self.server.proc.pid
        before = rss_kb(pid)
        payload = command * n
        sent = [0]

        def sender():
            # Blocks once the kernel's buffers and the server's bounded
            # queue are full; the reader below lets it finish.
            try:
                sock.sendall(payload)
                sent[0] = len(payload)
            except OSError:
                pass

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        time.sleep(3.0)
        grown = rss_kb(pid) - before
        self.assertLess(grown, RSS_GROWTH_MAX_KB,
                        "%s%s: the server grew by %d KiB for a client that does not read"
                        % (proto, " (TLS)" if tls else "", grown))
        # Meanwhile another client is served.
        other = self.connect("smtp")
        other.settimeout(10)
        of = other.makefile("rb")
        self.assertTrue(of.readline().startswith(b"220"))
        other.sendall(b"NOOP\r\n")
        self.assertTrue(of.readline().startswith(b"250"))
        # Now read: every reply comes, none lost.
        deadline = time.monotonic() + 120
        sock.settimeout(60)     # a loaded CI machine: the deadline above still bounds it
        got = self.read_until(sock, reply_marker, n, deadline)
        t.join(timeout=30)
        self.assertEqual(sent[0], len(payload), "the sender could not finish")
        self.assertEqual(got, n, "%s: %d replies of %d" % (proto, got, n))

    # Each flood's replies come to 80-120 MB: what the server held before.
    def test_smtp_ehlo(self):
        self.flood("smtp", False, 1, b"EHLO x\r\n", b"250 HELP", 400000)

    def test_pop3_capa(self):
        self.flood("pop3", False, 1, b"CAPA\r\n", b"+OK Capability", 600000)

    def test_imap_capability(self):
        self.flood("imap", False, 1, b"a CAPABILITY\r\n", b"a OK", 250000)

    def test_imaps_capability(self):
        self.flood("imaps", True, 1, b"a CAPABILITY\r\n", b"a OK", 250000)


if __name__ == "__main__":
    harness.main()
