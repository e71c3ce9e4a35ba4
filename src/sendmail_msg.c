/*
 * The message a sendmail caller wrote, made ready for SMTP DATA: line
 * ends, dot-stuffing, the header fields sendmail adds when they are
 * missing, and -t's recipients. No I/O: sendmail.c reads and sends.
 *
 * A line ends at CRLF, LF or a lone CR (SMTP allows no bare CR or LF,
 * RFC 5321 §2.3.8). The header section ends at the first empty line, or
 * before the first line that is neither a field ("name:") nor a folded
 * continuation; then an empty line is put in, so the body stays a body.
 */
#include "mailsnare/sendmail.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "mailsnare/base64.h"
#include "mailsnare/mime_header.h"

/* A header value unfolded for -t is bounded like any the MIME parser takes. */
#define SENDMAIL_HEADER_MAX (256 * 1024)

/* The message as it is built; out of memory is noted once, checked at
 * the end. */
struct out {
	struct evbuffer *b;
	bool oom;
};

static void out_put(struct out *o, const char *s, size_t n)
{
	if (!o->oom && evbuffer_add(o->b, s, n) < 0)
		o->oom = true;
}

static void out_str(struct out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

/* The line at in[pos..): its text length, and where the next one starts.
 * false at the end of the input. */
static bool line_at(const char *in, size_t len, size_t pos, size_t *textlen, size_t *next)
{
	size_t i = pos;

	if (pos >= len)
		return false;
	while (i < len && in[i] != '\r' && in[i] != '\n')
		i++;
	*textlen = i - pos;
	if (i < len && in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
		i++;
	*next = i < len ? i + 1 : i;
	return true;
}

/* One line of output: dot-stuffed, ending in CRLF. */
static void out_line(struct out *o, const char *s, size_t n)
{
	if (n > 0 && s[0] == '.')
		out_put(o, ".", 1);
	out_put(o, s, n);
	out_put(o, "\r\n", 2);
}

bool sendmail_is_dot_line(const char *line, size_t len)
{
	return (len == 1 && line[0] == '.') || (len == 2 && memcmp(line, ".\n", 2) == 0) ||
	    (len == 3 && memcmp(line, ".\r\n", 3) == 0);
}

/* "Name:" with RFC 5322 ftext (printable, no colon or space); returns the
 * name's length, 0 if the line is no field. */
static size_t field_name_len(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] > ' ' && s[i] < 127 && s[i] != ':')
		i++;
	return i > 0 && i < n && s[i] == ':' ? i : 0;
}

/* A header field: where it starts, where it ends (line ends included)
 * and its name's length. */
struct field {
	size_t start, end, namelen;
};

/* The field at *pos, with its folded continuations; *pos moves past it.
 * false at the end of the header section, with *body where the body
 * begins (after the empty line, or at the first line that is no field). */
static bool field_next(const char *in, size_t len, size_t *pos, struct field *f, size_t *body)
{
	size_t n, next;

	if (!line_at(in, len, *pos, &n, &next)) {
		*body = len;
		return false;
	}
	if (n == 0 || (f->namelen = field_name_len(in + *pos, n)) == 0) {
		*body = n == 0 ? next : *pos;
		return false;
	}
	f->start = *pos;
	*pos = next;
	while (line_at(in, len, *pos, &n, &next) && n > 0 && (in[*pos] == ' ' || in[*pos] == '\t'))
		*pos = next;
	f->end = *pos;
	return true;
}

static bool field_is(const char *in, const struct field *f, const char *name)
{
	return f->namelen == strlen(name) && strncasecmp(in + f->start, name, f->namelen) == 0;
}

static bool has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] > 127)
			return true;
	return false;
}

/* -t: the addresses of a To, Cc or Bcc field. */
static enum sendmail_msg_rc add_rcpts(const char *in, const struct field *f,
    struct sendmail_msg *m)
{
	const char *v = in + f->start + f->namelen + 1;
	char *value = mime_header_unfold(v, f->end - f->start - f->namelen - 1, SENDMAIL_HEADER_MAX);
	struct mime_address *a = NULL;
	enum sendmail_msg_rc rc = SENDMAIL_MSG_OK;
	size_t n;

	if (value == NULL)
		return SENDMAIL_MSG_NOMEM;
	/* One more than may be taken, so that too many is seen. */
	n = mime_address_parse(value, strlen(value), SENDMAIL_MAX_RCPTS + 1, &a);
	for (size_t i = 0; i < n && rc == SENDMAIL_MSG_OK; i++) {
		char addr[SENDMAIL_ADDR_MAX];
		bool nodomain;

		if (a[i].mailbox == NULL || a[i].host == NULL)
			continue;           /* a group's start or end */
		nodomain = strcmp(a[i].host, "MISSING_DOMAIN") == 0;
		if (snprintf(addr, sizeof(addr), "%s%s%s", a[i].mailbox, nodomain ? "" : "@",
		    nodomain ? "" : a[i].host) >= (int)sizeof(addr))
			continue;           /* no SMTP path is that long */
		if (m->nrcpts == SENDMAIL_MAX_RCPTS)
			rc = SENDMAIL_MSG_TOO_MANY;
		else if ((m->rcpts[m->nrcpts] = strdup(addr)) == NULL)
			rc = SENDMAIL_MSG_NOMEM;
		else
			m->utf8_rcpts |= has_8bit(addr, strlen(addr)), m->nrcpts++;
	}
	mime_addresses_free(a, n);
	free(value);
	return rc;
}

/* A display name as RFC 5322 wants it: an atom run as it is, else a
 * quoted string, and RFC 2047 (UTF-8, B) when it is not ASCII. */
static void out_display_name(struct out *o, const char *name)
{
	size_t n = strlen(name);

	if (has_8bit(name, n)) {
		char *b64 = malloc(BASE64_ENCODED_SIZE(n));

		if (b64 == NULL || base64_encode(name, n, b64, BASE64_ENCODED_SIZE(n)) < 0) {
			o->oom = true;
			free(b64);
			return;
		}
		out_str(o, "=?UTF-8?B?");
		out_str(o, b64);
		out_str(o, "?=");
		free(b64);
		return;
	}
	if (strcspn(name, "()<>[]:;@\\,.\"") == n) {
		out_str(o, name);
		return;
	}
	out_put(o, "\"", 1);
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			out_put(o, "\\", 1);
		out_put(o, p, 1);
	}
	out_put(o, "\"", 1);
}

/* What sendmail adds when the caller left it out (RFC 5322 §3.6 asks for
 * From: and Date:; Message-ID: is customary). */
static void out_missing(struct out *o, const struct sendmail_opts *opt, bool from, bool date,
    bool msgid)
{
	char buf[SENDMAIL_ADDR_MAX + 64];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (!from) {
		out_str(o, "From: ");
		if (opt->full_name != NULL && opt->full_name[0] != '\0') {
			out_display_name(o, opt->full_name);
			snprintf(buf, sizeof(buf), " <%s>\r\n", opt->from);
		} else {
			snprintf(buf, sizeof(buf), "%s\r\n", opt->from);
		}
		out_str(o, buf);
	}
	if (!date && localtime_r(&ts.tv_sec, &tm) != NULL) {
		strftime(buf, sizeof(buf), "Date: %a, %d %b %Y %H:%M:%S %z\r\n", &tm);
		out_str(o, buf);
	}
	if (!msgid) {
		snprintf(buf, sizeof(buf), "Message-ID: <%lld.%ld.%d@%s>\r\n", (long long)ts.tv_sec,
		    (long)ts.tv_nsec, (int)getpid(), opt->hostname);
		out_str(o, buf);
	}
}

/* Pass 1 over the header section: what is there, and -t's recipients. */
static enum sendmail_msg_rc scan_header(const char *in, size_t len,
    const struct sendmail_opts *opt, struct sendmail_msg *m, bool seen[3])
{
	enum sendmail_msg_rc rc = SENDMAIL_MSG_OK;
	size_t pos = 0, body;
	struct field f;

	while (rc == SENDMAIL_MSG_OK && field_next(in, len, &pos, &f, &body)) {
		seen[0] |= field_is(in, &f, "From");
		seen[1] |= field_is(in, &f, "Date");
		seen[2] |= field_is(in, &f, "Message-ID");
		if (opt->rcpts_from_headers && (field_is(in, &f, "To") || field_is(in, &f, "Cc") ||
		    field_is(in, &f, "Bcc")))
			rc = add_rcpts(in, &f, m);
	}
	return rc;
}

/* Copies in[from..to) line by line (line ends made CRLF, dot-stuffed). */
static void out_lines(struct out *o, const char *in, size_t from, size_t to)
{
	size_t n, next;

	while (from < to && line_at(in, to, from, &n, &next)) {
		out_line(o, in + from, n);
		from = next;
	}
}

/* Pass 2: the added fields, the caller's (Bcc dropped with -t), the body. */
static void write_message(struct out *o, const char *in, size_t len,
    const struct sendmail_opts *opt, const bool seen[3])
{
	size_t pos = 0, body = len;
	struct field f;

	out_missing(o, opt, seen[0], seen[1], seen[2]);
	while (field_next(in, len, &pos, &f, &body))
		if (!(opt->rcpts_from_headers && field_is(in, &f, "Bcc")))
			out_lines(o, in, f.start, f.end);
	out_put(o, "\r\n", 2);
	out_lines(o, in, body, len);
	out_put(o, ".\r\n", 3);
}

/* The buffer's bytes as one NUL-terminated string. */
static char *out_take(struct out *o, size_t *len)
{
	char *p;

	*len = evbuffer_get_length(o->b);
	if (o->oom || (p = malloc(*len + 1)) == NULL)
		return NULL;
	evbuffer_remove(o->b, p, *len);
	p[*len] = '\0';
	return p;
}

enum sendmail_msg_rc sendmail_msg_build(const char *in, size_t len,
    const struct sendmail_opts *opt, struct sendmail_msg *m)
{
	struct out o = { evbuffer_new(), false };
	bool seen[3] = { false, false, false };
	enum sendmail_msg_rc rc;

	memset(m, 0, sizeof(*m));
	if (o.b == NULL)
		return SENDMAIL_MSG_NOMEM;
	if ((rc = scan_header(in, len, opt, m, seen)) == SENDMAIL_MSG_OK) {
		write_message(&o, in, len, opt, seen);
		if ((m->data = out_take(&o, &m->len)) == NULL)
			rc = SENDMAIL_MSG_NOMEM;
	}
	evbuffer_free(o.b);
	if (rc != SENDMAIL_MSG_OK) {
		sendmail_msg_free(m);
		return rc;
	}
	m->eight_bit = has_8bit(m->data, m->len);
	return SENDMAIL_MSG_OK;
}

void sendmail_msg_free(struct sendmail_msg *m)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	m->nrcpts = 0;
	free(m->data);
	m->data = NULL;
	m->len = 0;
}
