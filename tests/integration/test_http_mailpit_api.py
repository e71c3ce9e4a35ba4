"""The HTTP API with the npm client fixtures use: mailpit-api 2.1.0,
unchanged, pointed at mailsnare's base URL. Messages arrive over SMTP
(and one through the client's sendMessage); the client lists, searches,
reads, tags, marks read and deletes them, and what it gets is checked
against what was sent and against the store (the CLI)."""

import base64
import hashlib
import json
import os
import tempfile

import harness
import node_helpers
from imap_helpers import new_inbox, smtp_send

SCRIPT_TIMEOUT = 90
VERSION = "2.1.0"

SCRIPT = r"""
'use strict';
const { MailpitClient } = require('mailpit-api');
const cfg = JSON.parse(process.argv[2]);
const b64 = async blob => Buffer.from(await blob.arrayBuffer()).toString('base64');

(async () => {
    const mp = new MailpitClient(cfg.base, cfg.user ? { auth: { username: cfg.user,
                                                              password: cfg.pass } } : undefined);
    const out = {};
    out.info = await mp.getInfo();
    out.list = await mp.listMessages();
    out.page = await mp.listMessages(1, 1);
    const plain = cfg.plain, multi = cfg.multi;
    out.summary = await mp.getMessageSummary(multi);
    out.latest = await mp.getMessageSummary();
    out.headers = await mp.getMessageHeaders(plain);
    out.source = await mp.getMessageSource(plain);
    const att = out.summary.Attachments[0];
    out.attachment = att ? await b64(await mp.getMessageAttachment(multi, att.PartID)) : null;
    out.html = await mp.renderMessageHTML(multi);
    out.text = await mp.renderMessageText(plain);
    out.search = await mp.searchMessages({ query: 'subject:Welcome' });
    out.searchNone = await mp.searchMessages({ query: 'subject:"no such subject"' });

    out.sent = await mp.sendMessage({
        From: { Email: 'api@example.test', Name: 'API Sender' },
        To: [{ Email: 'someone@example.test' }],
        Subject: 'Sent through the API',
        Text: 'Body from sendMessage.',
        Tags: ['from-api'],
    });
    out.waited = await mp.waitForMessage({ query: 'subject:"Sent through the API"' },
                                         { timeout: 10000, interval: 100 });

    await mp.setTags({ IDs: [plain], Tags: ['alpha', 'beta'] });
    out.tags = await mp.getTags();
    out.tagged = await mp.getMessageSummary(plain);
    await mp.renameTag('alpha', 'gamma');
    await mp.deleteTag('beta');
    out.retagged = await mp.getMessageSummary(plain);

    out.readSet = await mp.setReadStatus({ IDs: [multi], Read: false });
    out.afterUnread = await mp.listMessages();
    await mp.setReadStatus({ Read: true });
    out.afterAllRead = await mp.listMessages();

    out.deleteOne = await mp.deleteMessages({ IDs: [plain] });
    out.afterDeleteOne = await mp.listMessages();
    out.deleteSearch = await mp.deleteMessagesBySearch({ query: 'subject:"Sent through the API"' });
    out.afterDeleteSearch = await mp.listMessages();
    await mp.deleteMessages();
    out.afterDeleteAll = await mp.listMessages();
    process.stdout.write(JSON.stringify({ result: out }) + '\n');
})().catch(err => {
    process.stdout.write(JSON.stringify({ error: String((err && err.stack) || err) }) + '\n');
    process.exit(1);
});
"""

MULTI = (b"From: Alice Example <alice@example.test>\r\n"
         b"To: Bob <bob@example.test>, carol@example.test\r\n"
         b"Subject: Report with an attachment\r\n"
         b"Message-ID: <multi-1@example.test>\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
         b"\r\n"
         b"--b1\r\n"
         b"Content-Type: multipart/alternative; boundary=\"b2\"\r\n"
         b"\r\n"
         b"--b2\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n"
         b"\r\n"
         b"Plain version.\r\n"
         b"--b2\r\n"
         b"Content-Type: text/html; charset=iso-8859-1\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n"
         b"\r\n"
         b"<p>Caf=E9 <b>HTML</b></p>\r\n"
         b"--b2--\r\n"
         b"--b1\r\n"
         b"Content-Type: text/csv; name=\"data.csv\"\r\n"
         b"Content-Disposition: attachment; filename=\"data.csv\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"\r\n"
         b"YSxiLGMKMSwyLDMK\r\n"
         b"--b1--\r\n")

PLAIN = (b"From: Dev <dev@example.test>\r\n"
         b"To: user@example.test\r\n"
         b"Subject: Welcome aboard\r\n"
         b"Message-ID: <plain-1@example.test>\r\n"
         b"\r\n"
         b"Hello and welcome.\r\n")


class MailpitApiClient(harness.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node_path = node_helpers.ensure_package("mailpit-api", VERSION)
        super().setUpClass()
        fd, cls.script = tempfile.mkstemp(suffix=".cjs")
        with os.fdopen(fd, "w") as f:
            f.write(SCRIPT)

    @classmethod
    def tearDownClass(cls):
        os.unlink(cls.script)
        super().tearDownClass()

    def run_client(self, **cfg):
        host, port = self.server.addr("http")
        cfg["base"] = "http://%s:%d" % (host, port)
        last = node_helpers.run_script(self.script, self.node_path, json.dumps(cfg),
                                       SCRIPT_TIMEOUT)
        self.assertIn("result", last, last)
        return last["result"]

    def test_scoped_inbox_round_trip(self):
        user, password = new_inbox(self.server, "mp")
        other, other_pw = new_inbox(self.server, "mpo")
        foreign = smtp_send(self.server, other, other_pw, PLAIN)
        plain = smtp_send(self.server, user, password, PLAIN)
        multi = smtp_send(self.server, user, password, MULTI,
                          rcpts=("bob@example.test", "carol@example.test", "hidden@example.test"))
        stored_plain = self.server.message_bytes(plain)
        out = self.run_client(user=user, plain=str(plain), multi=str(multi), **{"pass": password})

        # Scoped to the inbox: the other inbox's message never shows.
        self.assertEqual(out["list"]["total"], 2)
        self.assertEqual(out["list"]["messages_count"], 2)
        self.assertEqual([m["ID"] for m in out["list"]["messages"]], [str(multi), str(plain)])
        self.assertNotIn(str(foreign), [m["ID"] for m in out["list"]["messages"]])
        self.assertEqual(out["list"]["unread"], 2)
        self.assertEqual(out["info"]["Messages"], 2)
        self.assertEqual(out["page"]["start"], 1)
        self.assertEqual([m["ID"] for m in out["page"]["messages"]], [str(plain)])

        first = out["list"]["messages"][0]
        self.assertEqual(first["Subject"], "Report with an attachment")
        self.assertEqual(first["From"], {"Name": "Alice Example", "Address": "alice@example.test"})
        self.assertEqual([a["Address"] for a in first["To"]],
                         ["bob@example.test", "carol@example.test"])
        self.assertEqual(first["Attachments"], 1)
        self.assertEqual(first["MessageID"], "multi-1@example.test")
        self.assertIn("hidden@example.test", first["RcptTo"])

        s = out["summary"]
        self.assertEqual(s["ID"], str(multi))
        self.assertEqual(s["Text"].strip(), "Plain version.")
        self.assertIn("Caf\u00e9 <b>HTML</b>", s["HTML"])
        self.assertEqual(len(s["Attachments"]), 1)
        att = s["Attachments"][0]
        self.assertEqual(att["FileName"], "data.csv")
        self.assertEqual(att["ContentType"], "text/csv")
        self.assertEqual(att["PartID"], "2")
        self.assertEqual(att["Size"], 12)
        body = base64.b64decode("YSxiLGMKMSwyLDMK")
        self.assertEqual(att["Checksums"], {"MD5": hashlib.md5(body).hexdigest(),
                                            "SHA1": hashlib.sha1(body).hexdigest(),
                                            "SHA256": hashlib.sha256(body).hexdigest()})
        self.assertEqual(out["attachment"], "YSxiLGMKMSwyLDMK")
        self.assertIn("Caf\u00e9", out["html"])
        self.assertEqual(out["latest"]["ID"], str(multi))

        self.assertEqual(out["headers"]["Subject"], ["Welcome aboard"])
        self.assertEqual(out["source"].encode().replace(b"\r\n", b"\n"),
                         stored_plain.replace(b"\r\n", b"\n"))
        self.assertEqual(out["text"].strip(), "Hello and welcome.")
        self.assertEqual([m["ID"] for m in out["search"]["messages"]], [str(plain)])
        self.assertEqual(out["searchNone"]["messages_count"], 0)

        # sendMessage lands in the authenticated inbox, through SMTP's path.
        sent = out["sent"]["ID"]
        self.assertEqual(out["waited"]["ID"], sent)
        self.assertEqual(out["waited"]["Subject"], "Sent through the API")
        self.assertEqual(out["waited"]["Tags"], ["from-api"])
        self.assertEqual(out["waited"]["Inbox"], user)

        self.assertEqual(sorted(out["tags"]), ["alpha", "beta", "from-api"])
        self.assertEqual(out["tagged"]["Tags"], ["alpha", "beta"])
        self.assertEqual(out["retagged"]["Tags"], ["gamma"])

        self.assertEqual(out["readSet"], "ok")
        # GET of a message marked it read; PUT Read:false cleared it again.
        unread = {m["ID"]: not m["Read"] for m in out["afterUnread"]["messages"]}
        self.assertTrue(unread[str(multi)])
        self.assertEqual(out["afterAllRead"]["unread"], 0)

        self.assertEqual(out["deleteOne"], "ok")
        self.assertEqual([m["ID"] for m in out["afterDeleteOne"]["messages"]],
                         [sent, str(multi)])
        self.assertEqual(out["deleteSearch"], "ok")
        self.assertEqual([m["ID"] for m in out["afterDeleteSearch"]["messages"]], [str(multi)])
        self.assertEqual(out["afterDeleteAll"]["total"], 0)
        # "Delete all" with scoped credentials deletes that inbox's mail only.
        self.assertEqual(self.server.message_ids(user), [])
        self.assertEqual(self.server.message_ids(other), [foreign])


if __name__ == "__main__":
    harness.main()
