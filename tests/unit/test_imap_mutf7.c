/* Modified UTF-7 mailbox names (RFC 3501 §5.1.3) both ways. */
#include <criterion/criterion.h>
#include <string.h>

#include "mailsnare/imap.h"

static void roundtrip(const char *utf8, const char *mutf7)
{
	char out[256];

	cr_assert_eq(imap_utf8_to_mutf7(utf8, out, sizeof(out)), (int)strlen(mutf7), "%s", utf8);
	cr_assert_str_eq(out, mutf7);
	cr_assert_eq(imap_mutf7_to_utf8(mutf7, strlen(mutf7), out, sizeof(out)), (int)strlen(utf8));
	cr_assert_str_eq(out, utf8);
}

Test(imap_mutf7, rfc3501_and_common_names)
{
	roundtrip("INBOX", "INBOX");
	roundtrip("Sent Items", "Sent Items");
	roundtrip("a&b", "a&-b");
	/* RFC 3501 §5.1.3 example: ~peter/mail/台北/日本語 */
	roundtrip("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	    "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	roundtrip("R\xc3\xa9sum\xc3\xa9", "R&AOk-sum&AOk-");
	/* Outside the BMP: a surrogate pair. */
	roundtrip("\xf0\x9f\x93\xa7 mail", "&2D3c5w- mail");
}

Test(imap_mutf7, malformed_rejected)
{
	const char *bad[] = {
		"&AOk",        /* no closing '-' */
		"&AGE-",       /* printable ASCII must not be encoded */
		"&2D0-",       /* a lone high surrogate */
		"&3KcAYQ-",    /* a lone low surrogate */
		"&AOk!-",      /* not modified base64 */
		"a\x01" "b",   /* control character */
		"caf\xc3\xa9", /* raw 8-bit */
		"a&b",         /* '&' that opens no run */
		"&Jjo",        /* a run that never ends */
		"&",           /* '&' at the end */
		"&AAA-",       /* encoded NUL */
		"&ACY-",       /* encoded '&' (it is "&-") */
		"&AH4-",       /* encoded '~': printable, stands for itself */
		"&AOk-&AOk-",  /* two runs where one would do */
		"&AOk-&AOk",   /* ... and the second unclosed */
		"&A-",         /* six bits: less than one UTF-16 unit */
		"&AOl-",       /* padding bits not zero */
		"&AOkA-",      /* a whole sextet of padding */
		"&2D3c59g9-",  /* a pair, then a lone high surrogate */
		"&2D3YPQ-",    /* a high surrogate followed by another */
	};
	char out[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(imap_mutf7_to_utf8(bad[i], strlen(bad[i]), out, sizeof(out)), -1,
		    "%s", bad[i]);
	cr_assert_eq(imap_utf8_to_mutf7("caf\xc3", out, sizeof(out)), -1, "cut UTF-8");
	cr_assert_eq(imap_utf8_to_mutf7("\xed\xa0\x80", out, sizeof(out)), -1, "surrogate");
}

/* RFC 3501 §5.1.3: "&-" is "&"; characters other than printable ASCII,
 * controls and DEL among them, are in modified base64. */
Test(imap_mutf7, valid_edges)
{
	roundtrip("&", "&-");
	roundtrip("&&", "&-&-");
	roundtrip("\xe2\x98\xba", "&Jjo-");          /* U+263A, 18 bits: 2 of padding */
	roundtrip("\xc3\xa9&", "&AOk-&-");            /* a run, then "&-" */
	roundtrip("&\xc3\xa9", "&-&AOk-");
	roundtrip("a\x01" "b", "a&AAE-b");            /* a control character */
	roundtrip("\x7f", "&AH8-");                   /* DEL is not printable */
	roundtrip("\xc3\xa9\xc3\xa9", "&AOkA6Q-");   /* two in one run */
	roundtrip("Entw\xc3\xbcrfe/\xc3\xa9t\xc3\xa9", "Entw&APw-rfe/&AOk-t&AOk-");
}

Test(imap_mutf7, bounded_output)
{
	char out[8];

	cr_assert_eq(imap_utf8_to_mutf7("R\xc3\xa9sum\xc3\xa9", out, sizeof(out)), -1);
	cr_assert_eq(imap_mutf7_to_utf8("abcdefghij", 10, out, sizeof(out)), -1);
	cr_assert_eq(imap_mutf7_to_utf8("abcdefg", 7, out, sizeof(out)), 7);
}
