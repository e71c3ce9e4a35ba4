#!/usr/bin/env python3
"""Chaos (issue 14): Mailpit's GET/PUT /api/v1/chaos with its Sender,
Recipient and Authentication triggers, and ours (Connect, Data,
Disconnect, Delay), each at 100 % (the exact reply smtplib sees, nothing
stored) and at 0 % (the transaction goes through); `chaos-triggers` at
start, the 400s (chaos off, values out of range), and a seeded run that
repeats itself."""

import smtplib
import socket
import time

import harness
import http_helpers as hh

SENDER = "app@example.test"
RCPT = "user@example.test"
MSG = b"Subject: chaos\r\n\r\nbody\r\n"


def put(test, server, body, status=200):
    r = hh.request(server, "PUT", "/api/v1/chaos", body=body)
    test.assertEqual(r.status, status, r)
    return r


def message_count(test, server):
    return hh.get_json(test, server, "/api/v1/messages")["total"]


class ChaosTest(harness.TestCase):
    server_args = ("--chaos", "yes", "--chaos-seed", "1", "--inbox", "ci:ci-pw")

    def setUp(self):
        super().setUp()
        put(self, self.server, {})            # every trigger back to 0 %

    def smtp(self):
        host, port = self.server.addr("smtp")
        s = smtplib.SMTP(host, port, timeout=harness.SOCK_TIMEOUT)
        self.addCleanup(s.close)
        return s

    def deliver(self):
        """A whole transaction; the final reply."""
        s = self.smtp()
        s.ehlo("chaos.test")
        self.assertEqual(s.mail(SENDER)[0], 250)
        self.assertEqual(s.rcpt(RCPT)[0], 250)
        return s.data(MSG)

    def test_get_shows_every_trigger_with_defaults(self):
        j = hh.get_json(self, self.server, "/api/v1/chaos")
        self.assertEqual(j, {
            "Sender": {"ErrorCode": 451, "Probability": 0},
            "Recipient": {"ErrorCode": 451, "Probability": 0},
            "Authentication": {"ErrorCode": 535, "Probability": 0},
            "Connect": {"ErrorCode": 421, "Probability": 0},
            "Data": {"ErrorCode": 554, "Probability": 0},
            "Disconnect": {"ErrorCode": 421, "Probability": 0},
            "Delay": {"Milliseconds": 0, "Probability": 0}})
        self.assertIs(hh.get_json(self, self.server, "/api/v1/webui")["ChaosEnabled"], True)

    def test_put_sets_all_and_answers_them(self):
        r = put(self, self.server, {"Sender": {"ErrorCode": 550, "Probability": 7},
                                    "Recipient": {"Probability": 3}})
        j = r.json()
        self.assertEqual(j["Sender"], {"ErrorCode": 550, "Probability": 7})
        self.assertEqual(j["Recipient"], {"ErrorCode": 451, "Probability": 3})
        # A second PUT without Sender resets it, as Mailpit's does.
        j = put(self, self.server, {"Data": {"ErrorCode": 0, "Probability": 1}}).json()
        self.assertEqual(j["Sender"], {"ErrorCode": 451, "Probability": 0})
        self.assertEqual(j["Data"], {"ErrorCode": 554, "Probability": 1})
        self.assertEqual(hh.get_json(self, self.server, "/api/v1/chaos"), j)

    def test_an_inbox_login_reads_but_does_not_set(self):
        r = hh.request(self.server, "PUT", "/api/v1/chaos", auth=("ci", "ci-pw"),
                       body={"Sender": {"ErrorCode": 550, "Probability": 100}})
        self.assertEqual((r.status, r.body), (403, b"chaos is server-wide: only the admin (or an "
                                                    b"anonymous client without http-require-auth)"
                                                    b" may set it"))
        j = hh.get_json(self, self.server, "/api/v1/chaos", auth=("ci", "ci-pw"))
        self.assertEqual(j["Sender"]["Probability"], 0)

    def test_put_refuses_bad_values(self):
        cases = [({"Sender": {"ErrorCode": 399, "Probability": 1}},
                  b"Sender: error code must be between 400 and 599"),
                 ({"Recipient": {"ErrorCode": 451, "Probability": 101}},
                  b"Recipient: probability must be between 0 and 100"),
                 ({"Delay": {"Milliseconds": 60001, "Probability": 1}},
                  b"Delay: delay must be between 0 and 60000 milliseconds"),
                 ({"Sender": {"ErrorCode": "451"}},
                  b'Sender: want {"ErrorCode": integer, "Probability": integer}'),
                 ({"Sender": 5}, b'Sender: want {"ErrorCode": integer, "Probability": integer}')]
        for body, text in cases:
            r = put(self, self.server, body, status=400)
            self.assertEqual(r.body, text, body)
        r = hh.request(self.server, "PUT", "/api/v1/chaos", body=b"[1]")
        self.assertEqual((r.status, r.body), (400, b"invalid JSON: want an object"))
        # Nothing of a refused PUT was applied.
        self.assertEqual(hh.get_json(self, self.server, "/api/v1/chaos")["Sender"]["ErrorCode"],
                         451)

    def test_sender(self):
        put(self, self.server, {"Sender": {"ErrorCode": 550, "Probability": 100}})
        s = self.smtp()
        s.ehlo("chaos.test")
        self.assertEqual(s.mail(SENDER), (550, b"Chaos sender error"))
        put(self, self.server, {"Sender": {"ErrorCode": 550, "Probability": 0}})
        self.assertEqual(s.mail(SENDER)[0], 250)

    def test_recipient(self):
        put(self, self.server, {"Recipient": {"ErrorCode": 451, "Probability": 100}})
        s = self.smtp()
        s.ehlo("chaos.test")
        s.mail(SENDER)
        self.assertEqual(s.rcpt(RCPT), (451, b"Chaos recipient error"))
        put(self, self.server, {"Recipient": {"ErrorCode": 451, "Probability": 0}})
        self.assertEqual(s.rcpt(RCPT)[0], 250)

    def test_authentication(self):
        put(self, self.server, {"Authentication": {"ErrorCode": 535, "Probability": 100}})
        s = self.smtp()
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            s.login("dev", "dev")
        self.assertEqual((cm.exception.smtp_code, cm.exception.smtp_error),
                         (535, b"Chaos authentication error"))
        put(self, self.server, {})
        self.assertEqual(s.login("dev", "dev")[0], 235)

    def test_connect(self):
        put(self, self.server, {"Connect": {"ErrorCode": 421, "Probability": 100}})
        host, port = self.server.addr("smtp")
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP(host, port, timeout=harness.SOCK_TIMEOUT)
        self.assertEqual((cm.exception.smtp_code, cm.exception.smtp_error),
                         (421, b"Chaos connect error"))
        put(self, self.server, {"Connect": {"ErrorCode": 421, "Probability": 0}})
        self.assertEqual(self.deliver()[0], 250)

    def test_data(self):
        before = message_count(self, self.server)
        put(self, self.server, {"Data": {"ErrorCode": 554, "Probability": 100}})
        self.assertEqual(self.deliver(), (554, b"Chaos data error"))
        # BDAT's last chunk too.
        s = self.smtp()
        s.ehlo("chaos.test")
        s.mail(SENDER)
        s.rcpt(RCPT)
        s.send(b"BDAT %d LAST\r\n" % len(MSG) + MSG)
        self.assertEqual(s.getreply(), (554, b"Chaos data error"))
        self.assertEqual(message_count(self, self.server), before)
        put(self, self.server, {"Data": {"ErrorCode": 554, "Probability": 0}})
        self.assertEqual(self.deliver()[0], 250)
        self.assertEqual(message_count(self, self.server), before + 1)

    def test_disconnect_in_the_middle_of_data(self):
        before = message_count(self, self.server)
        put(self, self.server, {"Disconnect": {"Probability": 100}})
        s = self.smtp()
        s.ehlo("chaos.test")
        s.mail(SENDER)
        s.rcpt(RCPT)
        self.assertEqual(s.docmd("DATA")[0], 354)
        s.send(b"Subject: cut\r\n\r\nfirst half")
        with self.assertRaises(smtplib.SMTPServerDisconnected):
            s.getreply()
        self.assertEqual(message_count(self, self.server), before)
        put(self, self.server, {"Disconnect": {"Probability": 0}})
        self.assertEqual(self.deliver()[0], 250)

    def test_delay_is_a_timer(self):
        s = self.smtp()
        s.ehlo("chaos.test")
        t = time.monotonic()
        s.noop()
        fast = time.monotonic() - t
        put(self, self.server, {"Delay": {"Milliseconds": 700, "Probability": 100}})
        t = time.monotonic()
        self.assertEqual(s.noop()[0], 250)
        slow = time.monotonic() - t
        self.assertGreaterEqual(slow, 0.65)      # libevent's cached clock may be a ms early
        self.assertLess(fast, 0.5)
        # While a command waits, the loop serves everyone else at once.
        s.send(b"NOOP\r\n")
        time.sleep(0.1)
        t = time.monotonic()
        self.assertEqual(hh.request(self.server, "GET", "/livez").status, 200)
        self.assertLess(time.monotonic() - t, 0.4)
        self.assertEqual(s.getreply()[0], 250)
        put(self, self.server, {"Delay": {"Milliseconds": 700, "Probability": 0}})
        t = time.monotonic()
        s.noop()
        self.assertLess(time.monotonic() - t, 0.5)


def rcpt_codes(server, n):
    """RCPT replies of n recipients, one transaction."""
    host, port = server.addr("smtp")
    with smtplib.SMTP(host, port, timeout=harness.SOCK_TIMEOUT) as s:
        s.ehlo("seed.test")
        s.mail(SENDER)
        return [s.rcpt("r%d@example.test" % i)[0] for i in range(n)]


class StartupTest(harness.TestCase):
    server_args = ("--chaos-triggers", "Recipient:452:50,Sender:451:0", "--chaos-seed", "99")

    def test_triggers_at_start_and_seeded_repeat(self):
        j = hh.get_json(self, self.server, "/api/v1/chaos")
        self.assertEqual(j["Recipient"], {"ErrorCode": 452, "Probability": 50})
        first = rcpt_codes(self.server, 60)
        self.assertEqual(set(first), {250, 452})
        self.assertTrue(15 <= first.count(452) <= 45, first)
        with harness.Server(*self.server_args) as again:
            self.assertEqual(rcpt_codes(again, 60), first)
        with harness.Server("--chaos-triggers", "Recipient:452:50", "--chaos-seed", "100") as other:
            self.assertNotEqual(rcpt_codes(other, 60), first)


class DisabledTest(harness.TestCase):

    def test_400_when_chaos_is_off(self):
        for method in ("GET", "PUT"):
            r = hh.request(self.server, method, "/api/v1/chaos", body={})
            self.assertEqual((r.status, r.body),
                             (400, b"Chaos is not enabled (start mailsnare with chaos = yes)"))
        self.assertIs(hh.get_json(self, self.server, "/api/v1/webui")["ChaosEnabled"], False)

    def test_bad_triggers_stop_the_start(self):
        cp = self.server.cli("--chaos-triggers", "Sender:600:1", "inbox", "list")
        self.assertEqual(cp.returncode, 2)
        self.assertEqual(cp.stderr, b"mailsnare: --chaos-triggers: invalid value 'Sender:600:1' "
                                    b"('Sender:600:1': error code must be between 400 and "
                                    b"599)\n")


if __name__ == "__main__":
    harness.main()
