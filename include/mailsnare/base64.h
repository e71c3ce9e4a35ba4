/* RFC 4648 base64, as SASL uses it (no line breaks, padding required). */
#ifndef MAILSNARE_BASE64_H
#define MAILSNARE_BASE64_H

#include <stddef.h>
#include <sys/types.h>

/* Value of one character of RFC 4648's alphabet, or -1 if it is not in
 * it ('=' included). */
int base64_value(unsigned char c);

/* Bytes needed to encode len bytes, including the terminating NUL. */
#define BASE64_ENCODED_SIZE(len) ((((len) + 2) / 3) * 4 + 1)

/* Encodes src into dst (NUL-terminated). Returns the length written
 * (without the NUL), or -1 if dst is too small. */
ssize_t base64_encode(const void *src, size_t len, char *dst, size_t dstsize);

/* Decodes base64 text src (len chars; surrounding whitespace not allowed,
 * padding required) into dst. Returns the decoded length, or -1 on
 * malformed input or if dst is too small. dst is not NUL-terminated. */
ssize_t base64_decode(const char *src, size_t len, void *dst, size_t dstsize);

#endif
