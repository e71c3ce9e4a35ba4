/*
 * A MIME message from the parts of a send request (msg_build.h). Pure.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/base64.h"
#include "mailsnare/msg_build.h"

struct sbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void sb_add(struct sbuf *b, const void *data, size_t n)
{
	char *np;
	size_t cap;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->failed = true;
		return;
	}
	sb_add(b, tmp, (size_t)n);
}

static bool is_ascii_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

int msg_build_email_valid(const char *email)
{
	const char *at = strrchr(email, '@');
	size_t n = strlen(email);

	if (n == 0 || n > 254 || at == NULL || at == email || at[1] == '\0')
		return 0;
	for (; *email; email++) {
		unsigned char c = (unsigned char)*email;
		if (c <= 0x20 || c >= 0x7f || strchr("<>(),;:\"[]\\", c) != NULL)
			return 0;
	}
	return 1;
}

/* RFC 2047 B-encoded words of at most 75 characters, cut between UTF-8
 * sequences; folded with CRLF SP between them. */
static void encoded_words(struct sbuf *b, const char *s)
{
	size_t n = strlen(s), i = 0, take;
	char out[80];

	while (i < n) {
		take = n - i < 45 ? n - i : 45;
		while (i + take < n && ((unsigned char)s[i + take] & 0xc0) == 0x80)
			take--;
		if (base64_encode(s + i, take, out, sizeof(out)) < 0) {
			b->failed = true;
			return;
		}
		sb_printf(b, "%s=?UTF-8?B?%s?=", i ? "\r\n " : "", out);
		i += take;
	}
}

/* A display name: as it is (atoms), quoted, or encoded. */
static void display_name(struct sbuf *b, const char *name)
{
	const char *p;
	bool plain = true;

	if (!is_ascii_printable(name)) {
		encoded_words(b, name);
		return;
	}
	for (p = name; *p; p++)
		if (strchr("()<>[]:;@\\,.\"", *p) != NULL)
			plain = false;
	if (plain) {
		sb_str(b, name);
		return;
	}
	sb_add(b, "\"", 1);
	for (p = name; *p; p++) {
		if (*p == '"' || *p == '\\')
			sb_add(b, "\\", 1);
		sb_add(b, p, 1);
	}
	sb_add(b, "\"", 1);
}

static int address_list(struct sbuf *b, const char *field, const struct msg_build_addr *a,
    size_t n, char *err, size_t errlen)
{
	size_t i;

	if (n == 0)
		return 0;
	if (n > MSG_BUILD_ADDRS_MAX) {
		snprintf(err, errlen, "too many %s addresses", field);
		return -1;
	}
	sb_printf(b, "%s: ", field);
	for (i = 0; i < n; i++) {
		if (a[i].email == NULL || !msg_build_email_valid(a[i].email)) {
			snprintf(err, errlen, "Invalid '%s' email address: %s", field,
			    a[i].email ? a[i].email : "");
			return -1;
		}
		if (i > 0)
			sb_str(b, ",\r\n ");
		if (a[i].name != NULL && a[i].name[0] != '\0') {
			display_name(b, a[i].name);
			sb_printf(b, " <%s>", a[i].email);
		} else
			sb_str(b, a[i].email);
	}
	sb_str(b, "\r\n");
	return 0;
}

/* Headers this module writes itself; a request may not set them twice. */
static bool header_reserved(const char *name)
{
	static const char *const own[] = { "From", "To", "Cc", "Bcc", "Reply-To", "Subject",
		"Date", "Message-ID", "MIME-Version", "Content-Type",
		"Content-Transfer-Encoding", "X-Tags", "Received" };
	size_t i;

	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strcasecmp(own[i], name) == 0)
			return true;
	return false;
}

static int extra_headers(struct sbuf *b, const struct msg_build *m, char *err, size_t errlen)
{
	const char *p;
	size_t i;

	for (i = 0; i < m->nheaders; i++) {
		const struct msg_build_header *h = &m->headers[i];
		if (h->name[0] == '\0' || strlen(h->name) + strlen(h->value) + 2 >
		    MSG_BUILD_HEADER_MAX) {
			snprintf(err, errlen, "invalid header '%.64s'", h->name);
			return -1;
		}
		for (p = h->name; *p; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ':') {
				snprintf(err, errlen, "invalid header name '%.64s'", h->name);
				return -1;
			}
		if (strpbrk(h->value, "\r\n") != NULL) {
			snprintf(err, errlen, "invalid header value for '%.64s'", h->name);
			return -1;
		}
		if (header_reserved(h->name)) {
			snprintf(err, errlen, "header '%.64s' is set from its own field", h->name);
			return -1;
		}
		sb_printf(b, "%s: ", h->name);
		if (is_ascii_printable(h->value))
			sb_str(b, h->value);
		else
			encoded_words(b, h->value);
		sb_str(b, "\r\n");
	}
	return 0;
}

/* UTF-8 text as quoted-printable (RFC 2045 §6.7): LF or CRLF become hard
 * line breaks, lines are cut at 76 with soft breaks. */
static void quoted_printable(struct sbuf *b, const char *s)
{
	size_t col = 0;
	char enc[4];

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool ws_end = (c == ' ' || c == '\t') && (s[1] == '\0' || s[1] == '\n' ||
		    (s[1] == '\r' && s[2] == '\n'));
		size_t w;

		if (c == '\r' && s[1] == '\n')
			continue;
		if (c == '\n') {
			sb_str(b, "\r\n");
			col = 0;
			continue;
		}
		if (c == '=' || c == '\r' || c > 126 || (c < 32 && c != '\t') || ws_end ||
		    (c == '.' && col == 0)) {
			snprintf(enc, sizeof(enc), "=%02X", c);
			w = 3;
		} else {
			enc[0] = (char)c;
			enc[1] = '\0';
			w = 1;
		}
		if (col + w > 75) {
			sb_str(b, "=\r\n");
			col = 0;
		}
		sb_add(b, enc, w);
		col += w;
	}
	sb_str(b, "\r\n");
}

static void base64_lines(struct sbuf *b, const void *data, size_t len)
{
	const unsigned char *p = data;
	char out[80];
	size_t n;

	while (len > 0) {
		n = len < 57 ? len : 57;
		if (base64_encode(p, n, out, sizeof(out)) < 0) {
			b->failed = true;
			return;
		}
		sb_str(b, out);
		sb_str(b, "\r\n");
		p += n;
		len -= n;
	}
}

/* A quoted parameter value, or RFC 2231 (name*=UTF-8''...) for others. */
static void param(struct sbuf *b, const char *name, const char *value)
{
	const unsigned char *p;

	if (is_ascii_printable(value) && strpbrk(value, "\"\\") == NULL) {
		sb_printf(b, "; %s=\"%s\"", name, value);
		return;
	}
	sb_printf(b, ";\r\n %s*=UTF-8''", name);
	for (p = (const unsigned char *)value; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("!#$&+-.^_`|~", *p) != NULL)
			sb_add(b, p, 1);
		else
			sb_printf(b, "%%%02X", *p);
	}
}

static void text_part(struct sbuf *b, const char *subtype, const char *text)
{
	sb_printf(b, "Content-Type: text/%s; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n", subtype);
	quoted_printable(b, text);
}

static int att_part(struct sbuf *b, const struct msg_build_att *a, char *err, size_t errlen)
{
	const char *ct = a->content_type && a->content_type[0] ? a->content_type :
	    "application/octet-stream";
	const char *p;

	for (p = ct; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || strchr("\";\\", *p)) {
			snprintf(err, errlen, "invalid ContentType '%.64s'", ct);
			return -1;
		}
	if (strchr(ct, '/') == NULL) {
		snprintf(err, errlen, "invalid ContentType '%.64s'", ct);
		return -1;
	}
	sb_printf(b, "Content-Type: %s", ct);
	if (a->filename && a->filename[0])
		param(b, "name", a->filename);
	sb_str(b, "\r\n");
	if (a->content_id && a->content_id[0]) {
		if (!is_ascii_printable(a->content_id) || strpbrk(a->content_id, "<> ") != NULL) {
			snprintf(err, errlen, "invalid ContentID '%.64s'", a->content_id);
			return -1;
		}
		sb_printf(b, "Content-ID: <%s>\r\nContent-Disposition: inline", a->content_id);
	} else
		sb_str(b, "Content-Disposition: attachment");
	if (a->filename && a->filename[0])
		param(b, "filename", a->filename);
	sb_str(b, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	base64_lines(b, a->data, a->len);
	return 0;
}

struct tree {
	const struct msg_build *m;
	char bnd[3][48];                 /* mixed, related, alternative */
};

static void body_alternative(struct sbuf *b, struct tree *t)
{
	const struct msg_build *m = t->m;

	if (m->text && m->html) {
		sb_printf(b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", t->bnd[2]);
		sb_printf(b, "--%s\r\n", t->bnd[2]);
		text_part(b, "plain", m->text);
		sb_printf(b, "--%s\r\n", t->bnd[2]);
		text_part(b, "html", m->html);
		sb_printf(b, "--%s--\r\n", t->bnd[2]);
	} else if (m->html)
		text_part(b, "html", m->html);
	else
		text_part(b, "plain", m->text ? m->text : "");
}

static int body_related(struct sbuf *b, struct tree *t, size_t ninline, char *err,
    size_t errlen)
{
	const struct msg_build *m = t->m;
	size_t i;

	if (ninline == 0) {
		body_alternative(b, t);
		return 0;
	}
	sb_printf(b, "Content-Type: multipart/related; boundary=\"%s\"\r\n\r\n--%s\r\n",
	    t->bnd[1], t->bnd[1]);
	body_alternative(b, t);
	for (i = 0; i < m->natts; i++) {
		if (m->atts[i].content_id == NULL || m->atts[i].content_id[0] == '\0')
			continue;
		sb_printf(b, "--%s\r\n", t->bnd[1]);
		if (att_part(b, &m->atts[i], err, errlen) < 0)
			return -1;
	}
	sb_printf(b, "--%s--\r\n", t->bnd[1]);
	return 0;
}

static int body(struct sbuf *b, struct tree *t, char *err, size_t errlen)
{
	const struct msg_build *m = t->m;
	size_t i, ninline = 0, nattach = 0;

	for (i = 0; i < m->natts; i++) {
		if (m->atts[i].content_id && m->atts[i].content_id[0])
			ninline++;
		else
			nattach++;
	}
	if (nattach == 0)
		return body_related(b, t, ninline, err, errlen);
	sb_printf(b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n--%s\r\n",
	    t->bnd[0], t->bnd[0]);
	if (body_related(b, t, ninline, err, errlen) < 0)
		return -1;
	for (i = 0; i < m->natts; i++) {
		if (m->atts[i].content_id && m->atts[i].content_id[0])
			continue;
		sb_printf(b, "--%s\r\n", t->bnd[0]);
		if (att_part(b, &m->atts[i], err, errlen) < 0)
			return -1;
	}
	sb_printf(b, "--%s--\r\n", t->bnd[0]);
	return 0;
}

/* Boundaries that occur nowhere in the content (base64 and QP output can
 * never hold "=_", which every boundary starts with after its prefix). */
static void boundaries(struct tree *t, uint64_t seed)
{
	static const char *const kind[3] = { "mixed", "related", "alt" };
	size_t i;

	for (i = 0; i < 3; i++)
		snprintf(t->bnd[i], sizeof(t->bnd[i]), "=_%s_%016llx", kind[i],
		    (unsigned long long)(seed * 0x9e3779b97f4a7c15ULL + i));
}

int msg_build(const struct msg_build *m, char **out, size_t *len, char *err, size_t errlen)
{
	struct sbuf b = { NULL, 0, 0, false };
	struct tree t = { .m = m };
	size_t i;

	if (m->from.email == NULL || !msg_build_email_valid(m->from.email)) {
		snprintf(err, errlen, "Invalid sender email address: %s",
		    m->from.email ? m->from.email : "");
		return -1;
	}
	boundaries(&t, m->seed);
	if (address_list(&b, "From", &m->from, 1, err, errlen) < 0 ||
	    address_list(&b, "To", m->to, m->nto, err, errlen) < 0 ||
	    address_list(&b, "Cc", m->cc, m->ncc, err, errlen) < 0 ||
	    address_list(&b, "Reply-To", m->reply_to, m->nreply_to, err, errlen) < 0)
		goto fail;
	sb_str(&b, "Subject: ");
	if (m->subject && !is_ascii_printable(m->subject))
		encoded_words(&b, m->subject);
	else
		sb_str(&b, m->subject ? m->subject : "");
	sb_printf(&b, "\r\nDate: %s\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n", m->date,
	    m->message_id);
	if (m->ntags > 0) {
		sb_str(&b, "X-Tags: ");
		for (i = 0; i < m->ntags; i++) {
			if (strpbrk(m->tags[i], "\r\n,") != NULL) {
				snprintf(err, errlen, "invalid tag '%.64s'", m->tags[i]);
				goto fail;
			}
			sb_printf(&b, "%s%s", i ? ", " : "", m->tags[i]);
		}
		sb_str(&b, "\r\n");
	}
	if (extra_headers(&b, m, err, errlen) < 0 || body(&b, &t, err, errlen) < 0)
		goto fail;
	if (b.failed) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*out = b.p;
	*len = b.len;
	return 0;
fail:
	free(b.p);
	return -1;
}
