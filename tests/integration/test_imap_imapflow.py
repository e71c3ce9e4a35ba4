"""IMAP with the Node.js client imapflow (from npm): connect, LIST, FETCH
(envelope, flags, source), IDLE until a message delivered over SMTP during
the wait arrives, MOVE to Trash, delete; over plain IMAP and implicit TLS,
with COMPRESS=DEFLATE (imapflow turns it on when offered) and without.

The test writes a small Node script and asserts on the JSON it prints.
imapflow is installed with `npm install --no-save` into
tests/integration/node_modules of the source tree (or of the build tree
when the source tree is read-only), once; the test is skipped, saying
why, when node or npm is missing."""

import base64
import json
import os
import select
import smtplib
import subprocess
import tempfile
import time

import harness
import node_helpers
from harness import SOCK_TIMEOUT

SCRIPT_TIMEOUT = 60

SCRIPT = r"""
'use strict';
const { ImapFlow } = require('imapflow');
const cfg = JSON.parse(process.argv[2]);

function emit(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }
function within(ms, promise, what) {
    let timer;
    const limit = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out: ' + what)), ms);
    });
    return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}
const b64 = buf => Buffer.from(buf).toString('base64');

(async () => {
    const client = new ImapFlow({
        host: cfg.host, port: cfg.port, secure: cfg.secure,
        doSTARTTLS: cfg.secure ? undefined : false,
        tls: { rejectUnauthorized: false },
        auth: { user: cfg.user, pass: cfg.pass },
        logger: false,
        disableCompression: !cfg.compress,
        disableAutoIdle: true,
    });
    client.on('error', err => { emit({ error: 'client error: ' + err.message }); process.exit(1); });
    const out = {};
    await within(10000, client.connect(), 'connect');
    out.capabilities = Array.from(client.capabilities.keys());

    const boxes = await client.list();
    out.mailboxes = boxes.map(b => ({ path: b.path, specialUse: b.specialUse || null }));

    const mb = await client.mailboxOpen('INBOX');
    out.exists = mb.exists;
    out.messages = [];
    for await (const m of client.fetch('1:*', { uid: true, envelope: true, flags: true, source: true })) {
        out.messages.push({ uid: m.uid, subject: m.envelope.subject,
                            flags: Array.from(m.flags), source: b64(m.source) });
    }

    // IDLE: the test delivers a message once we say we are idling.
    const existsSeen = new Promise(resolve => client.once('exists', resolve));
    const idleDone = client.idle();
    await within(5000, (async () => {
        while (!client.idling) await new Promise(r => setTimeout(r, 5));
    })(), 'IDLE start');
    emit({ idling: true });
    const t0 = process.hrtime.bigint();
    const ev = await within(10000, existsSeen, 'EXISTS during IDLE');
    out.idle_exists = { count: ev.count, prevCount: ev.prevCount,
                        ms: Number(process.hrtime.bigint() - t0) / 1e6 };

    // The next command ends the IDLE.
    const newest = await client.fetchOne('*', { uid: true, envelope: true, source: true });
    await within(5000, idleDone, 'IDLE end');
    out.new_message = { uid: newest.uid, subject: newest.envelope.subject, source: b64(newest.source) };

    const moved = await client.messageMove(String(out.messages[0].uid), 'Trash', { uid: true });
    out.moved = { destination: moved.destination,
                  uidMap: moved.uidMap ? Array.from(moved.uidMap.entries()) : null };
    out.deleted = await client.messageDelete(String(newest.uid), { uid: true });
    out.inbox_uids = await client.search({ all: true }, { uid: true });

    await client.mailboxOpen('Trash');
    out.trash = [];
    for await (const m of client.fetch('1:*', { uid: true, envelope: true })) {
        out.trash.push(m.envelope.subject);
    }
    await client.logout();
    emit({ result: out });
})().catch(err => {
    emit({ error: String((err && err.stack) || err), code: err && err.code,
           response: err && err.responseText });
    process.exit(1);
});
"""


def new_inbox(server, tag):
    name = "flow-%s-%d" % (tag, os.getpid())
    server.inbox_add(name, "pw-" + name)
    return name, "pw-" + name


def deliver(server, user, password, subject, body):
    msg = (b"From: Sender <sender@example.test>\r\nTo: rcpt@example.test\r\n"
           b"Subject: " + subject.encode() + b"\r\n"
           b"Message-ID: <" + subject.replace(" ", ".").encode() + b"@example.test>\r\n"
           b"Date: Tue, 04 Mar 2025 10:20:30 +0000\r\n\r\n" + body)
    host, port = server.addr("smtp")
    with smtplib.SMTP(host, port, timeout=SOCK_TIMEOUT) as s:
        s.login(user, password)
        s.mail("sender@example.test")
        s.rcpt("rcpt@example.test")
        code, resp = s.data(msg)
        if code != 250:
            raise AssertionError("DATA: %d %r" % (code, resp))
    return harness.queued_id(resp), msg


class ImapflowTest(harness.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.node_path = node_helpers.ensure_package("imapflow")
        super().setUpClass()
        cls.tmpdir = tempfile.TemporaryDirectory(prefix="mailsnare-imapflow-")
        cls.script = os.path.join(cls.tmpdir.name, "flow.js")
        with open(cls.script, "w") as f:
            f.write(SCRIPT)

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()
        super().tearDownClass()

    def run_flow(self, tag, tls, compress):
        user, password = new_inbox(self.server, tag)
        ids = [deliver(self.server, user, password, "first %s" % tag,
                       b"First body.\r\n" * 50),
               deliver(self.server, user, password, "second %s" % tag,
                       b"Second body, a little longer.\r\n" * 3000)]
        host, port = self.server.addr("imaps" if tls else "imap")
        cfg = {"host": host, "port": port, "secure": tls, "compress": compress,
               "user": user, "pass": password}
        env = dict(harness.clean_env(), NODE_PATH=self.node_path)
        log_offset = self.server.log_size()
        proc = subprocess.Popen(["node", self.script, json.dumps(cfg)], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        # Wait for the script to idle, then deliver.
        first = b""
        deadline = time.monotonic() + SCRIPT_TIMEOUT
        while not first.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                proc.kill()
                self.fail("imapflow script did not start IDLE in time")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            first += chunk
        status = json.loads(first.decode().splitlines()[0]) if first.strip() else {}
        if not status.get("idling"):
            rest, err = proc.communicate(timeout=SCRIPT_TIMEOUT)
            self.fail("imapflow script failed before IDLE: %r %r\nstderr: %s"
                      % (status, rest[-2000:], err.decode("utf-8", "replace")[-2000:]))
        ids.append(deliver(self.server, user, password, "third %s" % tag, b"Sent during IDLE.\r\n"))
        rest, err = proc.communicate(timeout=SCRIPT_TIMEOUT)
        lines = (first + rest).decode("utf-8", "replace").splitlines()
        last = json.loads(lines[-1]) if lines else {}
        if "result" not in last:
            self.fail("imapflow script failed: %s\nstderr: %s"
                      % (lines[-1:] if lines else "(no output)",
                         err.decode("utf-8", "replace")[-2000:]))
        self.assertEqual(proc.returncode, 0)
        out = last["result"]

        self.assertIn("IDLE", out["capabilities"])
        self.assertIn("MOVE", out["capabilities"])
        self.assertIn("COMPRESS=DEFLATE", out["capabilities"])
        compressed = "DEFLATE on" in self.server.read_log(log_offset).decode("utf-8", "replace")
        self.assertEqual(compressed, compress, "COMPRESS used: %s" % compressed)

        boxes = {b["path"]: b["specialUse"] for b in out["mailboxes"]}
        self.assertIn("INBOX", boxes)
        for name, use in (("Trash", "\\Trash"), ("Sent", "\\Sent"), ("Drafts", "\\Drafts"),
                          ("Junk", "\\Junk")):
            self.assertEqual(boxes.get(name), use, boxes)

        self.assertEqual(out["exists"], 2)
        self.assertEqual([m["subject"] for m in out["messages"]],
                         ["first %s" % tag, "second %s" % tag])
        for m, (msg_id, _) in zip(out["messages"], ids):
            self.assertEqual(base64.b64decode(m["source"]),
                             self.server.message_bytes(msg_id))
            self.assertNotIn("\\Seen", m["flags"])

        self.assertEqual(out["idle_exists"]["count"], 3, out["idle_exists"])
        self.assertLess(out["idle_exists"]["ms"], 5000)
        self.assertEqual(out["new_message"]["subject"], "third %s" % tag)
        # deleted by now: compared with what was sent
        got = harness.strip_received(base64.b64decode(out["new_message"]["source"]))
        self.assertEqual(got, harness.normalize(ids[2][1]))

        self.assertEqual(out["moved"]["destination"], "Trash")
        self.assertEqual(len(out["moved"]["uidMap"]), 1, out["moved"])
        self.assertTrue(out["deleted"])
        self.assertEqual(out["inbox_uids"], [out["messages"][1]["uid"]])
        self.assertEqual(out["trash"], ["first %s" % tag])
        self.assertEqual(len(self.server.message_ids(user)), 2)
        return out

    def test_plain_compressed(self):
        self.run_flow("plainz", tls=False, compress=True)

    def test_tls_compressed(self):
        self.run_flow("tlsz", tls=True, compress=True)

    def test_plain_uncompressed(self):
        self.run_flow("plain", tls=False, compress=False)


if __name__ == "__main__":
    harness.main()
