"""Shared helpers for the integration tests: start the real mailsnare
binary on free loopback ports, talk SMTP over raw sockets, and read the
mailstore back through the CLI.

Python standard library only. Every socket and subprocess has a timeout.

Environment:
  MAILSNARE_BIN     the binary under test (required)
  MAILSNARE_SRCDIR  the source tree (optional, unused here)
"""

import base64
import glob
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

READY_TIMEOUT = 30.0     # seconds to wait for the ready file (a loaded 2-core CI machine)
STOP_TIMEOUT = 10.0      # seconds to wait for exit after SIGTERM
CLI_TIMEOUT = 30.0       # seconds for one CLI call
SOCK_TIMEOUT = 15.0      # seconds for one socket operation

LISTENERS = ("smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "http")

CRLF = b"\r\n"


def binary():
    path = os.environ.get("MAILSNARE_BIN")
    if not path:
        raise RuntimeError("MAILSNARE_BIN is not set (path of the mailsnare binary)")
    if not os.access(path, os.X_OK):
        raise RuntimeError("MAILSNARE_BIN=%r is not an executable file" % path)
    return path


def clean_env():
    """The environment for the server and CLI: without MAILSNARE_* variables
    (they are configuration keys for mailsnare, and the test must not pick up
    a developer's settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSNARE_")}
    return env


# ---------------------------------------------------------------------------
# Message bytes


def rss_kb(pid):
    """The resident memory of process `pid` in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def normalize(msg):
    """The bytes mailsnare is expected to store for data `msg` sent with
    SMTP DATA (before the Received: header is prepended): every bare LF
    becomes CRLF, and the message ends with CRLF."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", msg)
    if out and not out.endswith(CRLF):
        out += CRLF
    return out


_RECEIVED = re.compile(rb"Received:", re.IGNORECASE)


def strip_received(raw):
    """Removes the first "Received:" header field (with its folded
    continuation lines) from a stored message's header section."""
    end_of_header = raw.find(b"\r\n\r\n")
    if end_of_header < 0:
        end_of_header = len(raw)
    pos = 0
    while pos < end_of_header:
        eol = raw.find(CRLF, pos)
        if eol < 0:
            eol = len(raw)
        if _RECEIVED.match(raw, pos):
            stop = eol + 2
            while stop < len(raw) and raw[stop:stop + 1] in (b" ", b"\t"):
                nxt = raw.find(CRLF, stop)
                stop = len(raw) if nxt < 0 else nxt + 2
            return raw[:pos] + raw[stop:]
        pos = eol + 2
    raise AssertionError("no Received: header field in the stored message: %r"
                         % raw[:300])


def split_message(raw):
    """(header, body) at the first empty line; header includes its final
    CRLF, the body starts after the empty line."""
    idx = raw.find(b"\r\n\r\n")
    if idx < 0:
        return raw, b""
    return raw[:idx + 2], raw[idx + 4:]


_QUEUED = re.compile(r"queued as <?([^\s>]+)>?")


def queued_id(text):
    """The message id from a "250 2.0.0 Ok: queued as ID" reply text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    m = _QUEUED.search(text)
    if not m:
        raise AssertionError("no 'queued as ID' in reply %r" % text)
    return m.group(1)


# ---------------------------------------------------------------------------
# TLS


def find_cert(directory):
    """The PEM certificate the server generated in `directory`, or None."""
    for path in sorted(glob.glob(os.path.join(directory, "*"))):
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError:
            continue
        if b"-----BEGIN CERTIFICATE-----" in head:
            return path
    return None


def insecure_context():
    """A client context that does not verify the peer (self-signed cert)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def wait_until(pred, timeout=10.0, what="condition"):
    """pred()'s first true value, polled every 50 ms for `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def closed_port():
    """A loopback port nobody listens on (bound once, then let go)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def imap_move_all(server, folder, user="dev", password="dev"):
    """Moves every message of the INBOX to `folder` (created) with IMAP
    MOVE: the store notifies each as new in its new mailbox, same id."""
    import imaplib
    host, port = server.addr("imap")
    m = imaplib.IMAP4(host, port, timeout=SOCK_TIMEOUT)
    try:
        m.login(user, password)
        m.create(folder)
        m.select("INBOX")
        typ, data = m.uid("MOVE", "1:*", folder)
        if typ != "OK":
            raise AssertionError("UID MOVE: %s %r" % (typ, data))
    finally:
        m.logout()


# ---------------------------------------------------------------------------
# The server


class ServerError(AssertionError):
    pass


class Server:
    """A mailsnare server in its own temporary directory, on free loopback
    ports. Use as a context manager, or call start() and stop()."""

    def __init__(self, *extra_args):
        self.extra_args = [str(a) for a in extra_args]
        self.proc = None
        self.tmp = None
        self.dir = None
        self.db = None
        self.addrs = {}
        self.log_text = b""

    # -- life cycle

    def start(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="mailsnare-it-")
        self.dir = self.tmp.name
        self.db = os.path.join(self.dir, "m.db")
        self.ready_path = os.path.join(self.dir, "ready")
        self.log_path = os.path.join(self.dir, "server.log")
        args = [binary(), "serve", "--db", self.db, "--ready-file", self.ready_path]
        for proto in LISTENERS:
            args += ["--" + proto, "127.0.0.1:0"]
        args += ["--log-level", "debug"]
        args += self.extra_args
        self.args = args
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, cwd=self.dir, env=clean_env(),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            self._cleanup()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerError("mailsnare exited with status %s before it was ready\n"
                                  "command: %s\n%s" % (rc, " ".join(self.args),
                                                       self.log_excerpt()))
            text = None
            try:
                with open(self.ready_path, "r", encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                pass
            if text and text.endswith("\n"):
                addrs = self._parse_ready(text)
                if "smtp" in addrs:
                    self.addrs = addrs
                    return
            if time.monotonic() > deadline:
                raise ServerError("no usable ready file after %.0f s (content %r)\n%s"
                                  % (READY_TIMEOUT, text, self.log_excerpt()))
            time.sleep(0.02)

    @staticmethod
    def _parse_ready(text):
        addrs = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 2:
                continue
            proto, hostport = parts
            host, _, port = hostport.rpartition(":")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            if not port.isdigit():
                continue
            addrs[proto] = (host, int(port))
        return addrs

    def stop(self):
        """SIGTERM; the server must exit with status 0 within 10 s."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                raise ServerError("mailsnare had already exited (status %s) before stop\n%s"
                                  % (rc, self.log_excerpt()))
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
                raise ServerError("mailsnare did not exit within %.0f s of SIGTERM "
                                  "(killed)\n%s" % (STOP_TIMEOUT, self.log_excerpt()))
            if rc != 0:
                raise ServerError("mailsnare exited with status %s after SIGTERM "
                                  "(want 0)\n%s" % (rc, self.log_excerpt()))
        finally:
            self._cleanup()

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def _cleanup(self):
        self.log_text = self.read_log()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None
            # read_log() now answers from log_text: the file is gone.
            self.dir = None
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write("\n--- server log (test failed) ---\n%s\n"
                             % self.log_excerpt())
            try:
                self.stop()
            except ServerError as e:
                sys.stderr.write("%s\n" % e)
            return False
        self.stop()
        return False

    # -- log

    def read_log(self, offset=0):
        if self.dir is None:
            return self.log_text[offset:]
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return b""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except (OSError, AttributeError):
            return 0

    def log_excerpt(self, offset=0, max_lines=300):
        lines = self.read_log(offset).decode("utf-8", "replace").splitlines()
        if len(lines) > max_lines:
            lines = ["... (%d lines left out)" % (len(lines) - max_lines)] + lines[-max_lines:]
        return "\n".join(lines)

    # -- addresses and TLS

    def addr(self, proto):
        if proto not in self.addrs:
            raise ServerError("no %r listener in the ready file: %r" % (proto, self.addrs))
        return self.addrs[proto]

    def cert_path(self):
        return find_cert(self.dir)

    # -- CLI

    def cli(self, *args, timeout=CLI_TIMEOUT):
        cmd = [binary()] + [str(a) for a in args] + ["--db", self.db]
        return subprocess.run(cmd, cwd=self.dir, env=clean_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)

    def cli_ok(self, *args):
        cp = self.cli(*args)
        if cp.returncode != 0:
            raise AssertionError("mailsnare %s: exit status %d\nstdout: %r\nstderr: %r"
                                 % (" ".join(map(str, args)), cp.returncode,
                                    cp.stdout[:2000], cp.stderr[:2000]))
        return cp

    def message_rows(self, inbox=None):
        """Rows of `message list` as dicts id, inbox, date, from, to, subject."""
        args = ["message", "list"]
        if inbox is not None:
            args += ["--inbox", inbox]
        out = self.cli_ok(*args).stdout.decode("utf-8", "replace")
        lines = out.splitlines()
        if not lines:
            raise AssertionError("`message list` printed nothing, not even its header line")
        header = lines[0].split("\t")
        if [h.upper() for h in header] != ["ID", "INBOX", "DATE", "FROM", "TO", "SUBJECT"]:
            raise AssertionError("unexpected `message list` header line %r" % lines[0])
        rows = []
        for line in lines[1:]:
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) < 6:
                raise AssertionError("`message list` row with %d fields: %r"
                                     % (len(fields), line))
            rows.append({"id": fields[0], "inbox": fields[1], "date": fields[2],
                         "from": fields[3], "to": fields[4],
                         "subject": "\t".join(fields[5:])})
        return rows

    def message_ids(self, inbox=None):
        return [r["id"] for r in self.message_rows(inbox)]

    def message_bytes(self, msg_id):
        return self.cli_ok("message", "get", msg_id).stdout

    def inbox_add(self, name, password):
        return self.cli_ok("inbox", "add", name, "--password", password)

    def inbox_rows(self):
        """`inbox list` as a list of dicts keyed by the lower-cased header
        names (the first line is a header when its first field is NAME),
        else by position ("0", "1", ...)."""
        out = self.cli_ok("inbox", "list").stdout.decode("utf-8", "replace")
        lines = [l for l in out.splitlines() if l.strip()]
        if not lines:
            return []
        first = lines[0].split("\t")
        if first[0].strip().upper() == "NAME":
            keys = [k.strip().lower() for k in first]
            lines = lines[1:]
        else:
            keys = None
        rows = []
        for line in lines:
            fields = line.split("\t")
            if keys:
                rows.append(dict(zip(keys, fields)))
            else:
                rows.append({str(i): f for i, f in enumerate(fields)})
        return rows

    def inbox_message_count(self, name):
        """The message count `inbox list` shows for inbox `name` (None if
        the inbox is not listed)."""
        for row in self.inbox_rows():
            values = list(row.values())
            if values and values[0] == name:
                for key in ("messages", "count", "msgs"):
                    if key in row:
                        return int(row[key])
                return int(values[-1])
        return None

    def wait_for_count(self, inbox, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            ids = self.message_ids(inbox)
            if len(ids) >= n or time.monotonic() > deadline:
                return ids
            time.sleep(0.05)


# ---------------------------------------------------------------------------
# A raw SMTP client


class Reply:
    def __init__(self, lines):
        self.lines = lines                      # decoded, without CRLF
        self.code = int(lines[-1][:3])
        first = lines[0][4:]
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})(?:\s|$)", first)
        self.enhanced = m.group(1) if m else None
        self.text = "\n".join(l[4:] for l in lines)

    def keywords(self):
        """EHLO keywords: upper-cased keyword -> list of parameters."""
        kw = {}
        for line in self.lines[1:]:
            parts = line[4:].split()
            if parts:
                kw[parts[0].upper()] = parts[1:]
        return kw

    def __repr__(self):
        return "<Reply %r>" % "\r\n".join(self.lines)


class RawSocket:
    """A client socket (plain or TLS) with a read buffer: the plumbing the
    raw protocol clients share; each adds its own framing."""

    def __init__(self, addr, tls_context=None, timeout=SOCK_TIMEOUT):
        self.sock = socket.create_connection(addr, timeout=timeout)
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)


class RawSMTP(RawSocket):
    """Bytes in, parsed replies out; no protocol logic of its own."""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server (pending %r)" % self.buf)
        self.buf += chunk

    def line(self):
        while True:
            idx = self.buf.find(CRLF)
            if idx >= 0:
                line, self.buf = self.buf[:idx], self.buf[idx + 2:]
                return line
            if len(self.buf) > 1 << 20:
                raise AssertionError("reply line longer than 1 MiB")
            self._fill()

    def reply(self):
        lines = []
        while True:
            raw = self.line()
            text = raw.decode("utf-8", "replace")
            if not re.match(r"^[2-5]\d\d[ -]", text) and not re.match(r"^[2-5]\d\d$", text):
                raise AssertionError("malformed reply line %r (after %r)" % (raw, lines))
            lines.append(text)
            if len(text) == 3 or text[3] == " ":
                return Reply(lines)

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + CRLF)
        return self.reply()

    def greeting(self):
        return self.reply()

    def starttls(self, context):
        """Wraps the socket after a 220 to STARTTLS (sent by the caller)."""
        if self.buf:
            raise AssertionError("unread bytes before the TLS handshake: %r" % self.buf)
        self.sock = context.wrap_socket(self.sock)

    def closed_by_peer(self, timeout=5.0):
        """True if the server closes the connection (EOF or reset) with no
        further bytes within `timeout`; raises if it sends bytes."""
        if self.buf:
            raise AssertionError("unexpected bytes from the server: %r" % self.buf)
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True
        finally:
            self.sock.settimeout(SOCK_TIMEOUT)
        if data:
            raise AssertionError("unexpected bytes from the server: %r" % data)
        return True


def auth_plain(user, password, authzid=""):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, user, password)).encode("utf-8")).decode()


def b64(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return base64.b64encode(s).decode()


# ---------------------------------------------------------------------------
# unittest support


class TestCase(unittest.TestCase):
    """Base class: `server_args` start one Server for the class (setUpClass);
    on a failing test the server's log lines written during that test are
    printed to stderr."""

    server_args = ()
    server = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = Server(*cls.server_args).start()

    @classmethod
    def tearDownClass(cls):
        server, cls.server = cls.server, None
        if server is not None:
            server.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self._log_offset = self.server.log_size() if self.server else 0

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        # Python >= 3.11 adds failures to the result as they happen
        result = getattr(outcome, "result", None)
        if result is not None:
            for test, _ in list(result.errors) + list(result.failures):
                if getattr(test, "test_case", test) is self:
                    return True
        # older versions collect them in the outcome
        for test, exc in getattr(outcome, "errors", []):
            if exc is not None:
                return True
        return False

    def tearDown(self):
        if self.server and self._failed():
            sys.stderr.write("\n--- server log during %s ---\n%s\n--- end of log ---\n"
                             % (self.id(), self.server.log_excerpt(self._log_offset)))
        super().tearDown()

    # -- assertions

    def assertReply(self, reply, code, enhanced=None, msg=None):
        got = (reply.code, reply.enhanced) if enhanced else reply.code
        want = (code, enhanced) if enhanced else code
        self.assertEqual(got, want, msg or "reply %r" % reply)

    def assertStored(self, msg_id, expected, inbox=None):
        """The stored message `msg_id` is a prepended Received: header plus
        exactly `expected`; if `inbox` is given it is listed in that inbox."""
        raw = self.server.message_bytes(msg_id)
        self.assertTrue(raw.lower().startswith(b"received:"),
                        "stored message does not start with Received: %r" % raw[:200])
        got = strip_received(raw)
        if got != expected:
            self.fail("stored bytes differ from the data sent: %s"
                      % describe_difference(got, expected))
        if inbox is not None:
            self.assertIn(msg_id, self.server.message_ids(inbox),
                          "message %s not listed in inbox %r" % (msg_id, inbox))
        return raw


def describe_difference(got, expected):
    n = min(len(got), len(expected))
    i = 0
    while i < n and got[i] == expected[i]:
        i += 1
    return ("lengths got %d / expected %d; first difference at offset %d: got %r, expected %r"
            % (len(got), len(expected), i, got[max(0, i - 40):i + 60],
               expected[max(0, i - 40):i + 60]))


def main():
    """unittest.main that exits non-zero on failure."""
    unittest.main(verbosity=int(os.environ.get("TEST_VERBOSITY", "1")) or 1)
