"""The web page's remaining edges in headless Chromium (test_web_edges.js,
with test_web.js's helpers): the Release button against a second
mailsnare as the upstream (what arrives there is the trapped message with
one Received: line more; a refused recipient shows the server's words),
browser notifications (one per new message while the tab is hidden and
they are on; none otherwise), and "Delete all" with a search on (only the
matches go, DELETE /api/v1/search; an IMAP session sees EXPUNGE for those
alone) and without one (the inbox scope)."""

import json
import os

import harness
import node_helpers
from harness import Server, strip_received, wait_until
from http_helpers import request, smtp_deliver
from imap_helpers import imap_login, imap_logout
from test_web import BROWSER_TIMEOUT, browser_or_skip, html_message

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "test_web_edges.js")
ALLOWLIST_REFUSAL = ("Release failed: Mail address does not match the allowlist "
                     "(relay-allowed-recipients): eve@other.test")


def run_page(cfg):
    node_path = browser_or_skip()
    return node_helpers.run_script(SCRIPT, node_path, json.dumps(cfg), BROWSER_TIMEOUT)


def page_url(server):
    return "http://%s:%d/" % server.addr("http")


class WebReleaseTest(harness.TestCase):
    """self.server is the upstream; the trap the page talks to relays to it."""

    def test_release_button(self):
        up = self.server
        trap = Server("--relay-host", "127.0.0.1", "--relay-port", up.addr("smtp")[1],
                      "--relay-tls", "none",
                      "--relay-allowed-recipients", "@example\\.test$").start()
        self.addCleanup(trap.stop)
        msg = html_message("Release from the page", "<p>to go</p>", text="body stays")
        mid = smtp_deliver(trap, msg, rcpts=("bob@example.test", "amy@example.test"))
        original = trap.message_bytes(mid)
        res = run_page({"mode": "release", "url": page_url(trap),
                        "subject": "Release from the page",
                        "answers": ["carol@example.test", "eve@other.test"]})
        self.assertEqual(res["errors"], [], res)
        self.assertEqual(res["promptDefaults"], ["bob@example.test, amy@example.test"] * 2)
        self.assertEqual(res["released"], "Released to carol@example.test")
        self.assertEqual(res["refused"], ALLOWLIST_REFUSAL)
        ids = wait_until(lambda: up.message_ids(), what="the released message upstream")
        self.assertEqual(len(ids), 1, ids)
        raw = up.message_bytes(ids[0])
        ours = strip_received(raw)           # the upstream's own Received:
        self.assertTrue(ours.startswith(b"Received: by "), ours[:200])
        self.assertIn(b"release of message %s" % mid.encode(), ours.split(b"\r\n", 1)[0])
        self.assertEqual(strip_received(ours), original)
        info = request(up, "GET", "/api/v1/message/%s" % ids[0]).json()
        self.assertEqual(info["RcptTo"], ["carol@example.test"])
        self.assertEqual(info["Text"].strip(), "body stays")
        # The refused release sent nothing.
        self.assertEqual(up.message_ids(), ids)


class WebNotifyTest(harness.TestCase):
    def test_one_notification_per_new_message_while_hidden(self):
        res = run_page({"mode": "notify", "url": page_url(self.server)})
        self.assertEqual(res["errors"], [], res)
        self.assertEqual(res["offHidden"], [])
        self.assertEqual(res["permission"], "granted")
        self.assertEqual(res["onVisible"], [])
        self.assertEqual(res["onHidden"], [["Hidden one", "Nora Notify"],
                                           ["Hidden two", "Nora Notify"]])
        self.assertEqual(res["clickOpened"], "Hidden two")
        self.assertEqual(res["offAgain"], res["onHidden"])


class WebDeleteAllTest(harness.TestCase):
    def test_delete_all_matches_then_scope(self):
        srv = self.server
        for s in ("Invoice 1", "Hello there", "Invoice 2", "Keep me"):
            smtp_deliver(srv, html_message(s, "<p>x</p>"))
        srv.inbox_add("other", "otherpw")
        for s in ("Invoice for other", "Other note"):
            smtp_deliver(srv, html_message(s, "<p>o</p>"), auth=("other", "otherpw"))
        imap = imap_login(srv, "dev", "dev")
        self.addCleanup(imap_logout, imap)
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", "ALL")
        uids = data[0].split()
        self.assertEqual(len(uids), 4)
        res = run_page({"mode": "deleteall", "url": page_url(srv), "query": "subject:Invoice",
                        "total": 6, "matches": 3, "otherInbox": "other", "otherLeft": 1})
        self.assertEqual(res["errors"], [], res)
        self.assertEqual(res["matched"], ["Invoice for other", "Invoice 2", "Invoice 1"])
        self.assertEqual(res["searchConfirm"],
                         ["Delete the 3 messages matching “subject:Invoice” of every inbox?",
                          "Delete matches"])
        self.assertEqual(res["afterSearchDelete"], [])
        self.assertEqual(res["left"], ["Other note", "Keep me", "Hello there"])
        self.assertEqual(res["scopeConfirm"], ["Delete every message of inbox “other”?",
                                               "Delete all"])
        self.assertEqual(res["finally"], ["Keep me", "Hello there"])
        self.assertEqual(srv.inbox_message_count("other"), 0)
        # IMAP: EXPUNGE for the two Invoices of dev's INBOX, nothing else.
        imap.noop()
        self.assertEqual(len(imap.untagged_responses.get("EXPUNGE", [])), 2, imap.untagged_responses)
        typ, data = imap.uid("SEARCH", "ALL")
        self.assertEqual(data[0].split(), [uids[1], uids[3]])


EMBED_HEAD = b'<base target="_blank"><meta name="referrer" content="no-referrer">'


class ViewEmbedTest(harness.TestCase):
    """Mailpit's /view/{ID}.html?embed=1: links open in a new tab, no
    referrer; the page is otherwise the message's HTML as without it."""

    def view(self, mid, query=""):
        return request(self.server, "GET", "/view/%s.html%s" % (mid, query))

    def test_embed_adds_base_after_doctype(self):
        html = "<!DOCTYPE html>\r\n<p><a href=\"https://example.test/\">x</a></p>"
        mid = smtp_deliver(self.server, html_message("Embed", html))
        plain = self.view(mid)
        self.assertEqual(plain.status, 200)
        self.assertEqual(plain.body, html.encode())
        self.assertIsNone(plain.header("Referrer-Policy"))
        self.assertTrue(plain.header("Content-Security-Policy").endswith("sandbox allow-popups"))
        self.assertEqual(self.view(mid, "?embed=0").body, html.encode())
        r = self.view(mid, "?embed=1")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(r.body, b"<!DOCTYPE html>" + EMBED_HEAD +
                         b"\r\n<p><a href=\"https://example.test/\">x</a></p>")
        self.assertEqual(r.header("Referrer-Policy"), "no-referrer")
        csp = r.header("Content-Security-Policy")
        self.assertTrue(csp.endswith("sandbox allow-popups allow-popups-to-escape-sandbox"), csp)
        self.assertIn("default-src 'none'", csp)
        self.assertEqual(self.view("latest", "?embed=1").body, r.body)

    def test_embed_without_doctype_and_cid(self):
        html = "<img src=\"cid:logo@x\"><a href=\"/y\">y</a>"
        msg = (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: cid\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"r\"\r\n\r\n"
               b"--r\r\nContent-Type: text/html\r\n\r\n" + html.encode() + b"\r\n"
               b"--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--r--\r\n")
        mid = smtp_deliver(self.server, msg)
        r = self.view(mid, "?embed=1")
        self.assertEqual(r.body, EMBED_HEAD + (
            "<img src=\"/api/v1/message/%s/part/2\"><a href=\"/y\">y</a>" % mid).encode())
        self.assertEqual(self.view("999999", "?embed=1").status, 404)


if __name__ == "__main__":
    import unittest
    unittest.main()
