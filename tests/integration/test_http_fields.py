#!/usr/bin/python3
"""Mailpit's fields that come from what the server counts and what a
message says of itself: /api/v1/info's RuntimeStats (SMTP accepted, their
bytes, refused, deleted), ListUnsubscribe from List-Unsubscribe and
List-Unsubscribe-Post, tags from an X-Tags header at SMTP delivery (IMAP
keywords: an IMAP client sees them; the send API's Tags stay as given),
and the listing's counts kept by the store as messages come, change and
go."""

import json

import harness
import http_helpers as hh
import imap_helpers as ih
from harness import CRLF


def message(subject, extra=(), body=b"Hello.\r\n"):
    return CRLF.join([b"From: app@example.test", b"To: user@example.test",
                      b"Subject: " + subject.encode()] + list(extra) + [b"", body])


class RuntimeStatsTest(harness.TestCase):
    """A server of its own: the counters are the whole server's."""
    server_args = ("--max-message-size", "4000")

    def info(self):
        return hh.get_json(self, self.server, "/api/v1/info")

    def test_counters(self):
        before = self.info()["RuntimeStats"]
        self.assertEqual({k: before[k] for k in ("MessagesDeleted", "SMTPAccepted",
                                                 "SMTPAcceptedSize", "SMTPRejected",
                                                 "SMTPIgnored")},
                         {"MessagesDeleted": 0, "SMTPAccepted": 0, "SMTPAcceptedSize": 0,
                          "SMTPRejected": 0, "SMTPIgnored": 0})
        self.assertGreater(before["Memory"], 1 << 20)
        auth = ih.new_inbox(self.server, "s")
        ids = [hh.smtp_deliver(self.server, message("m%d" % i), auth=auth) for i in range(3)]
        sizes = [hh.get_json(self, self.server, "/api/v1/message/" + i)["Size"] for i in ids]
        with self.assertRaises(AssertionError) as cm:
            hh.smtp_deliver(self.server, message("big", body=(b"x" * 70 + CRLF) * 80),
                            auth=auth)
        self.assertIn("552", str(cm.exception))
        r = hh.request(self.server, "DELETE", "/api/v1/messages", body=b'{"IDs":["%s"]}'
                       % ids[0].encode())
        self.assertEqual((r.status, r.body), (200, b"ok"))
        # An IMAP MOVE is not a delete: the message stays, in another mailbox.
        m = ih.imap_login(self.server, *auth)
        try:
            m.create("Kept")
            m.select("INBOX")
            typ, _ = m.uid("MOVE", "1:*", "Kept")
            self.assertEqual(typ, "OK")
        finally:
            ih.imap_logout(m)
        i = self.info()
        self.assertEqual((i["Messages"], i["Unread"]), (2, 0))
        st = i["RuntimeStats"]
        self.assertEqual((st["SMTPAccepted"], st["SMTPAcceptedSize"], st["SMTPRejected"],
                          st["MessagesDeleted"], st["SMTPIgnored"]),
                         (3, sum(sizes), 1, 1, 0))
        self.assertGreaterEqual(st["Uptime"], 0)


class MessageFieldsTest(harness.TestCase):

    def inbox(self):
        return ih.new_inbox(self.server, "f")

    def get(self, auth, path):
        return hh.get_json(self, self.server, path, auth=auth)

    def test_list_unsubscribe(self):
        auth = self.inbox()
        mid = hh.smtp_deliver(self.server, message("news", [
            b"List-Unsubscribe: <mailto:leave@lists.example?subject=unsubscribe>,",
            b"  <https://lists.example/u?id=42> (one click)",
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"]), auth=auth)
        m = self.get(auth, "/api/v1/message/" + mid)
        self.assertEqual(m["ListUnsubscribe"], {
            "Header": "<mailto:leave@lists.example?subject=unsubscribe>,  "
                      "<https://lists.example/u?id=42> (one click)",
            "Links": ["mailto:leave@lists.example?subject=unsubscribe",
                      "https://lists.example/u?id=42"],
            "Errors": "",
            "HeaderPost": "List-Unsubscribe=One-Click"})
        bad = hh.smtp_deliver(self.server, message("bad", [
            b"List-Unsubscribe: <ftp://lists.example/u>, <mailto:a@lists.example>"]), auth=auth)
        m = self.get(auth, "/api/v1/message/" + bad)
        self.assertEqual(m["ListUnsubscribe"], {
            "Header": "<ftp://lists.example/u>, <mailto:a@lists.example>",
            "Links": ["mailto:a@lists.example"],
            "Errors": '"ftp://lists.example/u" should start with either http(s):// or mailto:',
            "HeaderPost": ""})
        none = hh.smtp_deliver(self.server, message("plain"), auth=auth)
        self.assertEqual(self.get(auth, "/api/v1/message/" + none)["ListUnsubscribe"],
                         {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""})

    def test_x_tags_at_smtp_delivery(self):
        auth = self.inbox()
        mid = hh.smtp_deliver(self.server, message("tagged", [
            b"X-Tags: Order Confirmation, urgent,",
            b" URGENT, ,  sp\xc3\xa9cial!"]), auth=auth)
        untagged = hh.smtp_deliver(self.server, message("untagged"), auth=auth)
        tags = ["Order_Confirmation", "sp_cial", "urgent"]
        self.assertEqual(self.get(auth, "/api/v1/message/" + mid)["Tags"], tags)
        self.assertEqual(self.get(auth, "/api/v1/message/" + untagged)["Tags"], [])
        d = self.get(auth, "/api/v1/messages")
        self.assertEqual(d["tags"], tags)
        self.assertEqual([s["Tags"] for s in d["messages"]], [[], tags])
        self.assertEqual(self.get(auth, "/api/v1/tags"), tags)
        found = self.get(auth, "/api/v1/search?query=tag:urgent")
        self.assertEqual([s["ID"] for s in found["messages"]], [mid])
        m = ih.imap_login(self.server, *auth)
        try:
            m.select("INBOX", readonly=True)
            typ, data = m.uid("FETCH", "1", "(FLAGS)")
            self.assertEqual(typ, "OK")
            # Seen: GET /api/v1/message marked it read.
            self.assertIn(b"FLAGS (\\Seen Order_Confirmation sp_cial urgent)", data[0])
        finally:
            ih.imap_logout(m)

    def test_send_api_tags_as_given(self):
        """The send API's Tags are keywords as given (the X-Tags header it
        writes for them is not cleaned again at delivery)."""
        auth = self.inbox()
        r = hh.request(self.server, "POST", "/api/v1/send", auth=auth, body=json.dumps({
            "From": {"Email": "app@example.test"}, "To": [{"Email": "u@example.test"}],
            "Subject": "sent", "Text": "hi", "Tags": ["v1.2", "own"]}).encode())
        self.assertEqual(r.status, 200, r.body)
        mid = r.json()["ID"]
        self.assertEqual(self.get(auth, "/api/v1/message/" + mid)["Tags"], ["own", "v1.2"])
        raw = hh.request(self.server, "GET", "/api/v1/message/%s/raw" % mid, auth=auth).body
        self.assertIn(b"\r\nX-Tags: v1.2, own\r\n", raw)

    def test_counts_follow_changes(self):
        """total, unread and tags of the envelope as IMAP and the API change
        the messages (the store keeps them; no recount)."""
        auth = self.inbox()
        ids = [hh.smtp_deliver(self.server, message("c%d" % i, [b"X-Tags: t%d" % (i % 2)]),
                               auth=auth) for i in range(4)]

        def envelope():
            d = self.get(auth, "/api/v1/messages?limit=1")
            return (d["total"], d["unread"], d["messages_count"], d["messages_unread"],
                    d["tags"], d["count"])

        self.assertEqual(envelope(), (4, 4, 4, 4, ["t0", "t1"], 1))
        m = ih.imap_login(self.server, *auth)
        try:
            m.select("INBOX")
            m.uid("STORE", "1:2", "+FLAGS", "(\\Seen)")
            self.assertEqual(envelope(), (4, 2, 4, 2, ["t0", "t1"], 1))
            m.uid("STORE", "2", "-FLAGS", "(t1)")
            m.uid("STORE", "4", "-FLAGS", "(t1)")
            self.assertEqual(envelope(), (4, 2, 4, 2, ["t0"], 1))
            m.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
            m.expunge()
        finally:
            ih.imap_logout(m)
        self.assertEqual(envelope(), (3, 2, 3, 2, ["t0"], 1))
        r = hh.request(self.server, "DELETE", "/api/v1/messages",
                       body=b'{"IDs":["%s"]}' % ids[3].encode(), auth=auth)
        self.assertEqual(r.status, 200)
        self.assertEqual(envelope(), (2, 1, 2, 1, ["t0"], 1))
        d = self.get(auth, "/api/v1/messages?start=1&limit=5")
        self.assertEqual(([s["ID"] for s in d["messages"]], d["start"], d["count"]),
                         ([ids[1]], 1, 1))


if __name__ == "__main__":
    harness.main()
