"""GET /api/v1/swagger.json against the running server and the source: the
document parses and is the file the build embeds; every path of the route
table in src/http.c is documented with exactly its methods, and nothing
else is; every documented path and method answers (IDs, part IDs, tags and
inbox names filled in from real messages) with a status the document
lists; and JSON replies have exactly the properties of their documented
schemas, so the document cannot drift from the code. A second check runs
`swagger-cli validate` (npm @apidevtools/swagger-cli) on the served
document."""

import email.message
import gzip
import json
import os
import re
import socket
import subprocess
import tempfile
import unittest
import urllib.parse

import harness
import node_helpers
from harness import SOCK_TIMEOUT
from http_helpers import connection, request, smtp_deliver

ADMIN = ("boss", "boss-pw")
INBOX = ("ci", "ci-pw")
METHODS = ("get", "put", "post", "delete")     # the order of the Allow header
SWAGGER_CLI = "4.0.4"


def src_path(*parts):
    src = os.environ.get("MAILSNARE_SRCDIR")
    if not src:
        raise RuntimeError("MAILSNARE_SRCDIR is not set (the source tree)")
    return os.path.join(src, *parts)


def route_table():
    """{(pattern, method)} of http_routes[] in src/http.c; "{}" marks a
    segment argument, as the table writes it."""
    with open(src_path("src", "http.c"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"http_routes\[\] = \{(.*?)\n\};", text, re.S)
    if m is None:
        raise AssertionError("no http_routes[] table in src/http.c")
    routes = set()
    for methods, pattern in re.findall(r"\{ (M_[A-Z_| ]+?), \"([^\"]+)\"", m.group(1)):
        for name in methods.split("|"):
            routes.add((pattern, name.strip()[2:].lower()))
    if len(routes) < 20:
        raise AssertionError("only %d routes parsed from src/http.c" % len(routes))
    return routes


def pattern_of(path):
    """"/api/v1/message/{ID}/part/{PartID}" -> "/api/v1/message/{}/part/{}"."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def mime_message():
    """A message with text, HTML, an inline image (Content-ID) and an
    attachment, Cc and Reply-To: every field of Message has a value."""
    m = email.message.EmailMessage()
    m["From"] = "Swagger Sender <sender@example.test>"
    m["To"] = "Rcpt Person <rcpt@example.test>"
    m["Cc"] = "cc@example.test"
    m["Reply-To"] = "reply@example.test"
    m["Subject"] = "swagger fixture"
    m["Message-ID"] = "<swagger-1@example.test>"
    m["Date"] = "Mon, 05 Oct 2026 10:00:00 +0000"
    m.set_content("Plain text of the swagger fixture.\n")
    m.add_alternative('<p>HTML <img src="cid:logo@example.test"></p>\n', subtype="html")
    m.get_payload()[1].add_related(b"\x89PNG\r\n\x1a\nfake", maintype="image", subtype="png",
                                   cid="<logo@example.test>")
    m.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="data.csv")
    return m.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class SwaggerTest(harness.TestCase):
    server_args = ("--http-admin", "%s:%s" % ADMIN, "--inbox", "%s:%s" % INBOX,
                   "--chaos", "yes")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = request(cls.server, "GET", "/api/v1/swagger.json")
        if r.status != 200:
            raise AssertionError("GET /api/v1/swagger.json: %r" % r)
        cls.raw = r.body
        cls.doc = json.loads(r.body.decode("utf-8"))
        cls.msg_id = cls.deliver(mime_message())
        # The message of the inbox, for the scoped replies.
        cls.inbox_msg_id = cls.deliver(mime_message(), auth=INBOX)

    @classmethod
    def deliver(cls, msg, auth=None):
        return smtp_deliver(cls.server, msg, mail_from="envelope@example.test",
                            rcpts=("rcpt@example.test", "hidden@example.test"), auth=auth)

    # -- the document itself

    def test_document_is_the_source_file(self):
        with open(src_path("src", "http_swagger.json"), "rb") as f:
            self.assertEqual(self.raw, f.read())
        self.assertEqual(self.doc["swagger"], "2.0")
        r = request(self.server, "GET", "/api/v1/swagger.json", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((r.status, r.header("Content-Type"), r.header("Content-Encoding")),
                         (200, "application/json", "gzip"))
        self.assertEqual(r.body, self.raw)        # request() gunzipped it

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            kind, name = node["$ref"].split("/")[1:]
            self.assertIn(name, self.doc.get(kind, {}), node["$ref"])
            node = self.doc[kind][name]
        return node

    def test_refs_resolve_and_operation_ids_unique(self):
        refs = re.findall(r'"\$ref": "([^"]+)"', self.raw.decode())
        self.assertGreater(len(refs), 50)
        for ref in set(refs):
            self.resolve({"$ref": ref})
        ids = [op["operationId"] for item in self.doc["paths"].values() for op in item.values()]
        self.assertEqual(len(ids), len(set(ids)), ids)
        # Mailpit's names where the operation is Mailpit's.
        ops = {(p, m): op["operationId"] for p, item in self.doc["paths"].items()
               for m, op in item.items()}
        self.assertEqual(ops[("/api/v1/messages", "get")], "GetMessagesParams")
        self.assertEqual(ops[("/api/v1/message/{ID}", "get")], "GetMessageParams")
        self.assertEqual(ops[("/api/v1/send", "post")], "SendMessageParams")
        self.assertEqual(ops[("/api/v1/tags/{Tag}", "put")], "RenameTagParams")
        self.assertEqual(ops[("/view/{ID}.html", "get")], "GetMessageHTMLParams")
        self.assertEqual(self.doc["securityDefinitions"], {"basic": {
            "type": "basic", "description": self.doc["securityDefinitions"]["basic"]["description"]}})
        desc = self.doc["info"]["description"]
        self.assertEqual(ops[("/api/v1/message/{ID}/release", "post")], "ReleaseMessageParams")
        for absent in ("/html-check", "/link-check", "/sa-check", "/api/v1/inboxes/{Name}/"):
            self.assertIn(absent, desc)
        self.assertNotIn("/api/v1/chaos", desc)
        self.assertEqual(ops[("/api/v1/chaos", "put")], "SetChaosParams")
        for absent in ("html-check", "link-check", "sa-check"):
            self.assertFalse([p for p in self.doc["paths"] if absent in p], absent)

    def test_route_table_is_documented_exactly(self):
        documented = {(pattern_of(p), m) for p, item in self.doc["paths"].items() for m in item}
        routes = route_table()
        self.assertEqual(sorted(routes - documented), [], "routes not in the document")
        self.assertEqual(sorted(documented - routes), [], "documented but not routed")

    # -- every documented operation answers

    def fill(self, path, values):
        return re.sub(r"\{([^}]+)\}", lambda m: urllib.parse.quote(values[m.group(1)], safe=""),
                      path)

    def call(self, path, method, op, values):
        """One documented operation with what it needs; the reply."""
        url = self.fill(path, values)
        body, headers, query = None, {}, {}
        for p in op.get("parameters", []):
            p = self.resolve(p)
            if p["in"] == "query" and p.get("required"):
                query[p["name"]] = "subject:swagger"
        bodies = {
            ("/api/v1/messages", "put"): {"IDs": [values["ID"]], "Read": True},
            ("/api/v1/messages", "delete"): {"IDs": [values["spare"]]},
            ("/api/v1/tags", "put"): {"IDs": [values["ID"]], "Tags": ["keep", values["Tag"]]},
            ("/api/v1/tags/{Tag}", "put"): {"Name": values["Tag"] + "-renamed"},
            ("/api/v1/send", "post"): {"From": {"Email": "api@example.test"},
                                       "To": [{"Email": "to@example.test"}],
                                       "Subject": "swagger send", "Text": "sent"},
            ("/api/v1/inboxes", "post"): {"Name": values["Name"], "Password": "doomed-pw"},
            ("/api/v1/message/{ID}/release", "post"): {"To": ["to@example.test"]},
            ("/api/v1/chaos", "put"): {"Sender": {"ErrorCode": 451, "Probability": 0}},
        }
        body = bodies.get((path, method))
        if (path, method) == ("/api/v1/search", "delete"):
            query["query"] = "subject:doomed-by-search"
        if path == "/view/latest":
            query["query"] = 'subject:"swagger fixture"'
        if path == "/api/v1/wait":
            query.update({"timeout": "0", "query": "subject:swagger"})
        if query:
            url += "?" + urllib.parse.urlencode(query)
        if path == "/api/events":
            return self.websocket(url)
        if path == "/api/v1/events":
            return self.sse(url)
        return request(self.server, method.upper(), url, body=body, headers=headers)

    def sse(self, url):
        c = connection(self.server)
        try:
            c.request("GET", url)
            r = c.getresponse()
            self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
            self.assertEqual(r.read(20), b": mailsnare events\n\n")
            return r
        finally:
            c.close()

    def websocket(self, url):
        host, port = self.server.addr("http")
        with socket.create_connection((host, port), timeout=SOCK_TIMEOUT) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n" % (url, host, port)).encode())
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk

        class R:
            status = int(head.split(b" ", 2)[1])
        self.assertIn(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", head)
        return R()

    def test_every_documented_operation_answers(self):
        spare = self.deliver(mime_message())
        self.deliver(b"Subject: doomed-by-search\r\n\r\nx\r\n")
        part = self.get("/api/v1/message/%s" % self.msg_id)["Attachments"][0]["PartID"]
        values = {"ID": self.msg_id, "PartID": part, "Tag": "swagger-tag", "Name": "doomed",
                  "spare": spare, "File": "app.js"}
        order = sorted(((p, m) for p, item in self.doc["paths"].items() for m in item),
                       key=lambda pm: (pm[1] == "delete", pm[0] == "/api/v1/inboxes/{Name}",
                                       pm))
        called = 0
        for path, method in order:
            op = self.doc["paths"][path][method]
            with self.subTest(path=path, method=method):
                r = self.call(path, method, op, values)
                documented = set(op["responses"])
                self.assertIn(str(r.status), documented, "%s %s: %r" % (method, path, r))
                # (this server has no relay-host: a release is its documented 400;
                # test_relay.py releases for real)
                if path == "/api/v1/message/{ID}/release":
                    self.assertEqual(r.status, 400, r)
                elif path != "/api/v1/message/{ID}/part/{PartID}/thumb":
                    self.assertNotIn(r.status, (404, 405), "%s %s: %r" % (method, path, r))
                    self.assertLess(r.status, 300, "%s %s: %r" % (method, path, r))
                if hasattr(r, "header") and r.status == 200:
                    self.check_reply(op, r, "%s %s" % (method.upper(), path))
                called += 1
        self.assertEqual(called, sum(len(i) for i in self.doc["paths"].values()))

    def test_undocumented_methods_get_405_with_the_documented_allow(self):
        for path, item in self.doc["paths"].items():
            url = self.fill(path, {"ID": self.msg_id, "PartID": "2", "Tag": "t", "Name": "nobody",
                                   "File": "app.js"})
            other = [m for m in METHODS if m not in item]
            if not other:
                continue
            with self.subTest(path=path):
                r = request(self.server, other[0].upper(), url)
                self.assertEqual(r.status, 405, "%s %s: %r" % (other[0], url, r))
                allow = ", ".join([m.upper() for m in METHODS if m in item] + ["OPTIONS"])
                self.assertEqual(r.header("Allow"), allow, url)

    # -- replies have exactly the documented shapes

    def check_reply(self, op, r, where):
        schema = op["responses"]["200"]
        schema = self.resolve(schema).get("schema")
        if schema is None or self.resolve(schema).get("type") in (None, "string", "file"):
            return
        self.assertEqual(r.header("Content-Type"), "application/json", where)
        self.check(schema, r.json(), where)

    def check(self, schema, value, where):
        nullable = schema.get("x-nullable")
        schema = self.resolve(schema)
        if value is None:
            self.assertTrue(nullable, "%s: null where not nullable" % where)
            return
        kind = schema.get("type")
        if kind == "object":
            self.assertIsInstance(value, dict, where)
            if "properties" in schema:
                props = schema["properties"]
                self.assertEqual(sorted(set(value) - set(props)), [],
                                 "%s: keys not documented" % where)
                self.assertEqual(sorted(set(schema.get("required", [])) - set(value)), [],
                                 "%s: documented required keys missing" % where)
                for k, v in value.items():
                    self.check(props[k], v, where + "." + k)
            if isinstance(schema.get("additionalProperties"), dict):
                for k, v in value.items():
                    self.check(schema["additionalProperties"], v, where + "." + k)
        elif kind == "array":
            self.assertIsInstance(value, list, where)
            for n, v in enumerate(value):
                self.check(schema["items"], v, "%s[%d]" % (where, n))
        elif kind == "string":
            self.assertIsInstance(value, str, where)
            if schema.get("format") == "date-time":
                self.assertRegex(value, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", where)
        elif kind == "integer":
            self.assertTrue(isinstance(value, int) and not isinstance(value, bool),
                            "%s: %r is not an integer" % (where, value))
        elif kind == "boolean":
            self.assertIsInstance(value, bool, where)
        else:
            self.assertIsNone(kind, "%s: type %r not checked" % (where, kind))

    def exact_keys(self, definition, value, where, optional=()):
        """The reply's keys are exactly the documented properties (less
        `optional` ones the caller does not see)."""
        props = set(self.doc["definitions"][definition]["properties"]) - set(optional)
        self.assertEqual(sorted(value), sorted(props), where)

    def get(self, path, auth=None):
        r = request(self.server, "GET", path, auth=auth)
        self.assertEqual((r.status, r.header("Content-Type")), (200, "application/json"),
                         "%s: %r" % (path, r))
        return r.json()

    def test_messages_reply_is_the_schema(self):
        op = self.doc["paths"]["/api/v1/messages"]["get"]
        for auth in (None, INBOX, ADMIN):
            j = self.get("/api/v1/messages", auth)
            self.check(self.resolve(op["responses"]["200"])["schema"], j, "messages")
            self.exact_keys("MessagesSummary", j, "messages envelope")
            self.assertTrue(j["messages"])
            for s in j["messages"]:
                self.exact_keys("MessageSummary", s, "summary")
                self.exact_keys("Address", s["From"], "From")
                self.exact_keys("Address", s["To"][0], "To")
        self.assertEqual(j["messages"][-1]["RcptTo"], ["rcpt@example.test", "hidden@example.test"])

    def test_message_reply_is_the_schema(self):
        for auth, msg_id in ((None, self.msg_id), (INBOX, self.inbox_msg_id)):
            j = self.get("/api/v1/message/%s" % msg_id, auth)
            self.check({"$ref": "#/definitions/Message"}, j, "message")
            self.exact_keys("Message", j, "message")
            self.exact_keys("ListUnsubscribe", j["ListUnsubscribe"], "ListUnsubscribe")
            self.assertEqual(len(j["Attachments"]), 1, j["Attachments"])
            self.assertEqual(len(j["Inline"]), 1, j["Inline"])
            for a in j["Attachments"] + j["Inline"]:
                self.exact_keys("Attachment", a, "attachment")
                self.assertEqual(sorted(a["Checksums"]), ["MD5", "SHA1", "SHA256"])
            self.assertEqual(j["Attachments"][0]["PartID"], "2")
            self.assertEqual(j["Inline"][0]["FileName"], "")
            self.assertEqual(j["MailFrom"], "envelope@example.test")
            self.assertEqual(j["Inbox"], "ci" if auth else "dev")

    def test_info_reply_is_the_schema(self):
        for auth in (None, INBOX):
            j = self.get("/api/v1/info", auth)
            self.check({"$ref": "#/definitions/AppInformation"}, j, "info")
            self.exact_keys("AppInformation", j, "info")
            self.assertEqual(sorted(j["RuntimeStats"]), sorted(
                self.doc["definitions"]["AppInformation"]["properties"]["RuntimeStats"]
                ["properties"]))

    def test_inboxes_reply_is_the_schema(self):
        # The inbox itself and the admin see the password; anonymous not.
        for auth, optional in ((INBOX, ()), (ADMIN, ()), (None, ("Password",))):
            j = self.get("/api/v1/inboxes", auth)
            self.check({"$ref": "#/definitions/InboxesResponse"}, j, "inboxes")
            self.exact_keys("InboxesResponse", j, "inboxes envelope")
            self.assertTrue(j["inboxes"])
            for i in j["inboxes"]:
                self.exact_keys("Inbox", i, "inbox %r" % (auth,), optional)
        inbox = self.doc["definitions"]["Inbox"]
        self.assertEqual(sorted(set(inbox["properties"]) - set(inbox["required"])), ["Password"])

    def test_error_replies_are_documented(self):
        # An unknown message: 404 on every operation that takes an ID.
        for path, item in self.doc["paths"].items():
            if "{ID}" not in path:
                continue
            for method, op in item.items():
                with self.subTest(path=path, method=method):
                    url = self.fill(path, {"ID": "999999", "PartID": "1"})
                    r = request(self.server, method.upper(), url)
                    self.assertEqual((r.status, r.body), (404, b"404 page not found"), url)
                    self.assertIn("404", op["responses"])
        # A search that does not parse, a bad page: 400 as documented.
        for path, url in (("/api/v1/search", "/api/v1/search?query=before:nonsense"),
                          ("/api/v1/messages", "/api/v1/messages?limit=x")):
            r = request(self.server, "GET", url)
            self.assertEqual((r.status, r.header("Content-Type")),
                             (400, "text/plain; charset=utf-8"), "%s: %r" % (url, r))
            self.assertIn("400", self.doc["paths"][path]["get"]["responses"])
        # wait's timeout: 408 with exactly the documented JSON error.
        op = self.doc["paths"]["/api/v1/wait"]["get"]
        r = request(self.server, "GET", "/api/v1/wait?timeout=0&query=subject:no-such-thing")
        self.assertEqual((r.status, r.header("Content-Type")), (408, "application/json"), r)
        self.check(op["responses"]["408"]["schema"], r.json(), "wait 408")
        self.exact_keys("JSONErrorMessage", r.json(), "wait 408")
        # Wrong credentials: 401 with the documented challenge.
        r = request(self.server, "GET", "/api/v1/messages", auth=("ci", "wrong"))
        self.assertEqual((r.status, r.header("WWW-Authenticate")),
                         (401, 'Basic realm="mailsnare"'), r)
        self.assertIn("401", self.doc["paths"]["/api/v1/messages"]["get"]["responses"])

    def test_inbox_prefix_scopes_the_documented_gets(self):
        # The description's note: /api/v1/inboxes/{Name}/... scopes every
        # /api/v1/ endpoint but the inbox ones.
        for path, item in self.doc["paths"].items():
            if (not path.startswith("/api/v1/") or path.startswith("/api/v1/inboxes")
                    or "get" not in item or path in ("/api/v1/events", "/api/v1/wait",
                                                     "/api/v1/search")
                    or path.endswith("/thumb")):
                continue
            with self.subTest(path=path):
                rest = self.fill(path, {"ID": self.inbox_msg_id, "PartID": "2"})
                r = request(self.server, "GET", "/api/v1/inboxes/ci/" + rest[len("/api/v1/"):])
                self.assertEqual(r.status, 200, "%s: %r" % (path, r))
                if "{ID}" in path:       # dev's message is not in ci
                    r = request(self.server, "GET", "/api/v1/inboxes/ci/" +
                                self.fill(path, {"ID": self.msg_id, "PartID": "2"})[8:])
                    self.assertEqual(r.status, 404, "%s: %r" % (path, r))
        j = request(self.server, "GET", "/api/v1/inboxes/ci/messages").json()
        self.assertEqual({m["Inbox"] for m in j["messages"]}, {"ci"})

    # -- a second opinion

    def test_swagger_cli_validates(self):
        modules = node_helpers.ensure_package("@apidevtools/swagger-cli", SWAGGER_CLI)
        cli = os.path.join(modules, ".bin", "swagger-cli")
        with tempfile.TemporaryDirectory(prefix="mailsnare-swagger-") as d:
            path = os.path.join(d, "swagger.json")
            with open(path, "wb") as f:
                f.write(self.raw)
            cp = subprocess.run([cli, "validate", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=120, env=harness.clean_env())
        out = cp.stdout.decode("utf-8", "replace")
        self.assertEqual((cp.returncode, out.strip()), (0, "%s is valid" % path), out)


if __name__ == "__main__":
    harness.main()
