/*
 * RFC 5322 header-section helpers over raw message bytes. Lines may end in
 * CRLF or a bare LF (mail written by local tools often uses LF), values may
 * hold 8-bit bytes (RFC 6532), and a field may be folded over many lines.
 * Nothing here allocates; every output is bounded by the caller's buffer.
 */
#include "mailsnare/header.h"

#include <string.h>
#include <strings.h>

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Offset just past the LF that ends the line starting at pos, or len if
 * the line is not terminated within the buffer. */
static size_t line_end(const char *buf, size_t len, size_t pos)
{
	const char *lf = memchr(buf + pos, '\n', len - pos);
	return lf == NULL ? len : (size_t)(lf - buf) + 1;
}

/* True if the line buf[pos..end) is empty: just LF or CRLF. */
static bool line_is_empty(const char *buf, size_t pos, size_t end)
{
	size_t n = end - pos;
	return (n == 1 && buf[pos] == '\n') || (n == 2 && buf[pos] == '\r' && buf[pos + 1] == '\n');
}

size_t header_section_len(const char *buf, size_t len, bool *complete)
{
	size_t pos = 0;

	while (pos < len) {
		size_t end = line_end(buf, len, pos);
		if (line_is_empty(buf, pos, end)) {
			if (complete != NULL)
				*complete = true;
			return end;
		}
		pos = end;
	}
	if (complete != NULL)
		*complete = false;
	return len;
}

/* If the line at pos starts the field `name` (case-insensitive, optional
 * white space before the colon as RFC 5322 §4.5.3 obs syntax allows),
 * returns the offset just after the colon; otherwise 0 (a colon can never
 * be at offset 0 of a match). Checking for the colon right after the name
 * is what keeps "To" from matching "To-Foo". */
static size_t field_value_start(const char *buf, size_t end, size_t pos, const char *name,
    size_t namelen)
{
	size_t p = pos + namelen;

	if (end - pos <= namelen || strncasecmp(buf + pos, name, namelen) != 0)
		return 0;
	while (p < end && is_wsp(buf[p]))
		p++;
	if (p >= end || buf[p] != ':')
		return 0;
	return p + 1;
}

/*
 * Copies the value starting at buf[pos] into out, unfolding continuation
 * lines and dropping leading white space; stops at the end of the field
 * (a line end not followed by WSP) or at len. Returns the bytes written.
 */
static size_t copy_unfolded(const char *buf, size_t len, size_t pos, char *out, size_t outmax)
{
	size_t o = 0;

	for (; pos < len; pos++) {
		char c = buf[pos];
		if (c == '\r' && pos + 1 < len && buf[pos + 1] == '\n')
			continue; /* the LF decides */
		if (c == '\n') {
			if (pos + 1 < len && is_wsp(buf[pos + 1]))
				continue; /* folded: the WSP that follows stays */
			break;
		}
		if (o == 0 && is_wsp(c))
			continue; /* leading white space */
		if (o < outmax)
			out[o++] = c;
	}
	return o;
}

bool header_get(const char *buf, size_t len, const char *name, char *out, size_t outsize)
{
	size_t namelen, hdrlen, pos = 0;

	if (name == NULL || (namelen = strlen(name)) == 0)
		return false;
	/* Never look into the body, even if the caller passes the message. */
	hdrlen = header_section_len(buf, len, NULL);

	while (pos < hdrlen) {
		size_t end = line_end(buf, hdrlen, pos);
		size_t v = field_value_start(buf, end, pos, name, namelen);
		if (v == 0) {
			pos = end;
			continue;
		}
		if (outsize > 0) {
			size_t o = copy_unfolded(buf, hdrlen, v, out, outsize - 1);
			/* Trailing white space, and a CR cut off from its LF by len. */
			while (o > 0 && (is_wsp(out[o - 1]) || out[o - 1] == '\r'))
				o--;
			out[o] = '\0';
		}
		return true;
	}
	return false;
}
