"""HTTP API actors for the randomized multi-session driver (imap_model.py):
keep-alive http.client connections on Mailpit's v1 API beside the IMAP
sessions, SMTP deliveries and POP3 deletions, and Server-Sent Event
streams read by threads. Run by test_cross_stress.py and by
bench/imap_stress.sh (--http).

Each actor is scoped (the Basic credentials of one inbox) or anonymous
(every inbox), and checks every answer as it arrives; the first
contradiction stops the run with the actor's last transcript lines:

- status codes are the ones README's "HTTP API" promises for the request
  (200, 400, 404, 408), never 500;
- the listing envelope (total, unread, messages_count, messages_unread,
  start, tags, messages) and each summary's PascalCase fields are there
  with their JSON types;
- a scoped actor sees only its inbox (every summary's Inbox; another
  inbox's message ID is 404); a message's Inbox never changes;
- /raw never changes, and equals what was sent over SMTP (Received:
  aside) or APPENDed; a message ID deleted over HTTP never comes back in
  an answer to a request sent after the DELETE's `ok`;
- read state: after the actor's GET of a message or PUT Read, its next
  summary of it says Read, unless an IMAP STORE or a PUT Read:false that
  could clear \\Seen in that inbox overlapped (the registry knows them);
  a scoped actor's companion IMAP connection must see \\Seen set over
  HTTP (and an HTTP DELETE's EXPUNGE) within NOTIFY_LAG seconds;
- tags: PUT /api/v1/tags replaces a message's keywords; each actor tags
  with its own namespace (h<actor>_...), and reads exactly those back
  unless another party replaced the message's keywords since (such
  replacements are registered by X-Stress-Id before they are sent);
- search: every result has the searched property (subject:, to:, a bare
  word tok<id> the driver put in each body, is:read, is:unread, tag:);
  a message the actor sent with POST /api/v1/send is found by its word
  right after the reply (unless it is gone: 404);
- wait: a message matching its query (after the `after` ID), or 408 not
  before the timeout;
- SSE: per stream, event ids strictly increase (stats events repeat the
  last id); `new` never names a message announced and not deleted since
  (an IMAP MOVE keeps the ID: `delete`, then `new`); `delete` and `update`
  name a message announced and not deleted; at the end every message
  announced and not deleted on the stream still exists. A stream the
  server closes (1 MB behind: Python threads are slow readers) resumes
  with Last-Event-ID; events lost beyond the 1,024 kept make it check only
  what comes after.
"""

import collections
import http.client
import json
import random
import re
import socket
import threading
import time
from urllib.parse import quote

import harness
import http_helpers
from imap_helpers import RawIMAP

TRANSCRIPT_LINES = 50
HTTP_TIMEOUT = 120.0
NOTIFY_LAG = 3.0        # seconds an IMAP session may take to see an HTTP change
SSE_DRAIN = 3.0         # seconds the streams get at the end to report deletions
ENVELOPE = {"total": int, "unread": int, "count": int, "messages_count": int,
            "messages_unread": int, "start": int, "tags": list, "messages": list}
SUMMARY = {"ID": str, "MessageID": str, "From": (dict, type(None)), "To": list, "Cc": list,
           "Bcc": list, "ReplyTo": list, "Subject": str, "Username": str, "Tags": list,
           "Inbox": str, "Size": int, "MailFrom": str, "RcptTo": list, "Read": bool,
           "Created": str, "Attachments": int, "Snippet": str}
MESSAGE = {"ID": str, "MessageID": str, "Subject": str, "Inbox": str, "Tags": list,
           "Text": str, "HTML": str, "Inline": list, "Attachments": list, "Size": int}
SID_RE = re.compile(rb"X-Stress-Id: (\S+)\r\n")
SUBJECT_SID_RE = re.compile(r" (\S+)$")
TAGS_PER_ACTOR = 4
# Every kind of request, so that a run that stopped choosing one is noticed.
KINDS = ("list", "search", "get", "headers", "raw", "read", "unread", "tags", "delete",
         "send", "wait", "foreign", "imap-seen", "imap-expunge", "sse")


class ModelError(AssertionError):
    pass


def typed(obj, shape):
    """Names of shape's fields missing from obj or of another JSON type."""
    bad = []
    for name, kind in shape.items():
        if name not in obj:
            bad.append("%s missing" % name)
            continue
        v = obj[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(v, bool) and bool not in kinds:
            bad.append("%s is %r" % (name, v))
        elif not isinstance(v, kinds):
            bad.append("%s is %s %r" % (name, type(v).__name__, v))
    return bad


def summary_sid(summary):
    """The driver's id of a message from its subject ("stress smtp m12")."""
    m = SUBJECT_SID_RE.search(summary.get("Subject") or "")
    return m.group(1) if m else None


def addresses(lst):
    return " ".join("%s <%s>" % (a.get("Name", ""), a.get("Address", "")) for a in lst or ())


class Shared:
    """What HTTP actors, IMAP sessions and streams tell each other; lives
    in imap_model's Registry (reg.http) and uses its lock."""

    def __init__(self):
        self.deleted = {}       # message ID -> monotonic time of its DELETE's ok
        self.inbox_of = {}      # message ID -> inbox (never changes)
        self.retag = collections.defaultdict(list)  # X-Stress-Id -> [who, start, end]
        self.clears = []        # [inbox or "*", start, end]: could clear \Seen
        self.replacing = {}     # serial -> inbox: IMAP replace STOREs being registered
        self.serial = 0
        self.stats = collections.Counter()

    # Caller holds reg.lock for all of these.

    def cleared(self, inbox, a, b):
        """Could something have cleared \\Seen in inbox between a and b?"""
        for who, s, e in self.clears:
            if who in (inbox, "*") or inbox == "*":
                if s < b and (e is None or e > a):
                    return True
        return False

    def retagged(self, sid, me, since):
        """Did anyone but me replace the keywords of sid's messages since?"""
        for who, s, e in self.retag.get(sid, ()):
            if who != me and (e is None or e > since):
                return True
        return False

    def prune(self, now):
        self.clears = [c for c in self.clears if c[2] is None or c[2] > now - 120]


def begin(reg, table, entry):
    with reg.lock:
        table.append(entry)
    return entry


def end(reg, entry):
    with reg.lock:
        entry[2] = time.monotonic()


class Actor:
    """One keep-alive HTTP client with its expectations."""

    def __init__(self, drv, idx, inbox, seed):
        self.drv = drv
        self.reg = drv.reg
        self.sh = drv.reg.http
        self.idx = idx
        self.inbox = inbox      # (user, password) or None: anonymous
        self.scope = inbox[0] if inbox else "*"
        self.name = "http%d" % idx
        self.rng = random.Random(seed)
        self.prefix = "h%d_" % idx
        self.tagset = ["h%d_%d" % (idx, j) for j in range(TAGS_PER_ACTOR)]
        self.transcript = collections.deque(maxlen=TRANSCRIPT_LINES)
        self.conn = None
        self.known = []         # IDs this actor's scope showed, newest last
        self.sid_of = {}        # ID -> X-Stress-Id
        self.read_at = {}       # ID -> start of the request that set Read
        self.own_tags = {}      # ID -> (frozenset, start)
        self.sent = []          # (ID, word) sent by this actor
        self.max_id = 0
        self.imap = None        # companion IMAP view (scoped actors)

    # -- plumbing

    def log(self, text):
        self.transcript.append(text if len(text) <= 300 else text[:300] + "...")

    def fail(self, what):
        raise ModelError("%s (%s): %s" % (self.name, self.scope, what))

    def headers(self):
        h = {}
        if self.inbox:
            h.update(http_helpers.basic(*self.inbox))
        return h

    def request(self, method, path, body=None, allowed=(200,), kind=None):
        """One request on the keep-alive connection; returns (status,
        bytes, start time)."""
        if self.conn is None:
            host, port = self.drv.server.addr("http")
            self.conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT)
        h = self.headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        self.log("C: %s %s %s" % (method, path, data.decode()[:200] if data else ""))
        t0 = time.monotonic()
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        payload = r.read()
        took = time.monotonic() - t0
        self.log("S: %d %s" % (r.status, payload[:300].decode("utf-8", "replace")))
        self.reg.count("HTTP %s" % (kind or method), took, "%s %s" % (method, path[:60]))
        if r.status not in allowed:
            self.fail("%s %s: status %d (want %s): %r" % (method, path, r.status,
                                                          "/".join(map(str, allowed)),
                                                          payload[:300]))
        with self.reg.lock:
            self.sh.stats[kind or method] += 1
        return r.status, payload, t0

    def get_json(self, path, kind, allowed=(200,)):
        status, payload, t0 = self.request("GET", path, allowed=allowed, kind=kind)
        if status != 200:
            return status, None, t0
        try:
            return status, json.loads(payload), t0
        except ValueError as e:
            self.fail("GET %s: not JSON (%s): %r" % (path, e, payload[:200]))

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.imap is not None:
            self.imap.close()
            self.imap = None

    # -- what every answer must satisfy

    def check_envelope(self, path, env):
        bad = typed(env, ENVELOPE)
        if bad:
            self.fail("GET %s envelope: %s" % (path, ", ".join(bad)))
        for s in env["messages"]:
            self.check_summary(path, s, self.t_req)

    def check_summary(self, where, s, t_req):
        bad = typed(s, SUMMARY)
        if bad:
            self.fail("%s: summary %s: %s" % (where, s.get("ID"), ", ".join(bad)))
        mid = s["ID"]
        self.check_alive(where, mid, t_req)
        self.check_inbox(where, mid, s["Inbox"])
        if mid not in self.sid_of and summary_sid(s):
            self.sid_of[mid] = summary_sid(s)
        self.max_id = max(self.max_id, int(mid))
        if not self.known or self.known[-1] != mid:
            self.known.append(mid)
            if len(self.known) > 400:
                del self.known[:100]
        self.check_read(where, mid, s["Read"])
        self.check_tags(where, mid, s["Tags"])

    def check_alive(self, where, mid, t_req):
        with self.reg.lock:
            gone = self.sh.deleted.get(mid)
        if gone is not None and gone < t_req:
            self.fail("%s: message %s, deleted over HTTP %.3f s before this request, "
                      "came back" % (where, mid, t_req - gone))

    def check_inbox(self, where, mid, inbox):
        if self.inbox and inbox != self.inbox[0]:
            self.fail("%s: message %s of inbox %r in the scope of inbox %r"
                      % (where, mid, inbox, self.inbox[0]))
        with self.reg.lock:
            first = self.sh.inbox_of.setdefault(mid, inbox)
        if first != inbox:
            self.fail("%s: message %s was in inbox %r, now %r" % (where, mid, first, inbox))

    def tally(self, what):
        with self.reg.lock:
            self.sh.stats[what] += 1

    def check_read(self, where, mid, read):
        t = self.read_at.get(mid)
        if t is None:
            return
        if read:
            return self.tally("read checked")
        with self.reg.lock:
            excused = self.sh.cleared(self.sh.inbox_of.get(mid, "*"), t, time.monotonic())
        if excused:
            del self.read_at[mid]
            return self.tally("read excused")
        self.fail("%s: message %s says Read false; this actor set it read %.3f s ago and "
                  "nothing that clears \\Seen ran since" % (where, mid, time.monotonic() - t))

    def check_tags(self, where, mid, tags):
        want = self.own_tags.get(mid)
        if want is None:
            return
        got = frozenset(t.lower() for t in tags if t.lower().startswith(self.prefix))
        if got == want[0]:
            return self.tally("tags checked")
        sid = self.sid_of.get(mid)
        if self.excused_tags(sid, want[1]):
            del self.own_tags[mid]
            return self.tally("tags excused")
        self.fail("%s: message %s (%s) has own tags %s, want %s (nobody else replaced "
                  "its keywords)" % (where, mid, sid, sorted(got), sorted(want[0])))

    def excused_tags(self, sid, since):
        """An IMAP replace STORE registers the X-Stress-Ids it hit after
        the STORE: wait for those in progress before deciding."""
        deadline = time.monotonic() + HTTP_TIMEOUT
        with self.reg.lock:
            waiting = set(k for k, v in self.sh.replacing.items() if v in (self.scope, "*")
                          or self.scope == "*")
        while waiting and time.monotonic() < deadline and not self.drv.stop.is_set():
            with self.reg.lock:
                waiting &= set(self.sh.replacing)
            if waiting:
                time.sleep(0.02)
        if waiting:
            return True         # the run is over: the STOREs were not registered
        with self.reg.lock:
            return sid is None or self.sh.retagged(sid, self.name, since)

    def check_raw(self, mid, raw):
        who = "%s at %.3f" % (self.name, time.monotonic() - self.drv.t0)
        first, whom = self.reg.same(("http raw", mid), raw, who)
        if first != raw:
            self.fail("raw of %s changed: first %r (by %s), now %r" % (mid, first[:200], whom,
                                                                      raw[:200]))
        m = SID_RE.search(raw)
        if not m:
            self.fail("raw of %s has no X-Stress-Id: %r" % (mid, raw[:200]))
        sid = m.group(1).decode()
        self.sid_of[mid] = sid
        with self.reg.lock:
            kind, sent = self.reg.sent.get(sid, (None, None))
        if kind is None:
            self.fail("raw of %s: unknown X-Stress-Id %r" % (mid, sid))
        if kind == "send":
            return              # built by the server: that it never changes is all

        got = harness.strip_received(raw) if kind == "smtp" else raw
        if got != sent:
            self.fail("raw of %s differs from what was sent (%s): %s"
                      % (mid, kind, harness.describe_difference(got, sent)))

    # -- picking messages

    def pick(self):
        return self.rng.choice(self.known) if self.known else None

    def picks(self):
        return list(set(self.rng.choice(self.known) for _ in range(self.rng.randint(1, 3))))

    # -- operations

    def op_list(self):
        start = self.rng.choice((0, 0, self.rng.randint(0, 200)))
        path = "/api/v1/messages?start=%d&limit=%d" % (start, self.rng.randint(1, 60))
        _, env, self.t_req = self.get_json(path, "list")
        self.check_envelope(path, env)
        if env["start"] != start:
            self.fail("GET %s: start %r" % (path, env["start"]))

    def search_query(self):
        """A query and the property each result must have."""
        r = self.rng.random()
        if r < 0.2 and self.known:
            sid = self.sid_of.get(self.pick())
            if sid:
                return "subject:%s" % sid, lambda s: sid.lower() in s["Subject"].lower()
        if r < 0.35:
            who = self.rng.choice(("other@example.test", "rcpt%d@example.test"
                                   % self.rng.randint(0, 3)))
            return "to:%s" % who, lambda s: who in addresses(s["To"]).lower()
        if r < 0.6:
            with self.reg.lock:
                sids = list(self.reg.sent)[-300:]
            sid = self.rng.choice(sids) if sids else "m1"
            return ("tok%s" % sid, lambda s: (summary_sid(s) or "").lower()
                    .startswith(sid.lower()))
        if r < 0.7:
            return "is:read", lambda s: s["Read"]
        if r < 0.8:
            return "is:unread", lambda s: not s["Read"]
        tag = self.rng.choice(self.tagset)
        return "tag:%s" % tag, lambda s: tag in (t.lower() for t in s["Tags"])

    def op_search(self):
        query, has = self.search_query()
        path = "/api/v1/search?query=%s&limit=%d" % (quote(query), self.rng.randint(5, 100))
        _, env, self.t_req = self.get_json(path, "search")
        self.check_envelope(path, env)
        self.tally("search results checked")
        for s in env["messages"]:
            if not has(s):
                self.fail("search %r gave message %s without that property: %r"
                          % (query, s["ID"], s))

    def op_get(self):
        mid = self.pick()
        if mid is None:
            return self.op_list()
        path = "/api/v1/message/%s" % mid
        status, msg, t = self.get_json(path, "get", allowed=(200, 404))
        if status == 404:
            return self.forget(mid)
        bad = typed(msg, MESSAGE)
        if bad or msg["ID"] != mid:
            self.fail("GET %s: %s" % (path, ", ".join(bad) or "ID %r" % msg["ID"]))
        self.check_alive(path, mid, t)
        self.check_inbox(path, mid, msg["Inbox"])
        self.check_tags(path, mid, msg["Tags"])
        self.read_at[mid] = t

    def forget(self, mid):
        self.read_at.pop(mid, None)
        self.own_tags.pop(mid, None)
        self.known = [k for k in self.known if k != mid]

    def op_headers(self):
        mid = self.pick()
        if mid is None:
            return self.op_list()
        path = "/api/v1/message/%s/headers" % mid
        status, hdrs, t = self.get_json(path, "headers", allowed=(200, 404))
        if status == 404:
            return self.forget(mid)
        self.check_alive(path, mid, t)
        if not isinstance(hdrs, dict) or not all(isinstance(v, list) for v in hdrs.values()):
            self.fail("GET %s: not a mail.Header: %r" % (path, hdrs))
        if "X-Stress-Id" not in hdrs:
            self.fail("GET %s: no X-Stress-Id in %r" % (path, sorted(hdrs)))

    def op_raw(self, mid=None):
        mid = mid or self.pick()
        if mid is None:
            return self.op_list()
        path = "/api/v1/message/%s/raw" % mid
        status, raw, t = self.request("GET", path, allowed=(200, 404), kind="raw")
        if status == 404:
            return self.forget(mid)
        self.check_alive(path, mid, t)
        self.check_raw(mid, raw)
        return raw

    def op_read(self):
        ids = self.picks() if self.known else []
        if not ids:
            return self.op_list()
        read = self.rng.random() < 0.7
        entry = None
        if not read:
            entry = begin(self.reg, self.sh.clears, [self.scope, time.monotonic(), None])
        try:
            _, _, t = self.request("PUT", "/api/v1/messages", {"IDs": ids, "Read": read},
                                   kind="read" if read else "unread")
        finally:
            if entry:
                end(self.reg, entry)
        for mid in ids:
            if read:
                self.read_at[mid] = t
            else:
                self.read_at.pop(mid, None)

    def op_tags(self):
        mid = self.pick()
        if mid is None:
            return self.op_list()
        # The replacement is registered by X-Stress-Id: know it first.
        if mid not in self.sid_of and self.op_raw(mid) is None:
            return
        sid = self.sid_of[mid]
        tags = sorted(set(self.rng.choice(self.tagset)
                          for _ in range(self.rng.randint(0, 3))))
        entry = begin(self.reg, self.sh.retag[sid], [self.name, time.monotonic(), None])
        try:
            status, payload, t = self.request("PUT", "/api/v1/tags", {"IDs": [mid], "Tags": tags},
                                              allowed=(200, 400), kind="tags")
        finally:
            end(self.reg, entry)
        if status == 400:
            if b"max-keywords" not in payload:
                self.fail("PUT /api/v1/tags %s: 400 %r" % (tags, payload))
            self.own_tags.pop(mid, None)
            return
        self.own_tags[mid] = (frozenset(tags), t)

    def op_delete(self):
        ids = self.picks() if self.known else []
        if not ids:
            return self.op_list()
        self.request("DELETE", "/api/v1/messages", {"IDs": ids}, kind="delete")
        now = time.monotonic()
        with self.reg.lock:
            for mid in ids:
                self.sh.deleted[mid] = now
        for mid in ids:
            self.forget(mid)
        # Gone for this actor at once: the next request must say so.
        status, _, _ = self.request("GET", "/api/v1/message/%s/headers" % ids[0],
                                    allowed=(404,), kind="headers")

    def op_send(self):
        sid = self.reg.new_id("h")
        word = "tok%s" % sid
        body = {"From": {"Email": "api%d@example.test" % self.idx},
                "To": [{"Email": "rcpt%d@example.test" % self.rng.randint(0, 3)}],
                "Subject": "stress send %s" % sid,
                "Text": "sent over the API with %s inside\n" % word,
                "Headers": {"X-Stress-Id": sid}}
        self.reg.record_sent(sid, "send", None)
        status, payload, _ = self.request("POST", "/api/v1/send", body, kind="send")
        try:
            mid = json.loads(payload)["ID"]
        except (ValueError, KeyError, TypeError):
            self.fail("POST /api/v1/send: %r" % payload)
        if not isinstance(mid, str) or not mid.isdigit():
            self.fail("POST /api/v1/send: ID %r" % (mid,))
        self.sid_of[mid] = sid
        self.known.append(mid)
        self.sent.append((mid, word))
        # Parked or indexed first: a search right after the reply finds it.
        path = "/api/v1/search?query=%s" % word
        _, env, self.t_req = self.get_json(path, "search")
        self.check_envelope(path, env)
        self.tally("found right after send")
        if mid not in [s["ID"] for s in env["messages"]]:
            status, _, _ = self.request("GET", "/api/v1/message/%s/headers" % mid,
                                        allowed=(200, 404), kind="headers")
            if status == 200:
                self.fail("search %r right after POST /api/v1/send gave %s, not its "
                          "message %s" % (word, [s["ID"] for s in env["messages"]], mid))

    def op_wait(self):
        if self.sent and self.rng.random() < 0.4:
            mid, word = self.rng.choice(self.sent)
            query, after, timeout = word, None, 2
            # Words match by prefix: tokh1 finds tokh12 too.
            has = lambda m: (summary_sid(m) or "").startswith(word[3:])
        else:
            query, after, timeout = "subject:stress", self.max_id, 1
            has = lambda m: int(m["ID"]) > after and "stress" in m["Subject"]
        path = "/api/v1/wait?query=%s&timeout=%d%s" % (
            quote(query), timeout, "&after=%d" % after if after is not None else "")
        t0 = time.monotonic()
        status, msg, t = self.get_json(path, "wait", allowed=(200, 408))
        took = time.monotonic() - t0
        if status == 408:
            if took < timeout - 0.05:
                self.fail("GET %s: 408 after %.3f s" % (path, took))
            if after is None:
                # Its own message: gone, or the wait should have found it.
                s, _, _ = self.request("GET", "/api/v1/message/%s/headers" % mid,
                                       allowed=(200, 404), kind="headers")
                if s == 200:
                    self.fail("GET %s: 408 but message %s matches it" % (path, mid))
            return
        bad = typed(msg, MESSAGE)
        if bad:
            self.fail("GET %s: %s" % (path, ", ".join(bad)))
        if not has(msg):
            self.fail("GET %s gave message %s %r, which does not match"
                      % (path, msg["ID"], msg["Subject"]))
        self.check_alive(path, msg["ID"], t)
        self.check_inbox(path, msg["ID"], msg["Inbox"])

    def op_foreign(self):
        """A scoped actor asks for another inbox's message: 404, never data."""
        with self.reg.lock:
            foreign = [k for k, v in self.sh.inbox_of.items() if v != self.inbox[0]][-50:]
        if not foreign:
            return self.op_list()
        mid = self.rng.choice(foreign)
        suffix = self.rng.choice(("", "/headers", "/raw"))
        self.request("GET", "/api/v1/message/%s%s" % (mid, suffix), allowed=(404,),
                     kind="foreign")

    # -- the companion IMAP view: HTTP changes reach IMAP sessions

    def op_imap(self):
        view = self.imap_view()
        if view is None:
            return
        uids, flags, sids = view
        counts = collections.Counter(sids.values())
        cands = [u for u in uids if u in sids and counts[sids[u]] == 1 and
                 "\\Seen" not in flags.get(u, ())]
        if not cands:
            return
        uid = self.rng.choice(cands)
        sid = sids[uid]
        path = "/api/v1/search?query=tok%s&limit=100" % sid
        _, env, self.t_req = self.get_json(path, "search")
        self.check_envelope(path, env)
        same = [s["ID"] for s in env["messages"] if summary_sid(s) == sid]
        if len(same) != 1:
            return              # a copy in another mailbox, or not indexed as text
        mid = same[0]
        if self.rng.random() < 0.7:
            t = time.monotonic()
            self.request("PUT", "/api/v1/messages", {"IDs": [mid], "Read": True}, kind="read")
            self.read_at[mid] = t
            self.await_imap(uid, lambda: "\\Seen" in self.imap_flags.get(uid, ()), t,
                            "\\Seen set over HTTP on message %s" % mid, "imap-seen")
        else:
            t = time.monotonic()
            self.request("DELETE", "/api/v1/messages", {"IDs": [mid]}, kind="delete")
            with self.reg.lock:
                self.sh.deleted[mid] = time.monotonic()
            self.forget(mid)
            self.await_imap(uid, lambda: uid not in self.imap_uids, t,
                            "the EXPUNGE of message %s deleted over HTTP" % mid, "imap-expunge")

    def imap_cmd(self, text, want=(b"OK",)):
        self.imap_tag += 1
        tag = b"c%d" % self.imap_tag
        self.log("I: %s" % text)
        self.imap.send(tag + b" " + text.encode() + b"\r\n")
        while True:
            line = self.imap.line(HTTP_TIMEOUT)
            if line.startswith(tag + b" "):
                self.log("I: %s" % line[:200].decode("utf-8", "replace"))
                if line.split(b" ", 2)[1] not in want:
                    self.fail("companion IMAP %s: %r" % (text, line))
                return
            self.imap_untagged(line)

    def imap_untagged(self, line):
        m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE|FETCH)", line)
        if not m:
            return
        n, what = int(m.group(1)), m.group(2)
        if what == b"EXISTS":
            self.imap_uids += [None] * (n - len(self.imap_uids))
        elif what == b"EXPUNGE":
            u = self.imap_uids.pop(n - 1)
            self.imap_flags.pop(u, None)
        else:
            um = re.search(rb"UID (\d+)", line)
            fm = re.search(rb"FLAGS \(([^)]*)\)", line)
            u = int(um.group(1)) if um else self.imap_uids[n - 1]
            self.imap_uids[n - 1] = u
            if fm and u is not None:
                self.imap_flags[u] = set(fm.group(1).decode().split())
            sm = SID_RE.search(line)
            if sm and u is not None:
                self.imap_sids[u] = sm.group(1).decode()

    def imap_view(self):
        """EXAMINE INBOX of the actor's inbox; its UIDs, flags, stress ids."""
        if self.imap is None:
            self.imap = RawIMAP(self.drv.server.addr("imap"))
            self.imap.line(HTTP_TIMEOUT)
            self.imap_tag = 0
            self.imap_cmd('LOGIN "%s" "%s"' % self.inbox)
        self.imap_uids, self.imap_flags, self.imap_sids = [], {}, {}
        self.imap_cmd("EXAMINE INBOX")
        if not self.imap_uids:
            return None
        # NO [EXPUNGEISSUED] when another session expunged meanwhile.
        self.imap_cmd("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-STRESS-ID)])",
                      want=(b"OK", b"NO"))
        return list(self.imap_uids), self.imap_flags, self.imap_sids

    def await_imap(self, uid, done, t, what, kind):
        deadline = time.monotonic() + NOTIFY_LAG
        while True:
            self.imap_cmd("NOOP")
            if done():
                break
            if uid not in self.imap_uids:
                return          # expunged by someone else meanwhile
            if time.monotonic() > deadline:
                with self.reg.lock:
                    excused = self.sh.cleared(self.scope, t, time.monotonic())
                if kind == "imap-seen" and excused:
                    return
                self.fail("companion IMAP session (EXAMINE INBOX) did not see %s "
                          "(UID %d) within %.0f s" % (what, uid, NOTIFY_LAG))
            time.sleep(0.05)
        with self.reg.lock:
            self.sh.stats[kind] += 1

    # -- the loop

    def step(self):
        ops = [(0.14, self.op_list), (0.16, self.op_search), (0.12, self.op_get),
               (0.05, self.op_headers), (0.08, self.op_raw), (0.1, self.op_read),
               (0.1, self.op_tags), (0.04, self.op_delete), (0.08, self.op_send),
               (0.05, self.op_wait)]
        if self.inbox:
            ops += [(0.03, self.op_foreign), (0.05, self.op_imap)]
        r = self.rng.random() * sum(w for w, _ in ops)
        for w, op in ops:
            if r < w:
                return op()
            r -= w
        return self.op_list()


class Stream:
    """One GET /api/v1/events read by a thread, checked event by event."""

    def __init__(self, drv, idx, inbox):
        self.drv = drv
        self.reg = drv.reg
        self.idx = idx
        self.inbox = inbox
        self.name = "sse%d" % idx
        self.transcript = collections.deque(maxlen=TRANSCRIPT_LINES)
        self.last_seq = 0
        self.new = set()        # IDs announced
        self.alive = set()      # IDs announced and not deleted since
        self.history = collections.defaultdict(list)    # ID -> [(seq, kind, time)]
        self.resumed = False    # reconnected, no event yet
        self.unsure = 0         # events lost: IDs up to this one may be anything
        self.events = collections.Counter()
        self.resp = None
        self.lock = threading.Lock()
        self.closing = False

    def fail(self, what):
        mids = re.findall(r"message (\d+)", what)
        if mids:
            what += "; its events on this stream (id, kind, s): %s" % self.history.get(mids[0])
        raise ModelError("%s (%s): %s" % (self.name, self.inbox[0] if self.inbox else "*", what))

    def check(self, name, ok, what):
        """A check that STRESS_LAX may turn into a counted warning."""
        if ok:
            return
        if name not in self.drv.lax:
            self.fail("[%s] %s" % (name, what))
        with self.reg.lock:
            self.reg.warnings[name] += 1
            self.reg.first_warning.setdefault(name, "%s: %s; events (id, kind, s): %s" % (
                self.name, what, self.history.get(re.findall(r"message (\d+)", what)[0])))

    def open(self, last_id=None):
        host, port = self.drv.server.addr("http")
        self.conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT)
        h = http_helpers.basic(*self.inbox) if self.inbox else {}
        if last_id is not None:
            h["Last-Event-ID"] = str(last_id)
        self.conn.request("GET", "/api/v1/events", headers=h)
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            self.fail("GET /api/v1/events: %d" % self.resp.status)

    def run(self):
        seq, kind, data = None, None, []
        while True:
            line = self.resp.readline()
            if not line:
                if self.closing:
                    return
                self.reconnect()
                seq, kind, data = None, None, []
                continue
            line = line.rstrip(b"\r\n").decode("utf-8", "replace")
            if line:
                self.transcript.append(line[:300])
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and kind is not None:
                self.event(seq, kind, "\n".join(data))
                seq, kind, data = None, None, []

    def reconnect(self):
        """A stream that fell 1 MB behind (a Python thread among many) is
        closed by the server; an EventSource resumes with Last-Event-ID,
        from the last 1,024 events."""
        self.conn.close()
        with self.lock:
            self.events["reconnect"] += 1
        self.transcript.append("(reconnects with Last-Event-ID: %d)" % self.last_seq)
        self.resumed = True
        self.open(self.last_seq)

    def resync(self, seq):
        """Events lost between two connections: what the stream knew may
        have changed unseen, and messages may have come whose `new` was
        lost (their IDs are at most the newest now: one deleted since has
        no events to come); only what it learns from now on is checked."""
        lister = Actor(self.drv, 200 + self.idx, self.inbox, 0)
        try:
            _, env, _ = lister.get_json("/api/v1/messages?limit=1", "list")
        finally:
            lister.close()
        newest = [int(m["ID"]) for m in env["messages"]]
        with self.lock:
            self.events["gap"] += 1
            self.unsure = max([self.unsure] + [int(k) for k in self.new] + newest)
            self.alive.clear()
        self.transcript.append("(events %d..%d lost)" % (self.last_seq + 1, seq - 1))

    def event(self, seq, kind, data):
        with self.lock:
            self.events[kind] += 1
        if seq is None:
            self.fail("%s event without id" % kind)
        if kind == "stats":
            if seq < self.last_seq:
                self.fail("stats event id %d after %d" % (seq, self.last_seq))
            return
        if seq <= self.last_seq:
            self.fail("%s event id %d after %d (ids must increase)" % (kind, seq, self.last_seq))
        if self.resumed and seq > self.last_seq + 1:
            self.resync(seq)
        self.resumed = False
        self.last_seq = seq
        try:
            obj = json.loads(data)
        except ValueError:
            self.fail("%s event data not JSON: %r" % (kind, data[:200]))
        mid = obj.get("ID") if isinstance(obj, dict) else None
        if not isinstance(mid, str):
            self.fail("%s event without a string ID: %r" % (kind, data[:200]))
        with self.lock:
            self.history[mid].append((seq, kind, round(time.monotonic() - self.drv.t0, 3)))
            if kind == "new":
                bad = typed(obj, SUMMARY)
                if bad:
                    self.fail("new event %s: %s" % (mid, ", ".join(bad)))
                if self.inbox and obj["Inbox"] != self.inbox[0]:
                    self.fail("new event for message %s of inbox %r" % (mid, obj["Inbox"]))
                # An IMAP MOVE keeps the message's ID: `delete` (it left its
                # mailbox), then `new` (it is in the other one).
                if mid in self.alive:
                    self.fail("new event for message %s twice, no delete between" % mid)
                self.alive.add(mid)
                self.new.add(mid)
            elif kind == "delete":
                # A `new` whose message is gone when the queue gets to it is
                # dropped, and its `delete` with it (test_cross_stress.py
                # SseMoveThenExpungeTest; it was a bug: sse-unannounced).
                self.check("sse-unannounced", mid in self.alive or int(mid) <= self.unsure,
                           "delete event for message %s, which the stream did not announce "
                           "or deleted already" % mid)
                self.alive.discard(mid)
            elif kind == "update":
                if mid not in self.alive and int(mid) > self.unsure:
                    self.fail("update event for message %s, not announced or deleted" % mid)
                if not isinstance(obj.get("Read"), bool) or not isinstance(obj.get("Tags"), list):
                    self.fail("update event %r" % data[:200])

    def final_check(self, actor):
        """Every message announced and not deleted on the stream exists,
        once the stream had SSE_DRAIN seconds to report deletions."""
        exists = set()
        while True:
            _, env, _ = actor.get_json("/api/v1/messages?start=%d&limit=500" % len(exists),
                                       "list")
            exists |= set(s["ID"] for s in env["messages"])
            if not env["messages"]:
                break
        deadline = time.monotonic() + SSE_DRAIN
        while True:
            with self.lock:
                missing = self.alive - exists
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if missing:
            self.fail("messages %s were announced, are gone, and no delete event came"
                      % sorted(missing, key=int)[:20])
        return len(self.new)

    def close(self):
        self.closing = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.conn.close()
