"""webhook-url: a POST of the message summary for each new message, with
User-Agent mailsnare/VERSION, at most webhook-limit a second (the rest
dropped and counted, never retried), each within webhook-timeout, and never
in the way of delivery: an unreachable or slow receiver leaves SMTP and the
HTTP API as prompt as ever.

The receiver is a loopback http.server that records every request.
"""

import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Server, closed_port, wait_until
from http_helpers import request, smtp_deliver

MSG = (b"From: Alice <alice@example.test>\r\n"
       b"To: Bob <bob@example.test>\r\n"
       b"Subject: hook %d\r\n"
       b"\r\n"
       b"Hello.\r\n")


class Receiver:
    """Records (method, path, headers, body) of each request; answers
    `status` after `delay` seconds."""

    def __init__(self, status=200, delay=0.0):
        self.requests = []
        self.lock = threading.Lock()
        self.status = status
        self.delay = delay
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.requests.append((self.command, self.path, dict(self.headers), body))
                if outer.delay:
                    outer.release.wait(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(REPLY)))
                self.end_headers()
                self.wfile.write(REPLY)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def count(self):
        with self.lock:
            return len(self.requests)

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


REPLY = b"receiver-reply-body\n"


def version():
    out = subprocess.run([harness.binary(), "version"], stdout=subprocess.PIPE,
                         timeout=30, check=True).stdout.decode()
    return out.split()[1]


class WebhookTest(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = None

    def receiver(self, **kw):
        r = Receiver(**kw)
        self.addCleanup(r.stop)
        return r

    def trap(self, *args):
        t = Server(*args).start()
        self.addCleanup(t.stop)
        return t

    def test_posts_the_summary(self):
        rx = self.receiver()
        trap = self.trap("--webhook-url", rx.url("/hook?x=1"), "--webhook-limit", "0")
        mid = smtp_deliver(trap, MSG % 1)
        wait_until(lambda: rx.count() == 1, what="the webhook request")
        method, path, headers, body = rx.requests[0]
        self.assertEqual((method, path), ("POST", "/hook?x=1"))
        self.assertEqual(headers["User-Agent"], "mailsnare/%s" % version())
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertNotIn("Expect", headers)
        got = json.loads(body)
        listed = request(trap, "GET", "/api/v1/messages").json()["messages"]
        self.assertEqual(got, [m for m in listed if m["ID"] == mid][0])
        self.assertEqual(got["Subject"], "hook 1")
        # one request per message, in order
        for i in (2, 3):
            smtp_deliver(trap, MSG % i)
        wait_until(lambda: rx.count() == 3, what="three webhook requests")
        self.assertEqual([json.loads(r[3])["Subject"] for r in rx.requests],
                         ["hook 1", "hook 2", "hook 3"])
        time.sleep(0.3)
        self.assertEqual(rx.count(), 3, "no retries, no duplicates")
        # moved by IMAP they are not new
        harness.imap_move_all(trap, "Archive")
        time.sleep(0.3)
        self.assertEqual(rx.count(), 3, "a move is no new message")
        trap.stop()                     # (stdout is a file: flushed at exit)
        self.assertIn(b"info: stopped", trap.log_text)
        self.assertNotIn(REPLY.strip(), trap.log_text, "the reply body is not printed")

    def deliver_many(self, trap, n):
        host, port = trap.addr("smtp")
        with harness.RawSMTP((host, port)) as c:
            c.greeting()
            c.cmd("EHLO x")
            for i in range(n):
                self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
                self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
                self.assertEqual(c.cmd("DATA").code, 354)
                c.send(MSG % i + b".\r\n")
                self.assertEqual(c.reply().code, 250)

    def test_rate_limit_drops_and_counts(self):
        rx = self.receiver()
        trap = self.trap("--webhook-url", rx.url(), "--webhook-limit", "2")
        t0 = time.monotonic()
        self.deliver_many(trap, 12)
        elapsed = time.monotonic() - t0
        time.sleep(1.0)
        n = rx.count()
        # a full bucket of 2, and 2 a second since
        self.assertGreaterEqual(n, 2)
        self.assertLessEqual(n, 2 + int(2 * elapsed) + 1, "elapsed %.2f s" % elapsed)
        log = wait_until(lambda: b"new-message events dropped" in trap.read_log() and
                         trap.read_log(), what="the drop report")
        self.assertIn(b"webhook-limit 2 a second", log)
        self.assertEqual(len(trap.message_ids()), 12, "every message is stored")
        # the bucket fills again: a later message is posted
        time.sleep(1.0)
        before = rx.count()
        smtp_deliver(trap, MSG % 99)
        wait_until(lambda: rx.count() == before + 1, what="a webhook after the pause")

    def test_unreachable_receiver(self):
        trap = self.trap("--webhook-url", "http://127.0.0.1:%d/" % closed_port(),
                         "--webhook-limit", "0")
        t0 = time.monotonic()
        ids = [smtp_deliver(trap, MSG % i) for i in range(3)]
        self.assertLess(time.monotonic() - t0, 3.0)
        for mid in ids:
            wait_until(lambda: b"webhook: message %s: Couldn't connect to server" % mid.encode()
                       in trap.read_log(), what="the failure of message %s" % mid)

    def test_error_status_is_logged(self):
        rx = self.receiver(status=500)
        trap = self.trap("--webhook-url", rx.url(), "--webhook-limit", "0")
        mid = smtp_deliver(trap, MSG % 1)
        wait_until(lambda: b"webhook: message %s: HTTP status 500" % mid.encode()
                   in trap.read_log(), what="the logged status")
        time.sleep(0.3)
        self.assertEqual(rx.count(), 1, "no retry")

    def test_slow_receiver_does_not_delay_delivery(self):
        rx = self.receiver(delay=30.0)
        trap = self.trap("--webhook-url", rx.url(), "--webhook-limit", "0",
                         "--webhook-timeout", "2")
        first = smtp_deliver(trap, MSG % 1)
        wait_until(lambda: rx.count() == 1, what="the first (slow) request")
        t0 = time.monotonic()
        smtp_deliver(trap, MSG % 2)
        r = request(trap, "GET", "/api/v1/messages")
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 1.0, "delivery waited for the webhook")
        wait_until(lambda: b"webhook: message %s: Timeout was reached" % first.encode()
                   in trap.read_log(), timeout=10, what="the timeout")

    def test_bad_config(self):
        d = tempfile.mkdtemp(prefix="mailsnare-it-")
        self.addCleanup(shutil.rmtree, d)
        for args, err in (
                (["--webhook-url", "ftp://x/"],
                 b"--webhook-url: invalid value 'ftp://x/' (want an http:// or https:// URL)"),
                (["--webhook-limit", "many"], b"--webhook-limit: invalid number 'many'"),
                (["--webhook-timeout", "0"], b"--webhook-timeout: 0 out of range (want 1..300)")):
            cp = subprocess.run([harness.binary(), "serve", "--db", os.path.join(d, "m.db")]
                                + args, env=harness.clean_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(cp.returncode, 2, (args, cp))
            self.assertIn(err, cp.stderr, args)


if __name__ == "__main__":
    unittest.main()
