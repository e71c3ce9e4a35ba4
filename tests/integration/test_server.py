"""Server-level integration tests: start-up output and the ready file,
IPv6 and disabled listeners, max-clients, the SMTP idle timeout, clean
shutdown on SIGINT/SIGTERM, a busy port, log lines and the inboxes that
exist at start.

These tests start the binary themselves (not through harness.Server)
because they need stdout and stderr apart, a chosen set of listeners and
a chosen log level. Every listener the test does not use is "off", so no
test ever touches a fixed port."""

import os
import re
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import RawSMTP, queued_id, strip_received, CRLF

START_TIMEOUT = harness.READY_TIMEOUT   # a first start makes an RSA key; CI is loaded
EXIT_TIMEOUT = 10.0
IO_TIMEOUT = 10.0

ALL_OFF = {p: "off" for p in harness.LISTENERS}


class Daemon:
    """One mailsnare process in its own directory: stdout and stderr in
    separate files, listeners chosen by the caller (the rest off)."""

    def __init__(self, directory=None, listeners=None, args=(), log_level="info",
                 env=None):
        self._tmp = None
        self.env = dict(env) if env is not None else harness.clean_env()
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mailsnare-srv-")
            directory = self._tmp.name
        self.dir = directory
        self.db = os.path.join(directory, "m.db")
        self.ready_path = os.path.join(directory, "ready")
        self.listeners = dict(ALL_OFF)
        self.listeners.update(listeners if listeners is not None else {"smtp": "127.0.0.1:0"})
        self.extra = [str(a) for a in args]
        self.log_level = log_level
        self.proc = None
        self.addrs = {}
        self.ready_text = None
        self._out = self._err = None
        self.returncode = None
        self.runs = 0

    # -- life cycle

    def command(self):
        cmd = [harness.binary(), "serve", "--db", self.db, "--ready-file", self.ready_path]
        for proto in harness.LISTENERS:
            cmd += ["--" + proto, self.listeners[proto]]
        if self.log_level:
            cmd += ["--log-level", self.log_level]
        return cmd + self.extra

    def spawn(self):
        """Starts the process without waiting for the ready file."""
        self.runs += 1
        self.stdout_path = os.path.join(self.dir, "stdout.%d" % self.runs)
        self.stderr_path = os.path.join(self.dir, "stderr.%d" % self.runs)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.cmd = self.command()
        self.returncode = None
        self.proc = subprocess.Popen(self.cmd, cwd=self.dir, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err)
        return self

    def start(self):
        self.spawn()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            if os.path.exists(self.ready_path):
                with open(self.ready_path, "r", encoding="utf-8") as f:
                    text = f.read()
                self.ready_text = text
                self.addrs = parse_ready(text)
                return self.addrs
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("mailsnare exited with status %s before the ready file "
                                     "appeared\ncommand: %s\n%s"
                                     % (rc, " ".join(self.cmd), self.output()))
            if time.monotonic() > deadline:
                raise AssertionError("no ready file after %.0f s\n%s" % (timeout, self.output()))
            time.sleep(0.01)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=EXIT_TIMEOUT):
        """Exit status, or None if the process is still running after
        `timeout` (then it is killed)."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self._close_files()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in (self._out, self._err):
            if f is not None:
                f.close()
        self._out = self._err = None

    def cleanup(self):
        self.kill()
        if self._tmp is not None and self.runs:
            self.saved_output = self.output()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- output

    def stdout(self):
        return read_text(self.stdout_path)

    def stderr(self):
        return read_text(self.stderr_path)

    saved_output = None

    def output(self):
        if self.saved_output is not None:
            return self.saved_output
        return ("--- stdout ---\n%s--- stderr ---\n%s--- end ---"
                % (self.stdout(), self.stderr()))

    def wait_stderr(self, pattern, count=1, timeout=5.0):
        """The stderr text once `pattern` matches at least `count` times
        (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr()
            if len(re.findall(pattern, text, re.M)) >= count or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    # -- CLI on the same db

    def cli(self, *args):
        cmd = [harness.binary()] + [str(a) for a in args] + ["--db", self.db]
        return subprocess.run(cmd, cwd=self.dir, env=harness.clean_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=harness.CLI_TIMEOUT)

    def cli_ok(self, *args):
        cp = self.cli(*args)
        if cp.returncode != 0:
            raise AssertionError("mailsnare %s: exit status %d\nstdout: %r\nstderr: %r"
                                 % (" ".join(map(str, args)), cp.returncode,
                                    cp.stdout[:2000], cp.stderr[:2000]))
        return cp.stdout

    def message_rows(self, inbox=None):
        args = ["message", "list"] + (["--inbox", inbox] if inbox else [])
        lines = self.cli_ok(*args).decode("utf-8", "replace").splitlines()
        if not lines or lines[0].split("\t") != ["ID", "INBOX", "DATE", "FROM", "TO", "SUBJECT"]:
            raise AssertionError("unexpected `message list` output %r" % lines[:3])
        return [l.split("\t") for l in lines[1:] if l]

    def message_ids(self, inbox=None):
        return [r[0] for r in self.message_rows(inbox)]

    def inbox_rows(self):
        """`inbox list` as {name: (password, count)}."""
        lines = self.cli_ok("inbox", "list").decode("utf-8", "replace").splitlines()
        if not lines or lines[0].split("\t") != ["NAME", "PASSWORD", "MESSAGES"]:
            raise AssertionError("unexpected `inbox list` output %r" % lines[:3])
        rows = {}
        for line in lines[1:]:
            if line:
                f = line.split("\t")
                rows[f[0]] = (f[1], int(f[2]))
        return rows


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def parse_ready(text):
    """{proto: (host, port)} from ready-file text; raises on a bad line."""
    addrs = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+) (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)", line)
        if not m:
            raise AssertionError("malformed ready-file line %r in %r" % (line, text))
        host = m.group(2).strip("[]")
        addrs[m.group(1)] = (host, int(m.group(3)))
    return addrs


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def make_message(tag, extra=b""):
    return (b"From: app@example.test\r\nTo: user@example.test\r\n"
            b"Subject: " + tag.encode() + b"\r\n\r\n"
            b"body of " + tag.encode() + b"\r\n" + extra)


def send_raw(addr, msg, login=None):
    """One transaction over a raw socket; returns the final reply. `msg`
    must not contain a line starting with '.'."""
    with RawSMTP(addr, timeout=IO_TIMEOUT) as c:
        greeting = c.greeting()
        if greeting.code != 220:
            raise AssertionError("greeting %r" % greeting)
        c.cmd("EHLO client.example.test")
        if login:
            r = c.cmd("AUTH PLAIN " + harness.auth_plain(*login))
            if r.code != 235:
                raise AssertionError("AUTH PLAIN %r: %r" % (login, r))
        for line, want in (("MAIL FROM:<app@example.test>", 250),
                           ("RCPT TO:<user@example.test>", 250), ("DATA", 354)):
            r = c.cmd(line)
            if r.code != want:
                raise AssertionError("%s: %r" % (line, r))
        c.send(msg + b".\r\n")
        final = c.reply()
        c.cmd("QUIT")
        return final


def read_until_eof(sock, timeout):
    """All bytes until EOF or reset; raises socket.timeout if the peer
    keeps the connection open past `timeout` seconds in total."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no EOF within %.1f s (got %r)" % (timeout, data))
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


class ServerCase(unittest.TestCase):

    def daemon(self, **kw):
        d = Daemon(**kw)
        self.addCleanup(d.cleanup)
        self._daemons.append(d)
        return d

    def setUp(self):
        self._daemons = []
        self.addCleanup(self._dump_on_failure)

    def _dump_on_failure(self):
        # printed for every test; cheap, and shows the server side of a failure
        failed = False
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is not None:
            for test, _ in list(result.errors) + list(result.failures):
                if getattr(test, "test_case", test) is self:
                    failed = True
        if failed or (outcome is not None and not getattr(outcome, "success", True)):
            for d in self._daemons:
                print("\n--- %s: mailsnare %s ---\n%s" % (self.id(), " ".join(d.extra),
                                                          d.output()))

    def assertStoredBytes(self, d, msg_id, sent):
        raw = d.cli_ok("message", "get", msg_id)
        self.assertTrue(raw.startswith(b"Received:"),
                        "message %s does not start with Received: %r" % (msg_id, raw[:100]))
        got = strip_received(raw)
        self.assertEqual(got, sent, "stored bytes of message %s: %s"
                         % (msg_id, harness.describe_difference(got, sent)))

    def assertExitsZero(self, d, what):
        rc = d.wait(EXIT_TIMEOUT)
        self.assertIsNotNone(rc, "mailsnare still running %.0f s after %s (killed)\n%s"
                             % (EXIT_TIMEOUT, what, d.output()))
        self.assertEqual(rc, 0, "exit status after %s\n%s" % (what, d.output()))


class TestStartup(ServerCase):

    def test_stdout_lists_listeners_and_credentials_ready_file_only_when_bound(self):
        d = self.daemon(listeners={"smtp": "127.0.0.1:0", "smtps": "127.0.0.1:0"},
                        args=["--inbox", "ci:secret"])
        d.spawn()
        # The ready file must appear only once the listeners accept: connect
        # to each listed address the moment it appears.
        addrs = d.wait_ready()
        with RawSMTP(addrs["smtp"], timeout=IO_TIMEOUT) as c:
            self.assertEqual(c.greeting().code, 220)
        with RawSMTP(addrs["smtps"], tls_context=harness.insecure_context(),
                     timeout=IO_TIMEOUT) as c:
            self.assertEqual(c.greeting().code, 220)

        self.assertTrue(d.ready_text.endswith("\n"), repr(d.ready_text))
        self.assertEqual(sorted(addrs), ["smtp", "smtps"], d.ready_text)
        for proto in ("smtp", "smtps"):
            host, port = addrs[proto]
            self.assertEqual(host, "127.0.0.1")
            self.assertNotEqual(port, 0)
            self.assertIn("%s 127.0.0.1:%d\n" % (proto, port), d.ready_text)

        # stdout: each listener with its bound address, the credentials
        deadline = time.monotonic() + 5
        while "password dev" not in d.stdout() and time.monotonic() < deadline:
            time.sleep(0.05)
        out = d.stdout()
        for proto in ("smtp", "smtps"):
            self.assertRegex(out, r"(?m)^%s\s+127\.0\.0\.1:%d\b" % (proto, addrs[proto][1]),
                             "listener %s missing from stdout" % proto)
        self.assertIn("inbox  dev: username dev, password dev\n", out)
        self.assertIn("inbox  ci: username ci, password secret\n", out)
        self.assertNotRegex(out, r"(?m)^(pop3|pop3s|imap|imaps|http)\s",
                            "a listener that is off is listed")
        self.assertIn(d.db, out, "stdout does not name the db")

        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")
        self.assertFalse(os.path.exists(d.ready_path),
                         "ready file still there after a clean exit")

    def test_ready_file_removed_after_sigint(self):
        d = self.daemon().start()
        self.assertTrue(os.path.exists(d.ready_path))
        d.signal(signal.SIGINT)
        self.assertExitsZero(d, "SIGINT")
        self.assertFalse(os.path.exists(d.ready_path),
                         "ready file still there after a clean exit")

    def test_smtp_off(self):
        d = self.daemon(listeners={"smtp": "off", "smtps": "127.0.0.1:0"}).start()
        self.assertEqual(sorted(d.addrs), ["smtps"], d.ready_text)
        with RawSMTP(d.addrs["smtps"], tls_context=harness.insecure_context(),
                     timeout=IO_TIMEOUT) as c:
            self.assertEqual(c.greeting().code, 220)
        self.assertNotRegex(d.stdout(), r"(?m)^smtp\s", "stdout lists the smtp listener")
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")

    def test_ipv6_loopback(self):
        if not have_ipv6_loopback():
            self.skipTest("this machine has no ::1 (cannot bind an IPv6 loopback socket)")
        d = self.daemon(listeners={"smtp": "[::1]:0"}).start()
        self.assertRegex(d.ready_text, r"^smtp \[::1\]:\d+\n$")
        host, port = d.addrs["smtp"]
        self.assertEqual(host, "::1")
        self.assertRegex(d.stdout(), r"(?m)^smtp\s+\[::1\]:%d\b" % port)
        msg = make_message("over ipv6")
        with smtplib.SMTP("::1", port, timeout=IO_TIMEOUT) as s:
            s.ehlo("client.example.test")
            resp = s.sendmail("app@example.test", ["user@example.test"], msg)
            self.assertEqual(resp, {})
            code, text = s.noop()
            self.assertEqual(code, 250)
        ids = d.message_ids("dev")
        self.assertEqual(len(ids), 1, ids)
        self.assertStoredBytes(d, ids[0], msg)
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")

    def test_ipv6_message_id_from_reply(self):
        if not have_ipv6_loopback():
            self.skipTest("this machine has no ::1 (cannot bind an IPv6 loopback socket)")
        d = self.daemon(listeners={"smtp": "[::1]:0"}).start()
        msg = make_message("raw ipv6")
        r = send_raw(d.addrs["smtp"], msg)
        self.assertEqual((r.code, r.enhanced), (250, "2.0.0"), r)
        self.assertStoredBytes(d, queued_id(r.text), msg)

    def test_busy_port_fails_startup(self):
        for proto in ("smtp", "smtps"):
            with self.subTest(listener=proto):
                blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    blocker.bind(("127.0.0.1", 0))
                    blocker.listen(1)
                    port = blocker.getsockname()[1]
                    listeners = {"smtp": "127.0.0.1:0", "smtps": "127.0.0.1:0"}
                    listeners[proto] = "127.0.0.1:%d" % port
                    d = self.daemon(listeners=listeners)
                    d.spawn()
                    rc = d.wait(EXIT_TIMEOUT)
                    self.assertIsNotNone(rc, "mailsnare still running with %s on a busy "
                                         "port\n%s" % (proto, d.output()))
                    self.assertNotEqual(rc, 0, d.output())
                    err = d.stderr()
                    self.assertRegex(err, r"\b%s\b" % proto,
                                     "the error does not name the listener\n%s" % d.output())
                    self.assertIn(str(port), err,
                                  "the error does not name the address\n%s" % d.output())
                    self.assertFalse(os.path.exists(d.ready_path),
                                     "ready file written although %s could not bind" % proto)
                finally:
                    blocker.close()

    def test_relative_db_path(self):
        # `--db m.db` relative to the working directory, the certificate
        # generated next to it.
        d = self.daemon()
        d.db = "m.db"
        d.start()
        self.assertTrue(os.path.exists(os.path.join(d.dir, "m.db")))
        msg = make_message("relative db")
        r = send_raw(d.addrs["smtp"], msg)
        self.assertEqual(r.code, 250, r)
        self.assertStoredBytes(d, queued_id(r.text), msg)
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")


class TestLimits(ServerCase):

    def greet(self, addr, tls=False):
        c = RawSMTP(addr, tls_context=harness.insecure_context() if tls else None,
                    timeout=IO_TIMEOUT)
        self.addCleanup(c.close)
        return c, c.greeting()

    def test_max_clients(self):
        d = self.daemon(listeners={"smtp": "127.0.0.1:0", "smtps": "127.0.0.1:0"},
                        args=["--max-clients", "3"]).start()
        smtp, smtps = d.addrs["smtp"], d.addrs["smtps"]
        # the limit counts connections over all listeners
        a, ra = self.greet(smtp)
        b, rb = self.greet(smtps, tls=True)
        c, rc = self.greet(smtp)
        for r in (ra, rb, rc):
            self.assertEqual(r.code, 220, r)

        fourth = RawSMTP(smtp, timeout=IO_TIMEOUT)
        self.addCleanup(fourth.close)
        r = fourth.reply()
        self.assertEqual((r.code, r.enhanced), (421, "4.3.2"), r)
        self.assertTrue(fourth.closed_by_peer(5), "fourth connection not closed after 421")
        text = d.wait_stderr(r"max-clients")
        self.assertIn("max-clients", text, "no log line for the refused connection")

        # the three still work
        for conn in (a, b, c):
            self.assertEqual(conn.cmd("NOOP").code, 250)

        # one leaves with QUIT: a new connection is accepted
        self.assertEqual(a.cmd("QUIT").code, 221)
        self.assertTrue(a.closed_by_peer(5))
        e, re_ = self.greet(smtp)
        self.assertEqual(re_.code, 220, "connection refused after one of three quit: %r" % re_)

        # full again
        f = RawSMTP(smtp, timeout=IO_TIMEOUT)
        self.addCleanup(f.close)
        r = f.reply()
        self.assertEqual((r.code, r.enhanced), (421, "4.3.2"), r)

        # one just drops its socket: the slot frees once the server sees EOF
        b.close()
        deadline = time.monotonic() + 5
        while True:
            g = RawSMTP(smtp, timeout=IO_TIMEOUT)
            self.addCleanup(g.close)
            r = g.reply()
            if r.code == 220 or time.monotonic() > deadline:
                break
            g.close()
            time.sleep(0.1)
        self.assertEqual(r.code, 220, "no slot 5 s after a client closed its socket: %r" % r)
        self.assertEqual(g.cmd("NOOP").code, 250)

        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")

    def test_idle_timeout(self):
        d = self.daemon(args=["--smtp-timeout", "1"]).start()
        addr = d.addrs["smtp"]

        idle, r = self.greet(addr)
        self.assertEqual(r.code, 220)
        talker, r = self.greet(addr)
        self.assertEqual(r.code, 220)
        mid, r = self.greet(addr)
        self.assertEqual(r.code, 220)
        self.assertEqual(mid.cmd("EHLO client.example.test").code, 250)
        self.assertEqual(mid.cmd("MAIL FROM:<a@example.test>").code, 250)

        start = time.monotonic()
        # the talker sends a command every 0.3 s for 3.5 s: never cut
        while time.monotonic() - start < 3.5:
            r = talker.cmd("NOOP")
            self.assertEqual(r.code, 250, "talking client got %r" % r)
            time.sleep(0.3)

        for name, conn in (("idle", idle), ("mid-transaction", mid)):
            data = read_until_eof(conn.sock, 5)
            lines = (conn.buf + data).split(CRLF)
            self.assertTrue(lines[0].startswith(b"421 4.4.2"),
                            "%s client: got %r before EOF, want 421 4.4.2"
                            % (name, conn.buf + data))
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 10)

        # still usable after the idle ones were cut
        self.assertEqual(talker.cmd("NOOP").code, 250)
        text = d.wait_stderr(r"idle timeout", 2)
        self.assertGreaterEqual(len(re.findall(r"idle timeout", text)), 2, text)

    def test_idle_timeout_cuts_quickly(self):
        d = self.daemon(args=["--smtp-timeout", "1"]).start()
        c, r = self.greet(d.addrs["smtp"])
        self.assertEqual(r.code, 220)
        start = time.monotonic()
        data = read_until_eof(c.sock, 6)
        elapsed = time.monotonic() - start
        self.assertTrue(data.startswith(b"421 4.4.2"), data)
        self.assertGreaterEqual(elapsed, 0.5, "cut after %.2f s with a 1 s timeout" % elapsed)
        self.assertLess(elapsed, 4, "cut only after %.2f s with a 1 s timeout" % elapsed)


class TestShutdown(ServerCase):

    def _shutdown(self, sig):
        d = self.daemon().start()
        addr = d.addrs["smtp"]
        sent = {}
        for i in range(5):
            msg = make_message("before signal %d" % i)
            r = send_raw(addr, msg)
            self.assertEqual((r.code, r.enhanced), (250, "2.0.0"), r)
            sent[queued_id(r.text)] = msg
        # one more, acknowledged on a connection that stays open
        busy = RawSMTP(addr, timeout=IO_TIMEOUT)
        self.addCleanup(busy.close)
        self.assertEqual(busy.greeting().code, 220)
        busy.cmd("EHLO client.example.test")
        busy.cmd("MAIL FROM:<a@example.test>")
        busy.cmd("RCPT TO:<b@example.test>")
        self.assertEqual(busy.cmd("DATA").code, 354)
        msg = make_message("kept open")
        busy.send(msg + b".\r\n")
        r = busy.reply()
        self.assertEqual(r.code, 250, r)
        sent[queued_id(r.text)] = msg

        idle = RawSMTP(addr, timeout=IO_TIMEOUT)
        self.addCleanup(idle.close)
        self.assertEqual(idle.greeting().code, 220)
        # make sure the server has seen both connections before the signal
        self.assertEqual(idle.cmd("NOOP").code, 250)

        d.signal(sig)
        for name, conn in (("idle", idle), ("after a transaction", busy)):
            data = conn.buf + read_until_eof(conn.sock, 8)
            self.assertRegex(data, rb"^421[ -]",
                             "%s client got %r before EOF, want a 421" % (name, data))
            self.assertTrue(data.endswith(CRLF), data)
        self.assertExitsZero(d, "signal %d" % sig)
        self.assertFalse(os.path.exists(d.ready_path))

        ids = d.message_ids("dev")
        self.assertEqual(sorted(ids, key=int), sorted(sent, key=int))
        for msg_id, msg in sent.items():
            self.assertStoredBytes(d, msg_id, msg)

        # the restarted server serves the same store
        d.start()
        msg = make_message("after restart")
        r = send_raw(d.addrs["smtp"], msg)
        self.assertEqual(r.code, 250, r)
        self.assertNotIn(queued_id(r.text), sent)
        self.assertStoredBytes(d, queued_id(r.text), msg)
        self.assertEqual(len(d.message_ids("dev")), len(sent) + 1)
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")

    def test_sigterm(self):
        self._shutdown(signal.SIGTERM)

    def test_sigint(self):
        self._shutdown(signal.SIGINT)

    def test_unfinished_message_on_sigterm(self):
        # A client in the middle of DATA gets 421 and its message is not
        # stored; the port is closed after the exit.
        d = self.daemon().start()
        addr = d.addrs["smtp"]
        c = RawSMTP(addr, timeout=IO_TIMEOUT)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting().code, 220)
        c.cmd("EHLO x.example.test")
        c.cmd("MAIL FROM:<a@example.test>")
        c.cmd("RCPT TO:<b@example.test>")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: unfinished\r\n\r\npart")
        d.signal(signal.SIGTERM)
        data = c.buf + read_until_eof(c.sock, 8)
        self.assertRegex(data, rb"^421[ -]", data)
        self.assertExitsZero(d, "SIGTERM")
        self.assertEqual(d.message_ids(), [], "an unfinished message was stored")
        with self.assertRaises(OSError):
            socket.create_connection(addr, timeout=2).close()


class TestLogging(ServerCase):

    def test_connection_and_stored_lines_at_info(self):
        d = self.daemon(log_level="info").start()
        addr = d.addrs["smtp"]
        msg = make_message("logged")
        ports = []
        with RawSMTP(addr, timeout=IO_TIMEOUT) as c:
            ports.append(c.sock.getsockname()[1])
            self.assertEqual(c.greeting().code, 220)
            c.cmd("EHLO client.example.test")
            c.cmd("MAIL FROM:<log@example.test>")
            c.cmd("RCPT TO:<user@example.test>")
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(msg + b".\r\n")
            r = c.reply()
            self.assertEqual(r.code, 250, r)
            msg_id = queued_id(r.text)
            self.assertEqual(c.cmd("QUIT").code, 221)
            self.assertTrue(c.closed_by_peer(5))
        with RawSMTP(addr, timeout=IO_TIMEOUT) as c:
            ports.append(c.sock.getsockname()[1])
            self.assertEqual(c.greeting().code, 220)
            self.assertEqual(c.cmd("QUIT").code, 221)
            self.assertTrue(c.closed_by_peer(5))

        text = d.wait_stderr(r"connection closed", 2)
        for port in ports:
            opens = [l for l in text.splitlines()
                     if re.search(r"\bconnection from\b.*\b%d\b" % port, l)]
            self.assertEqual(len(opens), 1, "open lines for client port %d:\n%s"
                             % (port, text))
        self.assertEqual(len(re.findall(r"connection from", text)), 2, text)
        self.assertEqual(len(re.findall(r"connection closed", text)), 2, text)
        stored = [l for l in text.splitlines()
                  if re.search(r"\bstored message %s\b" % re.escape(msg_id), l)]
        self.assertEqual(len(stored), 1, "no single 'stored message %s' line:\n%s"
                         % (msg_id, text))
        self.assertEqual(len(re.findall(r"stored message", text)), 1, text)
        self.assertRegex(stored[0], r"\binfo\b")
        # info does not log the dialogue
        self.assertNotIn("MAIL FROM", text)
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")

    def test_warn_level_omits_info_lines(self):
        d = self.daemon(log_level="warn").start()
        msg = make_message("quiet")
        r = send_raw(d.addrs["smtp"], msg)
        self.assertEqual(r.code, 250, r)
        time.sleep(0.3)
        text = d.stderr()
        self.assertNotIn("stored message", text)
        self.assertNotIn("connection from", text)
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")


class TestInboxes(ServerCase):

    def test_dev_and_configured_inboxes_exist_and_authenticate(self):
        d = self.daemon(args=["--inbox", "ci:secret", "--inbox", "qa:pw-2"]).start()
        rows = d.inbox_rows()
        self.assertEqual(rows.get("dev"), ("dev", 0), rows)
        self.assertEqual(rows.get("ci"), ("secret", 0), rows)
        self.assertEqual(rows.get("qa"), ("pw-2", 0), rows)

        msg = make_message("for ci")
        with smtplib.SMTP(*d.addrs["smtp"], timeout=IO_TIMEOUT) as s:
            s.ehlo("client.example.test")
            s.login("ci", "secret")
            self.assertEqual(s.sendmail("app@example.test", ["someone@example.test"], msg), {})
        ids = d.message_ids("ci")
        self.assertEqual(len(ids), 1, ids)
        self.assertStoredBytes(d, ids[0], msg)
        self.assertEqual(d.message_ids("dev"), [])

        # AUTH PLAIN over raw SMTP; the reply's id names the ci message
        msg2 = make_message("for ci, raw")
        r = send_raw(d.addrs["smtp"], msg2, login=("ci", "secret"))
        self.assertEqual(r.code, 250, r)
        self.assertIn(queued_id(r.text), d.message_ids("ci"))
        self.assertStoredBytes(d, queued_id(r.text), msg2)

        with smtplib.SMTP(*d.addrs["smtp"], timeout=IO_TIMEOUT) as s:
            s.ehlo("client.example.test")
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                s.login("ci", "wrong")
            self.assertEqual(cm.exception.smtp_code, 535)
        self.assertEqual(d.inbox_rows()["ci"], ("secret", 2))

        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")

    def test_dev_inbox_created_on_empty_db(self):
        d = self.daemon().start()
        rows = d.inbox_rows()
        self.assertEqual(rows, {"dev": ("dev", 0)})
        with smtplib.SMTP(*d.addrs["smtp"], timeout=IO_TIMEOUT) as s:
            s.ehlo("client.example.test")
            s.login("dev", "dev")
            s.sendmail("a@example.test", ["b@example.test"], make_message("dev login"))
        self.assertEqual(d.inbox_rows()["dev"], ("dev", 1))


class TestAuthBudget(unittest.TestCase):
    """Failed logins are counted per client address across connections and
    protocols (auth.c): 30 parallel connections from 127.0.0.1 guessing
    passwords on SMTP, POP3 and IMAP for 5 s get at most the budget (20)
    plus one answer per 250 ms between them, while a right password from
    the same address logs in at once. Before the budget they got 100-490
    answers a second."""

    GUESS_SECONDS = 5.0
    CONNECTIONS = 30
    # 20 within the budget, 20 slots of 250 ms in 5 s, and some slack for
    # the drain of the budget during the run (20 a minute).
    MAX_ANSWERS = 50

    # One wrong-password attempt per protocol: what to send, and the
    # first bytes of the failure reply.
    ATTEMPTS = {
        "smtp": (b"AUTH PLAIN " + harness.auth_plain("dev", "wrong").encode() + CRLF,
                 b"535 5.7.8 "),
        "pop3": (b"USER dev\r\nPASS wrong\r\n", b"-ERR [AUTH] "),
        "imap": (b"a LOGIN dev wrong\r\n", b"a NO [AUTHENTICATIONFAILED] "),
    }

    def setUp(self):
        self.srv = harness.Server().start()
        self.addCleanup(self.srv.stop)

    def _guess(self, proto, deadline, counts, errors):
        """Guesses on one connection after another until the deadline;
        counts the failure replies that arrive before it."""
        send, fail = self.ATTEMPTS[proto]
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection(self.srv.addr(proto), timeout=2.0)
            except OSError as e:
                errors.append("%s connect: %r" % (proto, e))
                return
            buf = b""
            try:
                sock.settimeout(1.0)
                buf = sock.recv(4096)                  # greeting
                if proto == "smtp":
                    sock.sendall(b"EHLO guesser\r\n")
                buf = b""
                while time.monotonic() < deadline:
                    sock.sendall(send)
                    while fail not in buf and time.monotonic() < deadline:
                        try:
                            chunk = sock.recv(4096)
                        except socket.timeout:
                            continue
                        if not chunk:
                            raise EOFError
                        buf += chunk
                    if fail in buf:
                        counts[proto] += 1
                        buf = buf[buf.index(fail) + len(fail):]
            except (EOFError, ConnectionError):
                pass                                   # cut off after N failures: go again
            finally:
                sock.close()

    def _login_time(self, proto):
        """Seconds a right password takes on a fresh connection."""
        addr = self.srv.addr(proto)
        with socket.create_connection(addr, timeout=IO_TIMEOUT) as sock:
            f = sock.makefile("rb")
            f.readline()
            if proto == "smtp":
                sock.sendall(b"EHLO fixture\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
            t0 = time.monotonic()
            if proto == "smtp":
                sock.sendall(b"AUTH PLAIN " + harness.auth_plain("dev", "dev").encode() + CRLF)
                self.assertEqual(f.readline(), b"235 2.7.0 Authentication successful\r\n")
            elif proto == "pop3":
                sock.sendall(b"USER dev\r\n")
                self.assertEqual(f.readline(), b"+OK Send your password\r\n")
                sock.sendall(b"PASS dev\r\n")
                self.assertTrue(f.readline().startswith(b"+OK Logged in, "))
                sock.sendall(b"QUIT\r\n")
            else:
                sock.sendall(b"b LOGIN dev dev\r\n")
                self.assertTrue(f.readline().startswith(b"b OK [CAPABILITY "))
            return time.monotonic() - t0

    def test_parallel_wrong_passwords_share_one_budget(self):
        import threading
        counts = {p: 0 for p in self.ATTEMPTS}
        errors = []
        deadline = time.monotonic() + self.GUESS_SECONDS
        protos = list(self.ATTEMPTS)
        threads = [threading.Thread(target=self._guess,
                                    args=(protos[i % 3], deadline, counts, errors))
                   for i in range(self.CONNECTIONS)]
        for t in threads:
            t.start()
        time.sleep(2.0)          # the budget is spent by now
        # A right password from the same address, meanwhile: at once.
        waits = {p: self._login_time(p) for p in protos}
        for t in threads:
            t.join(self.GUESS_SECONDS + 10)
            self.assertFalse(t.is_alive(), "a guessing thread is stuck")
        self.assertEqual(errors, [])
        total = sum(counts.values())
        print("\n%d failed logins answered in %.0f s over %d connections (%s); "
              "right password: %s" % (total, self.GUESS_SECONDS, self.CONNECTIONS, counts,
                                      {p: "%.3f s" % w for p, w in waits.items()}))
        self.assertGreaterEqual(total, 20, "failures are answered at all (%s)" % counts)
        self.assertLessEqual(total, self.MAX_ANSWERS, "answers in %.0f s: %s"
                             % (self.GUESS_SECONDS, counts))
        for p, w in waits.items():
            self.assertLess(w, 0.5, "%s login with the right password took %.3f s" % (p, w))
        # Every protocol was answered, each in its own words.
        for p in protos:
            self.assertGreater(counts[p], 0, "no %s failure answered: %s" % (p, counts))

    def test_a_few_mistakes_are_answered_as_before(self):
        # Under the budget only the connection's own delay applies: the
        # first failure on SMTP is answered after 200 ms, not more.
        with RawSMTP(self.srv.addr("smtp")) as c:
            c.greeting()
            c.cmd("EHLO fixture")
            for _ in range(3):
                t0 = time.monotonic()
                r = c.cmd("AUTH PLAIN " + harness.auth_plain("dev", "typo"))
                self.assertEqual(r.code, 535)
            self.assertLess(time.monotonic() - t0, 1.0)
            r = c.cmd("AUTH PLAIN " + harness.auth_plain("dev", "dev"))
            self.assertEqual(r.code, 235)


if __name__ == "__main__":
    harness.main()
