#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (run once; the
files are committed). Commands from the RFCs' examples (RFC 3501, 9051,
5321, 1939, 2047, 2231, 5322) and the messages of tests/data/mime."""
import glob
import hashlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SEED8 = b"\x01\x23\x45\x67\x89\xab\xcd\xef"


def write(target, items):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for item in items:
        if isinstance(item, str):
            item = item.encode()
        name = hashlib.sha1(item).hexdigest()[:16]
        with open(os.path.join(d, name), "wb") as f:
            f.write(item)


imap = [
    "a001 CAPABILITY\r\n",
    "a002 LOGIN SMITH SESAME\r\n",
    "a003 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n",
    "A142 SELECT INBOX\r\n",
    "A004 CREATE owatagusiam/\r\n",
    "A101 LIST \"\" \"\"\r\nA102 LIST #news.comp.mail.misc \"\"\r\n",
    "A202 LIST ~/Mail/ %\r\n",
    "A003 APPEND saved-messages (\\Seen) {23}\r\nFrom: x\r\n\r\nhello!!\r\n",
    "A003 APPEND saved (\\Seen) \"05-Jan-1994 20:55:23 +0000\" {5+}\r\nhello\r\n",
    "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n",
    "A999 UID FETCH 4827313:4828442 FLAGS\r\n",
    "a FETCH 1 (BODY.PEEK[1.2.MIME] BINARY[2]<0.100> BINARY.SIZE[1])\r\n",
    "A003 STORE 2:4 +FLAGS (\\Deleted)\r\n",
    "A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
    "A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n",
    "a SEARCH RETURN (MIN MAX COUNT) OR (UID 1:5 LARGER 10) $\r\n",
    "a APPEND x ~{5}\r\nab\x00cd\r\n",
    "a ID (\"name\" \"sodr\" \"version\" \"19.34\")\r\n",
    "a NOOP\r\nb NOOP \r\n\r\nc\r\n",
    "* BAD\r\n(a) x\r\n",
    "a ENABLE UTF8=ACCEPT\r\nb SELECT \"\xc3\xa9t\xc3\xa9\"\r\n",
    "a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    "a LOGIN {4294967296}\r\n",
    "a LOGIN {100+}\r\nx\r\n",
    "a SELECT ((((((((x))))))))\r\n",
]
write("fuzz_imap_reader", [bytes([m]) + SEED8 + c.encode("latin-1")
                           for m in (0, 1) for c in imap])

write("fuzz_imap_seqset", [b"\x0a\x00\x00\x00" + s for s in
                           [b"1", b"1:*", b"*:4", b"2,4:7,9,12:*", b"$", b"4294967295",
                            b"3:1,5,5,6", b"1:4294967295", b"*"]] +
      [b"\x00\x00\x00\x00" + b"1:*", b"\xff\xff\xff\xff" + b"4294967295:*,1"])

fetch = ["ALL", "FAST", "FULL", "FLAGS", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
         "BODY[]", "BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.100>",
         "(BODY[1.2.TEXT] BODY[3.MIME] BODY[HEADER.FIELDS.NOT (X-A \"b c\")])",
         "(UID BODYSTRUCTURE BODY RFC822 RFC822.HEADER RFC822.TEXT)",
         "(BINARY.PEEK[1]<5.10> BINARY.SIZE[2])", "(FLAGS) (CHANGEDSINCE 12345)",
         "(FLAGS) (CHANGEDSINCE 1 VANISHED)", "MODSEQ", "BODY[TEXT]<0.2048>"]
write("fuzz_imap_fetchattr", [bytes([u]) + f.encode() for u in (0, 1) for f in fetch])

search = ["FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
          "CHARSET UTF-8 TEXT \"x\"", "RETURN (MIN MAX COUNT ALL) 1:* UNSEEN",
          "RETURN (SAVE) OR SUBJECT a (BODY b)", "$ UID 1:5,7", "HEADER X-Foo bar",
          "MODSEQ \"/flags/\\\\draft\" all 620162338", "LARGER 100 SMALLER 2000",
          "NOT (KEYWORD $Forwarded UNKEYWORD x)", "SENTBEFORE 1-Jan-2000 SENTON 29-Feb-2004",
          "OR OR ANSWERED DELETED OR DRAFT NEW", "CHARSET KOI8-R BODY x",
          "(REVERSE DATE SUBJECT) UTF-8 ALL", "REFERENCES", "ORDEREDSUBJECT"]
write("fuzz_imap_search", [bytes([m]) + s.encode() for m in (0, 1, 4) for s in search])

write("fuzz_imap_date", ["1-Feb-1994", "\"29-Feb-2000\"", "17-Jul-1996 02:44:25 -0700",
                         "\" 7-Jul-1996 02:44:25 +0000\"", "31-Dec-9999 23:59:59 +1400",
                         "01-Jan-1970 00:00:00 -1200", "30-Feb-2001"])

write("fuzz_imap_mutf7", ["INBOX", "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "&-", "a&-b",
                          "&AOk-t&AOk-", "\xc3\xa9t\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
                          "\xf0\x9f\x98\x80", "&2D3eAA-", "&AOk-&AOk-", "x\x01y"])

write("fuzz_imap_match", [p + "\0" + n for p, n in [
    ("*", "INBOX"), ("%", "a/b"), ("inbox", "INBOX"), ("INBOX/%", "INBOX/sub"),
    ("*a*a*a*ab", "a" * 60), ("%/%", "a/b"), ("in%", "INBOX"), ("~/Mail/%", "~/Mail/foo"),
    ("foo*bar", "foo/x/bar"), ("*%*", "abc")]])

smtp = ["EHLO bar.com", "HELO relay.example.org", "MAIL FROM:<Smith@bar.com>",
        "MAIL FROM:<> SIZE=1000 BODY=8BITMIME", "RCPT TO:<Jones@foo.com> NOTIFY=NEVER",
        "RCPT TO:<postmaster>", "RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>",
        "MAIL FROM:<\"a b\"@[192.0.2.1]> SMTPUTF8", "RCPT TO:<j\xc3\xb6rg@example.de>",
        "MAIL FROM: user@example.com", "BDAT 1000 LAST", "BDAT 0", "DATA", "RSET",
        "VRFY Smith", "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "18446744073709551615",
        "STARTTLS", "QUIT"]
write("fuzz_smtp_parse", smtp)

data = [b"Subject: x\r\n\r\n..leading dot\r\nplain\r\n.\r\nQUIT\r\n",
        b"a\nb\r\n.\n.\r\n\r\n.\r\n", b"x\r\n.\r", b".\r\n", b"\r\n.\r\n",
        b"bare\rcr\r\n" + b"x" * 1100 + b"\r\n.\r\n", b"line\n.\nsmuggled\r\n.\r\n"]
write("fuzz_smtp_data", [bytes([m]) + SEED8 + d for m in (0, 1) for d in data])

pop = ["USER mrose", "PASS secret", "APOP mrose c4c9334bac560ecc979e58001b3e22fb",
       "LIST 1", "RETR 1", "DELE 1", "TOP 1 10", "UIDL", "STAT", "CAPA", "STLS",
       "AUTH PLAIN AGFsaWNlAHNlY3JldA==", "NOOP", "RSET", "QUIT"]
msgs = ["Subject: x\r\n\r\n.dot\r\nline\r\n", "a\nb\n.\n", "no end", ".", ""]
write("fuzz_pop3_parse", [p for p in pop] + [SEED8 + m.encode() for m in msgs])

emls = []
for f in sorted(glob.glob(os.path.join(TOP, "tests", "data", "mime", "*.eml"))):
    with open(f, "rb") as fh:
        raw = fh.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    emls.append(raw)
write("fuzz_mime", [SEED8 + e for e in emls])

hdr = ["Subject: a\r\n b\r\nFrom: x@y\r\nX-A: 1\r\nbogus\r\n\r\nbody",
       "text/plain; charset=us-ascii (Plain text)",
       "message/external-body; access-type=URL;\r\n URL*0=\"ftp://\";\r\n URL*1=\"cs.utk.edu/pub\"",
       "application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A",
       "attachment; filename*0*=us-ascii'en'This%20is%20even%20more%20;\r\n filename*1*=%2A%2A%2Afun%2A%2A%2A%20; filename*2=\"isn't it!\"",
       "=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>",
       "=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
       "=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?= =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
       "(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "=?UTF-8*en?Q?caf=C3=A9?="]
write("fuzz_mime_header", [bytes([m]) + h.encode() for m in range(4) for h in hdr])

addr = ["Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
        "A Group(Some people):Chris Jones <c@(Chris's host.)public.example>, joe@example.org, John <jdoe@one.test> (my dear friend); (the end of the group)",
        "Undisclosed recipients:;", "\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>",
        "<@machine.tld:mary@example.net>, , jdoe@test   . example",
        "=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>", "nobody", "<>", "@x"]
write("fuzz_mime_address", addr)

dec = ["SGVsbG8sIFdvcmxkIQ==", "=48=65llo=\r\nworld=  \r\nend =3D x", "Zm9v\r\nYmFy",
       "\x05HelloSay hello to the world", "\x00", "caf=C3=A9 \xc3\x89t\xc3\xa9"]
# The converter's (first byte: the charset, fuzz_mime_decode.c's list).
conv = [(0, "日本語のテキスト、ｶﾀｶﾅ\r\n", "shift_jis"), (1, "日本語 ABC 語\r\n", "iso2022_jp"),
        (3, "Grüße 😀 日本\r\n", "utf-16"), (6, "中文 € 😀\r\n", "gb18030"),
        (7, "한국어 텍스트\r\n", "euc_kr")]
write("fuzz_mime_decode", [SEED8 + d.encode("latin-1") for d in dec] +
      [SEED8 + bytes([i]) + (t * 3).encode(cs) for i, t, cs in conv])

# fuzz_mime_blob's seeds are the blobs of tests/data/mime: gen_blob_seeds.c
# (built by build.sh) writes them; run "OUT/gen_blob_seeds DIR FILE.eml...".

write("fuzz_sasl", ["PLAIN\nAGFsaWNlAHNlY3JldA==", "PLAIN\n-\nYWRtaW4AYWxpY2UAc2VjcmV0",
                    "PLAIN\n=", "PLAIN\n-\n*", "LOGIN\n-\nYWxpY2U=\nc2VjcmV0",
                    "LOGIN\nYWxpY2U=\nc2VjcmV0", "login\n-\n=\n=",
                    "CRAM-MD5\n-\ndGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw",
                    "CRAM-MD5\nabc", "PLAIN\nAGFsaWNlAHNlY3JldA"])

# Mailpit search queries (its docs' examples, our additions, bad values).
write("fuzz_msg_search", [
    'to:bob@example.test subject:"two words" -from:alice',
    '!is:unread has:attachment larger:10kb smaller:"2 M"',
    'before:2024-05-01 after:"2024-05-01 13:30" after:2024-05-01T13:30:15+02:00',
    '"a phrase" \u041f\u0420\u0418\u0412\u0415\u0422 Stra\u00dfe tag:Urgent inbox:dev rcpt:x@y',
    'addressed:q message-id:<id@x> reply-to:r cc:c bcc:d is:tagged has:inline',
    'larger:abc', 'before:2024-02-30', '- ... "" to: \u023a\u1e9e\u212a',
])

# Websocket client frames (RFC 6455 §5.7's examples, masked as a client
# must; our bounds): 8 bytes of seed, one byte picking max_len, the stream.
def ws_frame(op, payload=b"", fin=True, mask=b"\x37\xfa\x21\x3d", length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | op])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([m | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


write("fuzz_ws", [SEED8 + bytes([k]) + s for k, s in [
    (4, ws_frame(1, b"Hello")),
    (4, ws_frame(1, b"Hel", fin=False) + ws_frame(0, b"lo")),
    (4, ws_frame(9, b"Hello") + ws_frame(10, b"Hello") + ws_frame(8, b"\x03\xe8")),
    (4, ws_frame(2, b"\x00" * 256) + ws_frame(2, b"\x01" * 300)),
    (5, ws_frame(2, length=65536) + b"\x00" * 64),
    (4, ws_frame(1, length=1 << 63)),
    (4, ws_frame(1, b"hi", mask=None)),
    (4, b"\xc1\x80abcd"),
    (4, ws_frame(9, b"x", fin=False) + ws_frame(9, b"x" * 126)),
    (1, ws_frame(1, b"\xff\xfe", fin=False) + ws_frame(9) + ws_frame(0, b"\xc0\xaf")),
    (0, ws_frame(1) + ws_frame(1, b"a")),
]])

# Search queries at the bounds (h26): unbalanced and nested quotes,
# invalid UTF-8, a NUL, many terms.
write("fuzz_msg_search", [
    '"' * 300, '"a "b" "c', 'subject:"x \\" y"', b"\xc0\xaf \xff\xfe to:\xed\xa0\x80",
    "a\x00b", " ".join("t%d" % i for i in range(600)), "-" * 100 + "x",
])
