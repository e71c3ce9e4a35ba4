"""systemd integration: contrib/mailsnare.service passes
`systemd-analyze verify` and keeps its sandbox; the server tells
$NOTIFY_SOCKET READY=1 once it serves and STOPPING=1 on SIGTERM (a path
and an abstract socket); SIGHUP neither stops it nor changes anything.

systemd-analyze comes with the systemd package (in contrib/dev.sh's DEPS);
without it only that test is skipped.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("MAILSNARE_SRCDIR") or os.path.join(HERE, "..", "..")
UNIT = os.path.join(SRCDIR, "contrib", "mailsnare.service")
WAIT = 30.0


def unit_settings():
    """[(section, key, value)] of the unit, repeated keys kept."""
    out, section = [], None
    with open(UNIT, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"\[(\w+)\]", line)
            if m:
                section = m.group(1)
                continue
            key, _, value = line.partition("=")
            out.append((section, key, value))
    return out


def server_with_notify(address):
    """A started harness.Server with NOTIFY_SOCKET=address (the harness
    passes this process's environment on)."""
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = address
    try:
        return harness.Server().start()
    finally:
        if old is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = old


class UnitFileTest(unittest.TestCase):

    def test_verify(self):
        tool = shutil.which("systemd-analyze")
        if tool is None:
            self.skipTest("systemd-analyze not installed (Debian package systemd)")
        with tempfile.TemporaryDirectory(prefix="mailsnare-unit-") as d:
            path = os.path.join(d, "mailsnare.service")
            with open(UNIT, encoding="utf-8") as f:
                text = f.read()
            # verify wants ExecStart's binary to exist: the one under test.
            text = text.replace("/usr/bin/mailsnare", os.path.abspath(harness.binary()))
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            p = subprocess.run([tool, "verify", "--man=no", path], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout.decode("utf-8", "replace"))
            self.assertEqual(p.stdout, b"", p.stdout.decode("utf-8", "replace"))

    def test_settings(self):
        got = {(s, k): v for s, k, v in unit_settings()}
        want = {
            ("Service", "Type"): "notify",
            ("Service", "User"): "mailsnare",
            ("Service", "StateDirectory"): "mailsnare",
            ("Service", "ExecStart"): "/usr/bin/mailsnare serve -c /etc/mailsnare/mailsnare.conf",
            ("Service", "Environment"): "XDG_DATA_HOME=/var/lib",
            ("Service", "ProtectSystem"): "strict",
            ("Service", "ProtectHome"): "yes",
            ("Service", "PrivateTmp"): "yes",
            ("Service", "NoNewPrivileges"): "yes",
            ("Service", "CapabilityBoundingSet"): "",
            ("Service", "RestrictAddressFamilies"): "AF_UNIX AF_INET AF_INET6",
            ("Install", "WantedBy"): "multi-user.target",
        }
        for key, value in want.items():
            self.assertEqual(got.get(key), value, "%s=" % (key,))
        filters = [v for s, k, v in unit_settings() if k == "SystemCallFilter"]
        self.assertIn("@system-service", filters)
        # SIGHUP reloads nothing (mailsnare(1)): a reload job would lie.
        self.assertNotIn(("Service", "ExecReload"), got)


class NotifyTest(unittest.TestCase):

    def start(self, address):
        """A server whose NOTIFY_SOCKET is `address` (a path, or "@name")."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(WAIT)
        srv = server_with_notify(address)
        self.addCleanup(srv._cleanup)
        self.addCleanup(srv._kill)
        return srv

    def greet(self, srv):
        with harness.RawSMTP(srv.addr("smtp")) as c:
            self.assertEqual(c.greeting().code, 220)

    def run_life(self, address):
        srv = self.start(address)
        self.assertEqual(self.sock.recv(4096), b"READY=1")
        self.greet(srv)
        srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.sock.recv(4096), b"STOPPING=1")
        self.assertEqual(srv.proc.wait(WAIT), 0)

    def test_ready_and_stopping_path(self):
        with tempfile.TemporaryDirectory(prefix="mailsnare-notify-") as d:
            self.run_life(os.path.join(d, "notify"))

    def test_ready_and_stopping_abstract(self):
        self.run_life("@mailsnare-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns()))

    def test_sighup_changes_nothing(self):
        with tempfile.TemporaryDirectory(prefix="mailsnare-notify-") as d:
            srv = self.start(os.path.join(d, "notify"))
            self.assertEqual(self.sock.recv(4096), b"READY=1")
            offset = srv.log_size()
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + WAIT
            while b"SIGHUP" not in srv.read_log(offset) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertIn(b"SIGHUP: nothing to reload", srv.read_log(offset))
            self.assertIsNone(srv.proc.poll(), "SIGHUP stopped the server")
            self.greet(srv)
            # Nothing more was told to systemd (no RELOADING=1, no STOPPING=1).
            self.sock.settimeout(0.2)
            with self.assertRaises(socket.timeout):
                self.sock.recv(4096)
            srv.stop()

    def test_unreachable_socket_is_only_a_warning(self):
        srv = server_with_notify("relative/path")
        try:
            self.greet(srv)
            self.assertIn(b"NOTIFY_SOCKET: cannot notify readiness", srv.read_log())
        finally:
            srv.stop()


if __name__ == "__main__":
    harness.main()
