"""A search right after a burst waits for the search index without
holding the loop (src/http_park.c): the server indexes new mail only
after a burst, and a query with terms indexes whatever is still waiting
first. An HTTP search that finds a backlog is parked while the index
slices run back to back; other clients are served between the slices,
and the search, once resumed, sees every message acknowledged."""

import random
import socket
import threading
import time
import urllib.parse

import harness
import http_helpers
from harness import queued_id

BURST = 300
CONNECTIONS = 4
BODY_BYTES = 16 * 1024
# Generous for a loaded CI machine: one index slice is a few ms.
MAX_STALL = 0.5
TIMEOUT = 60

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
         "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]


def body(rng, tag, n):
    """Distinct random words (so the index has real work), about BODY_BYTES;
    the word TAG in every message of a burst, nNz in message N's."""
    out, size = [], 0
    while size < BODY_BYTES:
        w = "%s%d" % (rng.choice(WORDS), rng.randrange(1 << 30))
        out.append(w)
        size += len(w) + 1
    lines = [" ".join(out[i:i + 12]) for i in range(0, len(out), 12)]
    return ("From: burst@sender.test\r\nTo: bob@example.test\r\n"
            "Subject: park %d\r\n\r\n%s n%dz\r\n%s\r\n"
            % (n, tag, n, "\r\n".join(lines))).encode()


def burst(server, tag, first, count, ids, errors, stop=None):
    """count messages on one connection, MAIL/RCPT/DATA pipelined (fewer
    once stop is set)."""
    rng = random.Random(first)
    try:
        with harness.RawSMTP(server.addr("smtp"), timeout=TIMEOUT) as s:
            s.greeting()
            if s.cmd("EHLO client.example.test").code != 250:
                raise AssertionError("EHLO refused")
            for n in range(first, first + count):
                if stop is not None and stop.is_set():
                    break
                s.send(b"MAIL FROM:<burst@sender.test>\r\nRCPT TO:<bob@example.test>\r\n"
                       b"DATA\r\n")
                codes = [r.code for r in s.replies(3)]
                if codes != [250, 250, 354]:
                    raise AssertionError("MAIL/RCPT/DATA: %r" % codes)
                s.send(body(rng, tag, n) + b".\r\n")
                r = s.reply()
                if r.code != 250:
                    raise AssertionError("end of DATA: %r" % r)
                ids.append(queued_id(r.text))
            s.cmd("QUIT")
    except Exception as e:      # reported by the test's thread
        errors.append(e)


def send_burst(server, tag, total):
    ids, errors, threads = [], [], []
    per = total // CONNECTIONS
    for c in range(CONNECTIONS):
        t = threading.Thread(target=burst, args=(server, tag, 1000 * c, per, ids, errors))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(TIMEOUT)
    if errors:
        raise errors[0]
    return sorted(ids, key=int)


class ParkedSearchCase(harness.TestCase):

    def ping(self, http, smtp):
        """One GET /livez and one SMTP NOOP: the longest of the two."""
        t0 = time.monotonic()
        r = http_helpers.request(self.server, "GET", "/livez", conn=http)
        self.assertEqual(r.status, 200, r)
        t1 = time.monotonic()
        self.assertEqual(smtp.cmd("NOOP").code, 250)
        return max(t1 - t0, time.monotonic() - t1)

    def search_while_pinging(self, path, method="GET", body=None):
        """path's reply, and the stalls the other clients saw meanwhile."""
        result, stalls = {}, []
        http = http_helpers.connection(self.server, timeout=TIMEOUT)
        smtp = harness.RawSMTP(self.server.addr("smtp"), timeout=TIMEOUT)
        smtp.greeting()
        self.assertEqual(smtp.cmd("EHLO client.example.test").code, 250)

        def run():
            result["r"] = http_helpers.request(self.server, method, path, body=body)
        t = threading.Thread(target=run)
        t0 = time.monotonic()
        t.start()
        while t.is_alive() and time.monotonic() - t0 < TIMEOUT:
            stalls.append(self.ping(http, smtp))
        t.join(TIMEOUT)
        elapsed = time.monotonic() - t0
        http.close()
        smtp.close()
        return result["r"], stalls, elapsed

    def assertServed(self, stalls, elapsed):
        """The other clients were answered all along while the search
        waited for the index: many replies, none held for long. Indexing
        on the loop instead answers one or two, one held as long as the
        search."""
        self.assertGreaterEqual(len(stalls), 10, "search took %.3f s, stalls %r"
                                % (elapsed, sorted(stalls)[-5:]))
        self.assertLess(max(stalls), MAX_STALL, "stalls %r" % sorted(stalls)[-5:])

    def test_search_after_burst_does_not_hold_the_loop(self):
        ids = send_burst(self.server, "burstword", BURST)
        self.assertEqual(len(ids), BURST)
        r, stalls, elapsed = self.search_while_pinging(
            "/api/v1/search?limit=1000&query=burstword")
        self.assertEqual(r.status, 200, r)
        got = r.json()
        self.assertEqual(got["messages_count"], BURST)
        self.assertEqual(sorted((m["ID"] for m in got["messages"]), key=int), ids)
        self.assertServed(stalls, elapsed)

    def test_latest_query_parked_then_exact(self):
        ids = send_burst(self.server, "latestword", 200)
        self.assertEqual(len(ids), 200)
        q = urllib.parse.quote("latestword n2003z")
        r, stalls, elapsed = self.search_while_pinging("/api/v1/message/latest?query=" + q)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["Subject"], "park 2003")
        self.assertServed(stalls, elapsed)

    def test_mark_read_by_search_parked(self):
        ids = send_burst(self.server, "readword", 200)
        r, stalls, elapsed = self.search_while_pinging(
            "/api/v1/messages", "PUT", {"Search": "readword", "Read": True})
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertServed(stalls, elapsed)
        r = http_helpers.request(self.server, "GET",
                                 "/api/v1/search?limit=1000&query=readword%20is:unread")
        self.assertEqual(r.json()["messages_count"], 0)
        r = http_helpers.request(self.server, "GET",
                                 "/api/v1/search?limit=1000&query=readword%20is:read")
        self.assertEqual(sorted((m["ID"] for m in r.json()["messages"]), key=int), ids)

    def test_mail_faster_than_the_index(self):
        """Mail that keeps coming: the backlog may never empty, and a
        parked search goes on after its 5 s anyway, with every message
        acknowledged before it was sent."""
        ids, errors, stop = [], [], threading.Event()
        threads = [threading.Thread(target=burst, args=(
            self.server, "streamword", 1000 * c, 100000, ids, errors, stop))
            for c in range(CONNECTIONS)]
        for t in threads:
            t.start()
        try:
            harness.wait_until(lambda: len(ids) >= 200 or errors, timeout=TIMEOUT,
                               what="200 messages")
            before = set(ids)
            t0 = time.monotonic()
            r = http_helpers.request(self.server, "GET",
                                     "/api/v1/search?limit=5000&query=streamword")
            elapsed = time.monotonic() - t0
        finally:
            stop.set()
            for t in threads:
                t.join(TIMEOUT)
        self.assertEqual(errors, [])
        self.assertEqual(r.status, 200, r)
        got = {m["ID"] for m in r.json()["messages"]}
        self.assertLessEqual(before, got)
        self.assertLessEqual(got, set(ids))
        self.assertLess(elapsed, 5 + 5, "parked for %.1f s" % elapsed)

    def test_client_gone_while_parked(self):
        ids = send_burst(self.server, "goneword", 100)
        host, port = self.server.addr("http")
        # Parked searches whose clients close: dropped, nothing answered to
        # them, the server goes on.
        for _ in range(5):
            with socket.create_connection((host, port), timeout=TIMEOUT) as s:
                s.sendall(b"GET /api/v1/search?query=goneword HTTP/1.1\r\n"
                          b"Host: x\r\n\r\n")
        r = http_helpers.request(self.server, "GET", "/api/v1/search?limit=1000&query=goneword")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["messages_count"], len(ids))
        self.assertEqual(sorted((m["ID"] for m in r.json()["messages"]), key=int), ids)
        r = http_helpers.request(self.server, "GET", "/livez")
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    harness.main()
