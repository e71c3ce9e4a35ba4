/*
 * RFC 5322 §3.4 address lists (with the obsolete forms of §4.4: routes,
 * phrases with dots, CFWS between words) and RFC 2047 encoded words.
 * The address value is first split into tokens, then parsed by index.
 */
#include "mailsnare/mime_header.h"

#include <errno.h>
#include <iconv.h>
#include <strings.h>

#include "mailsnare/mime_decode.h"
#include "mime_internal.h"

#define ADDR_TOKENS_MAX 4096
#define ADDR_STR_MAX (16 * 1024)

enum tok_type { T_END, T_ATOM, T_QSTR, T_DLIT, T_SPECIAL };

struct tok {
	enum tok_type type;
	char c;               /* T_SPECIAL: the character */
	const char *s;        /* raw text (T_QSTR: inside the quotes) */
	size_t len;
	bool ws_before;       /* white space or a comment precedes it */
	const char *comment;  /* the last comment before it, inside parens */
	size_t comment_len;
};

struct aparse {
	struct tok *t;
	size_t nt, i;
	struct mime_address *out;
	size_t n, cap, max;
};

static bool is_addr_special(char c)
{
	return strchr("()<>[]:;@\\,.\"", c) != NULL;
}

/* Skips white space and comments from *p; records the last comment. */
static bool skip_cfws(const char *s, size_t len, size_t *p, struct tok *t)
{
	bool any = false;

	while (*p < len) {
		char c = s[*p];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			(*p)++;
		} else if (c == '(') {
			size_t start = ++(*p);
			int depth = 1;
			for (; *p < len && depth > 0; (*p)++) {
				if (s[*p] == '\\' && *p + 1 < len)
					(*p)++;
				else if (s[*p] == '(')
					depth++;
				else if (s[*p] == ')')
					depth--;
			}
			t->comment = s + start;
			t->comment_len = *p - start - (depth == 0 ? 1 : 0);
		} else {
			break;
		}
		any = true;
	}
	return any;
}

/* Scans the delimited run (quoted string or domain literal) at *p. */
static void scan_delimited(const char *s, size_t len, size_t *p, char close, struct tok *t)
{
	t->s = s + ++(*p);
	while (*p < len && s[*p] != close) {
		if (s[*p] == '\\' && *p + 1 < len)
			(*p)++;
		(*p)++;
	}
	t->len = (size_t)(s + *p - t->s);
	if (*p < len)
		(*p)++;
}

static void next_token(const char *s, size_t len, size_t *p, struct tok *t)
{
	memset(t, 0, sizeof(*t));
	t->ws_before = skip_cfws(s, len, p, t);
	if (*p >= len) {
		t->type = T_END;
	} else if (s[*p] == '"') {
		t->type = T_QSTR;
		scan_delimited(s, len, p, '"', t);
	} else if (s[*p] == '[') {
		size_t start = *p;
		t->type = T_DLIT;
		scan_delimited(s, len, p, ']', t);
		t->s = s + start;
		t->len = *p - start;
	} else if (is_addr_special(s[*p])) {
		t->type = T_SPECIAL;
		t->c = s[*p];
		t->s = s + (*p)++;
		t->len = 1;
	} else {
		t->type = T_ATOM;
		t->s = s + *p;
		while (*p < len && !is_addr_special(s[*p]) && s[*p] != ' ' && s[*p] != '\t'
		    && s[*p] != '\r' && s[*p] != '\n')
			(*p)++;
		t->len = (size_t)(s + *p - t->s);
	}
}

static bool is_word(const struct tok *t)
{
	return t->type == T_ATOM || t->type == T_QSTR || (t->type == T_SPECIAL && t->c == '.');
}

static bool is_sp(const struct tok *t, char c)
{
	return t->type == T_SPECIAL && t->c == c;
}

/* Appends a token's text; quoted strings and comments lose their escapes
 * and folding. */
static void add_unescaped(struct mstr *m, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len)
			i++;
		else if (s[i] == '\r' || s[i] == '\n')
			continue;
		mstr_addc(m, s[i]);
	}
}

/* Words t[from..to) as a display name: one space where the source had
 * white space between words. NULL if empty. */
static char *phrase(const struct aparse *a, size_t from, size_t to)
{
	struct mstr m;

	mstr_init(&m, ADDR_STR_MAX);
	for (size_t i = from; i < to; i++) {
		if (i > from && a->t[i].ws_before)
			mstr_addc(&m, ' ');
		add_unescaped(&m, a->t[i].s, a->t[i].len);
	}
	if (m.len == 0 && !m.failed) {
		mstr_free(&m);
		return NULL;
	}
	return mstr_take(&m);
}

/* Words, dots and domain literals t[from..to) joined without spaces. */
static char *joined(const struct aparse *a, size_t from, size_t to, const char *missing)
{
	struct mstr m;

	mstr_init(&m, ADDR_STR_MAX);
	for (size_t i = from; i < to; i++)
		add_unescaped(&m, a->t[i].s, a->t[i].len);
	if (m.len == 0 && !m.failed) {
		mstr_free(&m);
		return strdup(missing);
	}
	return mstr_take(&m);
}

/* The array grows as addresses come: a caller's max (ENVELOPE allows
 * 1,000) must not cost a zeroed array of that size per header field. */
static bool out_room(struct aparse *a)
{
	struct mime_address *n;
	size_t cap;

	if (a->n < a->cap)
		return true;
	if (a->n >= a->max)
		return false;
	cap = a->cap ? a->cap * 2 : 4;
	if (cap > a->max)
		cap = a->max;
	if ((n = realloc(a->out, cap * sizeof(*n))) == NULL)
		return false;
	a->out = n;
	a->cap = cap;
	return true;
}

static void emit(struct aparse *a, char *name, char *adl, char *mailbox, char *host)
{
	if (out_room(a)) {
		struct mime_address *e = &a->out[a->n++];
		e->name = name;
		e->adl = adl;
		e->mailbox = mailbox;
		e->host = host;
		return;
	}
	free(name);
	free(adl);
	free(mailbox);
	free(host);
}

/* The end of a domain: words separated by dots (white space allowed). */
static size_t domain_end(const struct aparse *a, size_t i)
{
	bool want_word = true;

	for (;; i++) {
		const struct tok *t = &a->t[i];
		if (want_word && (t->type == T_ATOM || t->type == T_DLIT))
			want_word = false;
		else if (is_sp(t, '.'))
			want_word = true;
		else
			return i;
	}
}

/* Obsolete route "@a,@b:" inside angle brackets; returns it or NULL. */
static char *route(struct aparse *a)
{
	size_t start = a->i, j = a->i;
	struct mstr m;

	while (is_sp(&a->t[j], '@') || is_sp(&a->t[j], ',')) {
		j = is_sp(&a->t[j], '@') ? domain_end(a, j + 1) : j + 1;
	}
	if (!is_sp(&a->t[j], ':'))
		return NULL;
	mstr_init(&m, ADDR_STR_MAX);
	for (size_t i = start; i < j; i++)
		mstr_add(&m, a->t[i].s, a->t[i].len);
	a->i = j + 1;
	return mstr_take(&m);
}

/* "<" [route] local "@" domain ">" with a->i after the '<'. */
static void angle_addr(struct aparse *a, char *name)
{
	char *adl = is_sp(&a->t[a->i], '@') ? route(a) : NULL;
	size_t ls = a->i, le, de;
	char *host;

	while (is_word(&a->t[a->i]))
		a->i++;
	le = a->i;
	if (is_sp(&a->t[a->i], '@')) {
		de = domain_end(a, a->i + 1);
		host = joined(a, a->i + 1, de, "MISSING_DOMAIN");
		a->i = de;
	} else {
		host = strdup("MISSING_DOMAIN");
	}
	if (is_sp(&a->t[a->i], '>'))
		a->i++;
	emit(a, name, adl, joined(a, ls, le, "MISSING_MAILBOX"), host);
}

/* The comment that stands in for a missing display name. */
static char *comment_name(const struct tok *t)
{
	struct mstr m;

	if (t->comment == NULL || t->comment_len == 0)
		return NULL;
	mstr_init(&m, ADDR_STR_MAX);
	add_unescaped(&m, t->comment, t->comment_len);
	return mstr_take(&m);
}

/* One mailbox (name-addr or addr-spec) at a->i; skips junk up to the
 * next ',' / ';' so that every call makes progress. */
static void mailbox(struct aparse *a)
{
	size_t start = a->i, j = a->i;

	while (is_word(&a->t[j]))
		j++;
	if (is_sp(&a->t[j], '<')) {
		char *name = phrase(a, start, j);
		size_t n_before = a->n;
		a->i = j + 1;
		angle_addr(a, name);
		if (name == NULL && a->n > n_before)
			a->out[a->n - 1].name = comment_name(&a->t[a->i]);
	} else if (j > start || is_sp(&a->t[j], '@')) {
		char *local = joined(a, start, j, "MISSING_MAILBOX"), *host;
		size_t de = j;
		if (is_sp(&a->t[j], '@')) {
			de = domain_end(a, j + 1);
			host = joined(a, j + 1, de, "MISSING_DOMAIN");
		} else {
			host = strdup("MISSING_DOMAIN");
		}
		a->i = de;
		emit(a, comment_name(&a->t[de]), NULL, local, host);
	}
	while (a->t[a->i].type != T_END && !is_sp(&a->t[a->i], ',') && !is_sp(&a->t[a->i], ';'))
		a->i++;
}

/* phrase ":" [mailbox-list] ";" with a->i on the ':'. */
static void group(struct aparse *a, size_t name_start)
{
	char *name = phrase(a, name_start, a->i);

	emit(a, NULL, NULL, name ? name : strdup(""), NULL);
	a->i++;
	while (a->t[a->i].type != T_END && !is_sp(&a->t[a->i], ';')) {
		if (is_sp(&a->t[a->i], ',') || is_sp(&a->t[a->i], ':'))
			a->i++;
		else
			mailbox(a);
	}
	if (is_sp(&a->t[a->i], ';'))
		a->i++;
	emit(a, NULL, NULL, NULL, NULL);
}

static void address_list(struct aparse *a)
{
	while (a->t[a->i].type != T_END) {
		size_t j = a->i;
		if (is_sp(&a->t[j], ',') || is_sp(&a->t[j], ';')) {
			a->i++;
			continue;
		}
		while (is_word(&a->t[j]))
			j++;
		if (is_sp(&a->t[j], ':')) {
			size_t start = a->i;
			a->i = j;
			group(a, start);
		} else {
			mailbox(a);
		}
	}
}

size_t mime_address_parse(const char *value, size_t len, size_t max, struct mime_address **out)
{
	struct aparse a = { 0 };
	size_t p = 0;

	*out = NULL;
	if ((a.t = calloc(ADDR_TOKENS_MAX + 1, sizeof(*a.t))) == NULL)
		return 0;
	do
		next_token(value, len, &p, &a.t[a.nt]);
	while (a.t[a.nt++].type != T_END && a.nt < ADDR_TOKENS_MAX);
	a.t[a.nt].type = T_END;
	a.max = max;
	address_list(&a);
	free(a.t);
	*out = a.out;
	return a.n;
}

void mime_addresses_free(struct mime_address *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(a[i].name);
		free(a[i].adl);
		free(a[i].mailbox);
		free(a[i].host);
	}
	free(a);
}

/* ---- RFC 2047 encoded words ---- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = mime_lower(c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

#define EW_CHARSET_MAX 64

static bool is_charset(const char *cs, const char *a, const char *b)
{
	return strcasecmp(cs, a) == 0 || (b != NULL && strcasecmp(cs, b) == 0);
}

/* Converts with iconv; bytes it cannot convert become U+FFFD. */
static void iconv_to_utf8(iconv_t cd, const char *in, size_t len, struct mstr *out)
{
	char buf[256], *ip = (char *)in;
	size_t left = len;

	while (left > 0 && !out->failed) {
		char *op = buf;
		size_t room = sizeof(buf);
		size_t r = iconv(cd, &ip, &left, &op, &room);
		mstr_add(out, buf, (size_t)(op - buf));
		if (r != (size_t)-1 || errno == E2BIG)
			continue;
		if (errno == EINVAL)
			break; /* a sequence cut at the end */
		mstr_adds(out, "\xEF\xBF\xBD");
		ip++;
		left--;
	}
}

static void charset_to_utf8(const char *cs, const char *in, size_t len, struct mstr *out)
{
	iconv_t cd;

	if (is_charset(cs, "utf-8", "utf8") || is_charset(cs, "us-ascii", "ascii") || cs[0] == '\0') {
		mstr_add(out, in, len);
	} else if (is_charset(cs, "iso-8859-1", "latin1")) {
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)in[i];
			if (c < 0x80) {
				mstr_addc(out, (char)c);
			} else {
				mstr_addc(out, (char)(0xC0 | (c >> 6)));
				mstr_addc(out, (char)(0x80 | (c & 0x3F)));
			}
		}
	} else if ((cd = iconv_open("UTF-8", cs)) != (iconv_t)-1) {
		iconv_to_utf8(cd, in, len, out);
		iconv_close(cd);
	} else {
		mstr_add(out, in, len); /* unknown charset: the bytes as they are */
	}
}

char *mime_charset_to_utf8(const char *charset, const char *in, size_t len, size_t *outlen)
{
	struct mstr out;

	/* Latin-1 doubles at most; other charsets (via iconv) triple. */
	mstr_init(&out, len * 3 + 16);
	charset_to_utf8(charset ? charset : "", in, len, &out);
	*outlen = out.len;
	return mstr_take(&out);
}

static void q_decode(const char *s, size_t len, struct mstr *out)
{
	for (size_t i = 0; i < len; i++) {
		int h = i + 2 < len ? hex_digit(s[i + 1]) : -1, l = i + 2 < len ? hex_digit(s[i + 2]) : -1;
		if (s[i] == '=' && h >= 0 && l >= 0) {
			mstr_addc(out, (char)(h * 16 + l));
			i += 2;
		} else {
			mstr_addc(out, s[i] == '_' ? ' ' : s[i]);
		}
	}
}

/* An encoded word "=?charset?B|Q?text?=" at s[p]: decodes it into out and
 * sets *end past it; false (out untouched) if it is not one. */
static bool encoded_word(const char *s, size_t len, size_t p, size_t *end, struct mstr *out)
{
	size_t cs = p + 2, q1, q2, te;
	char charset[EW_CHARSET_MAX + 1], *star, buf[MIME_DECODE_OUT_MAX(128)];
	struct mstr raw;

	for (q1 = cs; q1 < len && s[q1] != '?' && (unsigned char)s[q1] > ' '; q1++)
		;
	if (q1 >= len || s[q1] != '?' || q1 == cs || q1 - cs > EW_CHARSET_MAX || q1 + 3 >= len
	    || strchr("BbQq", s[q1 + 1]) == NULL || s[q1 + 2] != '?')
		return false;
	q2 = q1 + 3;
	for (te = q2; te + 1 < len && !(s[te] == '?' && s[te + 1] == '='); te++) {
		if ((unsigned char)s[te] <= ' ')
			return false;
	}
	if (te + 1 >= len)
		return false;
	memcpy(charset, s + cs, q1 - cs);
	charset[q1 - cs] = '\0';
	if ((star = strchr(charset, '*')) != NULL)
		*star = '\0'; /* RFC 2231 §5 language suffix */
	mstr_init(&raw, te - q2 + 1);
	if (s[q1 + 1] == 'Q' || s[q1 + 1] == 'q') {
		q_decode(s + q2, te - q2, &raw);
	} else {
		struct mime_decoder d;
		mime_decoder_init(&d, MIME_ENC_BASE64);
		for (size_t i = q2; i < te;) {
			size_t n = te - i < 128 ? te - i : 128;
			mstr_add(&raw, buf, mime_decoder_feed(&d, s + i, n, buf));
			i += n;
		}
	}
	charset_to_utf8(charset, raw.p ? raw.p : "", raw.len, out);
	mstr_free(&raw);
	*end = te + 2;
	return true;
}

static bool is_lwsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

char *mime_header_decode(const char *v, size_t len, size_t *outlen)
{
	struct mstr out;
	size_t i = 0, ws = 0, end;
	bool prev_ew = false, holding = false;

	mstr_init(&out, len * 3 + 16);
	while (i < len) {
		if (v[i] == '=' && i + 1 < len && v[i + 1] == '?' && encoded_word(v, len, i, &end, &out)) {
			holding = false; /* white space between encoded words goes */
			prev_ew = true;
			i = end;
			continue;
		}
		if (is_lwsp(v[i]) && prev_ew) {
			if (!holding)
				ws = i;
			holding = true;
			i++;
			continue;
		}
		if (holding)
			mstr_add(&out, v + ws, i - ws);
		holding = prev_ew = false;
		mstr_addc(&out, v[i++]);
	}
	if (holding)
		mstr_add(&out, v + ws, i - ws);
	*outlen = out.len;
	return mstr_take(&out);
}
