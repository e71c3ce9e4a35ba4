/*
 * X-Tags at delivery: see include/mailsnare/msg_tags.h.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/msg_tags.h"

static bool tag_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '_';
}

/* One tag of the list, cleaned into out (MSG_TAG_LEN_MAX + 1 bytes):
 * invalid characters and white space runs are one separator, the ends
 * trimmed, the separators inside '_'. Returns its length. */
static size_t clean_tag(const char *p, size_t len, char *out)
{
	size_t i, o = 0;
	bool gap = false;

	for (i = 0; i < len && o < MSG_TAG_LEN_MAX; i++) {
		if (!tag_char((unsigned char)p[i])) {
			gap = o > 0;
			continue;
		}
		if (gap) {
			if (o + 1 >= MSG_TAG_LEN_MAX)
				break;
			out[o++] = '_';
		}
		gap = false;
		out[o++] = p[i];
	}
	out[o] = '\0';
	return o;
}

/* Whether the keyword list out[0..n) has tag already, in any case. */
static bool listed(const char *out, size_t n, const char *tag, size_t len)
{
	const char *p = out, *end = out + n;

	while (p < end) {
		const char *e = memchr(p, ' ', (size_t)(end - p));
		size_t k = e ? (size_t)(e - p) : (size_t)(end - p);

		if (k == len && strncasecmp(p, tag, len) == 0)
			return true;
		p += k + 1;
	}
	return false;
}

char *msg_tags_parse(const char *value, size_t len)
{
	char tag[MSG_TAG_LEN_MAX + 1], *out;
	const char *p = value, *end = value + len, *comma;
	size_t n = 0, k, count = 0;

	if ((out = malloc(MSG_TAGS_MAX * (MSG_TAG_LEN_MAX + 1) + 1)) == NULL)
		return NULL;
	while (p < end && count < MSG_TAGS_MAX) {
		comma = memchr(p, ',', (size_t)(end - p));
		k = clean_tag(p, comma ? (size_t)(comma - p) : (size_t)(end - p), tag);
		if (k > 0 && !listed(out, n, tag, k)) {
			if (n > 0)
				out[n++] = ' ';
			memcpy(out + n, tag, k);
			n += k;
			count++;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	out[n] = '\0';
	if (n == 0) {
		free(out);
		return NULL;
	}
	return out;
}
