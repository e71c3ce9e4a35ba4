"""Helpers shared by the IMAP integration tests: per-test inboxes, mail
delivered over SMTP, imaplib sessions with timeouts, and a raw IMAP client
for what imaplib cannot do (IDLE, bad input, unsolicited responses read as
they come).

Python standard library only; every socket has a timeout."""

import imaplib
import itertools
import os
import re
import smtplib
import socket
import time

import harness
from harness import CRLF, SOCK_TIMEOUT, insecure_context

_names = itertools.count(1)


def unique_name(prefix="i"):
    return "%s%d-%d" % (prefix, os.getpid(), next(_names))


def new_inbox(server, prefix="i"):
    """Creates an inbox of its own for one test; returns (name, password)."""
    name = unique_name(prefix)
    password = "pw-" + name
    server.inbox_add(name, password)
    return name, password


def smtp_send(server, user, password, msg, mail_from="sender@example.test",
              rcpts=("rcpt@example.test",), helo="imap-test.example"):
    """Delivers `msg` (bytes) over SMTP, authenticated as `user` so that it
    lands in that inbox (user None: no AUTH, into dev); returns the stored
    message's id."""
    host, port = server.addr("smtp")
    with smtplib.SMTP(host, port, timeout=SOCK_TIMEOUT) as s:
        s.ehlo(helo)
        if user is not None:
            s.login(user, password)
        code, resp = s.mail(mail_from)
        if code != 250:
            raise AssertionError("MAIL FROM: %d %r" % (code, resp))
        for r in rcpts:
            code, resp = s.rcpt(r)
            if code not in (250, 251):
                raise AssertionError("RCPT TO: %d %r" % (code, resp))
        code, resp = s.data(msg)
        if code != 250:
            raise AssertionError("DATA: %d %r" % (code, resp))
    return harness.queued_id(resp)


def simple_message(subject, body=b"Hello from the IMAP tests.\r\n",
                   sender=b"Sender Person <sender@example.test>",
                   to=b"Rcpt Person <rcpt@example.test>", extra=b""):
    if isinstance(subject, str):
        subject = subject.encode("utf-8")
    return (b"From: " + sender + CRLF + b"To: " + to + CRLF +
            b"Subject: " + subject + CRLF +
            b"Date: Tue, 04 Mar 2025 10:20:30 +0000" + CRLF +
            b"Message-ID: <" + re.sub(rb"[^A-Za-z0-9]", b"", subject)[:40] +
            b"." + str(time.monotonic_ns()).encode() + b"@example.test>" + CRLF +
            extra + CRLF + body)


# ---------------------------------------------------------------------------
# imaplib


def imap_connect(server, tls=False):
    host, port = server.addr("imaps" if tls else "imap")
    if tls:
        return imaplib.IMAP4_SSL(host, port, ssl_context=insecure_context(),
                                 timeout=SOCK_TIMEOUT)
    return imaplib.IMAP4(host, port, timeout=SOCK_TIMEOUT)


def imap_login(server, user, password, tls=False):
    m = imap_connect(server, tls)
    typ, data = m.login(user, password)
    if typ != "OK":
        raise AssertionError("LOGIN %s: %s %r" % (user, typ, data))
    return m


def imap_logout(m):
    try:
        m.logout()
    except (imaplib.IMAP4.error, OSError, EOFError):
        try:
            m.shutdown()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# A raw IMAP client


class RawIMAP(harness.RawSocket):
    """Bytes in, response lines out. A line ending in a literal {n} has the
    literal's octets appended (marker kept), so one logical response is one
    bytes object."""

    def __init__(self, addr, tls_context=None, timeout=SOCK_TIMEOUT):
        super().__init__(addr, tls_context, timeout)
        self.tags = itertools.count(1)

    def _fill(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        finally:
            if timeout is not None:
                self.sock.settimeout(SOCK_TIMEOUT)
        if not chunk:
            raise EOFError("connection closed by the server (pending %r)" % self.buf[:300])
        self.buf += chunk

    def raw_line(self, timeout=None):
        """One CRLF-ended line without its CRLF; socket.timeout if none
        arrives within `timeout` (default SOCK_TIMEOUT)."""
        deadline = time.monotonic() + (timeout if timeout is not None else SOCK_TIMEOUT)
        while True:
            idx = self.buf.find(CRLF)
            if idx >= 0:
                line, self.buf = self.buf[:idx], self.buf[idx + 2:]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no line within the timeout (pending %r)" % self.buf[:300])
            self._fill(left)

    def _exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else SOCK_TIMEOUT)
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("literal of %d octets not complete" % n)
            self._fill(left)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def line(self, timeout=None):
        """One logical response: a line plus any literals it carries."""
        out = self.raw_line(timeout)
        while True:
            m = re.search(rb"\{(\d+)\}$", out)
            if not m:
                return out
            out += CRLF + self._exact(int(m.group(1)), timeout)
            out += self.raw_line(timeout)

    def greeting(self):
        return self.line()

    def next_tag(self):
        return "r%d" % next(self.tags)

    def command(self, text, tag=None, timeout=None):
        """Sends `tag text`; returns (untagged lines, tagged line)."""
        tag = tag or self.next_tag()
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.send(tag.encode() + b" " + text + CRLF)
        return self.until_tagged(tag, timeout)

    def until_tagged(self, tag, timeout=None):
        untagged = []
        btag = tag.encode() + b" "
        while True:
            line = self.line(timeout)
            if line.startswith(btag):
                return untagged, line
            untagged.append(line)

    def pending(self):
        """What the server has sent and nobody read yet (this reader's
        buffer and the socket's), without waiting; kept in the buffer."""
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    break
                self.buf += chunk
        except (BlockingIOError, socket.timeout):
            pass
        finally:
            self.sock.settimeout(timeout)
        return self.buf

    def login(self, user, password):
        untagged, tagged = self.command('LOGIN "%s" "%s"' % (user, password))
        if status_of(tagged) != "OK":
            raise AssertionError("LOGIN %s: %r" % (user, tagged))
        return untagged, tagged

    def quiet(self, timeout=0.5):
        """Lines that arrive within `timeout` without a command."""
        lines = []
        while True:
            try:
                lines.append(self.line(timeout))
            except socket.timeout:
                return lines


def raw_login(server, user, password, cleanup=None, tls=False, timeout=SOCK_TIMEOUT):
    """A RawIMAP session logged in as `user` past the greeting. `cleanup`
    is a unittest.TestCase's addCleanup (or any callable) that gets the
    session's close, so a failing test does not leave it open."""
    imap = RawIMAP(server.addr("imaps" if tls else "imap"),
                   insecure_context() if tls else None, timeout)
    if cleanup is not None:
        cleanup(imap.close)
    imap.greeting()
    imap.login(user, password)
    return imap


def raw_select(test, user, password, timeout, mailbox="INBOX"):
    """raw_login on test.server with test's cleanup, then SELECT `mailbox`,
    asserted OK (a SELECT of a large mailbox may take `timeout`)."""
    imap = raw_login(test.server, user, password, test.addCleanup, timeout=timeout)
    _, tagged = imap.command("SELECT " + mailbox, timeout=timeout)
    test.assertEqual(status_of(tagged), "OK", tagged)
    return imap


def status_of(tagged):
    """'OK', 'NO' or 'BAD' of a tagged response line."""
    parts = tagged.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else ""


# ---------------------------------------------------------------------------
# Parsing FETCH responses


class Atom(str):
    """An IMAP atom (NIL is None, strings are bytes, lists are lists)."""


class _Parser:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def error(self, what):
        raise AssertionError("cannot parse %s at offset %d of %r"
                             % (what, self.i, self.d[max(0, self.i - 60):self.i + 60]))

    def peek(self):
        return self.d[self.i:self.i + 1]

    def sp(self):
        while self.peek() == b" ":
            self.i += 1

    def value(self):
        c = self.peek()
        if c == b"(":
            self.i += 1
            items = []
            while True:
                self.sp()
                if self.peek() == b")":
                    self.i += 1
                    return items
                if not self.peek():
                    self.error("list")
                items.append(self.value())
        if c == b'"':
            self.i += 1
            out = bytearray()
            while True:
                ch = self.peek()
                if not ch:
                    self.error("quoted string")
                self.i += 1
                if ch == b"\\":
                    out += self.peek()
                    self.i += 1
                elif ch == b'"':
                    return bytes(out)
                else:
                    out += ch
        if c in (b"{", b"~"):
            m = re.compile(rb"~?\{(\d+)\}\r\n").match(self.d, self.i)
            if not m:
                self.error("literal")
            n = int(m.group(1))
            start = m.end()
            if start + n > len(self.d):
                self.error("literal data")
            self.i = start + n
            return self.d[start:start + n]
        start = self.i
        while self.i < len(self.d):
            ch = self.peek()
            if ch in (b" ", b"(", b")"):
                break
            if ch == b"[":
                end = self.d.find(b"]", self.i)
                if end < 0:
                    self.error("section")
                self.i = end + 1
                continue
            self.i += 1
        if self.i == start:
            self.error("atom")
        atom = self.d[start:self.i].decode("latin-1")
        return None if atom.upper() == "NIL" else Atom(atom)


def parse_value(data):
    """One IMAP value (list, string, atom, NIL) from bytes."""
    p = _Parser(data)
    return p.value()


def join_imaplib(data):
    """imaplib's response data back to the wire form: literals as
    {n}CRLF<octets>, one response per CRLF-ended item."""
    out = b""
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            out += item[0] + CRLF + item[1]
        else:
            out += item + CRLF
    return out


class FetchItem:
    def __init__(self, seq):
        self.seq = seq
        self.items = {}     # upper-cased item name -> parsed value
        self.raw = {}       # upper-cased item name -> value as sent
        self.names = []     # the item names as sent, in order

    def __getitem__(self, name):
        return self.items[name.upper()]

    def __contains__(self, name):
        return name.upper() in self.items

    def get(self, name, default=None):
        return self.items.get(name.upper(), default)

    def flags(self):
        return set(str(f) for f in self.items["FLAGS"])

    def __repr__(self):
        return "<FETCH %d %r>" % (self.seq, self.raw)


def parse_fetch_responses(wire):
    """Parses "N (name value ...)" responses (each ended by CRLF; with
    or without a leading "* " and the word FETCH) into FetchItems."""
    out = []
    p = _Parser(wire)
    while p.i < len(wire):
        if wire.startswith(CRLF, p.i):
            p.i += 2
            continue
        m = re.compile(rb"(?:\* )?(\d+) (?:FETCH )?\(", re.I).match(wire, p.i)
        if not m:
            p.error("FETCH response")
        fi = FetchItem(int(m.group(1)))
        p.i = m.end()
        while True:
            p.sp()
            if p.peek() == b")":
                p.i += 1
                break
            name = p.value()
            if not isinstance(name, Atom):
                p.error("fetch item name")
            p.sp()
            start = p.i
            value = p.value()
            fi.items[name.upper()] = value
            fi.raw[name.upper()] = wire[start:p.i]
            fi.names.append(str(name))
        out.append(fi)
    return out


def fetch(m, seqset, items, uid=False):
    """imaplib FETCH (or UID FETCH); asserts OK; returns FetchItems."""
    if uid:
        typ, data = m.uid("FETCH", seqset, items)
    else:
        typ, data = m.fetch(seqset, items)
    if typ != "OK":
        raise AssertionError("FETCH %s %s: %s %r" % (seqset, items, typ, data))
    return parse_fetch_responses(join_imaplib(data))


def fetch_one(m, seqset, items, uid=False):
    got = fetch(m, seqset, items, uid)
    if len(got) != 1:
        raise AssertionError("FETCH %s %s: %d responses, want 1: %r"
                             % (seqset, items, len(got), got))
    return got[0]


def search_ids(data):
    """imaplib SEARCH data -> list of ints."""
    out = []
    for item in data:
        if item:
            out += [int(x) for x in item.split()]
    return out
