/*
 * Streaming base64 / quoted-printable decoders (RFC 2045 §6.7, §6.8), a
 * streaming case-insensitive substring matcher and a streaming charset
 * converter for IMAP SEARCH.
 */
#include "mailsnare/base64.h"
#include "mailsnare/mime_decode.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum mime_encoding mime_encoding_from_name(const char *name)
{
	if (name == NULL)
		return MIME_ENC_IDENTITY;
	if (strcasecmp(name, "base64") == 0)
		return MIME_ENC_BASE64;
	if (strcasecmp(name, "quoted-printable") == 0)
		return MIME_ENC_QP;
	return MIME_ENC_IDENTITY;
}

void mime_decoder_init(struct mime_decoder *d, enum mime_encoding enc)
{
	memset(d, 0, sizeof(*d));
	d->enc = enc;
}

/* -2 for the padding character. */
static int b64_value(unsigned char c)
{
	return c == '=' ? -2 : base64_value(c);
}

static size_t b64_feed(struct mime_decoder *d, const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int v = b64_value((unsigned char)in[i]);
		if (v == -2) { /* padding ends a quantum: drop partial bits */
			d->acc = 0;
			d->bits = 0;
			continue;
		}
		if (v < 0)
			continue;
		d->acc = (d->acc << 6) | (uint32_t)v;
		d->bits += 6;
		if (d->bits >= 8) {
			d->bits -= 8;
			out[o++] = (char)((d->acc >> d->bits) & 0xff);
			d->acc &= (1u << d->bits) - 1;
		}
	}
	return o;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum { QP_NORMAL, QP_EQ, QP_EQ1, QP_EQWS, QP_EQCR };

static size_t qp_flush_ws(struct mime_decoder *d, char *out)
{
	size_t n = d->nws;
	memcpy(out, d->ws, n);
	d->nws = 0;
	return n;
}

/* A plain character in QP_NORMAL: white space (and CR) is held until we
 * know whether the line ends after it. */
static size_t qp_normal(struct mime_decoder *d, char c, char *out)
{
	size_t o = 0;

	if (c == '=') {
		o = qp_flush_ws(d, out);
		d->state = QP_EQ;
	} else if (c == ' ' || c == '\t' || c == '\r') {
		if (d->nws == MIME_QP_WS_MAX)
			o = qp_flush_ws(d, out);
		d->ws[d->nws++] = c;
	} else if (c == '\n') {
		bool cr = d->nws > 0 && d->ws[d->nws - 1] == '\r';
		d->nws = 0;
		if (cr)
			out[o++] = '\r';
		out[o++] = '\n';
	} else {
		o = qp_flush_ws(d, out);
		out[o++] = c;
	}
	return o;
}

/* One character after '=' (states QP_EQ..QP_EQCR); may hand c back to
 * QP_NORMAL when the escape turns out to be invalid. */
static size_t qp_escape(struct mime_decoder *d, char c, char *out)
{
	size_t o = 0;
	int st = d->state;

	if (c == '\n' || c == '\r')
		d->nws = 0; /* white space after '=' before the line end: a soft break */
	if (st == QP_EQ && hex_value(c) >= 0) {
		d->hex = c;
		d->state = QP_EQ1;
		return 0;
	}
	if (st == QP_EQ1 && hex_value(c) >= 0) {
		out[0] = (char)(hex_value(d->hex) * 16 + hex_value(c));
		d->state = QP_NORMAL;
		return 1;
	}
	if (c == '\n' && st != QP_EQ1) { /* soft line break */
		d->state = QP_NORMAL;
		return 0;
	}
	if ((c == ' ' || c == '\t') && (st == QP_EQ || st == QP_EQWS) && d->nws < MIME_QP_WS_MAX) {
		d->ws[d->nws++] = c; /* dropped if the line ends here */
		d->state = QP_EQWS;
		return 0;
	}

	if (c == '\r' && st != QP_EQ1 && st != QP_EQCR) {
		d->state = QP_EQCR;
		return 0;
	}
	out[o++] = '=';
	if (st == QP_EQ1)
		out[o++] = d->hex;
	else if (st == QP_EQCR)
		out[o++] = '\r';
	o += qp_flush_ws(d, out + o);
	d->state = QP_NORMAL;
	return o + qp_normal(d, c, out + o);
}

static size_t qp_feed(struct mime_decoder *d, const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (d->state == QP_NORMAL)
			o += qp_normal(d, in[i], out + o);
		else
			o += qp_escape(d, in[i], out + o);
	}
	return o;
}

size_t mime_decoder_feed(struct mime_decoder *d, const char *in, size_t len, char *out)
{
	switch (d->enc) {
	case MIME_ENC_BASE64:
		return b64_feed(d, in, len, out);
	case MIME_ENC_QP:
		return qp_feed(d, in, len, out);
	default:
		memcpy(out, in, len);
		return len;
	}
}

size_t mime_decoder_finish(struct mime_decoder *d, char *out)
{
	size_t o = 0;

	if (d->enc == MIME_ENC_QP) {
		if (d->state == QP_EQ1) {
			out[o++] = '=';
			out[o++] = d->hex;
		} else if (d->state != QP_NORMAL) {
			out[o++] = '=';
		}
		d->nws = 0; /* trailing white space at the end is dropped */
	}
	d->state = QP_NORMAL;
	d->acc = 0;
	d->bits = 0;
	return o;
}

/* The simple lowercase of a two-byte code point, or cp itself. */
static unsigned fold_cp(unsigned cp)
{
	if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2)
	    || (cp >= 0x410 && cp <= 0x42F))
		return cp + 0x20;
	if (cp >= 0x400 && cp <= 0x40F)
		return cp + 0x50;
	if (cp == 0x178)
		return 0xFF;
	if ((cp >= 0x100 && cp <= 0x12F) || (cp >= 0x132 && cp <= 0x137)
	    || (cp >= 0x14A && cp <= 0x177))
		return (cp % 2 == 0) ? cp + 1 : cp;
	if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
		return (cp % 2 == 1) ? cp + 1 : cp;
	return cp;
}

void mime_fold_utf8(const char *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		unsigned char c2 = i + 1 < len ? (unsigned char)in[i + 1] : 0;
		if (c >= 'A' && c <= 'Z') {
			out[i] = (char)(c + 32);
		} else if (c >= 0xC2 && c <= 0xDF && (c2 & 0xC0) == 0x80) {
			unsigned cp = fold_cp(((unsigned)(c & 0x1F) << 6) | (c2 & 0x3F));
			out[i] = (char)(0xC0 | (cp >> 6));
			out[i + 1] = (char)(0x80 | (cp & 0x3F));
			i++;
		} else {
			out[i] = (char)c;
		}
	}
}

bool mime_search_match(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	struct mime_search *s;
	bool found;

	if (nlen == 0)
		return true;
	if ((s = mime_search_new(needle, nlen)) == NULL)
		return false;
	found = mime_search_feed(s, hay, hlen);
	mime_search_free(s);
	return found;
}

/* Input is folded a piece at a time, in a buffer of this size on the
 * stack, and run through the matcher. */
#define SEARCH_PIECE 4096

/*
 * Knuth-Morris-Pratt over the folded text: `q` needle bytes matched so
 * far is all the state carried from one piece (or one feed) to the next,
 * so each input byte costs O(1) amortised, whatever the needle's length
 * (the window this replaces copied the needle's length of text again for
 * every 4 KiB: a 64 KiB needle over 16 MB was seconds).
 */
struct mime_search {
	char *needle;  /* folded */
	size_t nlen;
	uint32_t *fail; /* fail[i]: longest proper border of needle[0..i] */
	size_t q;
	char carry;    /* a UTF-8 lead byte held back from the last piece */
	bool has_carry;
	bool found;
};

static void kmp_table(const char *p, size_t n, uint32_t *fail)
{
	size_t i, k = 0;

	if (n > 0)
		fail[0] = 0;
	for (i = 1; i < n; i++) {
		while (k > 0 && p[i] != p[k])
			k = fail[k - 1];
		if (p[i] == p[k])
			k++;
		fail[i] = (uint32_t)k;
	}
}

struct mime_search *mime_search_new(const char *needle, size_t len)
{
	struct mime_search *s;

	if (len > MIME_SEARCH_NEEDLE_MAX || (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->needle = malloc(len + 1);
	s->fail = malloc((len + 1) * sizeof(*s->fail));
	if (s->needle == NULL || s->fail == NULL) {
		mime_search_free(s);
		return NULL;
	}
	mime_fold_utf8(needle, len, s->needle);
	kmp_table(s->needle, len, s->fail);
	s->nlen = len;
	s->found = len == 0;
	return s;
}

static void kmp_scan(struct mime_search *s, const char *p, size_t n)
{
	size_t i, q = s->q;

	for (i = 0; i < n; i++) {
		while (q > 0 && p[i] != s->needle[q])
			q = s->fail[q - 1];
		if (p[i] == s->needle[q] && ++q == s->nlen) {
			s->found = true;
			return;
		}
	}
	s->q = q;
}

/* Folds up to SEARCH_PIECE input bytes (after a held lead byte, whose
 * second byte may be in this piece) and scans them. */
static size_t search_piece(struct mime_search *s, const char *buf, size_t len)
{
	char piece[SEARCH_PIECE];
	size_t n, k = 0;

	if (s->has_carry) {
		piece[k++] = s->carry;
		s->has_carry = false;
	}
	n = len < SEARCH_PIECE - k ? len : SEARCH_PIECE - k;
	memcpy(piece + k, buf, n);
	k += n;
	if ((unsigned char)piece[k - 1] >= 0xC2 && (unsigned char)piece[k - 1] <= 0xDF) {
		s->carry = piece[--k];
		s->has_carry = true;
	}
	mime_fold_utf8(piece, k, piece);
	kmp_scan(s, piece, k);
	return n;
}

bool mime_search_feed(struct mime_search *s, const char *buf, size_t len)
{
	while (!s->found && len > 0) {
		size_t n = search_piece(s, buf, len);
		buf += n;
		len -= n;
	}
	return s->found;
}

bool mime_search_found(const struct mime_search *s)
{
	return s->found;
}

void mime_search_reset(struct mime_search *s)
{
	s->q = 0;
	s->has_carry = false;
	s->found = s->nlen == 0;
}

void mime_search_free(struct mime_search *s)
{
	if (s == NULL)
		return;
	free(s->needle);
	free(s->fail);
	free(s);
}

/* ---- charset conversion ---------------------------------------------------
 *
 * The same choices and the same iconv loop as charset_to_utf8 and
 * iconv_to_utf8 in mime_address.c (test_mime_decode compares the two on
 * text cut at random), so that a part SEARCH converts in pieces matches
 * what it matched converted whole.
 */

/* Latin-1 output is handed to the sink this much at a time. */
#define CONV_OUT 4096
/* iconv's: glibc's cost per call is high (Shift_JIS at 64 KiB of output a
 * call converts twice as fast as at 4 KiB, and 6 times as fast as
 * mime_address.c's 256 bytes). */
#define CONV_ICONV_OUT (64 * 1024)
/* The longest incomplete sequence held from one piece for the next: the
 * charsets iconv knows have none over 4 bytes (a UTF-16 surrogate pair,
 * GB18030, an ISO-2022 escape). */
#define CONV_TAIL_MAX 32

enum conv_kind { CONV_AS_IS, CONV_LATIN1, CONV_ICONV };

struct mime_conv {
	enum conv_kind kind;
	iconv_t cd;
	char *out;                 /* CONV_ICONV_OUT bytes, for iconv */
	char tail[CONV_TAIL_MAX];  /* the start of a sequence cut by a piece's end */
	size_t ntail;
};

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

static bool conv_is(const char *cs, const char *a, const char *b)
{
	return strcasecmp(cs, a) == 0 || strcasecmp(cs, b) == 0;
}

struct mime_conv *mime_conv_new(const char *cs)
{
	struct mime_conv *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (cs == NULL)
		cs = "";
	if (cs[0] == '\0' || conv_is(cs, "utf-8", "utf8") || conv_is(cs, "us-ascii", "ascii"))
		c->kind = CONV_AS_IS;
	else if (conv_is(cs, "iso-8859-1", "latin1"))
		c->kind = CONV_LATIN1;
	else if ((c->cd = iconv_open("UTF-8", cs)) != (iconv_t)-1)
		c->kind = CONV_ICONV;
	else
		c->kind = CONV_AS_IS; /* unknown charset: the bytes as they are */
	if (c->kind == CONV_ICONV && (c->out = malloc(CONV_ICONV_OUT)) == NULL) {
		mime_conv_free(c);
		return NULL;
	}
	return c;
}

bool mime_conv_uses_iconv(const struct mime_conv *c)
{
	return c->kind == CONV_ICONV;
}

void mime_conv_free(struct mime_conv *c)
{
	if (c == NULL)
		return;
	if (c->kind == CONV_ICONV)
		iconv_close(c->cd);
	free(c->out);
	free(c);
}

static void latin1_feed(const char *in, size_t len, mime_conv_sink sink, void *arg)
{
	char out[CONV_OUT];
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (o + 2 > sizeof(out)) {
			sink(arg, out, o);
			o = 0;
		}
		if (ch < 0x80) {
			out[o++] = (char)ch;
		} else {
			out[o++] = (char)(0xC0 | (ch >> 6));
			out[o++] = (char)(0x80 | (ch & 0x3F));
		}
	}
	if (o > 0)
		sink(arg, out, o);
}

/* Converts in[0..len) as iconv_to_utf8 does: returns the bytes consumed,
 * all but an incomplete sequence at the end (EINVAL). */
static size_t conv_run(struct mime_conv *c, const char *in, size_t len, mime_conv_sink sink,
    void *arg)
{
	char *ip = (char *)in;
	size_t left = len;

	while (left > 0) {
		char *op = c->out;
		size_t room = CONV_ICONV_OUT, r = iconv(c->cd, &ip, &left, &op, &room);
		int e = errno; /* before the sink, which may set it */
		if (op > c->out)
			sink(arg, c->out, (size_t)(op - c->out));
		if (r != (size_t)-1 || e == E2BIG)
			continue;
		if (e == EINVAL)
			break;
		sink(arg, replacement, 3);
		ip++;
		left--;
	}
	return len - left;
}

/* Takes the first byte of the held tail as one iconv cannot convert: for
 * a "sequence" longer than CONV_TAIL_MAX, which no charset has. */
static void tail_give_up(struct mime_conv *c, size_t at, mime_conv_sink sink, void *arg)
{
	sink(arg, replacement, 3);
	memmove(c->tail, c->tail + at + 1, c->ntail - at - 1);
	c->ntail -= at + 1;
}

/* The held tail with the first bytes of the new input after it, through a
 * small buffer, until iconv is past the tail; *in and *len advance by the
 * input bytes it consumed. */
static void tail_feed(struct mime_conv *c, const char **in, size_t *len, mime_conv_sink sink,
    void *arg)
{
	char buf[2 * CONV_TAIL_MAX];
	size_t take = *len < sizeof(buf) - c->ntail ? *len : sizeof(buf) - c->ntail;
	size_t n = c->ntail + take, used;

	memcpy(buf, c->tail, c->ntail);
	memcpy(buf + c->ntail, *in, take);
	used = conv_run(c, buf, n, sink, arg);
	if (used >= c->ntail) {
		/* Past the tail: what is left of buf is still in the input. */
		*in += used - c->ntail;
		*len -= used - c->ntail;
		c->ntail = 0;
	} else if (take == *len && n - used <= CONV_TAIL_MAX) {
		/* Still incomplete, and no more input: held again, longer. */
		memcpy(c->tail, buf + used, n - used);
		c->ntail = n - used;
		*in += take;
		*len = 0;
	} else {
		tail_give_up(c, used, sink, arg);
	}
}

void mime_conv_feed(struct mime_conv *c, const char *in, size_t len, mime_conv_sink sink,
    void *arg)
{
	if (c->kind == CONV_AS_IS) {
		if (len > 0)
			sink(arg, in, len);
		return;
	}
	if (c->kind == CONV_LATIN1) {
		latin1_feed(in, len, sink, arg);
		return;
	}
	while (c->ntail > 0 && len > 0)
		tail_feed(c, &in, &len, sink, arg);
	while (len > 0) {
		size_t used = conv_run(c, in, len, sink, arg);
		in += used;
		len -= used;
		if (len <= CONV_TAIL_MAX) {
			memcpy(c->tail, in, len);
			c->ntail = len;
			return;
		}
		sink(arg, replacement, 3); /* see tail_give_up */
		in++;
		len--;
	}
}
