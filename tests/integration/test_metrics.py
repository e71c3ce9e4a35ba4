#!/usr/bin/env python3
"""GET /metrics (issue 14): Prometheus text exposition format 0.0.4,
checked with a parser of that format written here (HELP and TYPE before
a family's samples, metric and label names, escaped label values,
numbers, histograms cumulative up to +Inf = _count); the values move as
they must after mail is sent over SMTP, logins fail over SMTP, IMAP and
HTTP, messages are read, and connections open. `metrics = off`: 404."""

import base64
import re
import smtplib
import time

import harness
import http_helpers as hh
from imap_helpers import RawIMAP

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class ExpositionError(AssertionError):
    pass


def unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_labels(text, where):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ExpositionError("%s: bad label at %r" % (where, text[pos:]))
        if m.group(1) in labels:
            raise ExpositionError("%s: label %s twice" % (where, m.group(1)))
        labels[m.group(1)] = unescape(m.group(2))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                raise ExpositionError("%s: want ',' at %r" % (where, text[pos:]))
            pos += 1
    return labels


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return name


def parse(text):
    """{family: {"type", "help", "samples": [(name, labels, value)]}}."""
    if not text.endswith("\n"):
        raise ExpositionError("the exposition must end with a newline")
    fams, types = {}, {}
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d" % n
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                if not NAME.fullmatch(parts[2]):
                    raise ExpositionError("%s: bad name %r" % (where, parts[2]))
                f = fams.setdefault(parts[2], {"samples": []})
                if f["samples"]:
                    raise ExpositionError("%s: %s after samples" % (where, parts[1]))
                if parts[1] in f:
                    raise ExpositionError("%s: second %s" % (where, parts[1]))
                f[parts[1].lower()] = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if f["type"] not in TYPES:
                        raise ExpositionError("%s: type %r" % (where, f["type"]))
                    types[parts[2]] = f["type"]
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if not m:
            raise ExpositionError("%s: not a sample: %r" % (where, line))
        name, labels = m.group(1), parse_labels(m.group(2) or "", where)
        value = float(m.group(3))      # also +Inf, NaN
        fam = family_of(name, types)
        if fam not in fams or "type" not in fams[fam] or "help" not in fams[fam]:
            raise ExpositionError("%s: %s has no HELP and TYPE before it" % (where, name))
        fams[fam]["samples"].append((name, labels, value))
    for fam, f in fams.items():
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
    return fams


def check_histogram(fam, samples):
    buckets = [(s[1]["le"], s[2]) for s in samples if s[0] == fam + "_bucket"]
    count = [s[2] for s in samples if s[0] == fam + "_count"]
    if not buckets or buckets[-1][0] != "+Inf" or len(count) != 1:
        raise ExpositionError("%s: want buckets up to +Inf and one _count" % fam)
    bounds = [float(le) for le, _ in buckets]
    if bounds != sorted(bounds):
        raise ExpositionError("%s: bucket bounds not increasing" % fam)
    values = [v for _, v in buckets]
    if values != sorted(values) or values[-1] != count[0]:
        raise ExpositionError("%s: buckets not cumulative up to _count" % fam)


def value(fams, name, **labels):
    fam = fams[family_of(name, {k: f.get("type") for k, f in fams.items()})]
    found = [v for n, l, v in fam["samples"] if n == name and l == labels]
    if len(found) != 1:
        raise AssertionError("%s%r: %d samples" % (name, labels, len(found)))
    return found[0]


class ParserTest(harness.TestCase):
    """The parser itself must catch what is wrong, or the tests below
    prove nothing."""

    server_args = ()

    def test_parser_refuses_broken_expositions(self):
        good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n"
        self.assertEqual(value(parse(good), "a_total", x="1"), 3)
        for bad in (good.replace("# HELP a_total A.\n", ""),
                    good.replace("counter", "countr"),
                    good.replace('{x="1"}', '{x=1}'),
                    good.replace("a_total{", "a-total{"),
                    good + "# TYPE a_total counter\n",
                    good.rstrip("\n"),
                    "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                    "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"):
            with self.assertRaises(ExpositionError, msg=bad):
                parse(bad)


class MetricsTest(harness.TestCase):
    server_args = ("--inbox", 'we"ird\\box:pw')

    def scrape(self):
        r = hh.request(self.server, "GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        return parse(r.body.decode("utf-8"))

    def test_families_and_types(self):
        fams = self.scrape()
        want = {"mailsnare_inbox_messages": "gauge", "mailsnare_inbox_unread": "gauge",
                "mailsnare_uptime_seconds": "gauge", "mailsnare_connections": "gauge",
                "mailsnare_connections_total": "counter",
                "mailsnare_auth_failures_total": "counter",
                "mailsnare_smtp_accepted_total": "counter",
                "mailsnare_smtp_rejected_total": "counter",
                "mailsnare_smtp_received_bytes_total": "counter",
                "mailsnare_messages_deleted_total": "counter",
                "mailsnare_store_size_bytes": "gauge", "mailsnare_store_pages": "gauge",
                "mailsnare_store_free_pages": "gauge",
                "mailsnare_store_page_size_bytes": "gauge",
                "mailsnare_store_commit_seconds": "histogram",
                "mailsnare_chaos_triggered_total": "counter",
                "mailsnare_pruned_age_total": "counter"}
        self.assertEqual({k: f["type"] for k, f in fams.items()}, want)
        # The label value is escaped and comes back whole.
        self.assertEqual(value(fams, "mailsnare_inbox_messages", inbox='we"ird\\box'), 0)
        self.assertGreaterEqual(value(fams, "mailsnare_connections", protocol="http"), 1)
        self.assertGreater(value(fams, "mailsnare_store_size_bytes"), 0)
        self.assertEqual(value(fams, "mailsnare_store_page_size_bytes"), 4096)

    def test_values_follow_what_happens(self):
        before = self.scrape()
        host, port = self.server.addr("smtp")
        for i in range(3):
            with smtplib.SMTP(host, port, timeout=harness.SOCK_TIMEOUT) as s:
                s.ehlo("metrics.test")
                msg = b"Subject: m%d\r\n\r\n%s\r\n" % (i, b"x" * (100 * i))
                self.assertEqual(s.sendmail("a@example.test", ["b@example.test"], msg), {})
        with smtplib.SMTP(host, port, timeout=harness.SOCK_TIMEOUT) as s:
            s.ehlo("metrics.test")
            self.assertEqual(s.docmd("MAIL FROM:<a@example.test> BOGUS=1")[0], 555)
            self.assertEqual(s.docmd("RCPT TO:<b@example.test>")[0], 503)
            # Refused after its data (a line over 1000 octets): one rejected.
            s.mail("a@example.test")
            s.rcpt("b@example.test")
            self.assertEqual(s.data(b"Subject: long\r\n\r\n" + b"z" * 1200 + b"\r\n")[0], 500)
            plain = base64.b64encode(b"\0dev\0wrong").decode()
            self.assertEqual(s.docmd("AUTH PLAIN " + plain)[0], 535)    # one failed login
        imap = RawIMAP(self.server.addr("imap"))
        imap.greeting()
        self.assertIn(b"NO", imap.command('LOGIN "dev" "wrong"')[1])
        imap.close()
        r = hh.request(self.server, "GET", "/api/v1/messages", auth=("dev", "wrong"))
        self.assertEqual(r.status, 401)
        msgs = hh.get_json(self, self.server, "/api/v1/messages")["messages"]
        stored = sum(m["Size"] for m in msgs[:3])
        after = self.scrape()

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        self.assertEqual(delta("mailsnare_smtp_accepted_total"), 3)
        self.assertEqual(delta("mailsnare_smtp_received_bytes_total"), stored)
        self.assertEqual(delta("mailsnare_smtp_rejected_total"), 1)    # not the MAIL, the RCPT
        self.assertEqual(delta("mailsnare_connections_total", protocol="smtp"), 4)
        self.assertEqual(delta("mailsnare_connections_total", protocol="imap"), 1)
        self.assertEqual(value(after, "mailsnare_connections", protocol="smtp"), 0)
        for proto in ("smtp", "imap", "http"):
            self.assertEqual(delta("mailsnare_auth_failures_total", protocol=proto), 1, proto)
        self.assertEqual(delta("mailsnare_auth_failures_total", protocol="pop3"), 0)
        self.assertEqual(delta("mailsnare_inbox_messages", inbox="dev"), 3)
        self.assertEqual(delta("mailsnare_inbox_unread", inbox="dev"), 3)
        self.assertGreaterEqual(delta("mailsnare_store_commit_seconds_count"), 1)
        self.assertGreater(delta("mailsnare_store_commit_seconds_sum"), 0)
        self.assertGreaterEqual(value(after, "mailsnare_uptime_seconds"),
                                value(before, "mailsnare_uptime_seconds"))
        # Reading a message lowers unread only.
        hh.request(self.server, "PUT", "/api/v1/messages",
                   body={"IDs": [msgs[0]["ID"]], "Read": True})
        read = self.scrape()
        self.assertEqual(value(read, "mailsnare_inbox_unread", inbox="dev"),
                         value(after, "mailsnare_inbox_unread", inbox="dev") - 1)
        self.assertEqual(value(read, "mailsnare_inbox_messages", inbox="dev"),
                         value(after, "mailsnare_inbox_messages", inbox="dev"))
        # Mailpit's RuntimeStats say the same.
        stats = hh.get_json(self, self.server, "/api/v1/info")["RuntimeStats"]
        self.assertEqual(stats["SMTPAccepted"], value(read, "mailsnare_smtp_accepted_total"))
        self.assertEqual(stats["SMTPAcceptedSize"],
                         value(read, "mailsnare_smtp_received_bytes_total"))
        self.assertEqual(stats["SMTPRejected"], value(read, "mailsnare_smtp_rejected_total"))
        # A delete counts.
        hh.request(self.server, "DELETE", "/api/v1/messages", body={"IDs": [msgs[0]["ID"]]})
        self.assertEqual(value(self.scrape(), "mailsnare_messages_deleted_total"),
                         value(read, "mailsnare_messages_deleted_total") + 1)

    def test_an_inbox_login_sees_its_own_inbox_only(self):
        r = hh.request(self.server, "GET", "/metrics", auth=('we"ird\\box', "pw"))
        self.assertEqual(r.status, 200, r)
        fams = parse(r.body.decode())
        self.assertEqual([s[1] for s in fams["mailsnare_inbox_messages"]["samples"]],
                         [{"inbox": 'we"ird\\box'}])
        self.assertEqual([s[1] for s in fams["mailsnare_inbox_unread"]["samples"]],
                         [{"inbox": 'we"ird\\box'}])
        inboxes = [s[1]["inbox"] for s in self.scrape()["mailsnare_inbox_messages"]["samples"]]
        self.assertEqual(inboxes, sorted(inboxes))
        self.assertIn("dev", inboxes)

    def test_connections_current(self):
        host, port = self.server.addr("imap")
        imap = RawIMAP((host, port))
        imap.greeting()
        try:
            self.assertEqual(value(self.scrape(), "mailsnare_connections", protocol="imap"), 1)
        finally:
            imap.close()
        deadline = time.monotonic() + 5
        while value(self.scrape(), "mailsnare_connections", protocol="imap") != 0:
            self.assertLess(time.monotonic(), deadline, "imap connection still counted")
            time.sleep(0.05)


class MetricsOffTest(harness.TestCase):
    server_args = ("--metrics", "off")

    def test_404(self):
        r = hh.request(self.server, "GET", "/metrics")
        self.assertEqual((r.status, r.body), (404, b"404 page not found"))


class MetricsAuthTest(harness.TestCase):
    server_args = ("--http-require-auth", "yes")

    def test_behind_the_api_credentials(self):
        self.assertEqual(hh.request(self.server, "GET", "/metrics").status, 401)
        r = hh.request(self.server, "GET", "/metrics", auth=("dev", "dev"))
        self.assertEqual(r.status, 200)
        parse(r.body.decode())


if __name__ == "__main__":
    harness.main()
