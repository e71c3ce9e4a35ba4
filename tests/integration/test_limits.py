#!/usr/bin/env python3
"""Limits by state (issue 11): before login an IMAP literal or command may
be a few KiB, the message size only after; `login-timeout` ends a POP3 or
IMAP connection that does not log in, and any TLS handshake that does not
finish (a client that connects to imaps and never sends a ClientHello);
after login the protocol's own idle timeout applies (`imap-timeout`)."""

import socket
import time
import unittest

import harness
from imap_helpers import RawIMAP, status_of


def closed_within(sock, seconds):
    """Reads until the server closes; returns the bytes and how long it took,
    or raises if it is still open after `seconds`."""
    sock.settimeout(seconds)
    start, data = time.monotonic(), b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


class LimitsTest(harness.TestCase):
    server_args = ("--login-timeout", "2", "--imap-timeout", "4")

    def raw(self, proto="imap"):
        imap = RawIMAP(self.server.addr(proto))
        self.addCleanup(imap.close)
        imap.greeting()
        return imap

    def test_preauth_literal_is_small(self):
        imap = self.raw()
        # A literal as large as a message, before login: refused before it
        # is read (the connection would otherwise hold it whole). The
        # synchronising form gets no "+" and the session goes on.
        imap.send(b"a LOGIN {33554431}\r\n")
        _, tagged = imap.until_tagged("a")
        self.assertIn(b"[TOOBIG]", tagged)
        imap.send(b"b LOGIN {9000}\r\n")
        _, tagged = imap.until_tagged("b")
        self.assertIn(b"[TOOBIG]", tagged)
        # A literal LOGIN of ordinary size still works.
        imap.send(b"c LOGIN {3}\r\n")
        self.assertTrue(imap.line().startswith(b"+"))
        imap.send(b"dev {3}\r\n")
        self.assertTrue(imap.line().startswith(b"+"))
        imap.send(b"dev\r\n")
        _, tagged = imap.until_tagged("c")
        self.assertEqual(status_of(tagged), "OK", tagged)
        # Once logged in, a 1 MiB APPEND literal is fine.
        body = b"Subject: big\r\n\r\n" + (b"x" * 1022 + b"\r\n") * 1024
        imap.send(b"d APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
        _, tagged = imap.until_tagged("d")
        self.assertEqual(status_of(tagged), "OK", tagged)

    def test_login_timeout_imap_and_pop3(self):
        for proto in ("imap", "pop3"):
            host, port = self.server.addr(proto)
            sock = socket.create_connection((host, port), timeout=10)
            self.addCleanup(sock.close)
            data, took = closed_within(sock, 10)
            self.assertLess(took, 8, proto)
            self.assertGreater(took, 1, proto)
            if proto == "imap":
                self.assertIn(b"* BYE", data)

    def test_tls_handshake_never_started(self):
        for proto in ("imaps", "pop3s", "smtps"):
            host, port = self.server.addr(proto)
            sock = socket.create_connection((host, port), timeout=10)
            self.addCleanup(sock.close)
            _, took = closed_within(sock, 10)
            self.assertLess(took, 8, "%s kept a silent connection" % proto)

    def test_logged_in_outlives_login_timeout_then_autologout(self):
        imap = self.raw()
        imap.login("dev", "dev")
        time.sleep(3)   # past login-timeout, within imap-timeout
        _, tagged = imap.command("NOOP")
        self.assertEqual(status_of(tagged), "OK")
        data, took = closed_within(imap.sock, 10)
        self.assertIn(b"* BYE Autologout", imap.buf + data)
        self.assertGreater(took, 2)


if __name__ == "__main__":
    harness.main()
