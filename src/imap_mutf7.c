/*
 * Modified UTF-7 mailbox names (RFC 3501 §5.1.3): printable ASCII stands
 * for itself ("&" as "&-"), anything else is UTF-16 in modified base64
 * (',' for '/') between '&' and '-'. The store keeps UTF-8.
 *
 * A name is valid only in its one canonical form: no encoded printable
 * ASCII, no bits left over in a run, no run right after another, every
 * surrogate paired, and a run closed by '-' (a name ends in ASCII).
 */
#include <stdint.h>
#include <string.h>

#include "mailsnare/imap.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

/* Appends one code point as UTF-8; false if it does not fit. */
static bool put_utf8(uint32_t cp, char *out, size_t outsize, size_t *o)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | (cp >> 6));
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (cp >> 12));
		b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (cp >> 18));
		b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (*o + n >= outsize)
		return false;
	memcpy(out + *o, b, n);
	*o += n;
	return true;
}

/* Decodes the base64 run in[0..len) (between '&' and '-'). */
static bool decode_run(const char *in, size_t len, char *out, size_t outsize, size_t *o)
{
	uint32_t bits = 0, high = 0;
	int nbits = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		int v = b64_value(in[i]);
		if (v < 0)
			return false;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;
		if (u >= 0xd800 && u < 0xdc00) {
			if (high)
				return false;
			high = u;
		} else if (u >= 0xdc00 && u < 0xe000) {
			if (!high || !put_utf8(0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00),
			    out, outsize, o))
				return false;
			high = 0;
		} else if (high || u == 0 || (u >= 0x20 && u < 0x7f) ||
		    !put_utf8(u, out, outsize, o)) {
			/* Printable ASCII must not be encoded (§5.1.3); other
			 * ASCII (controls, DEL) may. NUL is refused as Dovecot
			 * does: no name can hold it. */
			return false;
		}
	}
	/* Leftover bits must be zero padding of less than one character. */
	return !high && nbits < 6 && (bits & ((1u << nbits) - 1)) == 0;
}

int imap_mutf7_to_utf8(const char *in, size_t len, char *out, size_t outsize)
{
	size_t i = 0, o = 0;

	while (i < len) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c > 0x7e)
			return -1;
		if (c != '&') {
			if (o + 1 >= outsize)
				return -1;
			out[o++] = (char)c;
			i++;
			continue;
		}
		const char *end = memchr(in + i + 1, '-', len - i - 1);
		if (end == NULL)
			return -1;
		size_t run = (size_t)(end - (in + i + 1));
		if (run == 0) {
			if (o + 1 >= outsize)
				return -1;
			out[o++] = '&';
		} else if (!decode_run(in + i + 1, run, out, outsize, &o)) {
			return -1;
		}
		i += run + 2;
		/* "&AOk-&AOk-" is one run written as two: not the one form
		 * §5.1.3 wants each name to have (Dovecot refuses it too). */
		if (run > 0 && i < len && in[i] == '&' && (i + 1 >= len || in[i + 1] != '-'))
			return -1;
	}
	out[o] = '\0';
	return (int)o;
}

/* Reads one UTF-8 code point; 0 if malformed. */
static size_t get_utf8(const unsigned char *s, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0 && (s[1] & 0xc0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
		return *cp >= 0x80 ? 2 : 0;
	}
	if ((s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) |
		    (s[2] & 0x3f);
		return *cp >= 0x800 && (*cp < 0xd800 || *cp > 0xdfff) ? 3 : 0;
	}
	if ((s[0] & 0xf8) == 0xf0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
	    (s[3] & 0xc0) == 0x80) {
		*cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
		    ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
		return *cp >= 0x10000 && *cp <= 0x10ffff ? 4 : 0;
	}
	return 0;
}

struct enc {
	char *out;
	size_t size, o;
	uint32_t bits;
	int nbits;
};

static bool enc_put(struct enc *e, char c)
{
	if (e->o + 1 >= e->size)
		return false;
	e->out[e->o++] = c;
	return true;
}

static bool enc_unit(struct enc *e, uint32_t u)
{
	e->bits = (e->bits << 16) | u;
	e->nbits += 16;
	while (e->nbits >= 6) {
		e->nbits -= 6;
		if (!enc_put(e, b64[(e->bits >> e->nbits) & 0x3f]))
			return false;
	}
	return true;
}

static bool enc_flush(struct enc *e)
{
	if (e->nbits > 0 && !enc_put(e, b64[(e->bits << (6 - e->nbits)) & 0x3f]))
		return false;
	e->nbits = 0;
	e->bits = 0;
	return enc_put(e, '-');
}

int imap_utf8_to_mutf7(const char *in, char *out, size_t outsize)
{
	const unsigned char *s = (const unsigned char *)in;
	struct enc e = { out, outsize, 0, 0, 0 };
	bool open = false;
	uint32_t cp;
	size_t n;

	while (*s) {
		if (*s >= 0x20 && *s < 0x7f) {
			if ((open && !enc_flush(&e)) || !enc_put(&e, (char)*s) ||
			    (*s == '&' && !enc_put(&e, '-')))
				return -1;
			open = false;
			s++;
			continue;
		}
		if ((n = get_utf8(s, &cp)) == 0)
			return -1;
		if (!open && !enc_put(&e, '&'))
			return -1;
		open = true;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			if (!enc_unit(&e, 0xd800 + (cp >> 10)) || !enc_unit(&e, 0xdc00 + (cp & 0x3ff)))
				return -1;
		} else if (!enc_unit(&e, cp)) {
			return -1;
		}
		s += n;
	}
	if (open && !enc_flush(&e))
		return -1;
	out[e.o] = '\0';
	return (int)e.o;
}
