/*
 * Header fields: iteration and unfolding (RFC 5322 §2.2), MIME parameters
 * with RFC 2231 continuations and charsets, BODY[HEADER.FIELDS] filtering.
 * Address lists and RFC 2047 words are in mime_address.c.
 */
#include "mailsnare/mime_header.h"

#include <event2/buffer.h>
#include <strings.h>

#include "mime_internal.h"

#define PARAMS_MAX 64
#define PARAM_VALUE_MAX (16 * 1024)

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static size_t line_end(const char *buf, size_t len, size_t pos)
{
	const char *lf = memchr(buf + pos, '\n', len - pos);
	return lf == NULL ? len : (size_t)(lf - buf) + 1;
}

static bool line_is_empty(const char *buf, size_t pos, size_t end)
{
	size_t n = end - pos;
	return n == 0 || (n == 1 && buf[pos] == '\n')
	    || (n == 2 && buf[pos] == '\r' && buf[pos + 1] == '\n');
}

/* End of the field starting at pos: its first line and every following
 * line that starts with WSP. */
static size_t field_end(const char *hdr, size_t len, size_t pos)
{
	size_t end = line_end(hdr, len, pos);

	while (end < len && is_wsp(hdr[end]))
		end = line_end(hdr, len, end);
	return end;
}

bool mime_header_next(const char *hdr, size_t len, size_t *pos, struct mime_field *f)
{
	size_t p = *pos;

	while (p < len) {
		size_t start = p, first = line_end(hdr, len, p), end;
		const char *colon;

		if (line_is_empty(hdr, p, first))
			break;
		end = field_end(hdr, len, p);
		p = end;
		colon = memchr(hdr + start, ':', first - start);
		if (colon == NULL || colon == hdr + start || is_wsp(hdr[start]))
			continue; /* not a field: skipped */
		f->name = hdr + start;
		f->name_len = (size_t)(colon - f->name);
		while (f->name_len > 0 && is_wsp(f->name[f->name_len - 1]))
			f->name_len--;
		f->value = colon + 1;
		f->value_len = (size_t)(hdr + end - f->value);
		while (f->value_len > 0 && (f->value[f->value_len - 1] == '\n'
		    || f->value[f->value_len - 1] == '\r'))
			f->value_len--;
		f->start = hdr + start;
		f->len = end - start;
		*pos = end;
		return true;
	}
	*pos = len;
	return false;
}

char *mime_header_unfold(const char *value, size_t len, size_t max)
{
	struct mstr s;
	size_t i = 0;

	mstr_init(&s, max);
	while (i < len && (is_wsp(value[i]) || value[i] == '\r' || value[i] == '\n'))
		i++;
	while (len > i && (is_wsp(value[len - 1]) || value[len - 1] == '\r' || value[len - 1] == '\n'))
		len--;
	for (; i < len; i++) {
		if (value[i] != '\r' && value[i] != '\n')
			mstr_addc(&s, value[i]);
	}
	return mstr_take(&s);
}

void mime_params_free(struct mime_param *params, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(params[i].name);
		free(params[i].value);
		free(params[i].charset);
		free(params[i].lang);
	}
	free(params);
}

/* ---- RFC 2045 lexing of parameter lists ---- */

struct lex {
	const char *s;
	size_t len, p;
};

static bool is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool is_token_char(char c)
{
	return (unsigned char)c > ' ' && c != 0x7f && !is_tspecial(c);
}

/* Skips white space, line ends and (nested) comments. */
static void lex_cfws(struct lex *l)
{
	int depth = 0;

	for (; l->p < l->len; l->p++) {
		char c = l->s[l->p];
		if (depth > 0 && c == '\\' && l->p + 1 < l->len)
			l->p++;
		else if (c == '(')
			depth++;
		else if (c == ')' && depth > 0)
			depth--;
		else if (depth == 0 && !is_wsp(c) && c != '\r' && c != '\n')
			return;
	}
}

static size_t lex_token(struct lex *l)
{
	size_t start = l->p;

	while (l->p < l->len && is_token_char(l->s[l->p]))
		l->p++;
	return l->p - start;
}

/* A quoted string at l->p (on the opening quote) into out, unescaped. */
static void lex_quoted(struct lex *l, struct mstr *out)
{
	for (l->p++; l->p < l->len; l->p++) {
		char c = l->s[l->p];
		if (c == '"') {
			l->p++;
			return;
		}
		if (c == '\\' && l->p + 1 < l->len)
			c = l->s[++l->p];
		if (c != '\r' && c != '\n')
			mstr_addc(out, c);
	}
}

/* A parameter value: a quoted string, or (leniently) anything up to ';'
 * or white space. */
static void lex_value(struct lex *l, struct mstr *out)
{
	if (l->p < l->len && l->s[l->p] == '"') {
		lex_quoted(l, out);
		return;
	}
	while (l->p < l->len && l->s[l->p] != ';' && !is_wsp(l->s[l->p])
	    && l->s[l->p] != '\r' && l->s[l->p] != '\n')
		mstr_addc(out, l->s[l->p++]);
}

/* Skips to the next ';' outside a quoted string. */
static void lex_skip_junk(struct lex *l)
{
	bool q = false;

	for (; l->p < l->len; l->p++) {
		char c = l->s[l->p];
		if (c == '\\' && q && l->p + 1 < l->len)
			l->p++;
		else if (c == '"')
			q = !q;
		else if (c == ';' && !q)
			return;
	}
}

/* ---- RFC 2231 resolution ---- */

struct rawp {
	char *attr;  /* lowercased, as written */
	char *value;
	size_t base_len;
	int index;   /* continuation number, -1 if none */
	bool ext;    /* ends in '*' */
};

/* Splits attr into base name, "*N" index and trailing "*". */
static void rawp_classify(struct rawp *r)
{
	size_t n = strlen(r->attr);
	char *star = strchr(r->attr, '*');

	r->base_len = n;
	r->index = -1;
	r->ext = false;
	if (star == NULL || star == r->attr)
		return;
	r->ext = r->attr[n - 1] == '*';
	if (star == r->attr + n - 1) {
		r->base_len = (size_t)(star - r->attr);
		return;
	}
	{
		char *end;
		long idx = strtol(star + 1, &end, 10);
		if (end == star + 1 || idx < 0 || idx >= PARAMS_MAX || (*end != '\0' && (*end != '*' || end[1] != '\0')))
			return; /* not RFC 2231 syntax: the whole attr is the name */
		r->base_len = (size_t)(star - r->attr);
		r->index = (int)idx;
	}
}

static int hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = mime_lower(c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

static void pct_decode(const char *s, struct mstr *out)
{
	for (; *s != '\0'; s++) {
		if (*s == '%' && hexv(s[1]) >= 0 && hexv(s[2]) >= 0) {
			mstr_addc(out, (char)(hexv(s[1]) * 16 + hexv(s[2])));
			s += 2;
		} else {
			mstr_addc(out, *s);
		}
	}
}

/* An extended first segment "charset'lang'value": fills charset and lang
 * and decodes the value. Without the two quotes, the charset is "". */
static void ext_first(const char *v, struct mime_param *p, struct mstr *out)
{
	const char *q1 = strchr(v, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;

	if (q2 == NULL) {
		p->charset = strdup("");
		pct_decode(v, out);
		return;
	}
	p->charset = mime_strndup_lower(v, (size_t)(q1 - v));
	if (q2 > q1 + 1)
		p->lang = strndup(q1 + 1, (size_t)(q2 - q1 - 1));
	pct_decode(q2 + 1, out);
}

static const struct rawp *find_seg(const struct rawp *r, size_t n, const struct rawp *base, int idx)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].index == idx && r[i].base_len == base->base_len
		    && memcmp(r[i].attr, base->attr, base->base_len) == 0)
			return &r[i];
	}
	return NULL;
}

/* name*0, name*1*, ... concatenated in order; stops at the first gap. */
static void resolve_continuations(const struct rawp *r, size_t n, const struct rawp *b,
    struct mime_param *p, struct mstr *out)
{
	const struct rawp *seg;
	bool any_ext = false;

	for (int idx = 0; (seg = find_seg(r, n, b, idx)) != NULL; idx++) {
		if (seg->ext && idx == 0)
			ext_first(seg->value, p, out);
		else if (seg->ext)
			pct_decode(seg->value, out);
		else
			mstr_adds(out, seg->value);
		any_ext = any_ext || seg->ext;
	}
	if (any_ext && p->charset == NULL)
		p->charset = strdup("");
}

static void param_clear(struct mime_param *p)
{
	free(p->name);
	free(p->value);
	free(p->charset);
	free(p->lang);
	memset(p, 0, sizeof(*p));
}

static bool same_base(const struct rawp *a, const struct rawp *b)
{
	return a->base_len == b->base_len && memcmp(a->attr, b->attr, a->base_len) == 0;
}

/* Resolves the parameter whose first appearance is raw[i]. */
static bool resolve_one(const struct rawp *raw, size_t n, size_t i, struct mime_param *p)
{
	const struct rawp *b = &raw[i], *single = NULL, *plain = NULL;
	struct mstr v;
	bool cont = false;

	for (size_t j = i; j < n; j++) {
		if (!same_base(&raw[j], b))
			continue;
		if (raw[j].index >= 0)
			cont = true;
		else if (raw[j].ext && single == NULL)
			single = &raw[j];
		else if (!raw[j].ext && plain == NULL)
			plain = &raw[j];
	}
	mstr_init(&v, PARAM_VALUE_MAX);
	memset(p, 0, sizeof(*p));
	if (single != NULL)
		ext_first(single->value, p, &v);
	else if (cont && find_seg(raw, n, b, 0) != NULL)
		resolve_continuations(raw, n, b, p, &v);
	else if (plain != NULL)
		mstr_adds(&v, plain->value);
	else
		return false;
	p->name = strndup(b->attr, b->base_len);
	p->value = mstr_take(&v);
	return p->name != NULL && p->value != NULL;
}

static size_t resolve_params(struct rawp *raw, size_t n, struct mime_param **params)
{
	struct mime_param *out = calloc(n ? n : 1, sizeof(*out));
	size_t cnt = 0;

	if (out == NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = same_base(&raw[j], &raw[i]);
		if (seen)
			continue;
		if (resolve_one(raw, n, i, &out[cnt]))
			cnt++;
		else
			param_clear(&out[cnt]);
	}
	*params = out;
	return cnt;
}

/* Reads `attribute = value` after a ';' into raw; false if malformed. */
static bool read_param(struct lex *l, struct rawp *r)
{
	size_t start, n;
	struct mstr v;

	lex_cfws(l);
	start = l->p;
	if ((n = lex_token(l)) == 0)
		return false;
	lex_cfws(l);
	if (l->p >= l->len || l->s[l->p] != '=')
		return false;
	l->p++;
	lex_cfws(l);
	mstr_init(&v, PARAM_VALUE_MAX);
	lex_value(l, &v);
	r->attr = mime_strndup_lower(l->s + start, n);
	r->value = mstr_take(&v);
	if (r->attr == NULL || r->value == NULL) {
		free(r->attr);
		free(r->value);
		return false;
	}
	rawp_classify(r);
	return true;
}

/* The leading token; a "type / subtype" pair is returned as "type/subtype". */
static char *read_leading(struct lex *l)
{
	size_t s1, n1, s2, n2;
	char *r;

	lex_cfws(l);
	s1 = l->p;
	n1 = lex_token(l);
	lex_cfws(l);
	if (n1 == 0)
		return NULL;
	if (l->p >= l->len || l->s[l->p] != '/')
		return mime_strndup_lower(l->s + s1, n1);
	l->p++;
	lex_cfws(l);
	s2 = l->p;
	n2 = lex_token(l);
	if ((r = malloc(n1 + n2 + 2)) == NULL)
		return NULL;
	for (size_t i = 0; i < n1; i++)
		r[i] = mime_lower(l->s[s1 + i]);
	r[n1] = '/';
	for (size_t i = 0; i < n2; i++)
		r[n1 + 1 + i] = mime_lower(l->s[s2 + i]);
	r[n1 + 1 + n2] = '\0';
	return r;
}

size_t mime_header_parse_params(const char *value, size_t len, char **token,
    struct mime_param **params)
{
	struct lex l = { value, len, 0 };
	struct rawp raw[PARAMS_MAX];
	size_t n = 0, cnt;

	*token = read_leading(&l);
	*params = NULL;
	while (l.p < l.len && n < PARAMS_MAX) {
		lex_skip_junk(&l);
		if (l.p >= l.len)
			break;
		l.p++; /* ';' */
		if (read_param(&l, &raw[n]))
			n++;
	}
	cnt = resolve_params(raw, n, params);
	for (size_t i = 0; i < n; i++) {
		free(raw[i].attr);
		free(raw[i].value);
	}
	return cnt;
}

size_t mime_header_parse_content_type(const char *value, size_t len, char **type,
    char **subtype, struct mime_param **params)
{
	char *tok = NULL, *slash;
	size_t n = mime_header_parse_params(value, len, &tok, params);

	*type = *subtype = NULL;
	if (tok != NULL && (slash = strchr(tok, '/')) != NULL && slash != tok && slash[1] != '\0') {
		*subtype = strdup(slash + 1);
		*slash = '\0';
		*type = tok;
		if (*subtype == NULL) {
			free(*type);
			*type = NULL;
		}
		return n;
	}
	free(tok);
	return n;
}

/* ---- BODY[HEADER.FIELDS] ---- */

static bool name_listed(const struct mime_field *f, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strlen(names[i]) == f->name_len && strncasecmp(names[i], f->name, f->name_len) == 0)
			return true;
	}
	return false;
}

long mime_header_filter(const char *hdr, size_t len, const char *const *names, size_t nnames,
    bool exclude, struct evbuffer *out)
{
	struct mime_field f;
	size_t pos = 0;
	long total = 0;

	while (mime_header_next(hdr, len, &pos, &f)) {
		if (name_listed(&f, names, nnames) == exclude)
			continue;
		if (evbuffer_add(out, f.start, f.len) != 0)
			return -1;
		total += (long)f.len;
		if (f.start[f.len - 1] != '\n') { /* last field of a header cut short */
			if (evbuffer_add(out, "\r\n", 2) != 0)
				return -1;
			total += 2;
		}
	}
	if (evbuffer_add(out, "\r\n", 2) != 0)
		return -1;
	return total + 2;
}
