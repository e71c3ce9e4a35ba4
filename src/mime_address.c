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

struct raddr;

struct aparse {
	struct tok *t;
	size_t nt, i;
	struct raddr *out;
	size_t n, cap, max;
	struct mstr pool;     /* the strings of the result */
	size_t cur;           /* where the string being built starts */
};

static bool is_addr_special(char c)
{
	switch (c) {
	case '(': case ')': case '<': case '>': case '[': case ']': case ':': case ';':
	case '@': case '\\': case ',': case '.': case '"': case '\0':
		return true;
	default:
		return false;
	}
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

/*
 * The strings of the result are built in one pool (offsets, not pointers,
 * while it grows) and the result is one block: the address array followed
 * by the strings. A parse costs two allocations, not four per address
 * (ENVELOPE parses up to seven address fields per message).
 */
#define SREF_NULL SIZE_MAX

struct raddr {
	size_t name, adl, mailbox, host;   /* pool offsets or SREF_NULL */
};

/* Starts a string in the pool. */
static void str_begin(struct aparse *a)
{
	a->cur = a->pool.len;
}

/* Appends to the current string, which stays within ADDR_STR_MAX. */
static void str_add(struct aparse *a, const char *s, size_t n)
{
	size_t used = a->pool.len - a->cur;

	if (n > ADDR_STR_MAX - used)
		n = ADDR_STR_MAX - used;
	mstr_add(&a->pool, s, n);
}

/* Ends the current string; its offset, or SREF_NULL (and nothing kept)
 * if it is empty and allow_empty is false. */
static size_t str_end(struct aparse *a, bool allow_empty)
{
	if (a->pool.len == a->cur && !allow_empty)
		return SREF_NULL;
	mstr_addc(&a->pool, '\0');
	return a->cur;
}

static size_t str_const(struct aparse *a, const char *s)
{
	str_begin(a);
	str_add(a, s, strlen(s));
	return str_end(a, true);
}

/* Appends a token's text; quoted strings and comments lose their escapes
 * and folding. */
static void add_unescaped(struct aparse *a, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t run = i;
		while (run < len && s[run] != '\\' && s[run] != '\r' && s[run] != '\n')
			run++;
		str_add(a, s + i, run - i);   /* runs, not bytes: this is hot */
		if (run >= len)
			break;
		if (s[run] == '\\') {
			/* an escape; a lone backslash at the end stays */
			str_add(a, s + run + (run + 1 < len), 1);
			i = run + 2;
		} else {
			i = run + 1;   /* folding: CR and LF go */
		}
	}
}

/* Words t[from..to) as a display name: one space where the source had
 * white space between words. NULL if empty. */
static size_t phrase(struct aparse *a, size_t from, size_t to)
{
	str_begin(a);
	for (size_t i = from; i < to; i++) {
		if (i > from && a->t[i].ws_before)
			str_add(a, " ", 1);
		add_unescaped(a, a->t[i].s, a->t[i].len);
	}
	return str_end(a, false);
}

/* Words, dots and domain literals t[from..to) joined without spaces. */
static size_t joined(struct aparse *a, size_t from, size_t to, const char *missing)
{
	size_t r;

	str_begin(a);
	for (size_t i = from; i < to; i++)
		add_unescaped(a, a->t[i].s, a->t[i].len);
	r = str_end(a, false);
	return r != SREF_NULL ? r : str_const(a, missing);
}

/* The array grows as addresses come: a caller's max (ENVELOPE allows
 * 1,000) must not cost a zeroed array of that size per header field. */
static bool out_room(struct aparse *a)
{
	struct raddr *n;
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

static void emit(struct aparse *a, size_t name, size_t adl, size_t mailbox, size_t host)
{
	if (out_room(a)) {
		struct raddr *e = &a->out[a->n++];
		e->name = name;
		e->adl = adl;
		e->mailbox = mailbox;
		e->host = host;
	}
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
static size_t route(struct aparse *a)
{
	size_t start = a->i, j = a->i;

	while (is_sp(&a->t[j], '@') || is_sp(&a->t[j], ',')) {
		j = is_sp(&a->t[j], '@') ? domain_end(a, j + 1) : j + 1;
	}
	if (!is_sp(&a->t[j], ':'))
		return SREF_NULL;
	str_begin(a);
	for (size_t i = start; i < j; i++)
		str_add(a, a->t[i].s, a->t[i].len);
	a->i = j + 1;
	return str_end(a, true);
}

/* "<" [route] local "@" domain ">" with a->i after the '<'. */
static void angle_addr(struct aparse *a, size_t name)
{
	size_t adl = is_sp(&a->t[a->i], '@') ? route(a) : SREF_NULL;
	size_t ls = a->i, le, de, host;

	while (is_word(&a->t[a->i]))
		a->i++;
	le = a->i;
	if (is_sp(&a->t[a->i], '@')) {
		de = domain_end(a, a->i + 1);
		host = joined(a, a->i + 1, de, "MISSING_DOMAIN");
		a->i = de;
	} else {
		host = str_const(a, "MISSING_DOMAIN");
	}
	if (is_sp(&a->t[a->i], '>'))
		a->i++;
	emit(a, name, adl, joined(a, ls, le, "MISSING_MAILBOX"), host);
}

/* The comment that stands in for a missing display name. */
static size_t comment_name(struct aparse *a, const struct tok *t)
{
	if (t->comment == NULL || t->comment_len == 0)
		return SREF_NULL;
	str_begin(a);
	add_unescaped(a, t->comment, t->comment_len);
	return str_end(a, true);
}

/* One mailbox (name-addr or addr-spec) at a->i; skips junk up to the
 * next ',' / ';' so that every call makes progress. */
static void mailbox(struct aparse *a)
{
	size_t start = a->i, j = a->i;

	while (is_word(&a->t[j]))
		j++;
	if (is_sp(&a->t[j], '<')) {
		size_t name = phrase(a, start, j);
		size_t n_before = a->n;
		a->i = j + 1;
		angle_addr(a, name);
		if (name == SREF_NULL && a->n > n_before)
			a->out[a->n - 1].name = comment_name(a, &a->t[a->i]);
	} else if (j > start || is_sp(&a->t[j], '@')) {
		size_t local = joined(a, start, j, "MISSING_MAILBOX"), host;
		size_t de = j;
		if (is_sp(&a->t[j], '@')) {
			de = domain_end(a, j + 1);
			host = joined(a, j + 1, de, "MISSING_DOMAIN");
		} else {
			host = str_const(a, "MISSING_DOMAIN");
		}
		a->i = de;
		emit(a, comment_name(a, &a->t[de]), SREF_NULL, local, host);
	}
	while (a->t[a->i].type != T_END && !is_sp(&a->t[a->i], ',') && !is_sp(&a->t[a->i], ';'))
		a->i++;
}

/* phrase ":" [mailbox-list] ";" with a->i on the ':'. */
static void group(struct aparse *a, size_t name_start)
{
	size_t name = phrase(a, name_start, a->i);

	emit(a, SREF_NULL, SREF_NULL, name != SREF_NULL ? name : str_const(a, ""), SREF_NULL);
	a->i++;
	while (a->t[a->i].type != T_END && !is_sp(&a->t[a->i], ';')) {
		if (is_sp(&a->t[a->i], ',') || is_sp(&a->t[a->i], ':'))
			a->i++;
		else
			mailbox(a);
	}
	if (is_sp(&a->t[a->i], ';'))
		a->i++;
	emit(a, SREF_NULL, SREF_NULL, SREF_NULL, SREF_NULL);
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

static char *sref(char *strings, size_t off)
{
	return off == SREF_NULL ? NULL : strings + off;
}

/* One block: the array, then the pool with its strings. */
static struct mime_address *result_block(const struct aparse *a)
{
	size_t head = a->n * sizeof(struct mime_address);
	struct mime_address *out;
	char *strings;

	if (a->n == 0 || a->pool.failed || (out = malloc(head + a->pool.len + 1)) == NULL)
		return NULL;
	strings = (char *)out + head;
	if (a->pool.len > 0)
		memcpy(strings, a->pool.p, a->pool.len);
	for (size_t i = 0; i < a->n; i++) {
		out[i].name = sref(strings, a->out[i].name);
		out[i].adl = sref(strings, a->out[i].adl);
		out[i].mailbox = sref(strings, a->out[i].mailbox);
		out[i].host = sref(strings, a->out[i].host);
	}
	return out;
}

/* Short values (nearly every header) tokenize into the stack. */
#define ADDR_TOKENS_STACK 128

size_t mime_address_parse(const char *value, size_t len, size_t max, struct mime_address **out)
{
	struct tok stack[ADDR_TOKENS_STACK];
	struct aparse a = { 0 };
	size_t p = 0, ntok;

	*out = NULL;
	/* A NUL ends a header value (mime_header.h): past it, strings the
	 * pool keeps would read shorter than parsed ("\"\0x" gave an empty
	 * mailbox instead of MISSING_MAILBOX; found by fuzz_mime_address). */
	len = strnlen(value, len);
	/* Each token but the last takes at least one octet. */
	ntok = len < ADDR_TOKENS_MAX ? len + 1 : ADDR_TOKENS_MAX;
	if (ntok < ADDR_TOKENS_STACK)
		a.t = stack;
	else if ((a.t = malloc((ntok + 1) * sizeof(*a.t))) == NULL)
		return 0;
	do
		next_token(value, len, &p, &a.t[a.nt]);
	while (a.t[a.nt++].type != T_END && a.nt < ntok);
	a.t[a.nt].type = T_END;
	a.max = max;
	mstr_init(&a.pool, SIZE_MAX / 2);
	address_list(&a);
	if (a.t != stack)
		free(a.t);
	*out = result_block(&a);
	mstr_free(&a.pool);
	free(a.out);
	return *out != NULL ? a.n : 0;
}

void mime_addresses_free(struct mime_address *a, size_t n)
{
	(void)n;   /* one block (see result_block) */
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

/* Output at a time for a body part: glibc's iconv costs much per call (a
 * Shift_JIS part converted 25 times as fast as at 256 bytes). */
#define ICONV_BIG_OUT (64 * 1024)

/* Converts with iconv; bytes it cannot convert become U+FFFD. */
static void iconv_to_utf8(iconv_t cd, const char *in, size_t len, struct mstr *out)
{
	char small[256], *ip = (char *)in, *big = NULL, *buf = small;
	size_t left = len, cap = sizeof(small);

	if (len > sizeof(small) && (big = malloc(ICONV_BIG_OUT)) != NULL) {
		buf = big;
		cap = ICONV_BIG_OUT;
	}
	while (left > 0 && !out->failed) {
		char *op = buf;
		size_t room = cap;
		size_t r = iconv(cd, &ip, &left, &op, &room);
		int e = errno; /* before mstr_add's realloc */
		mstr_add(out, buf, (size_t)(op - buf));
		if (r != (size_t)-1 || e == E2BIG)
			continue;
		if (e == EINVAL)
			break; /* a sequence cut at the end */
		mstr_adds(out, "\xEF\xBF\xBD");
		ip++;
		left--;
	}
	free(big);
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
