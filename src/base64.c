/*
 * RFC 4648 base64 (section 4 alphabet), strict: SASL exchanges carry one
 * line of base64 each, so there is no line wrapping, no white space, and
 * padding is required. Non-zero padding bits are rejected (RFC 4648 §3.5
 * allows it), so every accepted text has exactly one encoding.
 */
#include "mailsnare/base64.h"

#include <limits.h>
#include <stdint.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* A switch on ranges instead of a table keeps it obviously correct. */
int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

ssize_t base64_encode(const void *src, size_t len, char *dst, size_t dstsize)
{
	const unsigned char *in = src;
	size_t groups, need, i, o = 0;

	/* BASE64_ENCODED_SIZE would overflow for absurd lengths. */
	if (len > (SIZE_MAX / 4 - 1) * 3)
		return -1;
	groups = (len + 2) / 3;
	need = groups * 4 + 1;
	if (dst == NULL || dstsize < need || need - 1 > (size_t)SSIZE_MAX)
		return -1;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		dst[o++] = b64_alphabet[(v >> 18) & 63];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = b64_alphabet[(v >> 6) & 63];
		dst[o++] = b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		dst[o++] = b64_alphabet[(v >> 18) & 63];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		dst[o++] = b64_alphabet[(v >> 18) & 63];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = b64_alphabet[(v >> 6) & 63];
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return (ssize_t)o;
}

/* Number of '=' at the end of a text whose length is a positive multiple
 * of 4, or -1 if the padding is malformed (three '=', or '=' followed by
 * a data character in the last quantum). */
static int b64_padding(const char *src, size_t len)
{
	if (src[len - 1] != '=')
		return 0;
	if (src[len - 2] != '=')
		return 1;
	if (src[len - 3] == '=')
		return -1;
	return 2;
}

/* Decodes the final quantum, which may carry padding. */
static int b64_decode_last(const char *q, int pad, unsigned char *out)
{
	int a = base64_value((unsigned char)q[0]);
	int b = base64_value((unsigned char)q[1]);
	int c = pad < 2 ? base64_value((unsigned char)q[2]) : 0;
	int d = pad < 1 ? base64_value((unsigned char)q[3]) : 0;

	if (a < 0 || b < 0 || c < 0 || d < 0)
		return -1;
	/* Bits that fall into the padding must be zero (canonical form). */
	if (pad == 2 && (b & 0x0f) != 0)
		return -1;
	if (pad == 1 && (c & 0x03) != 0)
		return -1;
	out[0] = (unsigned char)(a << 2 | b >> 4);
	if (pad < 2)
		out[1] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
	if (pad < 1)
		out[2] = (unsigned char)((c & 0x03) << 6 | d);
	return 0;
}

ssize_t base64_decode(const char *src, size_t len, void *dst, size_t dstsize)
{
	unsigned char *out = dst;
	size_t quanta, outlen, i, o = 0;
	int pad;

	if (len == 0)
		return 0;
	if (src == NULL || len % 4 != 0)
		return -1;
	pad = b64_padding(src, len);
	if (pad < 0)
		return -1;
	quanta = len / 4;
	outlen = quanta * 3 - (size_t)pad;
	if (dst == NULL || dstsize < outlen || outlen > (size_t)SSIZE_MAX)
		return -1;

	/* All but the last quantum: four data characters each. */
	for (i = 0; i + 1 < quanta; i++) {
		const char *q = src + i * 4;
		int a = base64_value((unsigned char)q[0]);
		int b = base64_value((unsigned char)q[1]);
		int c = base64_value((unsigned char)q[2]);
		int d = base64_value((unsigned char)q[3]);
		if (a < 0 || b < 0 || c < 0 || d < 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		out[o++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
		out[o++] = (unsigned char)((c & 0x03) << 6 | d);
	}
	if (b64_decode_last(src + (quanta - 1) * 4, pad, out + o) < 0)
		return -1;
	return (ssize_t)outlen;
}
