"""HTTP searches on the search pool (src/search_pool.c): with
search-threads=2 and a low search-split-min, so that every search of
this store of a few thousand messages is split by body id into two
parts, GET /api/v1/search and GET /api/v1/messages?before= give the same
bytes as search-threads=0 (the loop's one pass), for field terms, bare
words, phrases, negations, flags, inboxes, paging and scoped
credentials, also after deletes and new deliveries, and latest?query=
(which the pool resolves before the route runs) and wait?query=
(its first look, also with after=) the same message. While
other clients change read states and tags, every page the pool answers
shows only messages whose state, as shown, still matches (the page's
rows are read after the threads' snapshot and re-checked). A client that goes
away while its search runs is dropped safely, many searches at once are
answered while another client is served, and the server then stops
cleanly (exit 0, checked by harness.Server.stop)."""

import json
import os
import random
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse

import harness
import http_helpers

MESSAGES = 1200
QA_MESSAGES = 30
TIMEOUT = 60
WORDS = ["alpha", "bravo", "quarterly", "numbers", "look", "delta", "echo", "report"]

QUERIES = [
    "subject:report", "to:user7@example.test", "quarterly", '"numbers look"',
    '"look numbers"', "-quarterly", "is:unread", "is:read", "quarterly is:unread",
    "subject:report -numbers", "inbox:qa", "inbox:dev quarterly", "from:sender3",
    "alpha bravo", "nosuchwordanywhere", "-alpha -bravo", "after:2000-01-01 echo",
]
PAGES = ["", "&limit=1", "&limit=7&start=3", "&start=49&limit=2", "&start=590&limit=20",
         "&start=100000", "&limit=5000"]


def message(n):
    words = [WORDS[(n * k + n // 7) % len(WORDS)] for k in range(1, 9)]
    if n % 5 == 0:
        words += ["numbers", "look"]
    return ("From: sender%d@example.test\r\nTo: user%d@example.test\r\n"
            "Subject: %s %d\r\n\r\ncommon %s\r\n"
            % (n % 11, n % 13, "report" if n % 3 == 0 else "note", n,
               " ".join(words))).encode()


def fill(server, first, count):
    """count messages into dev, pipelined on one connection."""
    with harness.RawSMTP(server.addr("smtp"), timeout=TIMEOUT) as s:
        s.greeting()
        assert s.cmd("EHLO client.example.test").code == 250
        for n in range(first, first + count):
            s.send(b"MAIL FROM:<s@example.test>\r\nRCPT TO:<dev@example.test>\r\nDATA\r\n")
            assert [r.code for r in s.replies(3)] == [250, 250, 354]
            s.send(message(n) + b".\r\n")
            assert s.reply().code == 250
        s.cmd("QUIT")


def wait_indexed(test, server, count):
    """The index caught up: the bare word every message has finds all."""
    def done():
        r = http_helpers.request(server, "GET", "/api/v1/search?query=common&limit=1")
        return r.status == 200 and r.json()["messages_count"] >= count
    harness.wait_until(done, timeout=TIMEOUT, what="index caught up")


class SearchPoolTest(harness.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mailsnare-pool-")
        self.db = os.path.join(self.tmp, "m.db")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_server(self, threads):
        return harness.Server("--log-level", "warn", "--db", self.db, "--inbox", "qa:qa-pw",
                              "--search-threads", str(threads), "--search-split-min", "100"
                              ).start()

    def answers(self, server):
        """Every query and page, as dev (all inboxes) and as qa (its own)."""
        out = {}
        for q in QUERIES:
            for page in PAGES:
                path = "/api/v1/search?query=" + urllib.parse.quote(q) + page
                for auth in (None, ("qa", "qa-pw")):
                    r = http_helpers.request(server, "GET", path, auth=auth)
                    out[(path, auth)] = (r.status, r.body)
        for q in QUERIES:
            for auth in (None, ("qa", "qa-pw")):
                for route in ("/api/v1/message/latest/headers", "/view/latest.txt",
                              "/api/v1/wait", "/api/v1/wait?after=600&",
                              "/api/v1/wait?after=%d&" % (MESSAGES + QA_MESSAGES + 500)):
                    path = (route + ("?" if "?" not in route else "") + "query=" +
                            urllib.parse.quote(q) + ("&timeout=0" if "wait" in route else ""))
                    r = http_helpers.request(server, "GET", path, auth=auth)
                    out[(path, auth)] = (r.status, r.body)
        for before in ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"):
            for page in PAGES:
                path = "/api/v1/messages?before=" + before + page
                r = http_helpers.request(server, "GET", path)
                out[(path, None)] = (r.status, r.body)
        return out

    def compare(self, threads_first):
        """The answers of a server with threads_first threads, then of
        one with the other setting, on the same store."""
        got = []
        for threads in (threads_first, 2 - threads_first):
            srv = self.start_server(threads)
            try:
                got.append(self.answers(srv))
            finally:
                srv.stop()
        self.assertEqual(len(got[0]), len(got[1]))
        for key in got[0]:
            self.assertEqual(got[0][key], got[1][key], "%r differs" % (key,))
        return got[0]

    def test_same_answers_as_the_loop(self):
        srv = self.start_server(0)
        try:
            fill(srv, 0, MESSAGES)
            for n in range(QA_MESSAGES):
                http_helpers.smtp_deliver(srv, message(10000 + n), auth=("qa", "qa-pw"))
            wait_indexed(self, srv, MESSAGES + QA_MESSAGES)
            ids = [m["ID"] for m in http_helpers.get_json(
                self, srv, "/api/v1/messages?limit=5000")["messages"]]
            r = http_helpers.request(srv, "PUT", "/api/v1/messages",
                                     body={"IDs": ids[::3], "Read": True})
            self.assertEqual(r.status, 200, r)
        finally:
            srv.stop()
        first = self.compare(0)
        # The split really happened on a store this size, and found things.
        hits = [v for (p, a), v in first.items() if b'"messages_count":0' not in v[1]]
        self.assertGreater(len(hits), len(first) // 2)
        latest = [v for (p, a), v in first.items() if "latest" in p]
        self.assertGreater(len([v for v in latest if v[0] == 200]), len(latest) // 2)
        self.assertIn(404, [v[0] for v in latest])      # nosuchwordanywhere
        waits = [v for (p, a), v in first.items() if "wait" in p]
        self.assertGreater(len([v for v in waits if v[0] == 200]), len(waits) // 3)
        self.assertIn(408, [v[0] for v in waits])
        # Deletes and new mail between the searches, on the pool's server.
        srv = self.start_server(2)
        try:
            ids = [m["ID"] for m in http_helpers.get_json(
                self, srv, "/api/v1/search?query=subject:report&limit=40")["messages"]]
            r = http_helpers.request(srv, "DELETE", "/api/v1/messages", body={"IDs": ids})
            self.assertEqual(r.status, 200, r)
            before = json.loads(first[("/api/v1/search?query=subject%3Areport", None)][1])
            after = http_helpers.get_json(self, srv, "/api/v1/search?query=subject:report")
            self.assertEqual(after["messages_count"], before["messages_count"] - len(ids))
            fill(srv, MESSAGES, 100)
            wait_indexed(self, srv, MESSAGES + QA_MESSAGES + 100 - len(ids))
            again = http_helpers.get_json(self, srv, "/api/v1/search?query=subject:report")
            self.assertEqual(again["messages_count"], after["messages_count"] + 34)
        finally:
            srv.stop()
        self.compare(2)

    def test_disconnect_and_concurrency(self):
        srv = self.start_server(2)
        try:
            fill(srv, 0, MESSAGES)
            wait_indexed(self, srv, MESSAGES)
            path = "/api/v1/search?query=" + urllib.parse.quote('"numbers look"')
            want = http_helpers.request(srv, "GET", path).body
            # Clients that go away while their search runs.
            host, port = srv.addr("http")
            for _ in range(40):
                with socket.create_connection((host, port), timeout=TIMEOUT) as c:
                    c.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
            # Many at once while another client is served.
            errors, stop = [], threading.Event()

            def searcher():
                try:
                    for _ in range(10):
                        r = http_helpers.request(srv, "GET", path)
                        if r.status != 200 or r.body != want:
                            errors.append((r.status, r.body[:200]))
                except Exception as e:       # reported below
                    errors.append(e)

            pings = []

            def pinger():
                while not stop.is_set():
                    t = time.monotonic()
                    r = http_helpers.request(srv, "GET", "/api/v1/info")
                    pings.append((r.status, time.monotonic() - t))

            threads = [threading.Thread(target=searcher) for _ in range(8)]
            p = threading.Thread(target=pinger)
            p.start()
            for t in threads:
                t.start()
            for t in threads:
                t.join(TIMEOUT)
            stop.set()
            p.join(TIMEOUT)
            self.assertEqual(errors, [])
            self.assertTrue(pings and all(s == 200 for s, _ in pings), pings[:5])
            self.assertEqual(http_helpers.request(srv, "GET", path).body, want)
            self.state_changes_during_searches(srv)
        finally:
            srv.stop()

    def state_changes_during_searches(self, srv):
        """Searches by read state and tags while two clients keep changing
        both: each page's messages must show a state that matches."""
        ids = [m["ID"] for m in http_helpers.get_json(
            self, srv, "/api/v1/messages?limit=5000")["messages"]]
        checks = {
            "is:unread": lambda m: not m["Read"],
            "is:read quarterly": lambda m: m["Read"],
            "tag:hot": lambda m: "hot" in m["Tags"],
            "-tag:hot is:unread": lambda m: "hot" not in m["Tags"] and not m["Read"],
            "is:tagged": lambda m: m["Tags"] != [],
            "-is:tagged": lambda m: m["Tags"] == [],
        }
        stop, errors, seen = threading.Event(), [], [0]

        def changer(seed):
            rng = random.Random(seed)
            try:
                while not stop.is_set():
                    some = rng.sample(ids, 40)
                    if rng.random() < 0.5:
                        body, path = {"IDs": some, "Read": rng.random() < 0.5}, "/api/v1/messages"
                    else:
                        body = {"IDs": some, "Tags": ["hot"] if rng.random() < 0.5 else []}
                        path = "/api/v1/tags"
                    r = http_helpers.request(srv, "PUT", path, body=body)
                    if r.status != 200:
                        errors.append(("PUT", path, r.status))
            except Exception as e:           # reported below
                errors.append(e)

        def searcher(seed):
            rng = random.Random(seed)
            try:
                while not stop.is_set():
                    q = rng.choice(sorted(checks))
                    env = http_helpers.get_json(self, srv, "/api/v1/search?query=%s&limit=200"
                                                % urllib.parse.quote(q))
                    seen[0] += len(env["messages"])
                    errors.extend((q, m["ID"], m["Read"], m["Tags"]) for m in env["messages"]
                                  if not checks[q](m))
            except Exception as e:           # reported below
                errors.append(e)

        threads = [threading.Thread(target=changer, args=(n,)) for n in range(2)]
        threads += [threading.Thread(target=searcher, args=(10 + n,)) for n in range(3)]
        for t in threads:
            t.start()
        time.sleep(4)
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
        self.assertEqual(errors[:10], [])
        self.assertGreater(seen[0], 1000)


if __name__ == "__main__":
    harness.main()
