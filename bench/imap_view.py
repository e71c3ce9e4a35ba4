#!/usr/bin/env python3
"""IMAP view benchmark (issue 9 §3): SMTP ingest into a large INBOX with 0
and with N IDLE sessions selected on it, and the time of SELECT of that
mailbox. Run through bench/imap_view.sh, which builds the tree.

  imap_view.py MAILSNARE SMTPLOAD [--fill 100000] [--measure 20000]
               [--idlers 20] [--selects 10]

Prints Markdown rows for README. Only 127.0.0.1 is used; every step is
bounded in time."""

import argparse
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def start_server(binary, tmp):
    ready = os.path.join(tmp, "ready")
    log = open(os.path.join(tmp, "log"), "wb")
    args = [binary, "serve", "--db", os.path.join(tmp, "m.db"), "--ready-file", ready,
            "--smtp", "127.0.0.1:0", "--imap", "127.0.0.1:0", "--smtps", "off",
            "--pop3", "off", "--pop3s", "off", "--imaps", "off", "--http", "off",
            "--log-level", "warn", "--max-clients", "2000"]
    proc = subprocess.Popen(args, cwd=tmp, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("mailsnare exited early; see %s/log" % tmp)
        if os.path.exists(ready) and os.path.getsize(ready) > 0:
            text = open(ready).read()
            if "imap" in text and "smtp" in text:
                ports = dict(re.findall(r"^(\w+) 127\.0\.0\.1:(\d+)$", text, re.M))
                return proc, int(ports["smtp"]), int(ports["imap"])
        time.sleep(0.05)
    proc.kill()
    sys.exit("mailsnare did not become ready")


def smtpload(tool, port, messages, connections=8):
    t0 = time.monotonic()
    out = subprocess.run([tool, "--host", "127.0.0.1", "--port", str(port),
                          "--connections", str(connections), "--messages", str(messages),
                          "--size", "1K", "--quiet"], capture_output=True, text=True,
                         timeout=900)
    elapsed = time.monotonic() - t0
    if out.returncode != 0 or "errors=0" not in out.stdout:
        sys.exit("smtpload failed: %s %s" % (out.stdout, out.stderr))
    return messages / elapsed


class Session:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = b""
        self.n = 0
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("server closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def command(self, text):
        self.n += 1
        tag = b"t%d" % self.n
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line)
                return


class Idlers(threading.Thread):
    """N sessions selected on INBOX in IDLE, drained by one thread in bulk
    (the client must cost the server's CPU as little as it can: two cores
    are shared), remembering the last EXISTS each heard."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.sessions = []
        for _ in range(n):
            s = Session(port)
            s.command("LOGIN dev dev")
            s.command("SELECT INBOX")
            s.sock.sendall(b"i IDLE\r\n")
            if not s.line().startswith(b"+"):
                raise RuntimeError("IDLE refused")
            s.sock.setblocking(False)
            self.sessions.append(s)
        self.exists = [0] * n
        self.tails = [b""] * n
        self.stop = False

    def run(self):
        sel = selectors.DefaultSelector()
        for i, s in enumerate(self.sessions):
            sel.register(s.sock, selectors.EVENT_READ, i)
        while not self.stop:
            for key, _ in sel.select(0.2):
                i = key.data
                try:
                    chunk = key.fileobj.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                text = self.tails[i] + chunk
                found = re.findall(rb"\* (\d+) EXISTS\r\n", text)
                if found:
                    self.exists[i] = int(found[-1])
                self.tails[i] = text[-40:]

    def close(self):
        self.stop = True
        self.join(timeout=5)
        for s in self.sessions:
            s.sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mailsnare")
    ap.add_argument("smtpload")
    ap.add_argument("--fill", type=int, default=100000)
    ap.add_argument("--measure", type=int, default=20000)
    ap.add_argument("--idlers", type=int, default=20)
    ap.add_argument("--selects", type=int, default=10)
    a = ap.parse_args()
    a.mailsnare, a.smtpload = os.path.abspath(a.mailsnare), os.path.abspath(a.smtpload)
    tmp = tempfile.mkdtemp(prefix="mailsnare-view-")
    proc, smtp, imap = start_server(a.mailsnare, tmp)
    try:
        print("filling INBOX with %d messages..." % a.fill, file=sys.stderr)
        smtpload(a.smtpload, smtp, a.fill)
        base = smtpload(a.smtpload, smtp, a.measure)
        idlers = Idlers(imap, a.idlers)
        idlers.start()
        with_idle = smtpload(a.smtpload, smtp, a.measure)
        total = a.fill + 2 * a.measure
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and min(idlers.exists) < total:
            time.sleep(0.1)
        behind = [n for n in idlers.exists if n < total]
        idlers.close()
        times = []
        for _ in range(a.selects):
            s = Session(imap)
            s.command("LOGIN dev dev")
            t0 = time.monotonic()
            s.command("SELECT INBOX")
            times.append((time.monotonic() - t0) * 1000)
            s.sock.close()
        print("| workload | result |")
        print("|---|---|")
        print("| SMTP ingest, 1 KiB, INBOX of %d, no IMAP session | %.0f msgs/s |"
              % (a.fill, base))
        print("| the same with %d IDLE sessions selected on INBOX | %.0f msgs/s (%.0f%%) |"
              % (a.idlers, with_idle, 100.0 * with_idle / base))
        print("| every IDLE session heard every EXISTS | %s |"
              % ("yes" if not behind else "NO: %d behind" % len(behind)))
        print("| SELECT INBOX of %d messages | median %.1f ms, best %.1f ms (%d runs) |"
              % (total, statistics.median(times), min(times), len(times)))
        return 1 if behind else 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
