#!/usr/bin/env python3
"""Randomized cross-protocol stress test: IMAP sessions with a model each
(imap_model.py), SMTP deliveries and POP3 deletions, and beside them HTTP
API actors (http_model.py: scoped and anonymous keep-alive clients that
list, search, read, mark, tag, delete, send and wait, a companion IMAP
view that must see their changes) and two event streams, for about 25 s.
Every answer is checked as it arrives; the first contradiction fails the
test with that party's last transcript lines.

STRESS_SECONDS, STRESS_SESSIONS, STRESS_HTTP and STRESS_SEED override the
duration, the IMAP sessions, the HTTP actors and the seed (printed at the
start and with a failure). bench/imap_stress.sh runs the same driver for
as long as asked (HTTP=n)."""

import os
import random
import sys
import unittest

import harness
import http_model
import imap_model


class CrossStressTest(unittest.TestCase):
    def test_http_actors_agree_with_imap_sessions(self):
        seconds = float(os.environ.get("STRESS_SECONDS", "25"))
        sessions = int(os.environ.get("STRESS_SESSIONS", "10"))
        actors = int(os.environ.get("STRESS_HTTP", "5"))
        seed = int(os.environ.get("STRESS_SEED", random.randrange(1 << 31)))
        sys.stderr.write("\ncross stress: seed %d, %d IMAP sessions, %d HTTP actors, %.0f s "
                         "(STRESS_SEED=%d replays)\n" % (seed, sessions, actors, seconds, seed))
        server = harness.Server(*imap_model.server_args(sessions, actors))
        server.start()
        stop_error = None
        try:
            fig = imap_model.Driver(server, seconds, sessions, seed, http_actors=actors,
                                    streams=2).run()
        finally:
            try:
                server.stop()
            except harness.ServerError as e:
                stop_error = str(e)
        imap_model.report(fig, sys.stderr)
        self.assertIsNone(fig["failure"], "seed %d:\n%s" % (seed, fig["failure"]))
        self.assertIsNone(stop_error, "seed %d" % seed)
        self.assertEqual(fig["warnings"], {}, "lax checks failed (STRESS_LAX), seed %d" % seed)
        # A run that stopped choosing a kind of request, or whose checks
        # never had anything to check, proves nothing.
        missing = [k for k in http_model.KINDS if k != "sse" and not fig["http"].get(k)]
        self.assertEqual(missing, [], "HTTP requests the run never made (seed %d)" % seed)
        for what in ("read checked", "tags checked", "search results checked",
                     "found right after send"):
            self.assertGreater(fig["http"].get(what, 0), 0, "%s: never (seed %d)" % (what, seed))
        for name, events in fig["sse"].items():
            for kind in ("new", "update", "delete"):
                self.assertGreater(events.get(kind, 0), 0, "%s: no %s event" % (name, kind))
        self.assertGreater(fig["sse_checked"], 0, "no announced message checked at the end")
        self.assertGreater(fig["smtp"], 0, "no SMTP delivery during the run")
        self.assertGreater(fig["final"].get("checked", 0), 0,
                           "no IMAP model was compared with its mailbox at the end")


if __name__ == "__main__":
    harness.main()
