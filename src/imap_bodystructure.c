/*
 * IMAP BODY / BODYSTRUCTURE (RFC 3501 §7.4.2 body, body-type-1part,
 * body-type-mpart, body-ext-*) from a MIME part tree.
 */
#include "mailsnare/imap_bodystructure.h"

#include <event2/buffer.h>
#include <string.h>

#include "mailsnare/imap_envelope.h"
#include "mailsnare/mime.h"

#define STR(out, s) imap_envelope_write_cstring(out, s)
#define LIT(out, s) evbuffer_add(out, s, sizeof(s) - 1)

static bool is_attr_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	    || (c != 0 && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* An RFC 2231 parameter as Dovecot sends it: "name*" "cs'lang'%XX..". */
static int write_ext_param(struct evbuffer *out, const struct mime_param *p)
{
	struct evbuffer *v = evbuffer_new();
	int rc;

	if (v == NULL)
		return -1;
	rc = evbuffer_add_printf(v, "%s*", p->name) < 0 ? -1 : 0;
	rc |= imap_envelope_write_nstring(out, (const char *)evbuffer_pullup(v, -1),
	    evbuffer_get_length(v));
	rc |= LIT(out, " ");
	rc |= evbuffer_drain(v, evbuffer_get_length(v));
	rc |= evbuffer_add_printf(v, "%s'%s'", p->charset, p->lang ? p->lang : "") < 0;
	for (const unsigned char *c = (const unsigned char *)p->value; *c != '\0'; c++) {
		if (is_attr_char(*c))
			rc |= evbuffer_add(v, c, 1);
		else
			rc |= evbuffer_add_printf(v, "%%%02X", *c) < 0;
	}
	rc |= imap_envelope_write_nstring(out, (const char *)evbuffer_pullup(v, -1),
	    evbuffer_get_length(v));
	evbuffer_free(v);
	return rc ? -1 : 0;
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
static int write_params(struct evbuffer *out, const struct mime_param *p, uint32_t n, bool text)
{
	bool add_charset = text && !has_param(p, n, "charset");
	int rc = 0;

	if (n == 0 && !add_charset)
		return LIT(out, "NIL");
	rc |= LIT(out, "(");
	if (add_charset)
		rc |= LIT(out, "\"charset\" \"us-ascii\"");
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0 || add_charset)
			rc |= LIT(out, " ");
		if (p[i].charset != NULL) {
			rc |= write_ext_param(out, &p[i]);
		} else {
			rc |= STR(out, p[i].name);
			rc |= LIT(out, " ");
			rc |= STR(out, p[i].value);
		}
	}
	rc |= LIT(out, ")");
	return rc ? -1 : 0;
}

static int write_disposition(struct evbuffer *out, const struct mime_part *p)
{
	int rc = 0;

	if (p->disposition == NULL)
		return LIT(out, "NIL");
	rc |= LIT(out, "(");
	rc |= STR(out, p->disposition);
	rc |= LIT(out, " ");
	rc |= write_params(out, p->disp_params, p->ndisp_params, false);
	rc |= LIT(out, ")");
	return rc ? -1 : 0;
}

/* body-fld-lang: Content-Language split at commas and white space. */
static int write_language(struct evbuffer *out, const char *lang)
{
	const char *sep = ", \t";
	int rc = 0, n = 0;

	if (lang == NULL || lang[strspn(lang, sep)] == '\0')
		return LIT(out, "NIL");
	rc |= LIT(out, "(");
	while (*(lang += strspn(lang, sep)) != '\0') {
		size_t len = strcspn(lang, sep);
		if (n++ > 0)
			rc |= LIT(out, " ");
		rc |= imap_envelope_write_nstring(out, lang, len);
		lang += len;
	}
	rc |= LIT(out, ")");
	return rc ? -1 : 0;
}

/* body-ext-1part / body-ext-mpart after the MD5 or parameters. */
static int write_ext_tail(struct evbuffer *out, const struct mime_part *p)
{
	int rc = LIT(out, " ");

	rc |= write_disposition(out, p);
	rc |= LIT(out, " ");
	rc |= write_language(out, p->language);
	rc |= LIT(out, " ");
	rc |= STR(out, p->location);
	return rc ? -1 : 0;
}

static int write_part(const struct mime_part *p, bool ext, struct evbuffer *out);

static int write_rfc822_tail(const struct mime_part *p, bool ext, struct evbuffer *out)
{
	int rc = LIT(out, " ");

	rc |= imap_envelope_write(p->children, out);
	rc |= LIT(out, " ");
	rc |= write_part(p->children, ext, out);
	rc |= evbuffer_add_printf(out, " %llu", (unsigned long long)p->body_lines) < 0;
	return rc ? -1 : 0;
}

static int write_single(const struct mime_part *p, bool ext, struct evbuffer *out)
{
	bool text = strcmp(p->type, "text") == 0;
	int rc = LIT(out, "(");

	rc |= STR(out, p->type);
	rc |= LIT(out, " ");
	rc |= STR(out, p->subtype);
	rc |= LIT(out, " ");
	rc |= write_params(out, p->params, p->nparams, text);
	rc |= LIT(out, " ");
	rc |= STR(out, p->id);
	rc |= LIT(out, " ");
	rc |= STR(out, p->description);
	rc |= LIT(out, " ");
	rc |= STR(out, p->encoding != NULL ? p->encoding : "7bit");
	rc |= evbuffer_add_printf(out, " %llu", (unsigned long long)p->body_size) < 0;
	if (text)
		rc |= evbuffer_add_printf(out, " %llu", (unsigned long long)p->body_lines) < 0;
	else if ((p->flags & MIME_PART_RFC822) && p->children != NULL)
		rc |= write_rfc822_tail(p, ext, out);
	if (ext) {
		rc |= LIT(out, " ");
		rc |= STR(out, p->md5);
		rc |= write_ext_tail(out, p);
	}
	rc |= LIT(out, ")");
	return rc ? -1 : 0;
}

static int write_multipart(const struct mime_part *p, bool ext, struct evbuffer *out)
{
	int rc = LIT(out, "(");

	if (p->children == NULL) /* no body part found: one empty text part */
		rc |= ext ? LIT(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)")
			  : LIT(out, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		rc |= write_part(c, ext, out);
	rc |= LIT(out, " ");
	rc |= STR(out, p->subtype);
	if (ext) {
		rc |= LIT(out, " ");
		rc |= write_params(out, p->params, p->nparams, false);
		rc |= write_ext_tail(out, p);
	}
	rc |= LIT(out, ")");
	return rc ? -1 : 0;
}

static int write_part(const struct mime_part *p, bool ext, struct evbuffer *out)
{
	if (p->flags & MIME_PART_MULTIPART)
		return write_multipart(p, ext, out);
	return write_single(p, ext, out);
}

int imap_bodystructure_write(const struct mime_part *part, bool extended, struct evbuffer *out)
{
	return write_part(part, extended, out);
}
