"""The web page (issue 13) on the real binary: its HTTP side (headers,
ETag, CSP, the fields the page needs) with http.client, and the page
itself in headless Chromium driven from Node (test_web.js, puppeteer-core
from npm): live arrival within a second of the SMTP 250, the HTML, text,
headers and envelope tabs, a hostile message (no script runs, no remote
request until allowed, counted by a loopback HTTP server), search,
delete seen by an IMAP session as EXPUNGE, mark-read seen as \\Seen, an
attachment downloaded with the same bytes, inbox switching. Screenshots go
to test_web-artifacts/ in the build tree."""

import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
import unittest

import harness
import node_helpers
from http_helpers import request, smtp_deliver
from imap_helpers import imap_login, imap_logout

PUPPETEER = "25.16.0"
CHROMIUM = "/usr/bin/chromium"
BROWSER_TIMEOUT = 240
HERE = os.path.dirname(os.path.abspath(__file__))
ATTACHMENT = bytes(range(256)) * 40 + b"\x00\xffend"


class Counter(http.server.BaseHTTPRequestHandler):
    """A loopback HTTP server that counts every request but GET /count."""
    hits = []

    def _any(self):
        if self.path == "/count":
            body = json.dumps(Counter.hits).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        Counter.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _any

    def log_message(self, *args):
        pass


def html_message(subject, html, text="plain text", extra=b""):
    return (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
            b"Subject: " + subject.encode() + b"\r\nMIME-Version: 1.0\r\n" + extra +
            b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
            b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text.encode() +
            b"\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.encode() +
            b"\r\n--alt--\r\n")


def attachment_message(subject, name):
    b64 = base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n")
    return (b"From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
            b"Subject: " + subject.encode() + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n"
            b"--mix\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n"
            b"--mix\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"" + name.encode() + b"\"\r\n\r\n" +
            b64 + b"--mix--\r\n")


class WebHTTPTest(harness.TestCase):
    """What the page is served with, and the API fields it reads."""

    def test_page_headers_and_etag(self):
        r = request(self.server, "GET", "/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assertIn(b'<script type="module" src="/web/app.js">', r.body)
        csp = r.header("Content-Security-Policy")
        self.assertIn("script-src 'self';", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertNotIn("script-src 'self' 'unsafe-inline'", csp)
        self.assertEqual(r.header("Cache-Control"), "no-cache")
        etag = r.header("ETag")
        self.assertRegex(etag, r'^"\d+-\d+"$')
        r2 = request(self.server, "GET", "/", headers={"If-None-Match": etag})
        self.assertEqual((r2.status, r2.body), (304, b""))
        with open(os.path.join(os.environ["MAILSNARE_SRCDIR"], "web", "index.html"), "rb") as f:
            self.assertEqual(r.body, f.read())

    def test_assets(self):
        for name, ctype in (("app.js", "text/javascript; charset=utf-8"),
                            ("view.js", "text/javascript; charset=utf-8"),
                            ("app.css", "text/css; charset=utf-8")):
            r = request(self.server, "GET", "/web/" + name, headers={"Accept-Encoding": "gzip"})
            self.assertEqual(r.status, 200, name)
            self.assertEqual(r.header("Content-Type"), ctype)
            self.assertEqual(r.header("Content-Encoding"), "gzip")
            self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
            with open(os.path.join(os.environ["MAILSNARE_SRCDIR"], "web", name), "rb") as f:
                self.assertEqual(r.body, f.read())
        self.assertEqual(request(self.server, "GET", "/web/nope.js").status, 404)
        self.assertEqual(request(self.server, "GET", "/web/index.html").status, 404)
        self.assertEqual(request(self.server, "POST", "/web/app.js").status, 405)
        r = request(self.server, "HEAD", "/web/app.js")
        self.assertEqual((r.status, r.body), (200, b""))

    def test_webui_listeners_and_user(self):
        r = request(self.server, "GET", "/api/v1/webui")
        j = r.json()
        want = {p: "%s:%d" % self.server.addr(p) for p in harness.LISTENERS}
        self.assertEqual(j["Listeners"], want)
        self.assertEqual(j["User"], {"Kind": "anonymous", "Inbox": "", "AuthRequired": False})
        self.assertIs(j["MessageRelay"]["Enabled"], False)
        self.server.inbox_add("webui1", "pw1")
        j = request(self.server, "GET", "/api/v1/webui", auth=("webui1", "pw1")).json()
        self.assertEqual(j["User"], {"Kind": "inbox", "Inbox": "webui1", "AuthRequired": False})

    def test_client_address_and_structure(self):
        mid = smtp_deliver(self.server, attachment_message("Structure", "s.bin"))
        j = request(self.server, "GET", "/api/v1/message/%s" % mid).json()
        self.assertEqual(j["ClientAddress"], "127.0.0.1")
        t = request(self.server, "GET", "/api/v1/message/%s/structure" % mid).json()
        self.assertEqual((t["PartID"], t["ContentType"]), ("", "multipart/mixed"))
        self.assertEqual([(p["PartID"], p["ContentType"], p["Encoding"], p["FileName"])
                          for p in t["Parts"]],
                         [("1", "text/plain", None, ""),
                          ("2", "application/octet-stream", "base64", "s.bin")])
        self.assertEqual(t["Parts"][0]["Size"], len(b"See the file.\r\n") - 2)
        self.assertEqual(request(self.server, "GET", "/api/v1/message/999999/structure").status,
                         404)


class WebAuthHTTPTest(harness.TestCase):
    """With http-require-auth the page and its files still load (they hold
    no mail); the API it calls answers 401 until it sends credentials."""
    server_args = ("--http-require-auth", "yes")

    def test_page_open_api_closed(self):
        self.assertEqual(request(self.server, "GET", "/").status, 200)
        self.assertEqual(request(self.server, "GET", "/web/api.js").status, 200)
        r = request(self.server, "GET", "/api/v1/messages")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.header("WWW-Authenticate"), 'Basic realm="mailsnare"')
        # The page's requests: no challenge, so no browser prompt over its own.
        r = request(self.server, "GET", "/api/v1/messages",
                    headers={"X-Requested-With": "mailsnare-web"})
        self.assertEqual((r.status, r.header("WWW-Authenticate")), (401, None))
        j = request(self.server, "GET", "/api/v1/webui", auth=("dev", "dev")).json()
        self.assertEqual(j["User"], {"Kind": "inbox", "Inbox": "dev", "AuthRequired": True})


def browser_or_skip():
    if not os.access(CHROMIUM, os.X_OK):
        raise unittest.SkipTest("web browser test skipped: %s not found "
                                "(apt-get install chromium)" % CHROMIUM)
    prefix = os.path.join(node_helpers.node_prefix(), "web-browser")
    return node_helpers.ensure_package("puppeteer-core", PUPPETEER, prefix=prefix)


class WebBrowserTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.node_path = browser_or_skip()
        Counter.hits = []
        self.counter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
        threading.Thread(target=self.counter.serve_forever, daemon=True).start()
        self.addCleanup(self.counter.server_close)
        self.addCleanup(self.counter.shutdown)
        self.shots = os.path.join(os.getcwd(), "test_web-artifacts")
        os.makedirs(self.shots, exist_ok=True)
        self.downloads = tempfile.mkdtemp(prefix="mailsnare-web-dl-")
        self.addCleanup(shutil.rmtree, self.downloads, True)

    def test_page_in_chromium(self):
        srv = self.server
        curl = "http://127.0.0.1:%d" % self.counter.server_address[1]
        subjects = {
            "live": "Live arrival %d" % os.getpid(),
            "hostile": "Hostile message",
            "read": "Read me over IMAP",
            "attachment": "With an attachment",
            "doomed": "Delete me",
            "searchWord": "Quarterly",
            "keyDoomed": "Delete by key",
        }
        hostile = ("<meta http-equiv=\"refresh\" content=\"0;url=%(c)s/refresh\">"
                   "<p id=\"safe\">Hostile body</p>"
                   "<script>window.__ran = 1; document.body.dataset.ran = '1';"
                   "try { top.document.title = 'PWNED'; top.__ran = 1; } catch (e) {}"
                   "fetch('%(c)s/script'); fetch('/api/v1/messages');</script>"
                   "<img src=\"x\" onerror=\"window.__ran = 1; fetch('%(c)s/onerror')\">"
                   "<img src=\"%(c)s/remote.png\" alt=\"remote\">"
                   "<form action=\"%(c)s/form\" method=\"post\"><input name=\"a\" value=\"b\">"
                   "<button id=\"go\" type=\"submit\">Go</button></form>"
                   "<a href=\"%(c)s/link\" target=\"_top\">top</a>") % {"c": curl}
        tagged_id = smtp_deliver(srv, html_message("Quarterly report", "<p>Q</p>"))
        smtp_deliver(srv, html_message("Quarterly numbers", "<p>N</p>"))
        # Deleted with the Delete key: the page opens the next (older) one,
        # Quarterly numbers, whose flags nothing checks.
        smtp_deliver(srv, html_message(subjects["keyDoomed"], "<p>k</p>"))
        smtp_deliver(srv, attachment_message(subjects["attachment"], "data.bin"))
        smtp_deliver(srv, html_message(subjects["read"], "<p>read</p>"))
        smtp_deliver(srv, html_message(subjects["doomed"], "<p>bye</p>"))
        smtp_deliver(srv, html_message(subjects["hostile"], hostile))
        srv.inbox_add("other", "otherpw")
        for i in range(2):
            smtp_deliver(srv, html_message("Other inbox %d" % i, "<p>o</p>"),
                         auth=("other", "otherpw"))
        # An IMAP session on dev's INBOX from before the page acts.
        imap = imap_login(srv, "dev", "dev")
        self.addCleanup(imap_logout, imap)
        imap.select("INBOX")
        uid_of = {}
        subjects["tagged"] = "Quarterly report"
        for key in ("read", "doomed", "tagged", "keyDoomed"):
            typ, data = imap.uid("SEARCH", "SUBJECT", '"%s"' % subjects[key])
            uid_of[key] = data[0].split()[0]

        cfg = {"url": "http://%s:%d/" % srv.addr("http"), "smtp": list(srv.addr("smtp")),
               "counter": curl, "shots": self.shots, "downloads": self.downloads,
               "subjects": subjects, "attachmentName": "data.bin", "otherInbox": "other",
               "otherCount": 2, "newInbox": "fromthepage", "taggedId": tagged_id}
        res = node_helpers.run_script(os.path.join(HERE, "test_web.js"), self.node_path,
                                      json.dumps(cfg), BROWSER_TIMEOUT)
        self.assertEqual(res.get("errors"), [], res)
        dev_subjects = ["Hostile message", "Delete me", "Read me over IMAP",
                        "With an attachment", "Delete by key", "Quarterly numbers",
                        "Quarterly report"]
        self.assertEqual(res["initialSubjects"], ["Other inbox 1", "Other inbox 0"] +
                         dev_subjects, res)
        # Live: on top within a second of the 250, unread (bold), in the title.
        self.assertEqual(res["liveFirst"], subjects["live"])
        self.assertLess(res["liveMs"], 1000, res)
        self.assertTrue(res["liveUnreadBold"])
        self.assertRegex(res["titleAfterLive"], r"^\(\d+\) mailsnare$")
        self.assertEqual(res["liveHtml"].split("\n")[0], "Live HTML body")
        self.assertEqual(res["liveText"], "Live plain text body")
        self.assertIn(["Subject", subjects["live"]], res["liveHeaders"])
        self.assertIn(["From", "Live Sender <live@example.test>"], res["liveHeaders"])
        self.assertEqual(res["liveRcpts"], ["bob@example.test", "hidden-bcc@example.test"])
        self.assertEqual(res["liveBcc"], ["hidden-bcc@example.test"])
        self.assertEqual(res["liveMime"], ["multipart/alternative", "text/plain", "text/html"])
        # Hostile: rendered, nothing ran, nothing fetched until allowed.
        self.assertIn("Hostile body", res["hostileText"])
        self.assertFalse(res["hostileFrameRan"])
        self.assertFalse(res["pageRan"])
        self.assertFalse(res["pageRanAfter"])
        self.assertEqual(res["sandbox"], "allow-popups allow-popups-to-escape-sandbox")
        self.assertEqual(res["countBeforeAllow"], [])
        self.assertEqual(res["countAfterAllow"], ["/remote.png"])
        self.assertEqual(Counter.hits, ["/remote.png"])
        # Mark-read: the row is no longer bold, IMAP sees \Seen.
        self.assertFalse(res["readRowBold"])
        imap.noop()
        typ, data = imap.uid("FETCH", uid_of["read"], "(FLAGS)")
        self.assertIn(b"\\Seen", b" ".join(d if isinstance(d, bytes) else d[0] for d in data))
        # Mark unread and tags: IMAP sees the flags; the .eml is the raw source.
        self.assertTrue(res["unreadRowBold"])
        self.assertEqual(res["tagsShown"], ["urgent", "billing"])
        self.assertEqual(sorted(res["rowTags"]), ["billing", "urgent"])
        typ, data = imap.uid("FETCH", uid_of["tagged"], "(FLAGS)")
        flags = re.search(rb"FLAGS \(([^)]*)\)", data[0]).group(1).split()
        self.assertEqual(sorted(f for f in flags if f != b"\\Recent"), [b"billing", b"urgent"])
        raw = request(srv, "GET", "/api/v1/message/%s/raw" % tagged_id).body
        self.assertEqual(res["emlSha256"], hashlib.sha256(raw).hexdigest())
        # Attachment: listed, downloaded with the same bytes.
        self.assertEqual(res["attachmentNames"], ["data.bin"])
        self.assertEqual(res["downloadedSha256"], hashlib.sha256(ATTACHMENT).hexdigest())
        # Delete: gone from the list, and IMAP sees the EXPUNGE.
        self.assertNotIn(subjects["doomed"], res["afterDelete"])
        typ, data = imap.noop()
        untagged = imap.untagged_responses
        self.assertIn("EXPUNGE", untagged, untagged)
        typ, data = imap.uid("SEARCH", "ALL")
        self.assertNotIn(uid_of["doomed"], data[0].split())
        self.assertNotIn(uid_of["keyDoomed"], data[0].split())
        self.assertEqual(res["afterKeyDelete"], [t for t in res["afterDelete"]
                                                 if t != subjects["keyDoomed"]])
        # Keyboard and search.
        self.assertEqual(res["keyboardOpened"], res["keyboardExpected"])
        self.assertEqual(res["slashFocus"], "search")
        self.assertEqual(res["searchSubjects"], ["Quarterly numbers", "Quarterly report"])
        # Themes, phone, settings.
        self.assertEqual(res["darkBg"], "rgb(15, 20, 25)")
        self.assertTrue(res["phoneListHidden"])
        self.assertEqual(res["settingsSmtpPort"], str(srv.addr("smtp")[1]))
        self.assertEqual(res["settingsImapPort"], str(srv.addr("imap")[1]))
        self.assertEqual(res["snippets"], ["SMTP URL", "Rails (ActionMailer)", "Django (settings.py)",
                                           "Laravel (.env)", "Node (nodemailer)",
                                           "Spring (application.properties)"])
        self.assertEqual(res["smtpUrl"], "smtp://dev:PASSWORD@127.0.0.1:%d" % srv.addr("smtp")[1])
        self.assertRegex(res["created"], r"^Created “fromthepage”, password \S+$")
        self.assertIn("fromthepage", [r.get("name", r.get("0")) for r in srv.inbox_rows()])
        # Inbox switching and delete all in that inbox only.
        self.assertEqual(res["otherSubjects"], ["Other inbox 1", "Other inbox 0"])
        self.assertEqual(res["otherAfterDeleteAll"], [])
        self.assertEqual(srv.inbox_message_count("other"), 0)
        self.assertNotIn("Other inbox 0", res["allAfter"])
        self.assertIn(subjects["live"], res["allAfter"])
        for name in ("desktop-light-message", "desktop-dark-message", "phone-dark-message",
                     "phone-light-list", "desktop-light-settings"):
            with open(os.path.join(self.shots, name + ".png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


class WebBrowserLoginTest(harness.TestCase):
    server_args = ("--http-require-auth", "yes", "--inbox", "alpha:alphapw")

    def test_login_then_scoped(self):
        node_path = browser_or_skip()
        srv = self.server
        smtp_deliver(srv, html_message("For dev only", "<p>d</p>"))
        for i in range(3):
            smtp_deliver(srv, html_message("Alpha %d" % i, "<p>a</p>"), auth=("alpha", "alphapw"))
        cfg = {"mode": "login", "url": "http://%s:%d/" % srv.addr("http"), "user": "alpha",
               "password": "alphapw", "count": 3}
        res = node_helpers.run_script(os.path.join(HERE, "test_web.js"), node_path,
                                      json.dumps(cfg), BROWSER_TIMEOUT)
        self.assertEqual(res.get("errors"), [], res)
        self.assertTrue(res["loginShown"])
        self.assertEqual(res["subjects"], ["Alpha 2", "Alpha 1", "Alpha 0"])
        self.assertEqual(res["inboxOptions"], ["alpha"])
        self.assertEqual(res["opened"], "Alpha 2")


if __name__ == "__main__":
    unittest.main()
