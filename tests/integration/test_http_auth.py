#!/usr/bin/python3
"""Who sees what over HTTP: anonymous requests see every inbox; an inbox's
HTTP Basic credentials scope every endpoint to it (a foreign message id
is a 404 and never its data); wrong credentials get 401 with
WWW-Authenticate after the failure delay; http-require-auth, http-admin,
auth-accept-any and CORS."""

import time

import harness
import http_helpers as hh
import imap_helpers as ih

UNAUTHORIZED = 'Basic realm="mailsnare"'


class ScopeTest(harness.TestCase):
    server_args = ("--http-cors", "http://app.example:3000")

    def test_scoped_credentials_see_only_their_inbox(self):
        a = ih.new_inbox(self.server, "ha")
        b = ih.new_inbox(self.server, "hb")
        ma = hh.smtp_deliver(self.server, ih.simple_message("for a"), auth=a)
        mb = hh.smtp_deliver(self.server, ih.simple_message("for b secret"), auth=b)
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=a)
        self.assertEqual([m["ID"] for m in d["messages"]], [ma])
        self.assertEqual(d["total"], 1)
        for path in ("/api/v1/message/%s", "/api/v1/message/%s/raw",
                     "/api/v1/message/%s/headers", "/api/v1/message/%s/part/1",
                     "/view/%s.html", "/view/%s.txt"):
            r = hh.request(self.server, "GET", path % mb, auth=a)
            self.assertEqual((r.status, r.body), (404, b"404 page not found"), path)
        # a's PUT and DELETE of b's message touch nothing
        r = hh.request(self.server, "PUT", "/api/v1/messages", {"IDs": [mb], "Read": True},
                       auth=a)
        self.assertEqual(r.status, 200)
        r = hh.request(self.server, "DELETE", "/api/v1/messages", {"IDs": [mb]}, auth=a)
        self.assertEqual(r.status, 200)
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=b)
        self.assertEqual([(m["ID"], m["Read"]) for m in d["messages"]], [(mb, False)])
        # a's delete-all empties a only
        r = hh.request(self.server, "DELETE", "/api/v1/messages", auth=a)
        self.assertEqual(r.body, b"ok")
        self.assertEqual(self.server.message_ids(a[0]), [])
        self.assertEqual(self.server.message_ids(b[0]), [mb])
        # latest is the newest of the scope
        m = hh.get_json(self, self.server, "/api/v1/message/latest", auth=b)
        self.assertEqual(m["ID"], mb)

    def test_anonymous_sees_every_inbox(self):
        a = ih.new_inbox(self.server, "hc")
        b = ih.new_inbox(self.server, "hd")
        ma = hh.smtp_deliver(self.server, ih.simple_message("anon a"), auth=a)
        mb = hh.smtp_deliver(self.server, ih.simple_message("anon b"), auth=b)
        d = hh.get_json(self, self.server, "/api/v1/messages?limit=1000")
        ids = [m["ID"] for m in d["messages"]]
        self.assertIn(ma, ids)
        self.assertIn(mb, ids)
        inboxes = {m["ID"]: m["Inbox"] for m in d["messages"]}
        self.assertEqual((inboxes[ma], inboxes[mb]), (a[0], b[0]))
        m = hh.get_json(self, self.server, "/api/v1/message/" + mb)
        self.assertEqual(m["Inbox"], b[0])

    def test_wrong_credentials_401_after_delay(self):
        a = ih.new_inbox(self.server, "he")
        for auth in ((a[0], "wrong"), ("no-such-inbox", "x")):
            t0 = time.monotonic()
            r = hh.request(self.server, "GET", "/api/v1/messages", auth=auth)
            elapsed = time.monotonic() - t0
            self.assertEqual(r.status, 401, auth)
            self.assertEqual(r.header("WWW-Authenticate"), UNAUTHORIZED)
            self.assertNotIn(b"messages", r.body)
            self.assertGreaterEqual(elapsed, 0.9, "the failure was answered at once")
        r = hh.request(self.server, "GET", "/api/v1/messages",
                       headers={"Authorization": "Basic !!!notbase64"})
        self.assertEqual(r.status, 401)

    def test_cors(self):
        origin = "http://app.example:3000"
        r = hh.request(self.server, "OPTIONS", "/api/v1/messages",
                       headers={"Origin": origin, "Access-Control-Request-Method": "DELETE",
                                "Access-Control-Request-Headers": "authorization"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), origin)
        self.assertEqual(r.header("Access-Control-Allow-Methods"), "GET, PUT, DELETE, OPTIONS")
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "authorization")
        r = hh.request(self.server, "GET", "/api/v1/info", headers={"Origin": origin})
        self.assertEqual((r.status, r.header("Access-Control-Allow-Origin")), (200, origin))
        evil = "http://evil.example"
        r = hh.request(self.server, "OPTIONS", "/api/v1/messages", headers={"Origin": evil})
        self.assertEqual(r.status, 403)
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))
        r = hh.request(self.server, "GET", "/api/v1/info", headers={"Origin": evil})
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))


class RequireAuthTest(harness.TestCase):
    server_args = ("--http-require-auth", "yes", "--http-admin", "admin:s3cret")

    def test_anonymous_401(self):
        r = hh.request(self.server, "GET", "/api/v1/messages")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.header("WWW-Authenticate"), UNAUTHORIZED)
        # health checks stay open
        self.assertEqual(hh.request(self.server, "GET", "/livez").status, 200)
        self.assertEqual(hh.request(self.server, "GET", "/readyz").status, 200)

    def test_admin_sees_everything_inbox_sees_its_own(self):
        a = ih.new_inbox(self.server, "hf")
        ma = hh.smtp_deliver(self.server, ih.simple_message("admin view"), auth=a)
        md = hh.smtp_deliver(self.server, ih.simple_message("dev mail"))
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=("admin", "s3cret"))
        ids = [m["ID"] for m in d["messages"]]
        self.assertIn(ma, ids)
        self.assertIn(md, ids)
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=a)
        self.assertEqual([m["ID"] for m in d["messages"]], [ma])
        r = hh.request(self.server, "GET", "/api/v1/messages", auth=("admin", "wrong"))
        self.assertEqual(r.status, 401)


class AcceptAnyTest(harness.TestCase):
    server_args = ("--auth-accept-any",)

    def test_username_names_the_inbox(self):
        user = ih.unique_name("hx")
        # the first request with a new name makes the inbox, with that password
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=(user, "p1"))
        self.assertEqual(d["messages"], [])
        mid = hh.smtp_deliver(self.server, ih.simple_message("accept any"), auth=(user, "p1"))
        d = hh.get_json(self, self.server, "/api/v1/messages", auth=(user, "p1"))
        self.assertEqual([m["ID"] for m in d["messages"]], [mid])
        # an inbox that exists keeps its password (auth.c)
        r = hh.request(self.server, "GET", "/api/v1/messages", auth=(user, "other"))
        self.assertEqual(r.status, 401)


if __name__ == "__main__":
    harness.main()
