/*
 * IMAP BODY / BODYSTRUCTURE (RFC 3501 §7.4.2 body, body-type-1part,
 * body-type-mpart, body-ext-*) from a MIME part tree.
 */
#include "mailsnare/imap_bodystructure.h"

#include <event2/buffer.h>
#include <string.h>

#include "mailsnare/imap_envelope.h"
#include "mailsnare/mime.h"

#define STR(b, s) imap_buf_cstring(b, s)
#define LIT(b, s) IMAP_BUF_LIT(b, s)

static bool is_attr_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	    || (c != 0 && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* An RFC 2231 parameter as Dovecot sends it: "name*" "cs'lang'%XX..". */
static void write_ext_param(struct imap_buf *b, const struct mime_param *p)
{
	static const char hex[] = "0123456789ABCDEF";
	struct imap_buf v = { 0 };

	imap_buf_add(&v, p->name, strlen(p->name));
	imap_buf_addc(&v, '*');
	imap_buf_nstring(b, v.p, v.len);
	LIT(b, " ");
	v.len = 0;
	imap_buf_add(&v, p->charset, strlen(p->charset));
	imap_buf_addc(&v, '\'');
	if (p->lang != NULL)
		imap_buf_add(&v, p->lang, strlen(p->lang));
	imap_buf_addc(&v, '\'');
	for (const unsigned char *c = (const unsigned char *)p->value; *c != '\0'; c++) {
		if (is_attr_char(*c)) {
			imap_buf_addc(&v, (char)*c);
		} else {
			imap_buf_addc(&v, '%');
			imap_buf_addc(&v, hex[*c >> 4]);
			imap_buf_addc(&v, hex[*c & 15]);
		}
	}
	if (v.failed)
		b->failed = true;
	else
		imap_buf_nstring(b, v.p, v.len);
	imap_buf_free(&v);
}

static bool has_param(const struct mime_param *p, uint32_t n, const char *name)
{
	for (uint32_t i = 0; i < n; i++) {
		if (strcmp(p[i].name, name) == 0)
			return true;
	}
	return false;
}

/* body-fld-param; text parts get "charset" "us-ascii" when they lack one. */
static void write_params(struct imap_buf *b, const struct mime_param *p, uint32_t n, bool text)
{
	bool add_charset = text && !has_param(p, n, "charset");

	if (n == 0 && !add_charset) {
		LIT(b, "NIL");
		return;
	}
	LIT(b, "(");
	if (add_charset)
		LIT(b, "\"charset\" \"us-ascii\"");
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0 || add_charset)
			LIT(b, " ");
		if (p[i].charset != NULL) {
			write_ext_param(b, &p[i]);
		} else {
			STR(b, p[i].name);
			LIT(b, " ");
			STR(b, p[i].value);
		}
	}
	LIT(b, ")");
}

static void write_disposition(struct imap_buf *b, const struct mime_part *p)
{
	if (p->disposition == NULL) {
		LIT(b, "NIL");
		return;
	}
	LIT(b, "(");
	STR(b, p->disposition);
	LIT(b, " ");
	write_params(b, p->disp_params, p->ndisp_params, false);
	LIT(b, ")");
}

/* body-fld-lang: Content-Language split at commas and white space. */
static void write_language(struct imap_buf *b, const char *lang)
{
	const char *sep = ", \t";
	int n = 0;

	if (lang == NULL || lang[strspn(lang, sep)] == '\0') {
		LIT(b, "NIL");
		return;
	}
	LIT(b, "(");
	while (*(lang += strspn(lang, sep)) != '\0') {
		size_t len = strcspn(lang, sep);
		if (n++ > 0)
			LIT(b, " ");
		imap_buf_nstring(b, lang, len);
		lang += len;
	}
	LIT(b, ")");
}

/* body-ext-1part / body-ext-mpart after the MD5 or parameters. */
static void write_ext_tail(struct imap_buf *b, const struct mime_part *p)
{
	LIT(b, " ");
	write_disposition(b, p);
	LIT(b, " ");
	write_language(b, p->language);
	LIT(b, " ");
	STR(b, p->location);
}

static void write_part(const struct mime_part *p, bool ext, struct imap_buf *b);

static void write_rfc822_tail(const struct mime_part *p, bool ext, struct imap_buf *b)
{
	LIT(b, " ");
	imap_envelope_format(p->children, b);
	LIT(b, " ");
	write_part(p->children, ext, b);
	LIT(b, " ");
	imap_buf_num(b, p->body_lines);
}

static void write_single(const struct mime_part *p, bool ext, struct imap_buf *b)
{
	bool text = strcmp(p->type, "text") == 0;

	LIT(b, "(");
	STR(b, p->type);
	LIT(b, " ");
	STR(b, p->subtype);
	LIT(b, " ");
	write_params(b, p->params, p->nparams, text);
	LIT(b, " ");
	STR(b, p->id);
	LIT(b, " ");
	STR(b, p->description);
	LIT(b, " ");
	STR(b, p->encoding != NULL ? p->encoding : "7bit");
	LIT(b, " ");
	imap_buf_num(b, p->body_size);
	if (text) {
		LIT(b, " ");
		imap_buf_num(b, p->body_lines);
	} else if ((p->flags & MIME_PART_RFC822) && p->children != NULL) {
		write_rfc822_tail(p, ext, b);
	}
	if (ext) {
		LIT(b, " ");
		STR(b, p->md5);
		write_ext_tail(b, p);
	}
	LIT(b, ")");
}

static void write_multipart(const struct mime_part *p, bool ext, struct imap_buf *b)
{
	LIT(b, "(");
	if (p->children == NULL) { /* no body part found: one empty text part */
		if (ext)
			LIT(b, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
		else
			LIT(b, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
	}
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		write_part(c, ext, b);
	LIT(b, " ");
	STR(b, p->subtype);
	if (ext) {
		LIT(b, " ");
		write_params(b, p->params, p->nparams, false);
		write_ext_tail(b, p);
	}
	LIT(b, ")");
}

static void write_part(const struct mime_part *p, bool ext, struct imap_buf *b)
{
	if (p->flags & MIME_PART_MULTIPART)
		write_multipart(p, ext, b);
	else
		write_single(p, ext, b);
}

bool imap_bodystructure_format(const struct mime_part *part, bool extended, struct imap_buf *b)
{
	write_part(part, extended, b);
	return !b->failed;
}

int imap_bodystructure_write(const struct mime_part *part, bool extended, struct evbuffer *out)
{
	struct imap_buf b = { 0 };
	int rc;

	imap_bodystructure_format(part, extended, &b);
	rc = b.failed ? -1 : b.len == 0 ? 0 : evbuffer_add(out, b.p, b.len);
	imap_buf_free(&b);
	return rc;
}
