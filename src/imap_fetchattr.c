/* FETCH attribute lists: see imap_fetchattr.h. */
#include "mailsnare/imap_fetchattr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct simple_item {
	const char *name;
	enum imap_fetch_item item;
};

static const struct simple_item simple_items[] = {
	{ "FLAGS", IMAP_FETCH_FLAGS },
	{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE },
	{ "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
	{ "ENVELOPE", IMAP_FETCH_ENVELOPE },
	{ "BODY", IMAP_FETCH_BODY },
	{ "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
	{ "UID", IMAP_FETCH_UID },
	{ "RFC822", IMAP_FETCH_RFC822 },
	{ "RFC822.HEADER", IMAP_FETCH_RFC822_HEADER },
	{ "RFC822.TEXT", IMAP_FETCH_RFC822_TEXT },
	{ "MODSEQ", IMAP_FETCH_MODSEQ },
};

#define NSIMPLE (sizeof(simple_items) / sizeof(simple_items[0]))

/* Macros of RFC 3501 §6.4.5: FAST, ALL = FAST + ENVELOPE, FULL = ALL + BODY. */
static const enum imap_fetch_item macro_items[] = {
	IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_ENVELOPE, IMAP_FETCH_BODY
};

static bool ferr(struct imap_error *err, const char *msg)
{
	err->code = IMAP_ERR_SYNTAX;
	snprintf(err->msg, sizeof(err->msg), "%s", msg);
	return false;
}

/* ---- a small growing string for echo names */

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 32;
		char *p;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((p = realloc(b->s, ncap)) == NULL) {
			b->oom = true;
			return;
		}
		b->s = p;
		b->cap = ncap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_fmt(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_fmt(struct sbuf *b, const char *fmt, ...)
{
	char tmp[32];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A header field name as an atom when it is one, else a quoted string. */
static void sb_astring(struct sbuf *b, const char *s)
{
	bool atom = *s != '\0';

	for (const char *p = s; *p != '\0'; p++)
		if (!imap_is_atom_char((unsigned char)*p))
			atom = false;
	if (atom) {
		sb_str(b, s);
		return;
	}
	sb_add(b, "\"", 1);
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			sb_add(b, "\\", 1);
		sb_add(b, p, 1);
	}
	sb_add(b, "\"", 1);
}

/* ---- sections */

/* RFC 5322 field-name = 1*ftext; ftext = %d33-57 / %d59-126 */
static bool field_name_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 || s[i] == ':')
			return false;
	return true;
}

static bool section_fields(const struct imap_arg *list, struct imap_section *out,
    const char **errmsg)
{
	const struct imap_arg *items;
	size_t n;

	if (!imap_arg_list(list, &items, &n) || n == 0) {
		*errmsg = "HEADER.FIELDS needs a list of field names";
		return false;
	}
	out->fields = calloc(n, sizeof(*out->fields));
	if (out->fields == NULL) {
		*errmsg = "Out of memory";
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (!imap_arg_astring(&items[i], &out->fields[i], &len) ||
		    !field_name_ok(out->fields[i], len)) {
			*errmsg = "Bad header field name";
			return false;
		}
	}
	out->nfields = n;
	return true;
}

/* section-part: nz-number *("." nz-number); leaves *p after the last one
 * (and its dot if a keyword follows). */
static bool section_parts(const char **p, struct imap_section *out, const char **errmsg)
{
	while (**p >= '0' && **p <= '9') {
		const char *s = *p;
		uint64_t v;

		while (**p >= '0' && **p <= '9')
			(*p)++;
		if (*s == '0' || !imap_parse_uint(s, (size_t)(*p - s), UINT32_MAX, &v)) {
			*errmsg = "Bad section part number";
			return false;
		}
		if (out->nparts == IMAP_SECTION_MAX_PARTS) {
			*errmsg = "Section nested too deep";
			return false;
		}
		out->part[out->nparts++] = (uint32_t)v;
		if (**p == '\0')
			return true;
		if (*(*p)++ != '.' || **p == '\0') {
			*errmsg = "Bad section";
			return false;
		}
	}
	return true;
}

static bool section_keyword(const char *kw, struct imap_section *out)
{
	static const struct { const char *name; enum imap_section_text text; } kws[] = {
		{ "HEADER", IMAP_SECTION_HEADER },
		{ "HEADER.FIELDS", IMAP_SECTION_HEADER_FIELDS },
		{ "HEADER.FIELDS.NOT", IMAP_SECTION_HEADER_FIELDS_NOT },
		{ "TEXT", IMAP_SECTION_TEXT },
		{ "MIME", IMAP_SECTION_MIME },
	};

	for (size_t i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
		if (strcasecmp(kw, kws[i].name) == 0) {
			out->text = kws[i].text;
			return true;
		}
	}
	return false;
}

static bool parse_section(const struct imap_arg *sect, bool binary,
    struct imap_section *out, const char **errmsg)
{
	const char *p;
	bool fields;

	memset(out, 0, sizeof(*out));
	*errmsg = "Bad section";
	if (sect->count == 0)
		return true;
	if (!imap_arg_atom(&sect->list[0], &p) || !section_parts(&p, out, errmsg))
		return false;
	if (*p != '\0' && (binary || !section_keyword(p, out)))
		return false;
	if (out->text == IMAP_SECTION_MIME && out->nparts == 0)
		return false;
	fields = out->text == IMAP_SECTION_HEADER_FIELDS ||
	    out->text == IMAP_SECTION_HEADER_FIELDS_NOT;
	if (sect->count != (fields ? 2u : 1u))
		return false;
	return !fields || section_fields(&sect->list[1], out, errmsg);
}

static const char *const text_names[] = {
	"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"
};

bool imap_fetch_parse_section(const struct imap_arg *sect, bool binary,
    struct imap_section *out, const char **errmsg)
{
	if (parse_section(sect, binary, out, errmsg))
		return true;
	free(out->fields);
	out->fields = NULL;
	out->nfields = 0;
	return false;
}

static void echo_section(struct sbuf *b, const struct imap_section *s)
{
	sb_add(b, "[", 1);
	for (unsigned i = 0; i < s->nparts; i++)
		sb_fmt(b, "%s%u", i ? "." : "", s->part[i]);
	if (s->text != IMAP_SECTION_ALL)
		sb_fmt(b, "%s%s", s->nparts ? "." : "", text_names[s->text]);
	for (size_t i = 0; i < s->nfields; i++) {
		sb_add(b, i ? " " : " (", i ? 1 : 2);
		sb_astring(b, s->fields[i]);
	}
	if (s->nfields > 0)
		sb_add(b, ")", 1);
	sb_add(b, "]", 1);
}

/* "<" number "." nz-number ">" */
static bool parse_partial(const char *s, struct imap_fetch_att *att)
{
	const char *dot = strchr(s, '.');
	size_t n = strlen(s);
	uint64_t o, l;

	if (n == 0)
		return true;
	if (s[0] != '<' || s[n - 1] != '>' || dot == NULL ||
	    !imap_parse_uint(s + 1, (size_t)(dot - s - 1), UINT32_MAX, &o) ||
	    !imap_parse_uint(dot + 1, (size_t)(s + n - 1 - dot - 1), UINT32_MAX, &l) || l == 0)
		return false;
	att->partial = true;
	att->offset = (uint32_t)o;
	att->length = (uint32_t)l;
	return true;
}

static bool parse_section_att(const struct imap_arg *a, struct imap_fetch_att *att,
    struct imap_error *err)
{
	const char *name = a->str, *msg;
	struct sbuf b = { 0 };
	bool binary = strncasecmp(name, "BINARY", 6) == 0;
	bool size = strcasecmp(name, "BINARY.SIZE") == 0;

	att->item = size ? IMAP_FETCH_BINARY_SIZE :
	    binary ? IMAP_FETCH_BINARY : IMAP_FETCH_BODY_SECTION;
	att->peek = strcasecmp(name + (binary ? 6 : 4), ".PEEK") == 0;
	if (!imap_fetch_parse_section(a, binary, &att->section, &msg))
		return ferr(err, msg);
	if (!parse_partial(a->partial, att) || (size && att->partial))
		return ferr(err, "Bad partial");
	sb_str(&b, size ? "BINARY.SIZE" : binary ? "BINARY" : "BODY");
	echo_section(&b, &att->section);
	if (att->partial)
		sb_fmt(&b, "<%u>", att->offset);
	if (b.oom) {
		free(b.s);
		return ferr(err, "Out of memory");
	}
	att->echo = b.s;
	return true;
}

static bool parse_att(const struct imap_arg *a, struct imap_fetch_att *att,
    struct imap_error *err)
{
	const char *s;

	memset(att, 0, sizeof(*att));
	if (a->type == IMAP_ARG_SECTION)
		return parse_section_att(a, att, err);
	if (!imap_arg_atom(a, &s))
		return ferr(err, "Bad fetch attribute");
	for (size_t i = 0; i < NSIMPLE; i++) {
		if (strcasecmp(s, simple_items[i].name) == 0) {
			att->item = simple_items[i].item;
			att->echo = strdup(simple_items[i].name);
			return att->echo != NULL || ferr(err, "Out of memory");
		}
	}
	return ferr(err, "Unknown fetch attribute");
}

static bool add_att(struct imap_fetch *f, const struct imap_fetch_att *att)
{
	struct imap_fetch_att *n = realloc(f->atts, (f->count + 1) * sizeof(*n));

	if (n == NULL)
		return false;
	f->atts = n;
	f->atts[f->count++] = *att;
	return true;
}

bool imap_fetch_ensure(struct imap_fetch *f, enum imap_fetch_item item)
{
	struct imap_fetch_att att = { .item = item };

	for (size_t i = 0; i < f->count; i++)
		if (f->atts[i].item == item)
			return true;
	for (size_t i = 0; i < NSIMPLE; i++)
		if (simple_items[i].item == item)
			att.echo = strdup(simple_items[i].name);
	if (att.echo == NULL || !add_att(f, &att)) {
		free(att.echo);
		return false;
	}
	return true;
}

static bool add_parsed(struct imap_fetch *f, const struct imap_arg *a, struct imap_error *err)
{
	struct imap_fetch_att att;

	if (!parse_att(a, &att, err)) {
		free(att.echo);
		free(att.section.fields);
		return false;
	}
	if (!add_att(f, &att)) {
		free(att.echo);
		free(att.section.fields);
		return ferr(err, "Out of memory");
	}
	if (att.item == IMAP_FETCH_RFC822 || att.item == IMAP_FETCH_RFC822_TEXT ||
	    ((att.item == IMAP_FETCH_BODY_SECTION || att.item == IMAP_FETCH_BINARY) && !att.peek))
		f->sets_seen = true;
	return true;
}

static bool parse_macro(struct imap_fetch *f, const char *s, struct imap_error *err)
{
	size_t n = strcasecmp(s, "FAST") == 0 ? 3 : strcasecmp(s, "ALL") == 0 ? 4 :
	    strcasecmp(s, "FULL") == 0 ? 5 : 0;

	for (size_t i = 0; i < n; i++)
		if (!imap_fetch_ensure(f, macro_items[i]))
			return ferr(err, "Out of memory");
	return n > 0;
}

static bool parse_modifiers(struct imap_fetch *f, const struct imap_arg *a, bool uid,
    struct imap_error *err)
{
	const struct imap_arg *m;
	size_t n;

	if (!imap_arg_list(a, &m, &n) || n == 0)
		return ferr(err, "Bad fetch modifiers");
	for (size_t i = 0; i < n; i++) {
		if (imap_arg_equals(&m[i], "CHANGEDSINCE") && !f->changedsince_set) {
			if (i + 1 >= n || !imap_arg_number64(&m[i + 1], &f->changedsince))
				return ferr(err, "CHANGEDSINCE needs a mod-sequence");
			f->changedsince_set = true;
			i++;
		} else if (imap_arg_equals(&m[i], "VANISHED") && !f->vanished) {
			f->vanished = true;
		} else {
			return ferr(err, "Unknown or repeated fetch modifier");
		}
	}
	if (f->vanished && (!uid || !f->changedsince_set))
		return ferr(err, "VANISHED needs UID FETCH and CHANGEDSINCE");
	if (f->changedsince_set && !imap_fetch_ensure(f, IMAP_FETCH_MODSEQ))
		return ferr(err, "Out of memory");
	return true;
}

static bool parse_atts(struct imap_fetch *f, const struct imap_arg *a, struct imap_error *err)
{
	const struct imap_arg *items;
	const char *s;
	size_t n;

	if (imap_arg_atom(a, &s) && parse_macro(f, s, err))
		return true;
	if (err->code != IMAP_ERR_NONE)
		return false;
	if (!imap_arg_list(a, &items, &n))
		return add_parsed(f, a, err);
	if (n == 0)
		return ferr(err, "Empty fetch attribute list");
	for (size_t i = 0; i < n; i++)
		if (!add_parsed(f, &items[i], err))
			return false;
	return true;
}

bool imap_fetch_parse(const struct imap_arg *args, size_t nargs, bool uid,
    struct imap_fetch *out, struct imap_error *err)
{
	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (nargs < 1 || nargs > 2)
		return ferr(err, "FETCH needs attributes");
	if (parse_atts(out, &args[0], err) &&
	    (nargs < 2 || parse_modifiers(out, &args[1], uid, err)))
		return true;
	imap_fetch_free(out);
	return false;
}

void imap_fetch_free(struct imap_fetch *f)
{
	for (size_t i = 0; i < f->count; i++) {
		free(f->atts[i].echo);
		free(f->atts[i].section.fields);
	}
	free(f->atts);
	memset(f, 0, sizeof(*f));
}
