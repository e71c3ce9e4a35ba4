#!/usr/bin/env python3
"""Randomized multi-session IMAP stress test (issue 9 §1): 16 sessions on
the mailboxes of two inboxes for about 30 s, with SMTP deliveries and POP3
deletions beside them; each session checks every reply against its model
of its mailbox (imap_model.py has the rules), and the first contradiction
fails the test with that session's last 50 transcript lines.

STRESS_SECONDS, STRESS_SESSIONS and STRESS_SEED override the duration, the
number of sessions and the seed (printed at the start; the same seed gives
each session the same choices, the interleaving of the threads differs).
bench/imap_stress.sh runs the same driver for as long as asked."""

import os
import random
import sys
import unittest

import harness
import imap_model

# Every kind of command the driver has, so that a run that silently
# stopped choosing one of them is noticed.
VERBS = ("SELECT", "EXAMINE", "FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH",
         "UID SEARCH", "COPY", "MOVE", "EXPUNGE", "UID EXPUNGE", "APPEND", "IDLE", "CLOSE",
         "UNSELECT", "CREATE", "DELETE", "RENAME", "LOGOUT", "drop", "NOOP", "STATUS")


class StressTest(unittest.TestCase):
    def test_sessions_agree_with_their_models(self):
        seconds = float(os.environ.get("STRESS_SECONDS", "30"))
        sessions = int(os.environ.get("STRESS_SESSIONS", "16"))
        seed = int(os.environ.get("STRESS_SEED", random.randrange(1 << 31)))
        sys.stderr.write("\nimap stress: seed %d, %d sessions, %.0f s (STRESS_SEED=%d replays)\n"
                         % (seed, sessions, seconds, seed))
        server = harness.Server(*imap_model.server_args(sessions))
        server.start()
        stop_error = None
        try:
            fig = imap_model.Driver(server, seconds, sessions, seed).run()
        finally:
            try:
                server.stop()
            except harness.ServerError as e:
                stop_error = str(e)
        imap_model.report(fig, sys.stderr)
        self.assertIsNone(fig["failure"], "seed %d:\n%s" % (seed, fig["failure"]))
        self.assertIsNone(stop_error)
        self.assertEqual(fig["warnings"], {}, "lax checks failed (STRESS_LAX)")
        missing = [v for v in VERBS if not fig["verbs"].get(v)]
        self.assertEqual(missing, [], "commands the run never sent")
        self.assertGreater(fig["smtp"], 0, "no SMTP delivery during the run")
        self.assertGreater(fig["final"].get("checked", 0), 0,
                           "no session's model was compared with its mailbox at the end")


if __name__ == "__main__":
    harness.main()
