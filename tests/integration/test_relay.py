"""Release a trapped message to a real server: POST /api/v1/message/{ID}/release,
`mailsnare message release`, relay-auto, and GET /api/v1/webui's MessageRelay.

The upstream is a second mailsnare started by the test (plain SMTP, STARTTLS,
implicit TLS, with AUTH), and Postfix's smtp-sink. What arrives upstream is
the trapped message byte for byte with one Received: line more (ours) before
the upstream's own; refused recipients and an unreachable or stalled upstream
give clear errors and change nothing.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Server, closed_port, wait_until, strip_received
from http_helpers import request, smtp_deliver

SMTP_SINK = "/usr/sbin/smtp-sink"

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"To: Bob <bob@example.test>\r\n"
       b"Subject: release me\r\n"
       b"Message-ID: <rel-1@example.test>\r\n"
       b"\r\n"
       b"First line.\r\n"
       b".a line that starts with a dot\r\n"
       b"..and one with two\r\n"
       b"\xc3\xa9 8-bit text\r\n")


def relay_args(upstream_port, tls="none", *more):
    return ("--relay-host", "127.0.0.1", "--relay-port", str(upstream_port),
            "--relay-tls", tls) + tuple(more)


def release(server, msg_id, to):
    return request(server, "POST", "/api/v1/message/%s/release" % msg_id, body={"To": to})


class Stall:
    """An SMTP server that accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class RelayCase(harness.TestCase):
    """One upstream mailsnare for the class (no trap server of its own:
    each test starts the trap it needs)."""

    upstream_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.upstream_args).start()

    def trap(self, *args):
        t = Server(*args).start()
        self.addCleanup(t.stop)
        return t

    def upstream_ids(self, inbox=None):
        return self.server.message_ids(inbox)

    def deliver(self, trap, msg=MSG, mail_from="alice@example.test",
                rcpts=("bob@example.test",)):
        mid = smtp_deliver(trap, msg, mail_from=mail_from, rcpts=rcpts)
        return mid, trap.message_bytes(mid)

    def assert_arrived(self, before, original, inbox=None, rcpt=None, mail_from=None,
                       msg_id=None):
        """One new message upstream: the upstream's Received:, ours, then
        exactly the trapped bytes."""
        ids = wait_until(lambda: [i for i in self.upstream_ids(inbox) if i not in before],
                         what="the released message upstream")
        self.assertEqual(len(ids), 1, ids)
        raw = self.server.message_bytes(ids[0])
        ours = strip_received(raw)
        self.assertTrue(ours.startswith(b"Received: by "), ours[:200])
        first = ours.split(b"\r\n", 1)[0]
        if msg_id is not None:
            self.assertIn(b"release of message %s" % msg_id.encode(), first)
        self.assertEqual(strip_received(ours), original)
        info = request(self.server, "GET", "/api/v1/message/%s" % ids[0]).json()
        if mail_from is not None:
            self.assertEqual(info["MailFrom"], mail_from)
        if rcpt is not None:
            self.assertEqual(info["RcptTo"], rcpt)
        return ids[0]


    def release_ok(self, trap_args, inbox=None):
        """A trap with trap_args releases a message: 200, and it arrives."""
        trap = self.trap(*trap_args)
        mid, original = self.deliver(trap)
        before = self.upstream_ids(inbox)
        r = release(trap, mid, ["carol@example.test"])
        self.assertEqual((r.status, r.text()), (200, "ok"), r)
        self.assert_arrived(before, original, inbox=inbox)

    def release_fails(self, trap_args):
        """The release is answered 502 and nothing arrives; its text."""
        trap = self.trap(*trap_args)
        mid, _ = self.deliver(trap)
        before = self.upstream_ids()
        r = release(trap, mid, ["carol@example.test"])
        self.assertEqual(r.status, 502, r)
        self.assertTrue(r.text().startswith("release of message %s to " % mid), r.text())
        self.assertEqual(self.upstream_ids(), before)
        return r.text()


class PlainRelayTest(RelayCase):
    """relay-tls = none, and everything that refuses before sending."""

    def test_release_arrives_intact(self):
        trap = self.trap(*relay_args(self.server.addr("smtp")[1]))
        mid, original = self.deliver(trap)
        before = self.upstream_ids()
        r = release(trap, mid, ["carol@example.test", "Dave <dave@example.test>"])
        self.assertEqual((r.status, r.text()), (200, "ok"), r)
        self.assert_arrived(before, original, mail_from="alice@example.test",
                            rcpt=["carol@example.test", "dave@example.test"], msg_id=mid)
        # the trapped copy is unchanged
        self.assertEqual(trap.message_bytes(mid), original)

    def test_return_path(self):
        trap = self.trap(*relay_args(self.server.addr("smtp")[1], "none",
                                     "--relay-return-path", "bounces@example.test"))
        mid, original = self.deliver(trap)
        before = self.upstream_ids()
        r = release(trap, mid, ["carol@example.test"])
        self.assertEqual(r.status, 200, r)
        self.assert_arrived(before, original, mail_from="bounces@example.test",
                            rcpt=["carol@example.test"])

    def test_latest_id(self):
        trap = self.trap(*relay_args(self.server.addr("smtp")[1]))
        mid, original = self.deliver(trap)
        before = self.upstream_ids()
        r = release(trap, "latest", ["carol@example.test"])
        self.assertEqual(r.status, 200, r)
        self.assert_arrived(before, original, msg_id=mid)

    def assert_refused(self, trap, mid, to, status, text):
        before = self.upstream_ids()
        r = release(trap, mid, to)
        self.assertEqual((r.status, r.text()), (status, text), r)
        time.sleep(0.3)
        self.assertEqual(self.upstream_ids(), before, "nothing may be sent")

    def test_refused_recipients(self):
        trap = self.trap(*relay_args(self.server.addr("smtp")[1], "none",
                                     "--relay-allowed-recipients", "@(example|corp)\\.test$",
                                     "--relay-blocked-recipients", "^(ceo|board)@"))
        mid, original = self.deliver(trap)
        self.assert_refused(trap, mid, ["a@other.test"], 400,
                            "Mail address does not match the allowlist "
                            "(relay-allowed-recipients): a@other.test")
        # one refused recipient refuses the release: the allowed one gets nothing
        self.assert_refused(trap, mid, ["ok@example.test", "CEO@corp.test"], 400,
                            "Mail address is blocked (relay-blocked-recipients): CEO@corp.test")
        self.assert_refused(trap, mid, ["not an address"], 400,
                            "Invalid email address: not an address")
        self.assert_refused(trap, mid, [], 400,
                            'No valid addresses found (want {"To": ["address", ...]})')
        self.assert_refused(trap, mid, [7], 400, "To: want an array of addresses")
        self.assert_refused(trap, mid, ["a%d@example.test" % i for i in range(101)], 400,
                            "too many recipients (at most 100)")
        self.assert_refused(trap, "999999", ["ok@example.test"], 404, "404 page not found")
        self.assertEqual(trap.message_bytes(mid), original)
        # the allowed one, alone, goes
        before = self.upstream_ids()
        r = release(trap, mid, ["ok@example.test"])
        self.assertEqual(r.status, 200, r)
        self.assert_arrived(before, original, rcpt=["ok@example.test"])

    def test_unreachable_upstream(self):
        port = closed_port()
        trap = self.trap(*relay_args(port))
        mid, original = self.deliver(trap)
        r = release(trap, mid, ["carol@example.test"])
        self.assertEqual(r.status, 502, r)
        self.assertTrue(r.text().startswith("release of message %s to 127.0.0.1:%d failed: "
                                            % (mid, port)), r.text())
        self.assertIn("onnect", r.text())
        self.assertEqual(trap.message_ids(), [mid])
        self.assertEqual(trap.message_bytes(mid), original)

    def test_large_message_arrives_intact(self):
        """3 MB, read from the store and sent in pieces: every byte
        arrives, dot-stuffing undone by the upstream."""
        lines = [b"%06d %s" % (i, (b".dot " if i % 7 == 0 else b"") + b"x" * (i % 97))
                 for i in range(40000)]
        body = b"\r\n".join(b"." + l if i % 5 == 0 else l for i, l in enumerate(lines))
        msg = MSG.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + body + b"\r\n"
        self.assertGreater(len(msg), 2 * 1024 * 1024)
        trap = self.trap(*relay_args(self.server.addr("smtp")[1]))
        mid, original = self.deliver(trap, msg)
        before = self.upstream_ids()
        r = release(trap, mid, ["carol@example.test"])
        self.assertEqual(r.status, 200, r)
        self.assert_arrived(before, original)

    def test_inbox_credentials_release_only_their_own(self):
        trap = self.trap(*relay_args(self.server.addr("smtp")[1], "none",
                                     "--inbox", "ci:ci-pw"))
        dev_id, _ = self.deliver(trap)
        ci_id = smtp_deliver(trap, MSG, auth=("ci", "ci-pw"))
        original = trap.message_bytes(ci_id)
        before = self.upstream_ids()
        r = request(trap, "POST", "/api/v1/message/%s/release" % dev_id,
                    body={"To": ["carol@example.test"]}, auth=("ci", "ci-pw"))
        self.assertEqual((r.status, r.text()), (404, "404 page not found"))
        r = request(trap, "POST", "/api/v1/message/%s/release" % ci_id,
                    body={"To": ["carol@example.test"]}, auth=("ci", "ci-pw"))
        self.assertEqual(r.status, 200, r)
        self.assert_arrived(before, original)

    def test_ipv6_upstream(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        up = Server("--smtp", "[::1]:0").start()
        self.addCleanup(up.stop)
        trap = self.trap("--relay-host", "::1", "--relay-port", str(up.addr("smtp")[1]),
                         "--relay-tls", "none")
        mid, original = self.deliver(trap)
        r = release(trap, mid, ["carol@example.test"])
        self.assertEqual(r.status, 200, r)
        ids = wait_until(up.message_ids, what="the message on the IPv6 upstream")
        self.assertEqual(strip_received(strip_received(up.message_bytes(ids[0]))), original)
        w = request(trap, "GET", "/api/v1/webui").json()
        self.assertEqual(w["MessageRelay"]["SMTPServer"], "[::1]:%d" % up.addr("smtp")[1])

    def test_stalled_upstream_does_not_block(self):
        """A release waiting for an upstream that never answers: SMTP and
        HTTP go on being served at once; the waiting client's leaving
        cancels the release."""
        stall = Stall()
        self.addCleanup(stall.close)
        trap = self.trap(*relay_args(stall.port))
        mid, _ = self.deliver(trap)
        host, port = trap.addr("http")
        conn = socket.create_connection((host, port), timeout=10)
        body = json.dumps({"To": ["carol@example.test"]}).encode()
        conn.sendall(b"POST /api/v1/message/%s/release HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (mid.encode(), len(body), body))
        wait_until(lambda: stall.conns, what="the connection to the stalled upstream")
        t0 = time.monotonic()
        self.deliver(trap)
        r = request(trap, "GET", "/api/v1/messages")
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 2.0, "the loop was blocked")
        conn.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            conn.recv(100)
        conn.close()
        time.sleep(0.3)
        self.assertEqual(len(trap.message_ids()), 2)
        # a release still waiting when the server stops: it stops too, and
        # the server exits 0 in time (the harness's stop checks both)
        conn2 = socket.create_connection((host, port), timeout=10)
        self.addCleanup(conn2.close)
        conn2.sendall(b"POST /api/v1/message/%s/release HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                      % (mid.encode(), len(body), body))
        wait_until(lambda: len(stall.conns) >= 2, what="the second upstream connection")
        t0 = time.monotonic()
        trap.stop()
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_off_without_relay_host(self):
        trap = self.trap()
        mid, original = self.deliver(trap)
        r = release(trap, mid, ["carol@example.test"])
        self.assertEqual((r.status, r.text()),
                         (400, "message relay is not enabled (set relay-host)"))
        w = request(trap, "GET", "/api/v1/webui").json()
        self.assertEqual(w["MessageRelay"]["Enabled"], False)
        self.assertEqual(w["MessageRelay"]["SMTPServer"], "")
        cp = trap.cli("message", "release", mid, "--to", "carol@example.test")
        self.assertEqual(cp.returncode, 2, cp)
        self.assertIn(b"message relay is not enabled (set relay-host)", cp.stderr)

    def test_webui_message_relay(self):
        port = self.server.addr("smtp")[1]
        trap = self.trap(*relay_args(port, "none", "--relay-allowed-recipients",
                                     "@example\\.test$", "--relay-blocked-recipients", "^no@",
                                     "--relay-return-path", "rp@example.test"))
        w = request(trap, "GET", "/api/v1/webui").json()
        self.assertEqual(w["MessageRelay"], {
            "Enabled": True, "SMTPServer": "127.0.0.1:%d" % port,
            "ReturnPath": "rp@example.test", "AllowedRecipients": "@example\\.test$",
            "BlockedRecipients": "^no@", "OverrideFrom": "", "PreserveMessageIDs": True})

    def test_cli_release(self):
        port = self.server.addr("smtp")[1]
        trap = self.trap(*relay_args(port, "none", "--relay-blocked-recipients", "^no@"))
        mid, original = self.deliver(trap)
        before = self.upstream_ids()
        rel = ["--relay-host", "127.0.0.1", "--relay-port", str(port), "--relay-tls", "none",
               "--relay-blocked-recipients", "^no@"]
        cp = trap.cli("message", "release", mid, "--to", "carol@example.test", "--to",
                      "erin@example.test", *rel)
        self.assertEqual(cp.returncode, 0, cp)
        self.assertEqual(cp.stdout, b"released message %s to 2 recipients\n" % mid.encode())
        self.assert_arrived(before, original, rcpt=["carol@example.test", "erin@example.test"])
        before = self.upstream_ids()
        cp = trap.cli("message", "release", mid, "--to", "no@example.test", *rel)
        self.assertEqual(cp.returncode, 1, cp)
        self.assertEqual(cp.stderr, b"mailsnare: Mail address is blocked "
                         b"(relay-blocked-recipients): no@example.test\n")
        cp = trap.cli("message", "release", mid, *rel)
        self.assertEqual(cp.returncode, 2, cp)
        self.assertIn(b"usage: mailsnare message release ID --to ADDRESS", cp.stderr)
        cp = trap.cli("message", "release", "424242", "--to", "a@example.test", *rel)
        self.assertEqual((cp.returncode, cp.stderr), (1, b"mailsnare: no message 424242\n"))
        cp = trap.cli("message", "release", mid, "--to", "a@example.test", "--relay-host",
                      "127.0.0.1", "--relay-port", str(closed_port()), "--relay-tls", "none")
        self.assertEqual(cp.returncode, 1, cp)
        self.assertIn(b"failed: ", cp.stderr)
        self.assertEqual(self.upstream_ids(), before)

    def test_bad_config(self):
        d = tempfile.mkdtemp(prefix="mailsnare-it-")
        self.addCleanup(shutil.rmtree, d)
        for args, env, err in (
                (["--relay-allowed-recipients", "a(b"], {},
                 b"--relay-allowed-recipients: invalid value 'a(b' ("),
                (["--relay-tls", "ssl"], {},
                 b"--relay-tls: invalid value 'ssl' (want starttls, tls or none)"),
                ([], {"MAILSNARE_RELAY_TLS": "ssl"},
                 b"MAILSNARE_RELAY_TLS: invalid value 'ssl' (want starttls, tls or none)"),
                (["--relay-port", "0"], {}, b"--relay-port: 0 out of range (want 1..65535)"),
                (["--relay-return-path", "<a@b>"], {},
                 b"--relay-return-path: invalid value '<a@b>' (want an address"),
                (["--relay-auto", "subject:x"], {},
                 b"relay-auto: needs relay-host (where to release to)"),
                (["--relay-auto", "before:notadate"], {"MAILSNARE_RELAY_HOST": "h"},
                 b"--relay-auto: invalid value 'before:notadate' (")):
            cp = subprocess.run([harness.binary(), "serve", "--db", os.path.join(d, "m.db")]
                                + args, env=dict(harness.clean_env(), **env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(cp.returncode, 2, (args, env, cp))
            self.assertIn(err, cp.stderr, (args, env))


class AutoRelayTest(RelayCase):
    def test_matching_message_released(self):
        trap = self.trap(*relay_args(self.server.addr("smtp")[1], "none",
                                     "--relay-auto", "subject:\"auto please\"",
                                     "--relay-blocked-recipients", "^blocked@"))
        before = self.upstream_ids()
        self.deliver(trap, MSG.replace(b"release me", b"keep me here"))
        msg = MSG.replace(b"release me", b"auto please")
        mid, original = self.deliver(trap, msg, rcpts=("x@example.test", "blocked@example.test",
                                                       "y@example.test"))
        self.assert_arrived(before, original, rcpt=["x@example.test", "y@example.test"],
                            msg_id=mid)
        time.sleep(0.5)
        self.assertEqual(len([i for i in self.upstream_ids() if i not in before]), 1,
                         "the other message stays trapped")
        self.assertEqual(len(trap.message_ids()), 2)
        # moved by IMAP it is not new: not released again
        harness.imap_move_all(trap, "Archive")
        time.sleep(0.5)
        self.assertEqual(len([i for i in self.upstream_ids() if i not in before]), 1)


class TlsRelayTest(RelayCase):
    def test_starttls(self):
        self.release_ok(relay_args(self.server.addr("smtp")[1], "starttls",
                                   "--relay-tls-verify", "no"))

    def test_implicit_tls(self):
        self.release_ok(relay_args(self.server.addr("smtps")[1], "tls",
                                   "--relay-tls-verify", "no"))

    def test_verify_refuses_self_signed(self):
        text = self.release_fails(relay_args(self.server.addr("smtps")[1], "tls"))
        self.assertIn("certificate", text.lower())

    def test_starttls_on_plain_only_server_fails(self):
        """relay-tls = starttls insists on TLS: a server without STARTTLS
        (smtp-sink) is refused rather than spoken to in clear."""
        if not os.access(SMTP_SINK, os.X_OK):
            self.skipTest("no smtp-sink")
        sink = SmtpSink()
        self.addCleanup(sink.stop)
        self.release_fails(relay_args(sink.port, "starttls", "--relay-tls-verify", "no"))
        self.assertEqual(sink.files(), [])


class AuthRelayTest(RelayCase):
    upstream_args = ("--smtp-require-auth", "--inbox", "relayuser:relay pw")

    def args(self, *more):
        return relay_args(self.server.addr("smtp")[1], "starttls", "--relay-tls-verify", "no",
                          *more)

    def test_auth(self):
        self.release_ok(self.args("--relay-username", "relayuser",
                                  "--relay-password", "relay pw"), inbox="relayuser")

    def test_wrong_password(self):
        text = self.release_fails(self.args("--relay-username", "relayuser",
                                            "--relay-password", "wrong"))
        self.assertIn("(SMTP reply 535)", text)

    def test_no_credentials(self):
        self.assertIn("(SMTP reply 530)", self.release_fails(self.args()))


class SmtpSink:
    """Postfix's smtp-sink on a free port, one file per message."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mailsnare-sink-")
        os.chmod(self.dir, 0o777)       # it drops to nobody to write
        self.port = closed_port()
        args = [SMTP_SINK, "-d", os.path.join(self.dir, "%M."), "127.0.0.1:%d" % self.port,
                "10"]
        if os.geteuid() == 0:
            args[1:1] = ["-u", "nobody"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_until(self._listening, what="smtp-sink to listen")

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            if self.proc.poll() is not None:
                raise AssertionError("smtp-sink exited: %r" % self.proc.stderr.read())
            return False

    def files(self):
        return sorted(os.listdir(self.dir))

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class SmtpSinkTest(RelayCase):
    """Another implementation than ours on the other end."""

    def test_release_to_smtp_sink(self):
        if not os.access(SMTP_SINK, os.X_OK):
            self.skipTest("no smtp-sink (Debian package postfix)")
        sink = SmtpSink()
        self.addCleanup(sink.stop)
        trap = self.trap(*relay_args(sink.port, "none"))
        mid, original = self.deliver(trap)
        r = release(trap, mid, ["carol@example.test", "dave@example.test"])
        self.assertEqual((r.status, r.text()), (200, "ok"), r)
        files = wait_until(sink.files, what="smtp-sink's dump file")
        self.assertEqual(len(files), 1, files)
        with open(os.path.join(sink.dir, files[0]), "rb") as f:
            dump = f.read()
        # X-... lines of smtp-sink, its Received:, then what it was sent
        head, _, sent = dump.partition(b"\nReceived: by ")
        self.assertIn(b"X-Mail-Args: <alice@example.test>", head)
        self.assertEqual(re.findall(rb"X-Rcpt-Args: (.*)", head),
                         [b"<carol@example.test>", b"<dave@example.test>"])
        # (smtp-sink writes LF line ends, and one more at the end)
        first, date, rest = (b"Received: by " + sent).split(b"\n", 2)
        self.assertIn(b"release of message %s" % mid.encode(), first)
        self.assertTrue(date.startswith(b"\t"), date)
        self.assertEqual(rest, original.replace(b"\r\n", b"\n") + b"\n")


if __name__ == "__main__":
    unittest.main()
