/*
 * IMAP ENVELOPE and IMAP string quoting (RFC 3501 §4.3, §7.4.2).
 */
#include "mailsnare/imap_envelope.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/mime.h"

#define ENVELOPE_ADDRESSES_MAX 1000

bool imap_buf_grow(struct imap_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->failed)
		return false;
	if (n <= b->cap - b->len)
		return true;
	if (n > SIZE_MAX / 4 - b->len) {
		b->failed = true;
		return false;
	}
	while (cap - b->len < n)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void imap_buf_free(struct imap_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void imap_buf_num(struct imap_buf *b, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	imap_buf_add(b, tmp + i, sizeof(tmp) - i);
}

/* What a byte needs inside an IMAP string: nothing, a backslash before
 * it in a quoted string, or a literal (RFC 3501 §4.3: a quoted string
 * holds 7-bit text without CR, LF and NUL). */
enum { Q_PLAIN, Q_ESCAPE, Q_LITERAL };

/* The worst class of the bytes of s, in one pass (this runs for every
 * string of every ENVELOPE and BODYSTRUCTURE). */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Eight bytes at once: all of them in ' '..0x7f and none a quote or a
 * backslash (the bit tricks "hasless" and "haszero": a borrow can only
 * start at a byte below the bound, so a zero result is exact). */
static bool word_plain(uint64_t w)
{
	uint64_t bs = w ^ (ONES * '\\'), dq = w ^ (ONES * '"');

	return ((w & HIGHS) | ((w - ONES * ' ') & ~w & HIGHS) | ((bs - ONES) & ~bs & HIGHS) |
	    ((dq - ONES) & ~dq & HIGHS)) == 0;
}

static unsigned char string_class(const char *s, size_t len)
{
	unsigned char worst = Q_PLAIN;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		if (!word_plain(w))
			break;
	}
	for (; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= ' ' && c < 0x80 && c != '"' && c != '\\')
			continue;   /* the common case: plain */
		if (c == '"' || c == '\\')
			worst = Q_ESCAPE;
		else if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
			return Q_LITERAL;
	}
	return worst;
}

void imap_buf_nstring(struct imap_buf *b, const char *s, size_t len)
{
	unsigned char k;

	if (s == NULL) {
		IMAP_BUF_LIT(b, "NIL");
		return;
	}
	k = len > IMAP_QUOTED_MAX ? Q_LITERAL : string_class(s, len);
	if (k == Q_LITERAL) {
		imap_buf_addc(b, '{');
		imap_buf_num(b, len);
		IMAP_BUF_LIT(b, "}\r\n");
		imap_buf_add(b, s, len);
		return;
	}
	imap_buf_addc(b, '"');
	if (k == Q_PLAIN) {
		imap_buf_add(b, s, len);
	} else {
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '"' || s[i] == '\\')
				imap_buf_addc(b, '\\');
			imap_buf_addc(b, s[i]);
		}
	}
	imap_buf_addc(b, '"');
}

void imap_buf_cstring(struct imap_buf *b, const char *s)
{
	imap_buf_nstring(b, s, s != NULL ? strlen(s) : 0);
}

/* Moves what a buffer holds to an evbuffer (the evbuffer interface). */
static int to_evbuffer(struct imap_buf *b, struct evbuffer *out)
{
	int rc = b->failed ? -1 : b->len == 0 ? 0 : evbuffer_add(out, b->p, b->len);

	imap_buf_free(b);
	return rc;
}

int imap_envelope_write_nstring(struct evbuffer *out, const char *s, size_t len)
{
	struct imap_buf b = { 0 };

	imap_buf_nstring(&b, s, len);
	return to_evbuffer(&b, out);
}

int imap_envelope_write_cstring(struct evbuffer *out, const char *s)
{
	return imap_envelope_write_nstring(out, s, s != NULL ? strlen(s) : 0);
}

static void put_address(struct imap_buf *b, const struct mime_address *a)
{
	imap_buf_addc(b, '(');
	imap_buf_cstring(b, a->name);
	imap_buf_addc(b, ' ');
	imap_buf_cstring(b, a->adl);
	imap_buf_addc(b, ' ');
	imap_buf_cstring(b, a->mailbox);
	imap_buf_addc(b, ' ');
	imap_buf_cstring(b, a->host);
	imap_buf_addc(b, ')');
}

struct addrs {
	struct mime_address *a;
	size_t n;
};

static struct addrs parse_addrs(const char *value)
{
	struct addrs r = { NULL, 0 };

	if (value != NULL)
		r.n = mime_address_parse(value, strlen(value), ENVELOPE_ADDRESSES_MAX, &r.a);
	return r;
}

/* The list, "((...)(...))", or NIL if it has no address. */
static void put_addrs(struct imap_buf *b, const struct addrs *l)
{
	if (l->n == 0) {
		IMAP_BUF_LIT(b, "NIL");
		return;
	}
	imap_buf_addc(b, '(');
	for (size_t i = 0; i < l->n; i++)
		put_address(b, &l->a[i]);
	imap_buf_addc(b, ')');
}

/* The list for value, or From's list if value has no address. */
static void put_addrs_or_from(struct imap_buf *b, const char *value, const struct addrs *from)
{
	struct addrs l = parse_addrs(value);

	put_addrs(b, l.n > 0 ? &l : from);
	mime_addresses_free(l.a, l.n);
}

int imap_envelope_write_addresses(const char *value, struct evbuffer *out)
{
	struct imap_buf b = { 0 };
	struct addrs l = parse_addrs(value);

	put_addrs(&b, &l);
	mime_addresses_free(l.a, l.n);
	return to_evbuffer(&b, out);
}

bool imap_envelope_format(const struct mime_part *msg, struct imap_buf *b)
{
	/* From is parsed once: Sender and Reply-To default to it. */
	struct addrs from = parse_addrs(mime_part_env(msg, MIME_ENV_FROM));

	imap_buf_addc(b, '(');
	imap_buf_cstring(b, mime_part_env(msg, MIME_ENV_DATE));
	imap_buf_addc(b, ' ');
	imap_buf_cstring(b, mime_part_env(msg, MIME_ENV_SUBJECT));
	imap_buf_addc(b, ' ');
	put_addrs(b, &from);
	imap_buf_addc(b, ' ');
	put_addrs_or_from(b, mime_part_env(msg, MIME_ENV_SENDER), &from);
	imap_buf_addc(b, ' ');
	put_addrs_or_from(b, mime_part_env(msg, MIME_ENV_REPLY_TO), &from);
	for (int f = MIME_ENV_TO; f <= MIME_ENV_BCC; f++) {
		struct addrs l = parse_addrs(mime_part_env(msg, (enum mime_env_field)f));
		imap_buf_addc(b, ' ');
		put_addrs(b, &l);
		mime_addresses_free(l.a, l.n);
	}
	imap_buf_addc(b, ' ');
	imap_buf_cstring(b, mime_part_env(msg, MIME_ENV_IN_REPLY_TO));
	imap_buf_addc(b, ' ');
	imap_buf_cstring(b, mime_part_env(msg, MIME_ENV_MESSAGE_ID));
	imap_buf_addc(b, ')');
	mime_addresses_free(from.a, from.n);
	return !b->failed;
}

int imap_envelope_write(const struct mime_part *msg, struct evbuffer *out)
{
	struct imap_buf b = { 0 };

	imap_envelope_format(msg, &b);
	return to_evbuffer(&b, out);
}
