#!/usr/bin/env python3
"""How long one client waits while many large messages finish at once
(issue 11): N SMTP clients send a message of SIZE bytes each, hold back
the final "." until all bodies are in, then end them together; another
client sends NOOP every 20 ms throughout and the longest round trip is
printed. Before the group commit worked in slices, 20 x 20 MB held the
NOOP for 13.8 s on the project's 2-core machine; after, 0.5 s.

  bench/smtp_stall.py MAILSNARE [N] [SIZE_MB]      (defaults 20, 20)

Only 127.0.0.1 is used; the server runs on free ports with a temp db."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
os.environ["MAILSNARE_BIN"] = os.path.abspath(sys.argv[1])
import harness  # noqa: E402

n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
size = (int(sys.argv[3]) if len(sys.argv) > 3 else 20) * 1024 * 1024
body = (b"x" * 998 + b"\r\n") * (size // 1000)

with harness.Server("--log-level", "warn") as srv:
    clients = []
    for _ in range(n):
        s = socket.create_connection(srv.addr("smtp"), timeout=300)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO bench\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        while not f.readline().startswith(b"354"):
            pass
        clients.append((s, f))
    senders = [threading.Thread(target=s.sendall, args=(body,)) for s, _ in clients]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    probe = socket.create_connection(srv.addr("smtp"), timeout=300)
    pf = probe.makefile("rb")
    pf.readline()
    stop, gaps = [False], []

    def noop():
        while not stop[0]:
            t0 = time.monotonic()
            probe.sendall(b"NOOP\r\n")
            pf.readline()
            gaps.append(time.monotonic() - t0)
            time.sleep(0.02)

    th = threading.Thread(target=noop)
    th.start()
    time.sleep(0.2)
    for s, _ in clients:
        s.sendall(b".\r\n")
    for _, f in clients:
        line = f.readline()
        if not line.startswith(b"250"):
            sys.exit("delivery failed: %r" % line)
    time.sleep(0.3)
    stop[0] = True
    th.join()
    print("%d x %d MB finishing together: longest NOOP round trip %.0f ms"
          % (n, size // (1024 * 1024), max(gaps) * 1000))
