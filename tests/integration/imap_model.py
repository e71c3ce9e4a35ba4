"""A randomized multi-session IMAP stress driver with a client-side model
of each session's selected mailbox (issue 9 §1), shared by
test_imap_stress.py (bounded, inside `make check`) and bench/imap_stress.sh
(as long as asked).

N threads each drive one raw IMAP session (Python stdlib sockets) on a few
mailboxes of one or two inboxes: SELECT/EXAMINE, FETCH of flags, envelope,
bodystructure, bodies and partials, UID FETCH, STORE (system flags and
keywords, +/-/replace, .SILENT), SEARCH, COPY, MOVE, EXPUNGE, UID EXPUNGE,
APPEND, IDLE/DONE, CLOSE, UNSELECT, CREATE/DELETE/RENAME of scratch
mailboxes, LOGOUT and connections dropped mid-command (every fourth session
with QRESYNC enabled: VANISHED, MODSEQ, [CLOSED]); beside them SMTP
deliveries (smtplib) and POP3 RETR/DELE/QUIT (poplib).

Each session checks every response against its model (message number ->
UID, flags) as it arrives, and the first contradiction stops the run with
that session's last 50 transcript lines:

- EXISTS never below the current count (RFC 3501 §7.3.1: only EXPUNGE
  lowers it); EXPUNGE n within 1..count, renumbering the ones after it at
  once (§7.4.1); no EXPUNGE while FETCH, STORE or SEARCH (non-UID) is in
  progress (§7.4.1); FETCH n within 1..count;
- UIDs strictly ascending by message number (§2.3.1.1), a message's UID
  never changes, UID FETCH names UIDs the model can place;
- a FETCH reports every message asked for, or says NO (RFC 2180 §4.1.1,
  §4.1.2; "OK with nothing" is §4.1.3, a bug);
- the FLAGS of the STORE's own FETCH responses are the result of that
  STORE (+: contains them, -: none of them, replace: exactly them): the
  server runs one command at a time, so nothing can come between;
- each session has a keyword namespace of its own (k<session>_...), which
  no other session stores: every FETCH FLAGS that this session sees shows
  exactly the own keywords it expects (a replace STORE by another session
  wipes them: such messages are marked and left out of the check);
- every keyword in a FETCH FLAGS was announced in this session's latest
  untagged FLAGS (RFC 3501 §7.2.6);
- ENVELOPE, BODYSTRUCTURE, RFC822.SIZE, INTERNALDATE and BODY[]/partials of
  a (mailbox UIDVALIDITY, UID) never change across sessions (messages are
  immutable), and BODY[] equals the bytes APPENDed, or the bytes sent over
  SMTP with one Received: header prepended;
- a message that EXPUNGE left although the session was told it has
  \\Deleted must get a FETCH with its new flags by a NOOP 0.2 s later
  (another session took the flag off, and notifications may lag); MOVE
  expunges the UIDs its COPYUID names; COPY/MOVE copy the messages the
  session meant by its numbers, whatever EXPUNGEs the reply starts with.

A reply slower than 15 s is counted and reported (a loaded machine does
that); none at all within 120 s fails the run as a hang.

At the end every session sends NOOP and its model must equal a fresh
EXAMINE + FETCH 1:* (UID FLAGS) of its mailbox; the server must be alive,
answer a new connection, and its log must hold no sanitizer report.

With --http N (test_cross_stress.py), N HTTP API actors and two event
streams run beside them (http_model.py has their checks). The sessions
then learn each UID's X-Stress-Id from body items, register their \\Seen
clearing and keyword replacing STOREs for the actors, and leave aside own
keywords that an actor's PUT /api/v1/tags replaced (asking a message's
X-Stress-Id after the command when they do not know it yet).

Environment for `python3 imap_model.py`: MAILSNARE_BIN; options --seconds,
--sessions, --http, --seed. STRESS_LAX=check1,check2 turns the named checks
(see LAX_CHECKS) into counted warnings
(for finding the next bug while a known one is being fixed).
"""

import argparse
import collections
import http.client
import os
import poplib
import random
import re
import smtplib
import socket
import sys
import threading
import time

import harness
import http_model
from harness import CRLF
from imap_helpers import RawIMAP, parse_fetch_responses, parse_value, status_of

TRANSCRIPT_LINES = 50
# A reply that takes longer than REPLY_SLOW is counted (a loaded machine
# can do that); one that has not come after REPLY_HANG seconds fails the run.
REPLY_SLOW = 15.0
REPLY_HANG = 120.0
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
NO_EXPUNGE_VERBS = ("FETCH", "STORE", "SEARCH")     # RFC 3501 §7.4.1, non-UID
SHARED_MAILBOXES = ("INBOX", "Work", "Archive")
SCRATCH_MAILBOXES = ("scratch-a", "scratch-b", "scratch-c", "scratch-a/sub")
MAX_NEW_KEYWORDS = 12          # per session, beyond its four fixed ones
LAX_CHECKS = ("keywords-announced", "fetch-missing", "expunge-during", "select-leftover",
              "move-expunges", "seq-renumbered", "uid-reused", "sse-unannounced")

EXISTS_RE = re.compile(rb"^\* (\d+) EXISTS$")
RECENT_RE = re.compile(rb"^\* (\d+) RECENT$")
EXPUNGE_RE = re.compile(rb"^\* (\d+) EXPUNGE$")
FETCH_RE = re.compile(rb"^\* (\d+) FETCH \(")
VANISHED_RE = re.compile(rb"^\* VANISHED ")
FLAGS_RE = re.compile(rb"^\* FLAGS \((.*)\)$")
CODE_RE = re.compile(rb"^\* OK \[([A-Z-]+)(?: ([^\]]*))?\]")
TAGGED_CODE_RE = re.compile(rb"^\S+ (?:OK|NO|BAD) \[([A-Z-]+)(?: ([^\]]*))?\]")
STRESS_ID_RE = re.compile(rb"X-Stress-Id: (\S+)\r\n")


class ModelError(AssertionError):
    pass


def server_args(sessions, http_actors=0):
    """The server's options for a run: room for every session, and for
    every keyword the sessions (and HTTP actors) make up in one mailbox
    (max-keywords would answer NO [LIMIT] beyond; test_limits.py checks
    that)."""
    return ("--max-clients", str(sessions * 2 + http_actors * 3 + 50), "--log-level", "info",
            "--max-keywords", str(sessions * (4 + MAX_NEW_KEYWORDS) +
                                  http_actors * http_model.TAGS_PER_ACTOR + 16))


def seqset_values(text):
    """Numbers of a set such as b"3:5,7" (no "*")."""
    out = []
    for part in text.split(b","):
        lo, _, hi = part.partition(b":")
        lo = int(lo)
        hi = int(hi) if hi else lo
        out += range(min(lo, hi), max(lo, hi) + 1)
    return out


def compress_set(nums):
    """A sorted list of numbers as an IMAP set "1:3,7"."""
    nums = sorted(set(nums))
    out = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append("%d" % nums[i] if i == j else "%d:%d" % (nums[i], nums[j]))
        i = j + 1
    return ",".join(out)


def _tcp_hex(addr):
    host, port = addr[:2]
    return "%08X:%04X" % (int.from_bytes(socket.inet_aton(host), "little"), port)


def tcp_diagnosis(sock):
    """The kernel's view of both ends of a connection (/proc/net/tcp):
    bytes in the server's send queue and its timer (1 retransmit, 4
    zero-window probe; with the backoff count), or in this client's receive
    queue. Tells a server that stopped writing from a client that stopped
    reading, or from segments the kernel dropped and waits to resend."""
    try:
        mine, peer = _tcp_hex(sock.getsockname()), _tcp_hex(sock.getpeername())
        with open("/proc/net/tcp") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except (OSError, ValueError):
        return "no /proc/net/tcp"
    out = []
    for side, (a, b) in (("client", (mine, peer)), ("server", (peer, mine))):
        for r in rows:
            if r[1] == a and r[2] == b:
                tx, rx = (int(x, 16) for x in r[4].split(":"))
                tr, when = r[5].split(":")
                out.append("%s: send-q %d recv-q %d timer %d in %.1f s, %d retransmits, "
                           "%s probes, rto %s ticks"
                           % (side, tx, rx, int(tr, 16), int(when, 16) / os.sysconf("SC_CLK_TCK"),
                              int(r[6], 16), r[8], r[12] if len(r) > 12 else "?"))
    return "; ".join(out) or "connection not in /proc/net/tcp"


NETSTAT_COUNTERS = ("TCPRcvQDrop", "RcvPruned", "PruneCalled", "TCPTimeouts", "TCPWinProbe")


def tcp_counters():
    """The kernel's TCP counters that tell of receive queues overflowing
    (drops, pruning) and of the retransmit timeouts that follow."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], (int(v) for v in values.split()[1:])))
            return {k: table.get(k, 0) for k in NETSTAT_COUNTERS}
    return {}


# ---------------------------------------------------------------------------
# Messages: bodies with an id, and what each id's bytes are


class Registry:
    """Everything the sessions share: the bytes of every message sent, the
    first value seen of each immutable item, messages whose keywords were
    replaced, counters."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}          # stress id -> (kind "smtp"/"append", bytes)
        self.immutable = {}     # (user, uidvalidity, uid, item) -> value
        self.replaced = set()   # (user, uidvalidity, uid) whose keywords a replace STORE set
        self.interned = {}      # one copy of each body seen
        self.ids = 0
        self.verbs = collections.Counter()
        self.warnings = collections.Counter()
        self.first_warning = {}
        self.key_sid = {}       # (user, uidvalidity, uid) -> X-Stress-Id, once seen
        self.http = http_model.Shared()

    def new_id(self, prefix):
        with self.lock:
            self.ids += 1
            return "%s%d" % (prefix, self.ids)

    def record_sent(self, sid, kind, data):
        with self.lock:
            self.sent[sid] = (kind, data)

    def same(self, key, value, who):
        """Stores the first value for key (and who saw it); returns the
        first (value, who). Equal bodies (copies) are kept once."""
        with self.lock:
            if len(value) > 256:
                value = self.interned.setdefault(value, value)
            return self.immutable.setdefault(key, (value, who))

    def count(self, verb, took=0.0, what=None):
        with self.lock:
            self.verbs[verb] += 1
            self.last_reply = time.monotonic()
            if took > REPLY_SLOW:
                self.slow += 1
            if took > self.slowest:
                self.slowest = took
                self.slowest_what = what

    last_reply = 0.0
    slow = 0
    slowest = 0.0
    slowest_what = None


_TEXT_LINES = [b"The quick brown fox jumps over the lazy dog.",
               b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
               b"=?utf-8?q?not_encoded_here?= and some more words to fill a line",
               b"Line with trailing spaces   ", b""]


def make_message(rng, sid, kind):
    """A CRLF message of one of a few shapes, carrying X-Stress-Id."""
    lines = [b"From: Stress Sender <sender%d@example.test>" % rng.randint(1, 9),
             b"To: rcpt@example.test, Other <other@example.test>",
             b"Subject: stress %s %s" % (kind.encode(), sid.encode()),
             b"Date: Tue, 04 Mar 2025 10:%02d:30 +0000" % rng.randint(0, 59),
             b"Message-ID: <%s@stress.example.test>" % sid.encode(),
             b"X-Stress-Id: " + sid.encode()]
    body = [rng.choice(_TEXT_LINES) for _ in range(rng.randint(1, 40))]
    # A word of its own, for the HTTP actors' searches (http_model.py).
    body.insert(rng.randint(0, len(body)), b"a word of its own: tok" + sid.encode())
    shape = rng.randrange(4)
    if shape == 0:
        lines += [b"Content-Type: text/plain; charset=us-ascii", b""] + body
    elif shape == 1:
        lines += [b"MIME-Version: 1.0",
                  b'Content-Type: multipart/alternative; boundary="b1"', b"",
                  b"--b1", b"Content-Type: text/plain; charset=utf-8", b""] + body + [
                  b"--b1", b"Content-Type: text/html; charset=utf-8", b"",
                  b"<p>" + b" ".join(body[:3]) + b"</p>", b"--b1--"]
    elif shape == 2:
        lines += [b"MIME-Version: 1.0",
                  b'Content-Type: multipart/mixed; boundary="m2"', b"",
                  b"--m2", b"Content-Type: text/plain", b""] + body + [
                  b"--m2", b'Content-Type: application/octet-stream; name="a.bin"',
                  b"Content-Transfer-Encoding: base64", b"",
                  b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", b"--m2--"]
    else:
        lines += [b"MIME-Version: 1.0",
                  b'Content-Type: multipart/mixed; boundary="m3"', b"",
                  b"--m3", b"Content-Type: text/plain", b"", b"see attached",
                  b"--m3", b"Content-Type: message/rfc822", b"",
                  b"From: inner@example.test", b"Subject: inner " + sid.encode(), b"",
                  ] + body + [b"--m3--"]
    return CRLF.join(lines) + CRLF


# ---------------------------------------------------------------------------
# The model of one selected mailbox


class Msg:
    __slots__ = ("uid", "flags", "floor")

    def __init__(self, uid=None, flags=None, floor=0):
        self.uid = uid          # None until a FETCH told it
        self.flags = flags      # set of flags without \Recent, None if unknown
        self.floor = floor      # its UID must be above this (highest UID seen before its EXISTS)


class Mailbox:
    def __init__(self, name, readonly):
        self.name = name
        self.readonly = readonly
        self.uidvalidity = None
        self.uidnext = None
        self.msgs = []
        self.announced = set()  # keywords of the latest untagged FLAGS
        self.max_uid = 0        # highest UID this session has seen here


class Session:
    """One IMAP client thread with its model; raises ModelError on the
    first response that contradicts it."""

    def __init__(self, drv, idx, user, password, seed):
        self.drv = drv
        self.reg = drv.reg
        self.idx = idx
        self.user = user
        self.password = password
        self.rng = random.Random(seed)
        self.kwprefix = "k%d_" % idx
        self.keywords = ["k%d_%d" % (idx, j) for j in range(4)]
        self.new_keywords = 0
        self.own = {}           # (user, uidvalidity, uid) -> frozenset of own keywords
        self.transcript = collections.deque(maxlen=TRANSCRIPT_LINES)
        self.imap = None
        self.mb = None
        self.tags = 0
        self.current = None     # (verb, uid) of the command in progress
        self.commands = 0
        self.search = None
        self.codes = []
        self.expunged = []      # UIDs (or None) of the EXPUNGEs of the command
        self.fetching = None    # FETCH responses of the command, when collected
        self.partial = None     # (origin, length) of the partial FETCH asked for
        self.move_src = None    # source UIDs of the COPYUID of a MOVE
        self.storing = set()    # keys whose own keywords a STORE in progress changes
        self.last_command = None
        self.suspects = {}      # UID -> (time, UIDVALIDITY): flagged deleted, left by EXPUNGE
        # Every fourth session enables QRESYNC (RFC 7162): VANISHED instead
        # of EXPUNGE, MODSEQ in flag FETCHes, [CLOSED] at SELECT.
        self.qresync = idx >= 0 and idx % 4 == 3
        self.modseq = {}        # (user, uidvalidity, uid) -> highest MODSEQ seen
        self.pending_own = {}   # UID -> (key, own keywords seen, wanted): see resolve_own
        self.replaced_now = None    # a replace STORE to register_replace

    # -- plumbing

    def log(self, direction, data):
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if len(data) > 300:
            data = data[:300] + "...(%d chars)" % len(data)
        self.transcript.append("%s %s" % (direction, data))

    def fail(self, what):
        raise ModelError("session %d (%s, %s): %s" % (
            self.idx, self.user, self.mb.name if self.mb else "no mailbox", what))

    def check(self, name, ok, what):
        """A check that STRESS_LAX may turn into a counted warning."""
        if ok:
            return
        if name in self.drv.lax:
            with self.reg.lock:
                self.reg.warnings[name] += 1
                self.reg.first_warning.setdefault(name, "session %d: %s\n%s" % (
                    self.idx, what, "\n".join(list(self.transcript)[-12:])))
            return
        self.fail("[%s] %s" % (name, what))

    def connect(self):
        self.close()
        self.mb = None
        self.imap = RawIMAP(self.drv.server.addr("imap"))
        greeting = self.imap.line(REPLY_HANG)
        self.log("S:", greeting)
        if not greeting.startswith(b"* OK"):
            self.fail("greeting %r" % greeting)
        self.cmd('LOGIN "%s" "%s"' % (self.user, self.password), want=("OK",))
        if self.qresync:
            untagged, _ = self.cmd("ENABLE QRESYNC", want=("OK",))
            if not any(l.startswith(b"* ENABLED") and b"QRESYNC" in l for l in untagged):
                self.fail("ENABLE QRESYNC without * ENABLED QRESYNC: %r" % untagged)

    def close(self):
        if self.imap is not None:
            self.imap.close()
            self.imap = None

    def send(self, data):
        self.last_command = data[:200]
        self.log("C:", data.rstrip(b"\r\n"))
        self.imap.send(data)

    def cmd(self, text, want=("OK", "NO"), literal=None, defer=False):
        """Runs one command (text may end in a {n+} literal, given as
        `literal`); checks each untagged response; returns (untagged,
        tagged)."""
        self.tags += 1
        tag = "s%d" % self.tags
        verb = text.split(" ", 2)
        uid = verb[0] == "UID"
        verb = verb[1] if uid else verb[0]
        self.current = (verb.upper(), uid)
        self.search = None
        self.codes = []
        self.expunged = []
        self.move_src = None
        data = ("%s %s\r\n" % (tag, text)).encode()
        if literal is not None:
            data += literal + CRLF
        t0 = time.monotonic()
        self.send(data)
        try:
            untagged, tagged = self.read_until(tag, defer=defer)
        finally:
            self.current = None
            self.partial = None
        self.commands += 1
        self.reg.count(("UID " if uid else "") + verb.upper(), time.monotonic() - t0,
                       "%r: %d responses" % (text[:60], len(untagged)))
        st = status_of(tagged)
        if st not in want:
            self.fail("%s: tagged %r, want %s" % (text[:80], tagged, "/".join(want)))
        m = TAGGED_CODE_RE.match(tagged)
        if m:
            self.codes.append((m.group(1), m.group(2)))
        return untagged, tagged

    def read_until(self, tag, timeout=REPLY_HANG, defer=False):
        """Reads up to the tagged reply; untagged responses are checked as
        they come unless `defer` (the caller does it)."""
        untagged = []
        btag = tag.encode() + b" "
        while True:
            line = self.imap.line(timeout)
            self.log("S:", line)
            if line.startswith(btag):
                return untagged, line
            if line.startswith(b"+"):
                self.fail("unexpected continuation %r" % line)
            if not defer:
                self.untagged(line)
            untagged.append(line)

    # -- untagged responses

    def untagged(self, line):
        m = EXISTS_RE.match(line)
        if m:
            return self.on_exists(int(m.group(1)))
        m = EXPUNGE_RE.match(line)
        if m:
            return self.on_expunge(int(m.group(1)))
        m = FETCH_RE.match(line)
        if m:
            return self.on_fetch(line)
        if VANISHED_RE.match(line):
            return self.on_vanished(line)
        m = FLAGS_RE.match(line)
        if m:
            if self.mb is None:
                self.fail("FLAGS with no mailbox selected")
            flags = parse_value(b"(" + m.group(1) + b")")
            self.mb.announced = set(str(f).lower() for f in flags if not str(f).startswith("\\"))
            return
        m = RECENT_RE.match(line)
        if m:
            if self.mb is not None and int(m.group(1)) > len(self.mb.msgs):
                self.fail("RECENT %s above EXISTS %d" % (m.group(1).decode(), len(self.mb.msgs)))
            return
        m = CODE_RE.match(line)
        if m:
            self.codes.append((m.group(1), m.group(2)))
            if m.group(1) == b"COPYUID" and self.current and self.current[0] == "MOVE":
                self.move_src = set(seqset_values(m.group(2).split()[1]))
            if self.mb is not None and m.group(1) == b"UIDVALIDITY":
                self.mb.uidvalidity = int(m.group(2))
            if self.mb is not None and m.group(1) == b"UIDNEXT":
                self.mb.uidnext = int(m.group(2))
            return
        if line.startswith(b"* SEARCH"):
            self.search = [int(x) for x in line[8:].split()]
            return
        if line.startswith(b"* BYE"):
            if self.current is None or self.current[0] != "LOGOUT":
                self.fail("unexpected BYE %r" % line)
            return
        if line.startswith((b"* BAD", b"* NO")):
            self.fail("untagged %r" % line)

    def on_exists(self, n):
        if self.mb is None:
            self.fail("EXISTS with no mailbox selected")
        have = len(self.mb.msgs)
        if n < have:
            self.fail("EXISTS %d below the count %d (only EXPUNGE lowers it)" % (n, have))
        self.mb.msgs += [Msg(floor=self.mb.max_uid) for _ in range(n - have)]

    def on_expunge(self, n):
        if self.mb is None:
            self.fail("EXPUNGE with no mailbox selected")
        if self.current and not self.current[1] and self.current[0] in NO_EXPUNGE_VERBS:
            self.check("expunge-during", False, "EXPUNGE %d during %s (RFC 3501 §7.4.1)"
                       % (n, self.current[0]))
        if self.qresync:
            self.fail("EXPUNGE after ENABLE QRESYNC (RFC 7162 §3.2.10: VANISHED instead)")
        if not 1 <= n <= len(self.mb.msgs):
            self.fail("EXPUNGE %d of %d messages" % (n, len(self.mb.msgs)))
        m = self.mb.msgs.pop(n - 1)
        self.expunged.append(m.uid)

    def on_vanished(self, line):
        """RFC 7162 §3.2.10: with QRESYNC, VANISHED replaces EXPUNGE; the
        UIDs must be messages the session has."""
        if not self.qresync:
            self.fail("VANISHED without QRESYNC enabled: %r" % line)
        if line.startswith(b"* VANISHED (EARLIER)"):
            self.fail("VANISHED (EARLIER) where no command asked for it: %r" % line)
        if self.mb is None:
            self.fail("VANISHED with no mailbox selected")
        if self.current and not self.current[1] and self.current[0] in NO_EXPUNGE_VERBS:
            self.check("expunge-during", False, "%r during %s (RFC 3501 §7.4.1, RFC 7162 "
                       "§3.2.10)" % (line, self.current[0]))
        for uid in seqset_values(line[len(b"* VANISHED "):].strip()):
            msgs = self.mb.msgs
            at = None
            for i, m in enumerate(msgs):
                if m.uid == uid:
                    at = i
                    break
            if at is None:
                # Not known by UID: then one of the messages with an unknown
                # UID between the known neighbours of this UID. They differ
                # only in their floors: take away the one with the highest
                # floor below the UID, so that the most permissive remain.
                lo, hi = -1, len(msgs)
                for i, m in enumerate(msgs):
                    if m.uid is not None and m.uid < uid:
                        lo = i
                    elif m.uid is not None and m.uid > uid:
                        hi = i
                        break
                for i in range(lo + 1, hi):
                    if msgs[i].floor < uid and (at is None or msgs[i].floor >= msgs[at].floor):
                        at = i
            if at is None:
                self.fail("VANISHED UID %d, which the session does not have (UIDs %s)"
                          % (uid, [m.uid for m in msgs][:60]))
            msgs.pop(at)
            self.expunged.append(uid)
            self.mb.max_uid = max(self.mb.max_uid, uid)

    def place_uid(self, n, uid):
        """Message n has UID uid: consistent with what the model knows?"""
        msgs = self.mb.msgs
        m = msgs[n - 1]
        if m.uid is not None:
            if m.uid != uid:
                self.fail("message %d is UID %d, reported as UID %d" % (n, m.uid, uid))
            return
        if uid <= m.floor:
            self.check("uid-reused", False, "message %d, new since UID %d was seen, has UID %d: UIDs are never "
                      "reused under one UIDVALIDITY (RFC 3501 §2.3.1.1)" % (n, m.floor, uid))
        self.mb.max_uid = max(self.mb.max_uid, uid)
        for k in range(n - 2, -1, -1):
            if msgs[k].uid is not None:
                if msgs[k].uid >= uid:
                    self.fail("UID %d at %d not above UID %d at %d" % (uid, n, msgs[k].uid, k + 1))
                break
        for k in range(n, len(msgs)):
            if msgs[k].uid is not None:
                if msgs[k].uid <= uid:
                    self.fail("UID %d at %d not below UID %d at %d" % (uid, n, msgs[k].uid, k + 1))
                break
        m.uid = uid

    def key(self, uid):
        return (self.user, self.mb.uidvalidity, uid)

    def on_fetch(self, line):
        if self.mb is None:
            self.fail("FETCH with no mailbox selected")
        try:
            fi = parse_fetch_responses(line + CRLF)[0]
        except AssertionError as e:
            self.fail("unparsable FETCH: %s" % e)
        n = fi.seq
        if not 1 <= n <= len(self.mb.msgs):
            self.fail("FETCH %d of %d messages" % (n, len(self.mb.msgs)))
        if self.fetching is not None:
            self.fetching.append(fi)
        m = self.mb.msgs[n - 1]
        if "UID" in fi:
            self.place_uid(n, int(fi["UID"]))
        if m.uid is not None:
            self.learn_sid(m.uid, fi)
        if "FLAGS" in fi:
            flags = set(str(f) for f in fi["FLAGS"])
            flags.discard("\\Recent")
            kws = set(f.lower() for f in flags if not f.startswith("\\"))
            unknown = kws - self.mb.announced
            self.check("keywords-announced", not unknown,
                       "keywords %s in `* %d FETCH (... FLAGS %s ...)` were not in this "
                       "session's latest FLAGS (%d keywords: %s) (RFC 3501 §7.2.6)"
                       % (sorted(unknown), n, fi.raw["FLAGS"].decode("utf-8", "replace"),
                          len(self.mb.announced), " ".join(sorted(self.mb.announced))[:3000]))
            m.flags = flags
            if m.uid is not None:
                self.suspects.pop(m.uid, None)
                self.check_own(m.uid, kws)
        if m.uid is None:
            return
        if "MODSEQ" in fi:
            # RFC 7162 §3.1.1: a message's mod-sequence only grows.
            ms = int(fi["MODSEQ"][0])
            key = self.key(m.uid)
            if ms < self.modseq.get(key, 0):
                self.fail("MODSEQ of UID %d went down from %d to %d" % (m.uid, self.modseq[key], ms))
            self.modseq[key] = ms
        for name, value in fi.items.items():
            if name in ("ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE"):
                self.immutable(m.uid, name, fi.raw[name])
            elif name.startswith("BODY[]"):
                self.body(m.uid, name, value)

    def learn_sid(self, uid, fi):
        """Which message (X-Stress-Id) a UID is, from any body item: the
        HTTP actors register their keyword replacements by it."""
        for name, value in fi.items.items():
            if name.startswith("BODY[") and isinstance(value, bytes):
                m = STRESS_ID_RE.search(value)
                if m:
                    with self.reg.lock:
                        self.reg.key_sid[self.key(uid)] = m.group(1).decode()

    def retagged_over_http(self, key):
        """PUT /api/v1/tags replaces every keyword of a message; the HTTP
        actors register the X-Stress-Id before they send it."""
        with self.reg.lock:
            sid = self.reg.key_sid.get(key)
            return sid is not None and any(
                who.startswith("http") for who, _, _ in self.reg.http.retag.get(sid, ()))

    def resolve_own(self):
        """Own-keyword mismatches on messages whose X-Stress-Id was not
        known yet (check_own): ask for it, then excuse or fail."""
        pending, self.pending_own = self.pending_own, {}
        live = set(self.known_uids()) if self.mb else set()
        ask = [u for u, (key, _, _) in pending.items()
               if u in live and key[1] == self.mb.uidvalidity]
        if ask:
            self.cmd("UID FETCH %s (BODY.PEEK[HEADER.FIELDS (X-STRESS-ID)])" % compress_set(ask))
        for uid, (key, own, want) in pending.items():
            if self.retagged_over_http(key):
                self.own[key] = own
            elif key in self.reg.key_sid:
                self.fail("UID %d shows own keywords %s, want %s (only this session stores "
                          "them, and no HTTP actor replaced its tags)"
                          % (uid, sorted(own), sorted(want)))
            else:
                self.own.pop(key, None)     # gone before it could be asked

    def check_own(self, uid, kws):
        own = frozenset(k for k in kws if k.startswith(self.kwprefix))
        key = self.key(uid)
        if key in self.storing:
            return
        want = self.own.get(key)
        if want is None:
            self.own[key] = own
            return
        if own != want:
            with self.reg.lock:
                replaced = key in self.reg.replaced
            if replaced or self.retagged_over_http(key):
                self.own[key] = own
                return
            if self.drv.http_actors and key not in self.reg.key_sid:
                self.pending_own[uid] = (key, own, want)    # resolve_own, after the command
                return
            self.fail("UID %d shows own keywords %s, want %s (only this session "
                      "stores them)" % (uid, sorted(own), sorted(want)))

    def immutable(self, uid, item, value):
        who = "session %d in %r at %.3f" % (self.idx, self.mb.name, time.monotonic() - self.drv.t0)
        first, whom = self.reg.same(self.key(uid) + (item,), value, who)
        if first != value:
            self.fail("%s of UID %d (UIDVALIDITY %d) changed: first %r (seen by %s), now %r"
                      % (item, uid, self.mb.uidvalidity, first[:200], whom, value[:200]))

    def body(self, uid, name, value):
        if value is None:
            self.fail("%s of UID %d is NIL" % (name, uid))
        partial = self.partial
        if name == "BODY[]":
            self.immutable(uid, name, value)
            m = STRESS_ID_RE.search(value)
            if not m:
                self.fail("BODY[] of UID %d has no X-Stress-Id: %r" % (uid, value[:200]))
            with self.reg.lock:
                kind, sent = self.reg.sent.get(m.group(1).decode(), (None, None))
            if kind is None:
                self.fail("BODY[] of UID %d: unknown X-Stress-Id %r" % (uid, m.group(1)))
            if kind == "send":
                return          # POST /api/v1/send: the server built it (http_model.py)
            got = value
            if kind == "smtp":
                if not value.startswith(b"Received: "):
                    self.fail("BODY[] of SMTP message UID %d lacks Received: %r" % (uid, value[:200]))
                got = harness.strip_received(value)
            if got != sent:
                self.fail("BODY[] of UID %d differs from what was sent (%s): %s"
                          % (uid, kind, harness.describe_difference(got, sent)))
        elif partial is not None and name == "BODY[]<%d>" % partial[0]:
            self.immutable(uid, "BODY[]<%d.%d>" % partial, value)
            with self.reg.lock:
                full = self.reg.immutable.get(self.key(uid) + ("BODY[]",), (None,))[0]
            if full is not None and full[partial[0]:partial[0] + partial[1]] != value:
                self.fail("BODY[]<%d.%d> of UID %d is not that slice of BODY[]"
                          % (partial + (uid,)))

    # -- helpers for commands

    def random_set(self):
        """A message set of the selected mailbox, as text, and the numbers."""
        n = len(self.mb.msgs)
        r = self.rng.random()
        if r < 0.15:
            return "1:*", list(range(1, n + 1))
        a = self.rng.randint(1, n)
        if r < 0.6:
            return "%d" % a, [a]
        b = min(n, a + self.rng.randint(0, 5))
        return "%d:%d" % (a, b), list(range(a, b + 1))

    def known_uids(self):
        return [m.uid for m in self.mb.msgs if m.uid is not None]

    def some_flags(self):
        out = set()
        for _ in range(self.rng.randint(1, 3)):
            r = self.rng.random()
            if r < 0.45:
                out.add(self.rng.choice(SYSTEM_FLAGS))
            elif r < 0.9 or self.new_keywords >= MAX_NEW_KEYWORDS:
                out.add(self.rng.choice(self.keywords))
            else:
                self.new_keywords += 1
                kw = "%sn%d" % (self.kwprefix, self.new_keywords)
                self.keywords.append(kw)
                out.add(kw)
        return out

    def mailbox_name(self):
        return self.rng.choice(SHARED_MAILBOXES + SCRATCH_MAILBOXES)

    # -- commands

    def op_select(self):
        name = self.mailbox_name() if self.rng.random() < 0.4 else self.rng.choice(SHARED_MAILBOXES)
        if "uid-reused" in self.drv.lax and name in SCRATCH_MAILBOXES:
            # A view of a deleted scratch mailbox takes over its successor's
            # UIDs (see /tmp/mailsnare-bugs.md): stay off them.
            name = "Archive"
        verb = "EXAMINE" if self.rng.random() < 0.25 else "SELECT"
        untagged, tagged = self.cmd('%s "%s"' % (verb, name), defer=True)
        # The new mailbox's responses start with its FLAGS. Anything before
        # is about the mailbox being left: a client without QRESYNC's
        # [CLOSED] (RFC 7162 §3.2.11) takes it for the new one. Dovecot
        # closes the old mailbox without reporting on it.
        starts = [i for i, l in enumerate(untagged) if FLAGS_RE.match(l)]
        first = starts[-1] if starts else len(untagged)
        closed = [i for i, l in enumerate(untagged) if l.startswith(b"* OK [CLOSED]")]
        if self.qresync and self.mb is not None:
            # With QRESYNC, [CLOSED] divides the two mailboxes' responses.
            if not closed:
                self.fail("%s with a mailbox selected, QRESYNC on, and no [CLOSED] "
                          "(RFC 7162 §3.2.11)" % verb)
        elif closed:
            self.fail("[CLOSED] without QRESYNC or with no mailbox selected: %r" % untagged)
        edge = closed[0] + 1 if closed else 0
        leftover = [l for l in untagged[edge:first]
                    if EXISTS_RE.match(l) or EXPUNGE_RE.match(l) or FETCH_RE.match(l)
                    or FLAGS_RE.match(l) or RECENT_RE.match(l) or VANISHED_RE.match(l)]
        self.check("select-leftover", not leftover,
                   "%s answered with responses about the mailbox it leaves, before its "
                   "FLAGS: %r" % (verb, leftover))
        self.current = (verb, False)
        try:
            if self.mb is not None:
                for line in untagged[:first]:
                    self.untagged(line)
            if status_of(tagged) != "OK":
                self.mb = None      # RFC 3501 §6.3.1: a failed SELECT deselects
                return
            if not starts:
                self.fail("%s OK without FLAGS" % verb)
            self.mb = Mailbox(name, verb == "EXAMINE")
            for line in untagged[first:]:
                self.untagged(line)
        finally:
            self.current = None
        if self.mb.uidvalidity is None:
            self.fail("%s without UIDVALIDITY" % verb)
        if not any(EXISTS_RE.match(l) for l in untagged):
            self.fail("%s without EXISTS" % verb)
        if self.mb.msgs:
            self.op_fetch_all_uids()

    def op_fetch_all_uids(self):
        self.cmd("FETCH 1:* (UID FLAGS)")

    def fetch_items(self):
        items = []
        if self.rng.random() < 0.7:
            items.append("FLAGS")
        if self.rng.random() < 0.5:
            items.append("UID")
        for it in ("ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE"):
            if self.rng.random() < 0.25:
                items.append(it)
        self.partial = None
        r = self.rng.random()
        if r < 0.15:
            items.append("BODY[]")
        elif r < 0.3:
            items.append("BODY.PEEK[]")
        elif r < 0.45:
            self.partial = (self.rng.randint(0, 400), self.rng.randint(1, 300))
            items.append("BODY.PEEK[]<%d.%d>" % self.partial)
        if not items:
            items.append("FLAGS")
        return items

    def op_fetch(self):
        if not self.mb.msgs:
            return self.cmd("FETCH 1:* (FLAGS)")
        text, nums = self.random_set()
        items = self.fetch_items()
        self.fetching = []
        try:
            untagged, tagged = self.cmd("FETCH %s (%s)" % (text, " ".join(items)))
        finally:
            got, self.fetching = self.fetching, None
        if status_of(tagged) == "OK":
            seen = set(fi.seq for fi in got)
            missing = sorted(set(nums) - seen)
            self.check("fetch-missing", not missing,
                       "FETCH %s OK without messages %s (RFC 2180 §4.1.1: data, §4.1.2: NO)"
                       % (text, missing))

    def op_uid_fetch(self):
        uids = self.known_uids()
        if uids and self.rng.random() < 0.7:
            a = self.rng.choice(uids)
            text = "%d:%d" % (a, a + self.rng.randint(0, 20))
        else:
            text = "%d:*" % self.rng.randint(1, 50)
        items = self.fetch_items()
        self.cmd("UID FETCH %s (%s)" % (text, " ".join(items)))

    def op_store(self, uid=False):
        if not self.mb.msgs:
            return
        text, nums = self.random_set()
        flags = self.some_flags()
        op = self.rng.choice(("+", "+", "-", ""))
        silent = self.rng.random() < 0.3
        targets = [self.mb.msgs[n - 1].uid for n in nums]
        if None in targets:
            # Own keywords are expected per UID: learn the UIDs first.
            return self.op_fetch_all_uids()
        if uid:
            text = compress_set(targets)
        self.store(text, nums, flags, op, silent, uid)

    def store(self, text, nums, flags, op, silent, uid=False):
        """STORE (or UID STORE with the UIDs of `nums`) `op`FLAGS `flags` on
        the messages `nums` of the view, as `text`; checks the reply."""
        targets = [self.mb.msgs[n - 1].uid for n in nums]
        command = "%sSTORE %s %sFLAGS%s (%s)" % ("UID " if uid else "", text, op,
                                                 ".SILENT" if silent else "",
                                                 " ".join(sorted(flags)))
        if self.mb.readonly:
            return self.cmd(command, want=("NO",))
        if op == "":
            # Replacing wipes other sessions' keywords: mark it first.
            with self.reg.lock:
                for u in targets:
                    self.reg.replaced.add(self.key(u))
        before = {n: self.mb.msgs[n - 1] for n in nums}
        own_kw = frozenset(f for f in flags if f.startswith(self.kwprefix))
        # What this session's own keywords become on those messages. The
        # reply may first report the old state (another session's change,
        # synced before the STORE runs): no own-keyword check until done.
        after = {}
        for m in before.values():
            key = self.key(m.uid)
            cur = self.own.get(key)
            if op == "":
                after[key] = own_kw
            elif cur is not None:
                after[key] = (cur | own_kw) if op == "+" else (cur - own_kw)
            else:
                after[key] = None
        # What the HTTP actors must know of this STORE (http_model.Shared).
        clears = (op == "-" and "\\Seen" in flags) or (op == "" and "\\Seen" not in flags)
        clearing = http_model.begin(self.reg, self.reg.http.clears,
                                    [self.user, time.monotonic(), None]) if clears else None
        serial = self.replacing() if op == "" and self.drv.http_actors else None
        t0 = time.monotonic()
        self.fetching = []
        self.storing = set(after)
        done = False
        try:
            untagged, tagged = self.cmd(command)
            done = True
        finally:
            got, self.fetching = self.fetching, None
            self.storing = set()
            if clearing:
                http_model.end(self.reg, clearing)
            if serial is not None:
                # After the reply is judged (step): its own UID FETCH may
                # bring EXPUNGEs that renumber the STORE's FETCHes.
                self.replaced_now = (serial, targets if done else [], t0, time.monotonic())
        # NO [EXPUNGEISSUED] (RFC 2180 §4.2): some of the messages were
        # expunged elsewhere; the server stored the others (as Dovecot),
        # and with .SILENT it tells nothing of them. The expunged ones go
        # at the next EXPUNGE, so taking them as stored is harmless.
        stored = status_of(tagged) == "OK" or (
            status_of(tagged) == "NO" and (b"EXPUNGEISSUED", None) in self.codes)
        for key, value in after.items():
            if value is None or not stored:
                self.own.pop(key, None)
            else:
                self.own[key] = value
        # The STORE's own FETCH is the last one of a message: one before it
        # may report another session's change, sent before the STORE ran.
        # With .SILENT only such reports come.
        last = {}
        for fi in got:
            if "FLAGS" in fi:
                last[fi.seq] = fi
        for fi in last.values() if not silent and stored else ():
            m = self.mb.msgs[fi.seq - 1]
            if uid and m.uid not in targets:
                continue
            if not uid and fi.seq not in nums:
                continue
            have = set(str(f) for f in fi["FLAGS"])
            have.discard("\\Recent")
            lower = set(f.lower() for f in have)
            want = set(f.lower() for f in flags)
            if op == "+" and not want <= lower:
                self.fail("after STORE +FLAGS %s message %d shows %s" % (sorted(flags), fi.seq, sorted(have)))
            if op == "-" and want & lower:
                self.fail("after STORE -FLAGS %s message %d shows %s" % (sorted(flags), fi.seq, sorted(have)))
            if op == "" and want != lower:
                self.fail("after STORE FLAGS %s message %d shows %s" % (sorted(flags), fi.seq, sorted(have)))
        if silent and stored:
            for n, m in before.items():
                if m.flags is None:
                    continue
                if op == "+":
                    m.flags |= flags
                elif op == "-":
                    m.flags -= flags
                else:
                    m.flags = set(flags)

    def replacing(self):
        """A replace STORE wipes the HTTP actors' tags too: they wait for
        register_replace before they judge a tag that went missing."""
        with self.reg.lock:
            self.reg.http.serial += 1
            self.reg.http.replacing[self.reg.http.serial] = self.user
            return self.reg.http.serial

    def register_replace(self, serial, targets, t0, t1):
        """The X-Stress-Ids whose keywords the replace STORE (t0..t1) hit;
        then the HTTP actors waiting in excused_tags go on."""
        try:
            if self.imap is None or self.mb is None:
                targets = []
            keys = [self.key(u) for u in targets]
            live = set(self.known_uids()) if targets else set()
            with self.reg.lock:
                ask = [u for u, k in zip(targets, keys) if k not in self.reg.key_sid and u in live]
            if ask:
                self.cmd("UID FETCH %s (BODY.PEEK[HEADER.FIELDS (X-STRESS-ID)])"
                         % compress_set(ask))
            with self.reg.lock:
                for k in keys:
                    sid = self.reg.key_sid.get(k)
                    if sid is not None:
                        self.reg.http.retag[sid].append(["imap%d" % self.idx, t0, t1])
        finally:
            with self.reg.lock:
                self.reg.http.replacing.pop(serial, None)

    def op_search(self):
        r = self.rng.random()
        kw = None
        uid = self.rng.random() < 0.3
        if r < 0.25:
            crit = "ALL"
        elif r < 0.45:
            crit = "UNSEEN"
        elif r < 0.75:
            kw = self.rng.choice(self.keywords)
            crit = "KEYWORD %s" % kw
        else:
            a = self.rng.randint(1, 60)
            crit = "UID %d:%d" % (a, a + self.rng.randint(0, 30))
        untagged, tagged = self.cmd("%sSEARCH %s" % ("UID " if uid else "", crit))
        if status_of(tagged) != "OK":
            self.fail("SEARCH %s: %r" % (crit, tagged))
        if self.search is None:
            self.fail("SEARCH without * SEARCH")
        results = self.search
        if not uid:
            for n in results:
                if not 1 <= n <= len(self.mb.msgs):
                    self.fail("SEARCH result %d of %d messages" % (n, len(self.mb.msgs)))
            if kw is not None:
                for n in results:
                    u = self.mb.msgs[n - 1].uid
                    want = self.own.get(self.key(u)) if u is not None else None
                    if want is not None and kw not in want and not self.was_replaced(u):
                        self.fail("SEARCH KEYWORD %s found message %d (UID %d) whose own "
                                  "keywords are %s" % (kw, n, u, sorted(want)))
        else:
            known = set(self.known_uids())
            unknown = sum(1 for m in self.mb.msgs if m.uid is None)
            strangers = [u for u in results if u not in known]
            if len(strangers) > unknown:
                self.fail("UID SEARCH gave UIDs %s the view does not have" % strangers)
            if crit.startswith("UID "):
                lo, hi = map(int, crit[4:].split(":"))
                if any(not lo <= u <= hi for u in results):
                    self.fail("UID SEARCH %s gave %s" % (crit, results))

    def was_replaced(self, uid):
        with self.reg.lock:
            return self.key(uid) in self.reg.replaced

    def op_copy(self, move=False):
        if not self.mb.msgs:
            return
        text, nums = self.random_set()
        target = self.mailbox_name()
        if move and target == self.mb.name and "move-expunges" in self.drv.lax:
            # MOVE into the mailbox itself leaves stale view entries
            # behind (see /tmp/mailsnare-bugs.md): their fallout would
            # hide everything else.
            target = "Archive" if target != "Archive" else "Work"
        if move and self.mb.readonly:
            return self.cmd("MOVE %s \"%s\"" % (text, target), want=("NO",))
        moving = [self.mb.msgs[n - 1].uid for n in nums]
        untagged, tagged = self.cmd("%s %s \"%s\"" % ("MOVE" if move else "COPY", text, target),
                                    want=("OK", "NO", "BAD"))
        if status_of(tagged) == "BAD":
            self.check("seq-renumbered" if self.expunged else "bad", False,
                       "%s %s: %r after EXPUNGEs the session had not been told of when "
                       "it sent the command" % ("MOVE" if move else "COPY", text, tagged))
            return
        # The numbers are the ones this session had when it sent the
        # command, whatever EXPUNGEs the reply starts with.
        for code, arg in self.codes:
            if code == b"COPYUID" and None not in moving:
                src = seqset_values(arg.split()[1])
                # "*" is the last message the session knew of, whatever
                # EXISTS the reply starts with (test_imap_star.py).
                strangers = sorted(set(src) - set(moving))
                self.check("seq-renumbered", not strangers,
                           "%s %s copied UIDs %s, but the session's messages %s are UIDs %s"
                           % ("MOVE" if move else "COPY", text, strangers, text, moving))
        if not move or status_of(tagged) != "OK":
            return
        if self.move_src is None:
            if any(u is not None for u in moving):
                self.fail("MOVE OK without COPYUID (UIDPLUS, RFC 6851 §4.3)")
            return
        left = [u for u in self.known_uids() if u in self.move_src]
        self.check("move-expunges", not left,
                   "MOVE OK with COPYUID, but the UIDs %s it moved were not expunged "
                   "(RFC 6851 §3.3)" % left)

    def op_expunge(self, uid=False):
        if self.mb.readonly:
            return self.cmd("EXPUNGE", want=("NO",))
        if self.mb.msgs and self.rng.random() < 0.7:
            n = self.rng.randint(1, len(self.mb.msgs))
            self.cmd("STORE %d +FLAGS (\\Deleted)" % n)
        if uid:
            uids = self.known_uids()
            if not uids:
                return
            a = self.rng.choice(uids)
            text = "%d:%d" % (a, a + self.rng.randint(0, 3))
            self.cmd("UID EXPUNGE %s" % text, want=("OK",))
            lo, hi = map(int, text.split(":"))
            self.deleted_left([m for m in self.mb.msgs if m.uid is not None and lo <= m.uid <= hi])
            return
        self.cmd("EXPUNGE", want=("OK",))
        self.deleted_left(self.mb.msgs)

    def deleted_left(self, msgs):
        """Messages the session was told have \\Deleted and the EXPUNGE left:
        another session must have removed the flag just before, and its
        FETCH must reach this session (notifications may lag a little, so
        by a NOOP some time later: see op_noop)."""
        now = time.monotonic()
        for m in msgs:
            if m.uid is not None and m.flags is not None and "\\Deleted" in m.flags:
                self.suspects[m.uid] = (now, self.mb.uidvalidity)

    def op_append(self):
        target = self.rng.choice(SHARED_MAILBOXES + SCRATCH_MAILBOXES[:1])
        sid = self.reg.new_id("a")
        data = make_message(self.rng, sid, "append")
        self.reg.record_sent(sid, "append", data)
        flags = self.some_flags() if self.rng.random() < 0.6 else set()
        untagged, tagged = self.cmd('APPEND "%s" (%s) {%d+}' % (target, " ".join(sorted(flags)), len(data)),
                                    literal=data)
        if status_of(tagged) != "OK":
            return
        for code, arg in self.codes:
            if code == b"APPENDUID":
                v, u = map(int, arg.split())
                own = frozenset(f for f in flags if f.startswith(self.kwprefix))
                self.own[(self.user, v, u)] = own
                return
        self.fail("APPEND OK without APPENDUID (UIDPLUS)")

    def op_idle(self):
        self.tags += 1
        tag = "s%d" % self.tags
        self.current = ("IDLE", False)
        self.send(("%s IDLE\r\n" % tag).encode())
        try:
            while True:
                line = self.imap.line(REPLY_HANG)
                self.log("S:", line)
                if line.startswith(b"+"):
                    break
                if line.startswith(tag.encode() + b" "):
                    self.fail("IDLE refused: %r" % line)
                self.untagged(line)
            deadline = time.monotonic() + self.rng.uniform(0.05, 0.8)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    line = self.imap.line(left)
                except socket.timeout:
                    break
                self.log("S:", line)
                self.untagged(line)
            self.send(b"DONE\r\n")
            untagged, tagged = self.read_until(tag)
        finally:
            self.current = None
        self.reg.count("IDLE")
        self.commands += 1
        if status_of(tagged) != "OK":
            self.fail("IDLE ended with %r" % tagged)

    def op_close(self):
        verb = self.rng.choice(("CLOSE", "UNSELECT"))
        self.cmd(verb, want=("OK",))
        self.mb = None

    def op_mailbox(self):
        r = self.rng.random()
        name = self.rng.choice(SCRATCH_MAILBOXES)
        if r < 0.4:
            self.cmd('CREATE "%s"' % name)
        elif r < 0.7:
            self.cmd('DELETE "%s"' % name)
        else:
            self.cmd('RENAME "%s" "%s"' % (name, self.rng.choice(SCRATCH_MAILBOXES)))

    def op_status(self):
        self.cmd('STATUS "%s" (MESSAGES UIDNEXT UNSEEN)' % self.mailbox_name())

    def op_logout(self):
        untagged, tagged = self.cmd("LOGOUT", want=("OK",))
        if not any(l.startswith(b"* BYE") for l in untagged):
            self.fail("LOGOUT without BYE")
        self.connect()

    def op_drop(self):
        """Closes the socket in the middle of a command."""
        r = self.rng.random()
        self.tags += 1
        if r < 0.3:
            data = b"s%d FETCH 1:* (BODY[])\r\n" % self.tags
        elif r < 0.6:
            data = b"s%d APPEND INBOX {500+}\r\nFrom: half@example.test\r\n" % self.tags
        elif r < 0.8:
            data = b"s%d IDLE\r\n" % self.tags
        else:
            data = b"s%d STORE 1:* +FLAGS (\\Se" % self.tags
        self.send(data)
        self.log("C:", "(drops the connection)")
        self.reg.count("drop")
        self.connect()

    def op_noop(self):
        self.cmd(self.rng.choice(("NOOP", "NOOP", "CHECK")) if self.mb else "NOOP", want=("OK",))
        if self.mb is None:
            return
        now = time.monotonic()
        alive = set(m.uid for m in self.mb.msgs)
        for uid, (when, validity) in list(self.suspects.items()):
            if validity != self.mb.uidvalidity or uid not in alive:
                del self.suspects[uid]
            elif now - when > 0.2:
                self.fail("UID %d was reported with \\Deleted, EXPUNGE %.1f s ago left it, and "
                          "no change of its flags has been reported since" % (uid, now - when))

    def step(self):
        try:
            self.step_op()
        finally:
            if self.replaced_now is not None:
                replaced, self.replaced_now = self.replaced_now, None
                self.register_replace(*replaced)
        if self.pending_own:
            self.resolve_own()

    def step_op(self):
        if self.imap is None:
            self.connect()
        r = self.rng.random()
        if self.mb is None:
            if r < 0.7:
                return self.op_select()
            if r < 0.8:
                return self.op_mailbox()
            if r < 0.9:
                return self.op_append()
            return self.op_status()
        ops = ((0.18, self.op_fetch), (0.06, self.op_uid_fetch), (0.14, self.op_store),
               (0.04, lambda: self.op_store(uid=True)), (0.1, self.op_search),
               (0.04, self.op_copy), (0.04, lambda: self.op_copy(move=True)),
               (0.04, self.op_expunge), (0.02, lambda: self.op_expunge(uid=True)),
               (0.05, self.op_append), (0.05, self.op_idle), (0.06, self.op_noop),
               (0.06, self.op_select), (0.02, self.op_close), (0.03, self.op_mailbox),
               (0.02, self.op_status), (0.01, self.op_logout), (0.01, self.op_drop))
        total = sum(w for w, _ in ops)
        r *= total
        for w, op in ops:
            if r < w:
                return op()
            r -= w
        return self.op_noop()

    # -- the end

    def final_check(self):
        """NOOP, then the model must equal a fresh EXAMINE + FETCH."""
        if self.imap is None or self.mb is None:
            return "unselected"
        self.cmd("NOOP", want=("OK",))
        checker = Session(self.drv, -1 - self.idx, self.user, self.password, 0)
        try:
            checker.connect()
            checker.mb = Mailbox(self.mb.name, True)
            _, tagged = checker.cmd('EXAMINE "%s"' % self.mb.name)
            if status_of(tagged) != "OK" or checker.mb.uidvalidity != self.mb.uidvalidity:
                return "mailbox gone"   # deleted or renamed meanwhile
            if checker.mb.msgs:
                checker.cmd("FETCH 1:* (UID FLAGS)", want=("OK",))
            fresh = checker.mb.msgs
            mine = self.mb.msgs
            if len(fresh) != len(mine):
                self.fail("final: model has %d messages, the mailbox %d (UIDs %s vs %s)"
                          % (len(mine), len(fresh), [m.uid for m in mine][:40],
                             [m.uid for m in fresh][:40]))
            for i, (a, b) in enumerate(zip(mine, fresh)):
                if a.uid is not None and a.uid != b.uid:
                    self.fail("final: message %d is UID %d in the model, %d in the mailbox"
                              % (i + 1, a.uid, b.uid))
                if a.flags is not None and a.flags != b.flags:
                    self.fail("final: UID %d has flags %s in the model, %s in the mailbox"
                              % (b.uid, sorted(a.flags), sorted(b.flags)))
            return "checked"
        finally:
            checker.close()


# ---------------------------------------------------------------------------
# The driver


class Driver:
    def __init__(self, server, seconds, sessions, seed, inboxes=2, out=sys.stdout,
                 http_actors=0, streams=0):
        self.server = server
        self.http_actors = http_actors
        self.n_streams = streams
        self.seconds = seconds
        self.n_sessions = sessions
        self.seed = seed
        self.reg = Registry()
        self.stop = threading.Event()
        self.failure = None
        self.fail_lock = threading.Lock()
        self.out = out
        self.lax = set(x for x in os.environ.get("STRESS_LAX", "").split(",") if x)
        self.inboxes = []
        for i in range(inboxes):
            name, pw = "stress%d" % (i + 1), "pw-stress%d" % (i + 1)
            server.inbox_add(name, pw)
            self.inboxes.append((name, pw))
        self.extra = collections.Counter()
        self.t0 = time.monotonic()

    def record_failure(self, text):
        with self.fail_lock:
            if self.failure is None:
                self.failure = text
        self.stop.set()

    def server_cpu(self):
        """CPU seconds the server process has used (user + system)."""
        try:
            with open("/proc/%d/stat" % self.server.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def server_memory(self):
        """The server's resident set now and at its peak, in KiB
        (/proc: VmRSS, VmHWM)."""
        out = {}
        try:
            with open("/proc/%d/status" % self.server.proc.pid) as f:
                for line in f:
                    name, _, value = line.partition(":")
                    if name in ("VmRSS", "VmHWM"):
                        out[name] = int(value.split()[0])
        except (OSError, ValueError):
            pass
        return out

    def server_dead(self):
        rc = self.server.proc.poll()
        return None if rc is None else "the server exited with status %s" % rc

    def session_thread(self, s):
        try:
            s.connect()
            while not self.stop.is_set():
                s.step()
        except ModelError as e:
            self.record_failure("%s\n--- last %d lines of session %d ---\n%s"
                                % (e, TRANSCRIPT_LINES, s.idx, "\n".join(s.transcript)))
        except (OSError, EOFError) as e:
            dead = self.server_dead()
            if isinstance(e, socket.timeout):
                # Was the whole server stuck, or this session only? And
                # where do the bytes wait?
                # (A reply the client holds in part, e.g. a literal cut
                # short, shows in its buffer.)
                dead = dead or ("other sessions' last reply %.1f s ago; %s; the client "
                                "holds %d octets of an unfinished response: %r"
                                % (time.monotonic() - self.reg.last_reply,
                                   tcp_diagnosis(s.imap.sock) if s.imap else "no socket",
                                   len(s.imap.buf) if s.imap else 0,
                                   s.imap.buf[:200] if s.imap else b""))
            self.record_failure("session %d: %s: %r (%s) during %r\n--- last lines ---\n%s"
                                % (s.idx, type(e).__name__, e, dead or "server up",
                                   s.last_command, "\n".join(s.transcript)))
        except Exception:   # a bug of this driver: say so, with context
            import traceback
            self.record_failure("session %d: driver error %s\n--- last lines ---\n%s"
                                % (s.idx, traceback.format_exc(), "\n".join(s.transcript)))

    def http_thread(self, a):
        try:
            while not self.stop.is_set():
                a.step()
        except http_model.ModelError as e:
            self.record_failure("%s\n--- last %d lines of %s ---\n%s"
                                % (e, TRANSCRIPT_LINES, a.name, "\n".join(a.transcript)))
        except (OSError, EOFError, http.client.HTTPException) as e:
            self.record_failure("%s: %s: %r (%s)\n--- last lines ---\n%s"
                                % (a.name, type(e).__name__, e, self.server_dead() or "server up",
                                   "\n".join(a.transcript)))
        except Exception:   # a bug of this driver: say so, with context
            import traceback
            self.record_failure("%s: driver error %s\n--- last lines ---\n%s"
                                % (a.name, traceback.format_exc(), "\n".join(a.transcript)))
        finally:
            a.close()

    def stream_thread(self, st):
        try:
            st.run()
        except http_model.ModelError as e:
            self.record_failure("%s\n--- last %d lines of %s ---\n%s"
                                % (e, TRANSCRIPT_LINES, st.name, "\n".join(st.transcript)))
        except Exception as e:  # http.client, closed from another thread, says anything
            if not st.closing:
                self.record_failure("%s: %s: %r (%s)\n--- last lines ---\n%s"
                                    % (st.name, type(e).__name__, e,
                                       self.server_dead() or "server up",
                                       "\n".join(st.transcript)))

    def http_parties(self, master):
        """HTTP actors (every third anonymous, the others scoped to an
        inbox by turns) and event streams (the first anonymous, the others
        scoped), each stream opened before any mail arrives."""
        actors = [http_model.Actor(self, i, None if i % 3 == 0 else self.inboxes[i % 3 - 1],
                                   master.randrange(1 << 30))
                  for i in range(self.http_actors)]
        streams = [http_model.Stream(self, j, None if j == 0 else
                                     self.inboxes[(j - 1) % len(self.inboxes)])
                   for j in range(self.n_streams)]
        for st in streams:
            st.open()
        return actors, streams

    def finish_streams(self, streams):
        """Once the load stopped: what every stream announced still exists
        or was deleted on it; then the streams are closed."""
        checked = 0
        try:
            for st in streams if self.failure is None else ():
                lister = http_model.Actor(self, 100 + st.idx, st.inbox, 0)
                try:
                    checked += st.final_check(lister)
                except http_model.ModelError as e:
                    if self.failure is None:
                        self.failure = "%s\n--- last lines of %s ---\n%s" % (
                            e, st.name, "\n".join(st.transcript))
                except (OSError, http.client.HTTPException) as e:
                    if self.failure is None:
                        self.failure = "%s final check: %r (%s)" % (
                            st.name, e, self.server_dead() or "server up")
                finally:
                    lister.close()
        finally:
            for st in streams:
                st.close()
        return checked

    def smtp_thread(self, rng):
        host, port = self.server.addr("smtp")
        try:
            while not self.stop.is_set():
                user, pw = rng.choice(self.inboxes)
                with smtplib.SMTP(host, port, timeout=REPLY_HANG) as smtp:
                    smtp.login(user, pw)
                    for _ in range(rng.randint(1, 5)):
                        sid = self.reg.new_id("m")
                        data = make_message(rng, sid, "smtp")
                        self.reg.record_sent(sid, "smtp", data)
                        smtp.sendmail("sender@example.test", ["rcpt@example.test"], data)
                        self.extra["smtp"] += 1
                        if self.stop.wait(rng.uniform(0.02, 0.15)):
                            break
        except (OSError, smtplib.SMTPException) as e:
            self.record_failure("SMTP delivery: %r (%s)" % (e, self.server_dead() or "server up"))

    def pop3_thread(self, rng):
        host, port = self.server.addr("pop3")
        try:
            while not self.stop.wait(rng.uniform(0.1, 0.5)):
                user, pw = rng.choice(self.inboxes)
                p = poplib.POP3(host, port, timeout=REPLY_HANG)
                try:
                    p.user(user)
                    try:
                        p.pass_(pw)
                    except poplib.error_proto as e:
                        if b"IN-USE" in str(e).encode() or b"locked" in str(e).encode():
                            continue
                        raise
                    count, _ = p.stat()
                    if count:
                        n = rng.randint(1, count)
                        try:
                            if rng.random() < 0.5:
                                p.retr(n)
                            if count > 5:
                                p.dele(n)
                                self.extra["pop3 dele"] += 1
                        except poplib.error_proto as e:
                            # IMAP sessions expunge beside POP3: "-ERR Message
                            # n was removed by another session" is an answer.
                            if b"removed" not in e.args[0]:
                                raise
                finally:
                    p.quit()
        except (OSError, poplib.error_proto) as e:
            self.record_failure("POP3: %r (%s)" % (e, self.server_dead() or "server up"))

    def run(self):
        """Runs the load; returns a dict of figures; raises ModelError on
        the first contradiction (with the session's transcript)."""
        master = random.Random(self.seed)
        sessions = []
        for i in range(self.n_sessions):
            user, pw = self.inboxes[i % len(self.inboxes)]
            sessions.append(Session(self, i, user, pw, master.randrange(1 << 30)))
        # Mailboxes the sessions share; the scratch ones come and go.
        setup = Session(self, 10000, self.inboxes[0][0], self.inboxes[0][1], 0)
        for user, pw in self.inboxes:
            setup.user, setup.password = user, pw
            setup.connect()
            for name in SHARED_MAILBOXES[1:]:
                setup.cmd('CREATE "%s"' % name)
            setup.close()
        actors, streams = self.http_parties(master)
        threads = [threading.Thread(target=self.session_thread, args=(s,), daemon=True)
                   for s in sessions]
        threads += [threading.Thread(target=self.http_thread, args=(a,), daemon=True)
                    for a in actors]
        stream_threads = [threading.Thread(target=self.stream_thread, args=(st,), daemon=True)
                          for st in streams]
        threads.append(threading.Thread(target=self.smtp_thread,
                                        args=(random.Random(master.random()),), daemon=True))
        threads.append(threading.Thread(target=self.pop3_thread,
                                        args=(random.Random(master.random()),), daemon=True))
        cpu0 = self.server_cpu()
        tcp0 = tcp_counters()
        start = self.t0 = time.monotonic()
        for t in threads + stream_threads:
            t.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in threads:
            t.join(REPLY_HANG + 30)
        elapsed = time.monotonic() - start
        hung = [t for t in threads if t.is_alive()]
        if hung and self.failure is None:
            self.failure = "%d threads did not stop within %d s" % (len(hung), REPLY_HANG + 30)
        results = collections.Counter()
        sse_checked = self.finish_streams(streams)
        if self.failure is None:
            try:
                for s in sessions:
                    results[s.final_check()] += 1
                    s.close()
            except ModelError as e:
                self.failure = "%s\n--- last lines of session ---\n%s" % (e, "\n".join(s.transcript))
            except (OSError, EOFError) as e:
                self.failure = "final check: %r (%s)" % (e, self.server_dead() or "server up")
        dead = self.server_dead()
        if dead and self.failure is None:
            self.failure = dead
        if self.failure is None:
            try:
                with RawIMAP(self.server.addr("imap")) as probe:
                    g = probe.greeting()
                    if not g.startswith(b"* OK"):
                        self.failure = "greeting after the run: %r" % g
            except (OSError, EOFError) as e:
                self.failure = "no greeting after the run: %r" % e
        memory = self.server_memory()
        log = self.server.read_log()
        for marker in (b"AddressSanitizer", b"runtime error", b"LeakSanitizer"):
            if marker in log and self.failure is None:
                i = log.find(marker)
                self.failure = "server log has %s:\n%s" % (
                    marker.decode(), log[max(0, i - 200):i + 3000].decode("utf-8", "replace"))
        commands = sum(self.reg.verbs.values())
        cpu = self.server_cpu() - cpu0
        tcp = {k: v - tcp0.get(k, 0) for k, v in tcp_counters().items()}
        figures = {
            "server_cpu_s": cpu, "slow": self.reg.slow, "slowest": self.reg.slowest,
            "seed": self.seed, "sessions": self.n_sessions, "seconds": elapsed,
            "commands": commands, "commands_per_s": commands / elapsed if elapsed else 0,
            "verbs": dict(self.reg.verbs), "smtp": self.extra["smtp"],
            "pop3_dele": self.extra["pop3 dele"], "final": dict(results),
            "warnings": dict(self.reg.warnings), "first_warning": dict(self.reg.first_warning),
            "failure": self.failure, "tcp": tcp, "memory": memory,
            "slowest_what": self.reg.slowest_what,
            "http": dict(self.reg.http.stats), "http_actors": self.http_actors,
            "sse": {st.name: dict(st.events) for st in streams}, "sse_checked": sse_checked,
        }
        return figures


def report(fig, out=sys.stdout):
    out.write("seed %d, %d sessions, %.1f s: %d IMAP commands%s, %.0f commands/s; "
              "%d SMTP deliveries, %d POP3 DELE\n"
              % (fig["seed"], fig["sessions"], fig["seconds"], fig["commands"],
                 " and HTTP requests" if fig.get("http_actors") else "",
                 fig["commands_per_s"], fig["smtp"], fig["pop3_dele"]))
    out.write("server CPU: %.1f s in %.1f s (%.0f%% of one core: the Python clients set "
              "the pace), %.0f us per command or request\n"
              % (fig["server_cpu_s"], fig["seconds"],
                 100.0 * fig["server_cpu_s"] / fig["seconds"] if fig["seconds"] else 0,
                 1e6 * fig["server_cpu_s"] / fig["commands"] if fig["commands"] else 0))
    out.write("per verb: %s\n" % ", ".join("%s %d" % kv for kv in
                                           sorted(fig["verbs"].items(), key=lambda kv: -kv[1])))
    out.write("final check: %s\n" % (fig["final"] or "-"))
    if fig.get("http_actors"):
        out.write("HTTP (%d actors): %s\n" % (fig["http_actors"], ", ".join(
            "%s %d" % kv for kv in sorted(fig["http"].items(), key=lambda kv: -kv[1]))))
        out.write("event streams: %s; %d announced messages checked at the end\n"
                  % ("; ".join("%s %s" % (k, v) for k, v in sorted(fig["sse"].items())) or "-",
                     fig["sse_checked"]))
    out.write("kernel TCP counters during the run (whole machine): %s\n"
              % (", ".join("%s %d" % kv for kv in sorted(fig["tcp"].items())) or "-"))
    out.write("slowest reply %.1f s (%s); %d replies took over %.0f s (a hang, %.0f s "
              "without a line, fails)\n"
              % (fig["slowest"], fig["slowest_what"] or "-", fig["slow"], REPLY_SLOW, REPLY_HANG))
    mem = fig.get("memory") or {}
    out.write("server memory at the end: RSS %s KiB, peak %s KiB\n"
              % (mem.get("VmRSS", "?"), mem.get("VmHWM", "?")))
    for name, n in sorted(fig["warnings"].items()):
        out.write("lax check %s failed %d times; first:\n%s\n" % (name, n, fig["first_warning"][name]))
    out.write("errors: %s\n" % ("none" if not fig["failure"] else "1 (run stopped)\n" + fig["failure"]))


def run_server(seconds, sessions, seed, http_actors=0):
    """One run on a server of its own (two event streams with HTTP
    actors); returns the figures and what stopping the server said."""
    server = harness.Server(*server_args(sessions, http_actors))
    server.start()
    stop_error = None
    try:
        fig = Driver(server, seconds, sessions, seed, http_actors=http_actors,
                     streams=2 if http_actors else 0).run()
    finally:
        try:
            server.stop()
        except harness.ServerError as e:
            stop_error = str(e)
    return fig, stop_error


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("STRESS_SECONDS", 30)))
    ap.add_argument("--sessions", type=int, default=int(os.environ.get("STRESS_SESSIONS", 16)))
    ap.add_argument("--http", type=int, default=int(os.environ.get("STRESS_HTTP", 0)),
                    help="HTTP API actors beside the IMAP sessions (http_model.py), "
                         "with two event streams")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("STRESS_SEED",
                                                                    random.randrange(1 << 31))))
    args = ap.parse_args(argv)
    print("imap stress: seed %d (STRESS_SEED=%d replays the sessions' choices)"
          % (args.seed, args.seed), flush=True)
    fig, stop_error = run_server(args.seconds, args.sessions, args.seed, args.http)
    if stop_error and not fig["failure"]:
        fig["failure"] = stop_error
    report(fig)
    return 1 if fig["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())
