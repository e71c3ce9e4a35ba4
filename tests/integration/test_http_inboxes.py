"""Inboxes over HTTP: GET/POST /api/v1/inboxes, DELETE
/api/v1/inboxes/{Name}, and /api/v1/inboxes/{Name}/... scoping any
endpoint, for the admin, an anonymous client and an inbox's own
credentials; the inboxes made here work for SMTP and IMAP logins."""

import imaplib
import urllib.parse

import harness
from harness import SOCK_TIMEOUT
from http_helpers import request
from imap_helpers import simple_message, smtp_send

ADMIN = ("boss", "boss-pw")


def cli_passwords(server):
    """Inbox name -> password, as `mailsnare inbox list` shows them."""
    return {row["name"]: row["password"] for row in server.inbox_rows()}


class InboxesTest(harness.TestCase):
    server_args = ("--http-admin", "%s:%s" % ADMIN)

    def post(self, body, auth=None):
        return request(self.server, "POST", "/api/v1/inboxes", body=body, auth=auth)

    def names(self, auth=None):
        r = request(self.server, "GET", "/api/v1/inboxes", auth=auth)
        self.assertEqual(r.status, 200, r)
        return {i["Name"]: i for i in r.json()["inboxes"]}

    def test_create_list_use_delete(self):
        r = self.post({"Name": "fixture-a", "Password": "pw-a"}, auth=ADMIN)
        self.assertEqual(r.status, 200, r)
        created = r.json()
        self.assertEqual((created["Name"], created["Password"], created["Messages"]),
                         ("fixture-a", "pw-a", 0))
        self.assertRegex(created["Created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        # The admin sees passwords; an anonymous client does not.
        self.assertEqual(self.names(auth=ADMIN)["fixture-a"]["Password"], "pw-a")
        anon = self.names()
        self.assertIn("fixture-a", anon)
        self.assertNotIn("Password", anon["fixture-a"])
        # The inbox itself sees itself only, with its password.
        own = self.names(auth=("fixture-a", "pw-a"))
        self.assertEqual(list(own), ["fixture-a"])
        self.assertEqual(own["fixture-a"]["Password"], "pw-a")

        # It is a real inbox: SMTP AUTH delivers into it, IMAP logs in.
        msg_id = smtp_send(self.server, "fixture-a", "pw-a", simple_message("made over HTTP"))
        self.assertEqual(self.server.message_ids("fixture-a"), [msg_id])
        host, port = self.server.addr("imap")
        m = imaplib.IMAP4(host, port, timeout=SOCK_TIMEOUT)
        m.login("fixture-a", "pw-a")
        self.assertEqual(m.select("INBOX"), ("OK", [b"1"]))
        m.logout()
        self.assertEqual(self.names(auth=ADMIN)["fixture-a"]["Messages"], 1)

        r = request(self.server, "DELETE", "/api/v1/inboxes/fixture-a", auth=ADMIN)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertNotIn("fixture-a", self.names(auth=ADMIN))
        self.assertNotIn("fixture-a", cli_passwords(self.server))
        self.assertNotIn(msg_id, self.server.message_ids())
        r = request(self.server, "DELETE", "/api/v1/inboxes/fixture-a", auth=ADMIN)
        self.assertEqual(r.status, 404)

    def test_generated_password_and_errors(self):
        r = self.post({"Name": "fixture-gen"})
        self.assertEqual(r.status, 200, r)
        pw = r.json()["Password"]
        self.assertRegex(pw, r"^[a-z0-9]{16}$")
        self.assertEqual(cli_passwords(self.server)["fixture-gen"], pw)

        r = self.post({"Name": "fixture-gen", "Password": "other"})
        self.assertEqual((r.status, r.body), (409, b"inbox exists"))
        for bad in ({"Name": " lead"}, {"Name": "a/b"}, {"Name": ""}, {"Name": "x\u0001"},
                    {"Name": 7}, {}, {"Name": "ok-name", "Password": "tab\there"},
                    {"Name": "ok-name", "Password": ""}, {"Name": "n" * 300}):
            r = self.post(bad)
            self.assertEqual(r.status, 400, (bad, r))
            self.assertTrue(r.body.startswith(b"Name: ") or r.body.startswith(b"Password: "),
                            (bad, r))
        self.assertNotIn("ok-name", self.names())
        r = request(self.server, "POST", "/api/v1/inboxes", body=b"{not json")
        self.assertEqual(r.status, 400)
        self.assertTrue(r.body.startswith(b"invalid JSON"), r)

    def test_inbox_credentials_cannot_manage(self):
        self.server.inbox_add("fixture-own", "pw-own")
        own = ("fixture-own", "pw-own")
        r = self.post({"Name": "fixture-new"}, auth=own)
        self.assertEqual(r.status, 403, r)
        r = request(self.server, "DELETE", "/api/v1/inboxes/dev", auth=own)
        self.assertEqual(r.status, 403, r)
        self.assertIn("dev", self.names(auth=ADMIN))
        self.assertNotIn("fixture-new", self.names(auth=ADMIN))

    def test_prefix_scopes_any_endpoint(self):
        self.server.inbox_add("fixture-p1", "pw-p1")
        self.server.inbox_add("fixture-p2", "pw-p2")
        one = smtp_send(self.server, "fixture-p1", "pw-p1", simple_message("for p1"))
        two = smtp_send(self.server, "fixture-p2", "pw-p2", simple_message("for p2"))

        def ids(path, auth):
            r = request(self.server, "GET", path, auth=auth)
            self.assertEqual(r.status, 200, (path, r))
            return [m["ID"] for m in r.json()["messages"]]

        self.assertEqual(ids("/api/v1/inboxes/fixture-p1/messages", ADMIN), [one])
        self.assertEqual(ids("/api/v1/inboxes/fixture-p2/messages", None), [two])
        self.assertEqual(ids("/api/v1/inboxes/fixture-p1/messages", ("fixture-p1", "pw-p1")),
                         [one])
        # Scoped message routes: the other inbox's id is not found.
        r = request(self.server, "GET", "/api/v1/inboxes/fixture-p1/message/%s" % two,
                    auth=ADMIN)
        self.assertEqual(r.status, 404)
        r = request(self.server, "GET", "/api/v1/inboxes/fixture-p1/message/%s" % one,
                    auth=ADMIN)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["Subject"], "for p1")
        # A scoped delete-all empties that inbox only.
        r = request(self.server, "DELETE", "/api/v1/inboxes/fixture-p1/messages", auth=ADMIN)
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(self.server.message_ids("fixture-p1"), [])
        self.assertEqual(self.server.message_ids("fixture-p2"), [two])

        # Another inbox's name with an inbox's credentials: 404, no data.
        for path in ("/api/v1/inboxes/fixture-p2/messages",
                     "/api/v1/inboxes/fixture-p2/message/%s" % two,
                     "/api/v1/inboxes/no-such-inbox/messages",
                     "/api/v1/inboxes/fixture-p1/inboxes/fixture-p2/messages"):
            r = request(self.server, "GET", path, auth=("fixture-p1", "pw-p1"))
            self.assertEqual(r.status, 404, (path, r))
            self.assertNotIn(b"for p2", r.body)
        # Names are URL-decoded.
        self.server.inbox_add("fixture p3", "pw-p3")
        self.assertEqual(ids("/api/v1/inboxes/%s/messages" % urllib.parse.quote("fixture p3"),
                             ADMIN), [])


class RequireAuthInboxesTest(harness.TestCase):
    server_args = ("--http-admin", "%s:%s" % ADMIN, "--http-require-auth", "yes")

    def test_anonymous_gets_401_admin_manages(self):
        for method, path, body in (("GET", "/api/v1/inboxes", None),
                                   ("POST", "/api/v1/inboxes", {"Name": "fixture-x"}),
                                   ("DELETE", "/api/v1/inboxes/dev", None),
                                   ("GET", "/api/v1/inboxes/dev/messages", None)):
            r = request(self.server, method, path, body=body)
            self.assertEqual(r.status, 401, (method, path, r))
            self.assertEqual(r.header("WWW-Authenticate"), 'Basic realm="mailsnare"')
        r = request(self.server, "POST", "/api/v1/inboxes", body={"Name": "fixture-x"},
                    auth=ADMIN)
        self.assertEqual(r.status, 200, r)
        self.assertIn("fixture-x", cli_passwords(self.server))


if __name__ == "__main__":
    harness.main()
