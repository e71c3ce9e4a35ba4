#!/usr/bin/python3
"""Mailpit's v1 API on the real binary: every endpoint built so far, with
the exact field names, casing, status codes and bodies Mailpit answers,
and the error cases. Each test uses an inbox of its own (HTTP Basic
credentials scope the API to it), so tests do not see each other's mail."""

import hashlib
import re

import harness
import http_helpers as hh
import imap_helpers as ih
from harness import CRLF

SUMMARY_KEYS = {"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject",
                "Created", "Username", "Tags", "Size", "Attachments", "Snippet",
                "Inbox", "MailFrom", "RcptTo"}
MESSAGE_KEYS = {"ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath",
                "Subject", "ListUnsubscribe", "Date", "Tags", "Username", "Text", "HTML",
                "Size", "Inline", "Attachments", "Inbox", "MailFrom", "RcptTo", "ClientAddress"}
ENVELOPE_KEYS = {"total", "unread", "count", "messages_count", "messages_unread", "start",
                 "tags", "messages"}

PDF = b"%PDF-1.4 not really a pdf\n" * 40
PNG = bytes(range(256)) * 8


def b64lines(data):
    import base64
    text = base64.b64encode(data)
    return CRLF.join(text[i:i + 76] for i in range(0, len(text), 76))


def mixed_message(subject="Caf\u00e9 report"):
    subj = "=?UTF-8?Q?" + "".join(
        "=%02X" % b if b > 127 or b in b" =?_" else chr(b)
        for b in subject.encode("utf-8")) + "?="
    return CRLF.join([
        b'From: "Ann Sender" <ann@example.test>',
        b'To: bob@example.test, "C\xc3\xa9cile" <cecile@example.test>',
        b"Cc: carol@example.test",
        b"Reply-To: replies@example.test",
        b"Subject: " + subj.encode(),
        b"Date: Tue, 04 Mar 2025 10:20:30 +0100",
        b"Message-ID: <mixed.1@example.test>",
        b"X-Mailer: test",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="outer"',
        b"",
        b"--outer",
        b'Content-Type: multipart/related; boundary="rel"',
        b"",
        b"--rel",
        b'Content-Type: multipart/alternative; boundary="alt"',
        b"",
        b"--alt",
        b"Content-Type: text/plain; charset=iso-8859-1",
        b"Content-Transfer-Encoding: quoted-printable",
        b"",
        b"Caf=E9 au lait, plain part.",
        b"--alt",
        b"Content-Type: text/html; charset=utf-8",
        b"",
        b'<html><body><p>Caf\xc3\xa9 <b>HTML</b></p><img src="cid:logo@x"></body></html>',
        b"--alt--",
        b"--rel",
        b"Content-Type: image/png",
        b"Content-ID: <logo@x>",
        b"Content-Transfer-Encoding: base64",
        b"",
        b64lines(PNG),
        b"--rel--",
        b"--outer",
        b'Content-Type: application/pdf; name="r.pdf"',
        b'Content-Disposition: attachment; filename="=?UTF-8?Q?r=C3=A9sum=C3=A9.pdf?="',
        b"Content-Transfer-Encoding: base64",
        b"",
        b64lines(PDF),
        b"--outer--",
        b""])


class HTTPAPITest(harness.TestCase):

    def inbox(self):
        name, pw = ih.new_inbox(self.server, "h")
        return name, pw

    def deliver(self, auth, msg, **kw):
        return hh.smtp_deliver(self.server, msg, auth=auth, **kw)

    # -- list

    def test_list_envelope_and_summary(self):
        auth = self.inbox()
        first = self.deliver(auth, ih.simple_message("first"))
        mid = self.deliver(auth, mixed_message(), mail_from="bounce@example.test",
                           rcpts=("bob@example.test", "hidden@example.test"))
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual(set(d), ENVELOPE_KEYS)
        self.assertEqual((d["total"], d["unread"], d["count"], d["messages_count"],
                          d["messages_unread"], d["start"], d["tags"]),
                         (2, 2, 2, 2, 2, 0, []))
        self.assertEqual([m["ID"] for m in d["messages"]], [mid, first], "newest first")
        s = d["messages"][0]
        self.assertEqual(set(s), SUMMARY_KEYS)
        self.assertEqual(s["From"], {"Name": "Ann Sender", "Address": "ann@example.test"})
        self.assertEqual(s["To"], [{"Name": "", "Address": "bob@example.test"},
                                   {"Name": "C\u00e9cile", "Address": "cecile@example.test"}])
        self.assertEqual(s["Cc"], [{"Name": "", "Address": "carol@example.test"}])
        self.assertEqual(s["Bcc"], [])
        self.assertEqual(s["ReplyTo"], [{"Name": "", "Address": "replies@example.test"}])
        self.assertEqual(s["Subject"], "Caf\u00e9 report")
        self.assertEqual(s["MessageID"], "mixed.1@example.test")
        self.assertIs(s["Read"], False)
        self.assertEqual(s["Attachments"], 1)
        self.assertEqual(s["Tags"], [])
        self.assertEqual(s["Username"], auth[0])
        self.assertEqual(s["Inbox"], auth[0])
        self.assertEqual(s["MailFrom"], "bounce@example.test")
        self.assertEqual(s["RcptTo"], ["bob@example.test", "hidden@example.test"])
        self.assertEqual(s["Size"], len(self.server.message_bytes(mid)))
        self.assertRegex(s["Created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # Mailpit's snippet: the HTML's text, white space collapsed
        self.assertEqual(s["Snippet"], "Caf\u00e9 HTML")

    def test_list_paging(self):
        auth = self.inbox()
        ids = [self.deliver(auth, ih.simple_message("page %d" % i)) for i in range(5)]
        d = hh.get_json(self, self.server, "/api/v1/messages?start=1&limit=2", auth=auth)
        self.assertEqual([m["ID"] for m in d["messages"]], [ids[3], ids[2]])
        self.assertEqual((d["start"], d["count"], d["total"], d["messages_count"]), (1, 2, 5, 5))
        d = hh.get_json(self, self.server, "/api/v1/messages?start=4&limit=50", auth=auth)
        self.assertEqual([m["ID"] for m in d["messages"]], [ids[0]])
        d = hh.get_json(self, self.server, "/api/v1/messages?before=2000-01-01T00:00:00Z",
                        auth=auth)
        self.assertEqual((d["messages"], d["messages_count"], d["total"]), ([], 0, 5))
        # absent or 0 is the default (as Mailpit), not everything
        for q in ("limit=0", "start=&limit="):
            d = hh.get_json(self, self.server, "/api/v1/messages?" + q, auth=auth)
            self.assertEqual((d["start"], len(d["messages"])), (0, 5), q)
        for bad in ("start=-1", "limit=x", "before=yesterday"):
            r = hh.request(self.server, "GET", "/api/v1/messages?" + bad, auth=auth)
            self.assertEqual(r.status, 400, bad)
            self.assertTrue(r.header("Content-Type").startswith("text/plain"), bad)
        d = hh.get_json(self, self.server, "/api/v1/messages?limit=2", auth=auth)
        self.assertEqual([m["ID"] for m in d["messages"]], [ids[4], ids[3]])

    # -- one message

    def test_message_json(self):
        auth = self.inbox()
        mid = self.deliver(auth, mixed_message(), mail_from="bounce@example.test")
        m = hh.get_json(self, self.server, "/api/v1/message/" + mid, auth=auth)
        self.assertEqual(set(m), MESSAGE_KEYS)
        self.assertEqual(m["ID"], mid)
        self.assertEqual(m["Text"], "Caf\u00e9 au lait, plain part.")
        self.assertEqual(m["HTML"], '<html><body><p>Caf\u00e9 <b>HTML</b></p>'
                                    '<img src="cid:logo@x"></body></html>')
        self.assertEqual(m["ReturnPath"], "bounce@example.test")
        self.assertEqual(m["Date"], "2025-03-04T09:20:30Z")
        self.assertEqual(m["ListUnsubscribe"],
                         {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""})
        self.assertEqual(m["Inline"], [{
            "PartID": "1.2", "FileName": "", "ContentType": "image/png",
            "ContentID": "logo@x", "Size": len(PNG),
            "Checksums": {"MD5": hashlib.md5(PNG).hexdigest(),
                          "SHA1": hashlib.sha1(PNG).hexdigest(),
                          "SHA256": hashlib.sha256(PNG).hexdigest()}}])
        self.assertEqual(m["Attachments"], [{
            "PartID": "2", "FileName": "r\u00e9sum\u00e9.pdf",
            "ContentType": "application/pdf", "ContentID": "", "Size": len(PDF),
            "Checksums": {"MD5": hashlib.md5(PDF).hexdigest(),
                          "SHA1": hashlib.sha1(PDF).hexdigest(),
                          "SHA256": hashlib.sha256(PDF).hexdigest()}}])
        # GET marked it read
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertIs(d["messages"][0]["Read"], True)
        self.assertEqual(d["unread"], 0)

    def test_latest(self):
        auth = self.inbox()
        self.deliver(auth, ih.simple_message("older"))
        newest = self.deliver(auth, ih.simple_message("newest"))
        m = hh.get_json(self, self.server, "/api/v1/message/latest", auth=auth)
        self.assertEqual((m["ID"], m["Subject"]), (newest, "newest"))
        r = hh.request(self.server, "GET", "/api/v1/message/latest/raw", auth=auth)
        self.assertEqual(r.body, self.server.message_bytes(newest))

    def test_latest_of_empty_inbox_is_404(self):
        auth = self.inbox()
        r = hh.request(self.server, "GET", "/api/v1/message/latest", auth=auth)
        self.assertEqual((r.status, r.body), (404, b"404 page not found"))

    def test_headers(self):
        auth = self.inbox()
        mid = self.deliver(auth, mixed_message())
        h = hh.get_json(self, self.server, "/api/v1/message/%s/headers" % mid, auth=auth)
        self.assertEqual(h["Message-Id"], ["<mixed.1@example.test>"])
        self.assertEqual(h["X-Mailer"], ["test"])
        self.assertEqual(h["Mime-Version"], ["1.0"])
        self.assertEqual(h["Content-Type"], ['multipart/mixed; boundary="outer"'])
        self.assertEqual(len(h["Received"]), 1)
        self.assertNotIn("\r", h["Received"][0])
        self.assertEqual(list(h), sorted(h), "keys sorted, as Go's encoder writes a map")

    def test_raw_and_download(self):
        auth = self.inbox()
        mid = self.deliver(auth, mixed_message())
        r = hh.request(self.server, "GET", "/api/v1/message/%s/raw" % mid, auth=auth)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/plain; charset=utf-8")
        self.assertEqual(r.body, self.server.message_bytes(mid))
        self.assertIsNone(r.header("Content-Disposition"))
        r = hh.request(self.server, "GET", "/api/v1/message/%s/raw?dl=1" % mid, auth=auth)
        self.assertEqual(r.header("Content-Disposition"), 'attachment; filename="%s.eml"' % mid)

    def test_large_raw_streamed_intact(self):
        auth = self.inbox()
        body = b"".join(b"line %07d of a large message body\r\n" % i for i in range(90000))
        mid = self.deliver(auth, ih.simple_message("large", body=body))
        r = hh.request(self.server, "GET", "/api/v1/message/%s/raw" % mid, auth=auth)
        self.assertEqual(r.header("Content-Length"), str(len(r.body)))
        self.assertEqual(r.body, self.server.message_bytes(mid))

    def test_parts(self):
        auth = self.inbox()
        mid = self.deliver(auth, mixed_message())
        r = hh.request(self.server, "GET", "/api/v1/message/%s/part/2" % mid, auth=auth)
        self.assertEqual((r.status, r.body), (200, PDF))
        self.assertEqual(r.header("Content-Type"), "application/pdf")
        self.assertEqual(r.header("Content-Disposition"), 'filename="r\u00e9sum\u00e9.pdf"'
                         .encode("utf-8").decode("latin-1"))
        r = hh.request(self.server, "GET", "/api/v1/message/%s/part/1.2" % mid, auth=auth)
        self.assertEqual((r.status, r.body, r.header("Content-Type")), (200, PNG, "image/png"))
        for bad in ("9", "1.9", "x", "1..2"):
            r = hh.request(self.server, "GET", "/api/v1/message/%s/part/%s" % (mid, bad),
                           auth=auth)
            self.assertEqual((r.status, r.body), (404, b"404 page not found"), bad)
        r = hh.request(self.server, "GET", "/api/v1/message/%s/part/2/thumb" % mid, auth=auth)
        self.assertEqual(r.status, 404)

    def test_view_html_and_txt(self):
        auth = self.inbox()
        mid = self.deliver(auth, mixed_message())
        r = hh.request(self.server, "GET", "/view/%s.html" % mid, auth=auth)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(r.text(), '<html><body><p>Caf\u00e9 <b>HTML</b></p>'
                         '<img src="/api/v1/message/%s/part/1.2"></body></html>' % mid)
        r = hh.request(self.server, "GET", "/view/%s.txt" % mid, auth=auth)
        self.assertEqual((r.status, r.text()), (200, "Caf\u00e9 au lait, plain part."))
        self.assertEqual(r.header("Content-Type"), "text/plain; charset=utf-8")
        r = hh.request(self.server, "GET", "/view/latest", auth=auth)
        self.assertEqual(r.status, 200)
        self.assertIn("/api/v1/message/%s/part/1.2" % mid, r.text())
        plain = self.deliver(auth, ih.simple_message("no html"))
        r = hh.request(self.server, "GET", "/view/%s.html" % plain, auth=auth)
        self.assertEqual(r.status, 404)

    def test_unknown_ids(self):
        auth = self.inbox()
        for path in ("/api/v1/message/999999", "/api/v1/message/abc",
                     "/api/v1/message/0/raw", "/api/v1/message/999999/headers",
                     "/view/999999.html", "/api/v1/nothing", "/web/nothing.js"):
            r = hh.request(self.server, "GET", path, auth=auth)
            self.assertEqual((r.status, r.body), (404, b"404 page not found"), path)

    def test_wrong_method(self):
        r = hh.request(self.server, "POST", "/api/v1/messages", body={})
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Allow"), "GET, PUT, DELETE, OPTIONS")
        r = hh.request(self.server, "DELETE", "/api/v1/info")
        self.assertEqual(r.status, 405)

    # -- read state and deletes

    def test_put_read_by_ids_and_all(self):
        auth = self.inbox()
        a = self.deliver(auth, ih.simple_message("a"))
        b = self.deliver(auth, ih.simple_message("b"))
        r = hh.request(self.server, "PUT", "/api/v1/messages", {"IDs": [a], "Read": True},
                       auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(r.header("Content-Type"), "text/plain; charset=utf-8")
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual({m["ID"]: m["Read"] for m in d["messages"]}, {a: True, b: False})
        self.assertEqual(d["unread"], 1)
        r = hh.request(self.server, "PUT", "/api/v1/messages", {"Read": True}, auth=auth)
        self.assertEqual(r.body, b"ok")
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual((d["unread"], [m["Read"] for m in d["messages"]]), (0, [True, True]))
        r = hh.request(self.server, "PUT", "/api/v1/messages", {"IDs": [b], "Read": False},
                       auth=auth)
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual({m["ID"]: m["Read"] for m in d["messages"]}, {a: True, b: False})

    def test_put_errors(self):
        auth = self.inbox()
        for body, want in ((b"{not json", "invalid JSON"),
                           (b"[1]", "invalid JSON: want an object"),
                           (b'{"IDs": "1"}', "IDs: want an array"),
                           (b'{"IDs": ["1"], "Search": "x"}',
                            "You may specify either IDs or a search query, not both")):
            r = hh.request(self.server, "PUT", "/api/v1/messages", body, auth=auth,
                           headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 400, body)
            self.assertTrue(r.text().startswith(want), (body, r.text()))
            self.assertTrue(r.header("Content-Type").startswith("text/plain"))

    def test_delete_by_ids_and_all(self):
        auth = self.inbox()
        ids = [self.deliver(auth, ih.simple_message("d%d" % i)) for i in range(3)]
        r = hh.request(self.server, "DELETE", "/api/v1/messages", {"IDs": [ids[1]]}, auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual([m["ID"] for m in d["messages"]], [ids[2], ids[0]])
        self.assertNotIn(ids[1], self.server.message_ids(auth[0]))
        r = hh.request(self.server, "DELETE", "/api/v1/messages", auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual((d["total"], d["messages"]), (0, []))

    def test_body_too_large(self):
        auth = self.inbox()
        big = b'{"IDs": ["' + b"1" * (5 * 1024 * 1024) + b'"]}'
        r = hh.request(self.server, "PUT", "/api/v1/messages", big, auth=auth,
                       headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 413)

    # -- search

    def test_search(self):
        auth = self.inbox()
        inv = self.deliver(auth, ih.simple_message("Invoice 42", body=b"Total due: 12 EUR\r\n"))
        other = self.deliver(auth, ih.simple_message("Weekly news",
                                                     to=b"Dana <dana@example.test>"))
        d = hh.get_json(self, self.server, "/api/v1/search?query=subject:invoice", auth=auth)
        self.assertEqual(set(d), ENVELOPE_KEYS)
        self.assertEqual([m["ID"] for m in d["messages"]], [inv])
        self.assertEqual((d["total"], d["messages_count"], d["messages_unread"]), (2, 1, 1))
        d = hh.get_json(self, self.server, "/api/v1/search?query=to:dana", auth=auth)
        self.assertEqual([m["ID"] for m in d["messages"]], [other])
        d = hh.get_json(self, self.server, "/api/v1/search?query=due", auth=auth)
        self.assertEqual([m["ID"] for m in d["messages"]], [inv])
        d = hh.get_json(self, self.server, "/api/v1/search?query=-subject:invoice", auth=auth)
        self.assertEqual([m["ID"] for m in d["messages"]], [other])
        m = hh.get_json(self, self.server, "/api/v1/message/latest?query=subject:invoice",
                        auth=auth)
        self.assertEqual(m["ID"], inv)
        r = hh.request(self.server, "GET", "/api/v1/search?query=", auth=auth)
        self.assertEqual((r.status, r.body), (400, b"Error: no search query"))
        r = hh.request(self.server, "GET", "/api/v1/search?query=larger:lots", auth=auth)
        self.assertEqual(r.status, 400)
        self.assertTrue(r.body.startswith(b"Error: "), r.body)
        # read state by search
        r = hh.request(self.server, "PUT", "/api/v1/messages",
                       {"Search": "subject:invoice", "Read": True}, auth=auth)
        self.assertEqual(r.body, b"ok")
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual({m["ID"]: m["Read"] for m in d["messages"]}, {inv: True, other: False})
        d = hh.get_json(self, self.server, "/api/v1/search?query=is:unread", auth=auth)
        self.assertEqual([m["ID"] for m in d["messages"]], [other])
        # delete by search
        r = hh.request(self.server, "DELETE", "/api/v1/search?query=subject:weekly", auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(self.server.message_ids(auth[0]), [inv])
        r = hh.request(self.server, "DELETE", "/api/v1/search", auth=auth)
        self.assertEqual((r.status, r.body), (400, b"Error: no search query"))

    # -- tags (IMAP keywords)

    def test_tags(self):
        auth = self.inbox()
        a = self.deliver(auth, ih.simple_message("tag a"))
        b = self.deliver(auth, ih.simple_message("tag b"))
        r = hh.request(self.server, "PUT", "/api/v1/tags", {"IDs": [a, b], "Tags": ["red", "blue"]},
                       auth=auth)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(hh.get_json(self, self.server, "/api/v1/tags", auth=auth),
                         ["blue", "red"])
        r = hh.request(self.server, "PUT", "/api/v1/tags", {"IDs": [b], "Tags": ["green"]},
                       auth=auth)
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=auth)
        self.assertEqual({m["ID"]: sorted(m["Tags"]) for m in d["messages"]},
                         {a: ["blue", "red"], b: ["green"]})
        self.assertEqual(d["tags"], ["blue", "green", "red"])
        # IMAP sees them as keywords
        m = ih.imap_login(self.server, *auth)
        try:
            m.select("INBOX")
            typ, data = m.fetch("1", "(FLAGS)")
            self.assertIn(b"red", data[0])
            self.assertIn(b"blue", data[0])
            m.store("2", "+FLAGS", "(imapset)")
        finally:
            ih.imap_logout(m)
        d = hh.get_json(self, self.server, "/api/v1/message/" + b, auth=auth)
        self.assertEqual(sorted(d["Tags"]), ["green", "imapset"])
        d = hh.get_json(self, self.server, "/api/v1/search?query=tag:red", auth=auth)
        self.assertEqual([x["ID"] for x in d["messages"]], [a])
        # rename and delete
        r = hh.request(self.server, "PUT", "/api/v1/tags/red", {"Name": "crimson"}, auth=auth)
        self.assertEqual(r.body, b"ok")
        r = hh.request(self.server, "DELETE", "/api/v1/tags/blue", auth=auth)
        self.assertEqual(r.body, b"ok")
        d = hh.get_json(self, self.server, "/api/v1/message/" + a, auth=auth)
        self.assertEqual(d["Tags"], ["crimson"])
        # clearing
        r = hh.request(self.server, "PUT", "/api/v1/tags", {"IDs": [a], "Tags": []}, auth=auth)
        d = hh.get_json(self, self.server, "/api/v1/message/" + a, auth=auth)
        self.assertEqual(d["Tags"], [])
        for body in ({"IDs": [a], "Tags": ["two words"]}, {"Tags": ["x"]},
                     {"IDs": [a], "Tags": "x"}):
            r = hh.request(self.server, "PUT", "/api/v1/tags", body, auth=auth)
            self.assertEqual(r.status, 400, body)

    # -- send

    def test_send(self):
        import base64
        auth = self.inbox()
        req = {"From": {"Email": "john@example.test", "Name": "John D\u00f6e"},
               "To": [{"Email": "jane@example.test", "Name": "Jane"}],
               "Cc": [{"Email": "cc@example.test"}],
               "Bcc": ["hidden@example.test"],
               "ReplyTo": [{"Email": "reply@example.test"}],
               "Subject": "Sent via the API \u2713",
               "Text": "Plain text body", "HTML": '<p>HTML <img src="cid:pic"></p>',
               "Headers": {"X-Custom": "yes"}, "Tags": ["api", "sent"],
               "Attachments": [
                   {"Content": base64.b64encode(PDF).decode(), "Filename": "doc.pdf",
                    "ContentType": "application/pdf"},
                   {"Content": base64.b64encode(PNG).decode(), "Filename": "pic.png",
                    "ContentType": "image/png", "ContentID": "pic"}]}
        r = hh.request(self.server, "POST", "/api/v1/send", req, auth=auth)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        sid = r.json()["ID"]
        self.assertEqual(set(r.json()), {"ID"})
        self.assertIn(sid, self.server.message_ids(auth[0]), "not stored in the inbox")
        m = hh.get_json(self, self.server, "/api/v1/message/" + sid, auth=auth)
        self.assertEqual(m["From"], {"Name": "John D\u00f6e", "Address": "john@example.test"})
        self.assertEqual(m["To"], [{"Name": "Jane", "Address": "jane@example.test"}])
        self.assertEqual(m["Cc"], [{"Name": "", "Address": "cc@example.test"}])
        self.assertEqual(m["Bcc"], [])
        self.assertEqual(m["ReplyTo"], [{"Name": "", "Address": "reply@example.test"}])
        self.assertEqual(m["Subject"], "Sent via the API \u2713")
        self.assertEqual(m["Text"], "Plain text body")
        self.assertEqual(m["HTML"], '<p>HTML <img src="cid:pic"></p>')
        self.assertEqual(sorted(m["Tags"]), ["api", "sent"])
        self.assertEqual(m["MailFrom"], "john@example.test")
        self.assertEqual(m["RcptTo"], ["jane@example.test", "cc@example.test",
                                       "hidden@example.test"])
        self.assertEqual([(a["FileName"], a["Size"], a["Checksums"]["SHA256"])
                          for a in m["Attachments"]],
                         [("doc.pdf", len(PDF), hashlib.sha256(PDF).hexdigest())])
        self.assertEqual([(a["ContentID"], a["Size"]) for a in m["Inline"]], [("pic", len(PNG))])
        h = hh.get_json(self, self.server, "/api/v1/message/%s/headers" % sid, auth=auth)
        self.assertEqual(h["X-Custom"], ["yes"])
        self.assertNotIn("Bcc", h)
        raw = self.server.message_bytes(sid)
        self.assertTrue(raw.startswith(b"Received: from 127.0.0.1"), raw[:100])
        # IMAP sees it, with the tags as keywords
        im = ih.imap_login(self.server, *auth)
        try:
            im.select("INBOX")
            typ, data = im.fetch("1", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            self.assertIn(b"api", data[0][0])
        finally:
            ih.imap_logout(im)

    def test_send_errors(self):
        auth = self.inbox()
        for body, want in (
                ({"To": [{"Email": "a@example.test"}]}, "No valid sender address found"),
                ({"From": {"Email": "bad"}, "To": [{"Email": "a@example.test"}]},
                 "Invalid sender email address: bad"),
                ({"From": {"Email": "f@example.test"}}, "No valid recipient addresses found"),
                ({"From": {"Email": "f@example.test"}, "To": [{"Email": "x"}]},
                 "Invalid 'To' email address: x"),
                ({"From": {"Email": "f@example.test"}, "To": [{"Email": "a@example.test"}],
                  "Headers": {"X-A": "1\r\nBcc: evil@example.test"}}, "invalid header value"),
                ({"From": {"Email": "f@example.test"}, "To": [{"Email": "a@example.test"}],
                  "Attachments": [{"Content": "***", "Filename": "x"}]},
                 "Attachments[0]: Content is not base64")):
            r = hh.request(self.server, "POST", "/api/v1/send", body, auth=auth)
            self.assertEqual(r.status, 400, body)
            self.assertTrue(r.text().startswith(want), (body, r.text()))
        r = hh.request(self.server, "POST", "/api/v1/send", b"{oops", auth=auth,
                       headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertEqual(self.server.message_ids(auth[0]), [])

    def test_send_anonymous_goes_to_dev(self):
        r = hh.request(self.server, "POST", "/api/v1/send",
                       {"From": {"Email": "f@example.test"}, "To": [{"Email": "t@example.test"}],
                        "Subject": "to dev"})
        self.assertEqual(r.status, 200)
        self.assertIn(r.json()["ID"], self.server.message_ids("dev"))

    # -- server information

    def test_info_webui_health(self):
        auth = self.inbox()
        self.deliver(auth, ih.simple_message("info"))
        i = hh.get_json(self, self.server, "/api/v1/info", auth=auth)
        self.assertEqual(set(i), {"Version", "LatestVersion", "Database", "DatabaseSize",
                                  "Messages", "Unread", "Tags", "RuntimeStats"})
        self.assertEqual((i["Messages"], i["Unread"], i["Tags"]), (1, 1, {}))
        self.assertEqual(i["Database"], self.server.db)
        self.assertEqual(set(i["RuntimeStats"]), {"Uptime", "Memory", "MessagesDeleted",
                                                  "SMTPAccepted", "SMTPAcceptedSize",
                                                  "SMTPRejected", "SMTPIgnored"})
        w = hh.get_json(self, self.server, "/api/v1/webui")
        self.assertIn("MessageRelay", w)
        self.assertIs(w["MessageRelay"]["Enabled"], False)
        for path in ("/livez", "/readyz"):
            r = hh.request(self.server, "GET", path)
            self.assertEqual((r.status, r.body), (200, b""), path)
            self.assertRegex(r.header("Date") or "",
                             r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")


if __name__ == "__main__":
    harness.main()
