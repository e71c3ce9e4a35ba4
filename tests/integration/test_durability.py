"""Durability: nothing acknowledged is ever lost.

- kill -9 in the middle of a load of concurrent clients: after a restart
  every message that got a 250 is stored with exactly the bytes sent, the
  database passes PRAGMA integrity_check, the server serves at once;
- SIGTERM in the middle of the same load: exit 0 within 10 s, every
  acknowledged message stored intact, every stored message acknowledged;
- a full disk (a small tmpfs, or a lowered RLIMIT_FSIZE) during DATA gets
  452 4.3.1, never a 250 for a message that is not stored, never a crash or
  a dropped connection, and the server recovers once space returns;
- durability = full serves and stores; a bad durability value is refused.

The load is ~20 Python threads on raw sockets (PIPELINING) for ~2 s; each
records, per acknowledged message, the id of the 250 reply and the sha256
of the data it sent."""

import concurrent.futures
import hashlib
import os
import random
import resource
import signal
import sqlite3
import subprocess
import threading
import time

import harness
from harness import RawSMTP, queued_id, strip_received, CRLF
from test_server import ServerCase, EXIT_TIMEOUT

LOAD_THREADS = 20
LOAD_SECONDS = 2.0
# Each thread starts at most one transaction per LOAD_PERIOD seconds, so
# that checking every acknowledged message through the CLI stays within
# the time budget (also under ASan): at most ~1,000 transactions a second.
# For the last BURST_SECONDS before the signal the pacing is off, so that
# every connection has a transaction in flight when the signal comes.
LOAD_PERIOD = 0.02
BURST_SECONDS = 0.4
IO_TIMEOUT = 10.0


# ---------------------------------------------------------------------------
# Messages


def dot_stuff(data):
    """SMTP transparency (RFC 5321 4.5.2) for data that ends with CRLF."""
    out = data.replace(b"\r\n.", b"\r\n..")
    if out.startswith(b"."):
        out = b"." + out
    return out


def random_message(rng, tag, size):
    """A message of about `size` bytes with CRLF line ends, a unique tag in
    the subject and the body, and some lines starting with a dot."""
    head = (b"From: load@example.test\r\nTo: sink@example.test\r\n"
            b"Subject: " + tag.encode() + b"\r\nMessage-ID: <" + tag.encode() +
            b"@example.test>\r\n\r\n" + tag.encode() + b"\r\n")
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_=+"
    lines = [head]
    total = len(head)
    while total < size:
        n = rng.randint(1, 76)
        line = bytes(rng.choice(alphabet) for _ in range(n))
        if rng.random() < 0.05:
            line = b"." + line
        lines.append(line + CRLF)
        total += n + 2
    return b"".join(lines)


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# Load


class Load:
    """LOAD_THREADS clients, each sending transactions (MAIL, RCPT, DATA in
    one write) on one connection after the other until stop() or until the
    server goes away. Records every 250 after DATA."""

    def __init__(self, addr, threads=LOAD_THREADS):
        self.addr = addr
        self.nthreads = threads
        self.stopping = threading.Event()
        self.burst = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}            # id -> (sha256, length, tag)
        self.duplicate_ids = []    # (id, tag, earlier tag)
        self.unexpected = []       # (tag, what) protocol violations
        self.rejected = 0          # transactions answered 4xx
        self.dropped = 0           # transactions cut by a connection close
        self.threads = []

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self._worker, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self, timeout=20.0):
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t for t in self.threads if t.is_alive()]
        if alive:
            raise AssertionError("%d load threads still running %.0f s after stop"
                                 % (len(alive), timeout))

    def run_then_burst(self, seconds=LOAD_SECONDS):
        """Paced load for `seconds` minus BURST_SECONDS, then full speed."""
        time.sleep(max(0.0, seconds - BURST_SECONDS))
        self.burst.set()
        time.sleep(BURST_SECONDS)

    def wait_for(self, n, timeout):
        """Waits until at least n messages are acknowledged."""
        deadline = time.monotonic() + timeout
        while len(self.acked) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.acked)

    def _note(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def _worker(self, index):
        rng = random.Random(1000 + index)
        seq = 0
        while not self.stopping.is_set():
            try:
                c = RawSMTP(self.addr, timeout=IO_TIMEOUT)
            except OSError:
                return                     # the server is gone
            try:
                g = c.greeting()
                if g.code != 220:
                    if g.code // 100 != 4:
                        self._note(unexpected=[("greeting", repr(g))])
                    return
                r = c.cmd("EHLO load%d.example.test" % index)
                if r.code != 250:
                    if r.code // 100 != 4:
                        self._note(unexpected=[("EHLO", repr(r))])
                    return
                next_start = time.monotonic()
                while not self.stopping.is_set():
                    delay = next_start - time.monotonic()
                    if self.burst.is_set():
                        delay = 0
                    if delay > 0 and self.stopping.wait(delay):
                        break
                    next_start = max(next_start + LOAD_PERIOD, time.monotonic())
                    seq += 1
                    tag = "load-%d-%d" % (index, seq)
                    data = random_message(rng, tag, rng.randint(200, 3000))
                    self._transaction(c, tag, data)
            except (EOFError, OSError):
                self._note(dropped=1)
            finally:
                c.close()

    def _transaction(self, c, tag, data):
        c.send(b"MAIL FROM:<load@example.test>\r\nRCPT TO:<sink@example.test>\r\nDATA\r\n")
        mail = c.reply()
        if mail.code != 250:
            self._rejected_or_unexpected(tag, "MAIL", mail)
            c.replies(2)                   # RCPT, DATA: both refused
            return
        rcpt = c.reply()
        data_r = c.reply()
        if rcpt.code != 250 or data_r.code != 354:
            self._rejected_or_unexpected(tag, "RCPT/DATA", rcpt if rcpt.code != 250 else data_r)
            if data_r.code == 354:         # must not happen without a recipient
                c.send(b".\r\n")
                c.reply()
            return
        c.send(dot_stuff(data) + b".\r\n")
        final = c.reply()
        if final.code == 250:
            try:
                msg_id = queued_id(final.text)
            except AssertionError as e:
                self._note(unexpected=[(tag, str(e))])
                return
            with self.lock:
                if msg_id in self.acked:
                    self.duplicate_ids.append((msg_id, tag, self.acked[msg_id][2]))
                self.acked[msg_id] = (sha(data), len(data), tag)
        else:
            self._rejected_or_unexpected(tag, "end of DATA", final)

    def _rejected_or_unexpected(self, tag, stage, reply):
        if reply.code // 100 == 4:
            self._note(rejected=1)
            if reply.code == 421:
                raise EOFError("421")
        else:
            self._note(unexpected=[(tag, "%s: %r" % (stage, reply))])

    def summary(self):
        return ("%d acknowledged, %d rejected (4xx), %d cut by a close, %d unexpected"
                % (len(self.acked), self.rejected, self.dropped, len(self.unexpected)))


# ---------------------------------------------------------------------------
# Checks


def integrity_check(db):
    con = sqlite3.connect(db, timeout=10)
    try:
        return [row[0] for row in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


class DurabilityCase(ServerCase):

    def check_acknowledged(self, d, acked):
        """Every acknowledged message is listed and stored byte for byte.
        Returns the set of stored ids."""
        stored = set(d.message_ids())
        missing = sorted(set(acked) - stored, key=int)
        self.assertEqual(missing, [], "%d acknowledged message(s) missing from the store "
                         "(of %d acknowledged): ids %s"
                         % (len(missing), len(acked), missing[:30]))

        def fetch(msg_id):
            cp = d.cli("message", "get", msg_id)
            if cp.returncode != 0:
                return msg_id, "message get: status %d: %r" % (cp.returncode, cp.stderr[:200])
            raw = cp.stdout
            if not raw.startswith(b"Received:"):
                return msg_id, "no Received: header first: %r" % raw[:80]
            body = strip_received(raw)
            want_sha, want_len, tag = acked[msg_id]
            if sha(body) != want_sha:
                return msg_id, ("bytes differ from those sent for %s (%d stored, %d sent): %r"
                                % (tag, len(body), want_len, body[:120]))
            return msg_id, None

        bad = []
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for msg_id, problem in pool.map(fetch, sorted(acked, key=int)):
                if problem:
                    bad.append("%s: %s" % (msg_id, problem))
        self.assertEqual(bad, [], "%d acknowledged message(s) not stored intact:\n%s"
                         % (len(bad), "\n".join(bad[:20])))
        return stored

    def check_load_clean(self, load):
        self.assertEqual(load.unexpected, [], "unexpected replies during the load "
                         "(%s): %s" % (load.summary(), load.unexpected[:10]))
        self.assertEqual(load.duplicate_ids, [],
                         "one id acknowledged for two messages: %s" % load.duplicate_ids[:10])

    def send_one(self, d, tag):
        data = random_message(random.Random(tag), tag, 1500)
        with RawSMTP(d.addrs["smtp"], timeout=IO_TIMEOUT) as c:
            self.assertEqual(c.greeting().code, 220)
            self.assertEqual(c.cmd("EHLO check.example.test").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<check@example.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<sink@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(dot_stuff(data) + b".\r\n")
            r = c.reply()
            self.assertEqual((r.code, r.enhanced), (250, "2.0.0"), r)
            c.cmd("QUIT")
        msg_id = queued_id(r.text)
        self.assertStoredBytes(d, msg_id, data)
        return msg_id


class TestCrash(DurabilityCase):

    def test_kill9_during_load(self):
        d = self.daemon(log_level="warn").start()
        load = Load(d.addrs["smtp"]).start()
        self.addCleanup(load.stopping.set)
        load.run_then_burst()
        n_before = len(load.acked)
        d.proc.kill()                      # SIGKILL, mid-load
        d.wait(EXIT_TIMEOUT)
        self.assertEqual(d.returncode, -signal.SIGKILL)
        load.stop()
        self.assertGreaterEqual(n_before, 50, "the load got only %d acknowledgements in "
                                "%.0f s: %s" % (n_before, LOAD_SECONDS, load.summary()))
        self.check_load_clean(load)
        acked = dict(load.acked)

        # restart on the same db: it serves at once. The ready file of the
        # killed process is still there (nobody removed it); remove it so
        # that the wait is for the new one.
        if os.path.exists(d.ready_path):
            os.unlink(d.ready_path)
        t0 = time.monotonic()
        d.start()
        new_id = self.send_one(d, "after-kill")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertNotIn(new_id, acked, "the new message reused an acknowledged id")

        self.assertEqual(integrity_check(d.db), ["ok"])
        stored = self.check_acknowledged(d, acked)
        self.assertIn(new_id, stored | set(d.message_ids()))
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM after the restart")
        self.assertEqual(integrity_check(d.db), ["ok"])
        print("\n  kill -9: %s; %d stored without an acknowledgement"
              % (load.summary(), len(stored - set(acked) - {new_id})))


class TestSigterm(DurabilityCase):

    def test_sigterm_during_load(self):
        d = self.daemon(log_level="warn").start()
        load = Load(d.addrs["smtp"]).start()
        self.addCleanup(load.stopping.set)
        load.run_then_burst()
        n_before = len(load.acked)
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait(EXIT_TIMEOUT)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(rc, "still running %.0f s after SIGTERM under load (killed)\n%s"
                             % (EXIT_TIMEOUT, d.output()))
        self.assertEqual(rc, 0, "exit status after SIGTERM under load\n%s" % d.output())
        load.stop()
        self.assertGreaterEqual(n_before, 50, "the load got only %d acknowledgements in "
                                "%.0f s: %s" % (n_before, LOAD_SECONDS, load.summary()))
        self.check_load_clean(load)
        self.assertFalse(os.path.exists(d.ready_path), "ready file left after exit 0")
        acked = dict(load.acked)

        self.assertEqual(integrity_check(d.db), ["ok"])
        stored = self.check_acknowledged(d, acked)
        # The server acknowledges what it committed before it says goodbye:
        # a message stored without a 250 would be sent again by its client.
        unacked = sorted(stored - set(acked), key=int)
        self.assertEqual(unacked, [], "%d message(s) stored but answered 4xx or cut off: %s"
                         % (len(unacked), unacked[:20]))

        d.start()
        self.send_one(d, "after-sigterm")
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM after the restart")
        print("\n  SIGTERM: %s; exit after %.2f s" % (load.summary(), elapsed))


class FullDiskMixin:
    """Fills the store until 452 4.3.1, frees space, sends again."""

    FILL_SIZE = 60 * 1024      # below the 256 KiB spool threshold
    FILL_MAX = 400

    def fill(self, d, c, rng, acked, label):
        """Sends on connection `c` until a 452 4.3.1 at the end of DATA.
        Returns the number of messages acknowledged."""
        n = 0
        for i in range(self.FILL_MAX):
            tag = "%s-%d" % (label, i)
            data = random_message(rng, tag, self.FILL_SIZE)
            self.assertEqual(c.cmd("MAIL FROM:<fill@example.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<sink@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(dot_stuff(data) + b".\r\n")
            r = c.reply()
            self.assertIsNone(d.proc.poll(), "the server died (status %s)\n%s"
                              % (d.proc.returncode, d.output()))
            if r.code == 250:
                msg_id = queued_id(r.text)
                self.assertNotIn(msg_id, acked)
                acked[msg_id] = (sha(data), len(data), tag)
                n += 1
                continue
            self.assertEqual((r.code, r.enhanced), (452, "4.3.1"),
                             "reply to the end of DATA of %s on a full store: %r" % (tag, r))
            return n
        self.fail("no 452 after %d messages of %d bytes" % (self.FILL_MAX, self.FILL_SIZE))

    def still_full(self, d, c, rng):
        """The connection survives the 452 and a second try also gets 452."""
        self.assertEqual(c.cmd("NOOP").code, 250, "connection unusable after 452")
        self.assertEqual(c.cmd("RSET").code, 250)
        data = random_message(rng, "still-full", self.FILL_SIZE)
        self.assertEqual(c.cmd("MAIL FROM:<fill@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<sink@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(data) + b".\r\n")
        r = c.reply()
        self.assertEqual((r.code, r.enhanced), (452, "4.3.1"),
                         "second message on a full store: %r" % r)

    def send_after_recovery(self, d, c, rng, acked, tag):
        data = random_message(rng, tag, 4000)
        self.assertEqual(c.cmd("MAIL FROM:<fill@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<sink@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(data) + b".\r\n")
        r = c.reply()
        self.assertEqual((r.code, r.enhanced), (250, "2.0.0"),
                         "after space returned, %s got %r" % (tag, r))
        msg_id = queued_id(r.text)
        acked[msg_id] = (sha(data), len(data), tag)
        self.assertStoredBytes(d, msg_id, data)
        return msg_id

    def open_session(self, d):
        c = RawSMTP(d.addrs["smtp"], timeout=IO_TIMEOUT)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting().code, 220)
        self.assertEqual(c.cmd("EHLO fill.example.test").code, 250)
        return c


class TestFullDisk(FullDiskMixin, DurabilityCase):

    def mount_tmpfs(self, path, size):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root (running as uid %d); "
                          "the RLIMIT_FSIZE variant covers this without root" % os.geteuid())
        os.makedirs(path)
        cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size,
                             "tmpfs", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        if cp.returncode != 0:
            err = cp.stderr.decode("utf-8", "replace").strip()
            if "permission denied" in err.lower() or "must be superuser" in err.lower() \
                    or "operation not permitted" in err.lower():
                self.skipTest("cannot mount a tmpfs here (EPERM: %s); the RLIMIT_FSIZE "
                              "variant covers a full store without root" % err)
            self.fail("mount -t tmpfs failed (status %d): %s" % (cp.returncode, err))
        self.addCleanup(self.umount, path)

    def remount(self, path, size):
        cp = subprocess.run(["mount", "-o", "remount,size=%s" % size, path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(cp.returncode, 0, "remount: %r" % cp.stderr)

    def umount(self, path):
        for _ in range(50):
            cp = subprocess.run(["umount", path], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
            if cp.returncode == 0:
                return
            time.sleep(0.1)            # the server may still hold files open
        subprocess.run(["umount", "-l", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)

    def test_full_tmpfs(self):
        d = self.daemon(log_level="info")
        fs = os.path.join(d.dir, "fs")
        self.mount_tmpfs(fs, "4m")
        # a ballast file: deleting it is "space returns"
        ballast = os.path.join(fs, "ballast")
        with open(ballast, "wb") as f:
            f.write(b"\0" * (1024 * 1024))
        d.db = os.path.join(fs, "m.db")
        d.start()
        rng = random.Random(4)
        acked = {}
        c = self.open_session(d)

        n = self.fill(d, c, rng, acked, "tmpfs")
        self.assertGreater(n, 5, "452 after only %d messages on a 4 MiB tmpfs" % n)
        self.still_full(d, c, rng)

        os.unlink(ballast)
        self.send_after_recovery(d, c, rng, acked, "after-ballast")
        stored = self.check_acknowledged(d, acked)
        self.assertEqual(sorted(stored, key=int), sorted(acked, key=int),
                         "stored messages that were not acknowledged with 250")

        # fill again; this time space returns by growing the file system
        n2 = self.fill(d, c, rng, acked, "tmpfs-again")
        self.assertGreater(n2, 0, "nothing stored between the ballast's removal and 452")
        self.assertIsNone(d.proc.poll())
        self.remount(fs, "16m")
        self.send_after_recovery(d, c, rng, acked, "after-remount")
        stored = self.check_acknowledged(d, acked)
        self.assertEqual(sorted(stored, key=int), sorted(acked, key=int),
                         "stored messages that were not acknowledged with 250")

        # with room again, deleting mail through the CLI works next to the
        # running server, and the server goes on storing
        d.cli_ok("message", "del", "--inbox", "dev", "--all")
        self.assertEqual(d.message_ids(), [])
        acked = {}
        self.send_after_recovery(d, c, rng, acked, "after-delete")
        self.assertEqual(c.cmd("QUIT").code, 221)

        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")
        self.assertEqual(integrity_check(d.db), ["ok"])
        self.assertEqual(set(d.message_ids()), set(acked))


class TestFileSizeLimit(FullDiskMixin, DurabilityCase):
    """No root needed: the server's RLIMIT_FSIZE (prlimit(2), as `prlimit
    --pid PID --fsize=...` does) is lowered so that growing the db or its
    WAL fails with EFBIG; the server ignores SIGXFSZ."""

    def file_sizes(self, d):
        sizes = {}
        for suffix in ("", "-wal", "-shm"):
            try:
                sizes[suffix] = os.path.getsize(d.db + suffix)
            except OSError:
                pass
        return sizes

    def test_fsize_limit(self):
        d = self.daemon(log_level="info").start()
        pid = d.proc.pid
        orig = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        rng = random.Random(5)
        acked = {}
        c = self.open_session(d)
        # a few messages first, so that the files exist with their shapes
        for i in range(3):
            self.send_after_recovery(d, c, rng, acked, "warm-%d" % i)
        limit = max(self.file_sizes(d).values()) + 1024 * 1024
        # only the soft limit: any user may raise it again up to the hard one
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, orig[1]))

        n = self.fill(d, c, rng, acked, "fsize")
        self.assertGreater(n, 3, "452 after only %d messages with %d bytes of headroom"
                           % (n, 1024 * 1024))
        self.still_full(d, c, rng)
        self.assertIsNone(d.proc.poll(), "server died: %s" % d.output())

        resource.prlimit(pid, resource.RLIMIT_FSIZE, orig)
        self.send_after_recovery(d, c, rng, acked, "after-raise")
        stored = self.check_acknowledged(d, acked)
        self.assertEqual(sorted(stored, key=int), sorted(acked, key=int),
                         "stored messages that were not acknowledged with 250")

        # the store keeps working for new connections as well
        self.send_one(d, "fsize-new-connection")
        self.assertEqual(c.cmd("QUIT").code, 221)
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")
        self.assertEqual(integrity_check(d.db), ["ok"])


class TestDurabilitySetting(DurabilityCase):

    def test_durability_full_serves_and_stores(self):
        d = self.daemon(args=["--durability", "full"]).start()
        ids = [self.send_one(d, "full-%d" % i) for i in range(5)]
        self.assertEqual(sorted(d.message_ids(), key=int), sorted(ids, key=int))
        con = sqlite3.connect(d.db, timeout=10)
        try:
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        finally:
            con.close()
        self.assertEqual(mode.lower(), "wal")
        d.proc.kill()
        d.wait(EXIT_TIMEOUT)
        os.unlink(d.ready_path)            # left behind by the killed process
        d.start()
        self.assertEqual(sorted(d.message_ids(), key=int), sorted(ids, key=int))
        self.assertEqual(integrity_check(d.db), ["ok"])
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")

    def test_durability_full_from_environment(self):
        env = harness.clean_env()
        env["MAILSNARE_DURABILITY"] = "full"
        d = self.daemon(env=env).start()
        self.send_one(d, "env-full")
        d.signal(signal.SIGTERM)
        self.assertExitsZero(d, "SIGTERM")

    def test_bad_durability_value(self):
        for value in ("nonsense", "", "FULLER"):
            with self.subTest(value=value):
                d = self.daemon(args=["--durability", value])
                d.spawn()
                rc = d.wait(EXIT_TIMEOUT)
                self.assertEqual(rc, 2, "exit status for --durability %r\n%s"
                                 % (value, d.output()))
                err = d.stderr()
                self.assertIn("durability", err)
                self.assertEqual(len([l for l in err.splitlines() if l.strip()]), 1,
                                 "want one error line:\n%s" % err)
                self.assertFalse(os.path.exists(d.ready_path))


if __name__ == "__main__":
    harness.main()
