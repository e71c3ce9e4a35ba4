/*
 * Mailpit's search syntax into terms (include/mailsnare/msg_search.h), as
 * Mailpit's searchQueryBuilder reads it: the query is split into
 * arguments at unquoted spaces (quotes group and are removed), each
 * argument is one term; a known prefix makes it a field test, anything
 * else is a bare word. Where Mailpit silently drops a value it cannot
 * read (a bad date or size) this parser says so instead: a fixture that
 * typed before:2024-13-01 learns it from the 400, not from an empty
 * result.
 */
#include "mailsnare/msg_search.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg_search_fold.h"

struct msg_search {
	struct msg_search_term terms[MSG_SEARCH_MAX_TERMS];
	size_t n;
	char *text;                 /* the terms' folded values, one after another */
	size_t used, cap;
};

/* ---- case folding ------------------------------------------------------- */

static uint32_t fold_cp(uint32_t cp)
{
	size_t lo = 0, hi = sizeof(fold_runs) / sizeof(fold_runs[0]);

	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct fold_run *r = &fold_runs[mid];

		if (cp < r->first)
			hi = mid;
		else if (cp > r->last)
			lo = mid + 1;
		else
			return (cp - r->first) % r->stride == 0 ? (uint32_t)((int32_t)cp + r->delta) : cp;
	}
	return cp;
}

/* Decodes one UTF-8 character at s (n > 0 bytes left): its code point and
 * length, or the byte itself with length 1 (and *ok false) if invalid. */
static size_t utf8_get(const unsigned char *s, size_t n, uint32_t *cp, bool *ok)
{
	size_t len, i;
	uint32_t c = s[0];

	*ok = true;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
	} else
		goto bad;
	if (n < len)
		goto bad;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		goto bad;
	*cp = c;
	return len;
bad:
	*cp = s[0];
	*ok = false;
	return 1;
}

static size_t utf8_put(uint32_t cp, unsigned char *out)
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xc0 | (cp >> 6));
		out[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xe0 | (cp >> 12));
		out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | (cp >> 18));
	out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The next character of s, folded, as UTF-8 in out (at most 4 bytes);
 * returns how many input bytes it took. */
static size_t fold_next(const unsigned char *s, size_t n, unsigned char *out, size_t *outn)
{
	uint32_t cp;
	bool ok;
	size_t len = utf8_get(s, n, &cp, &ok);

	if (!ok) {
		out[0] = s[0];
		*outn = 1;
	} else
		*outn = utf8_put(fold_cp(cp), out);
	return len;
}

size_t msg_search_fold(const char *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	unsigned char ch[4];
	size_t i = 0, o = 0, n;

	if (outlen == 0)
		return 0;
	while (i < len) {
		i += fold_next(s + i, len - i, ch, &n);
		if (o + n >= outlen)
			break;
		memcpy(out + o, ch, n);
		o += n;
	}
	out[o] = '\0';
	return o;
}

/* Whether the folded form of hay at *pos starts with needle; the folded
 * bytes are produced as they are compared. */
static bool starts_folded(const unsigned char *hay, size_t haylen, const unsigned char *needle,
    size_t nlen)
{
	unsigned char ch[4];
	size_t i = 0, j = 0, n;

	while (j < nlen) {
		if (i >= haylen)
			return false;
		i += fold_next(hay + i, haylen - i, ch, &n);
		if (n > nlen - j || memcmp(ch, needle + j, n) != 0)
			return false;
		j += n;
	}
	return true;
}

bool msg_search_contains(const char *hay, size_t haylen, const char *needle, size_t nlen)
{
	const unsigned char *h = (const unsigned char *)hay, *nd = (const unsigned char *)needle;
	size_t i;
	uint32_t cp;
	bool ok;

	if (nlen == 0)
		return true;
	/* Only at character starts (an invalid byte is one of its own): a
	 * needle never matches half a character. */
	for (i = 0; i < haylen; i += utf8_get(h + i, haylen - i, &cp, &ok))
		if (starts_folded(h + i, haylen - i, nd, nlen))
			return true;
	return false;
}

/* ---- values ------------------------------------------------------------- */

/* Sizes as Mailpit's sizeToBytes: digits, an optional fraction, an
 * optional space and unit k/kb/m/mb in any case (1024-based); bytes
 * without a unit. -1 if unreadable. */
static int64_t parse_size(const char *v)
{
	char *end;
	double d;
	double mul = 1;

	if (v[0] < '0' || v[0] > '9')
		return -1;
	d = strtod(v, &end);
	if (*end == ' ')
		end++;
	if (*end == 'k' || *end == 'K')
		mul = 1024;
	else if (*end == 'm' || *end == 'M')
		mul = 1024.0 * 1024;
	else if (*end != '\0')
		return -1;
	if (*end != '\0') {
		end++;
		if (*end == 'b' || *end == 'B')
			end++;
	}
	if (*end != '\0' || d * mul > 9.0e18)
		return -1;
	return (int64_t)(d * mul);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* n digits at *p into *v. */
static bool digits(const char **p, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
		*v = *v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return true;
}

struct civil {
	int y, mo, d, h, mi, s;
	bool has_zone;
	int zone;                   /* seconds east of UTC */
};

/* YYYY-MM-DD (or /), then optionally [T or space]HH:MM[:SS] and Z or
 * +HH[:]MM. */
static bool parse_civil(const char *p, struct civil *c)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	char sep;
	int zh, zm;

	memset(c, 0, sizeof(*c));
	if (!digits(&p, 4, &c->y) || (*p != '-' && *p != '/'))
		return false;
	sep = *p++;
	if (!digits(&p, 2, &c->mo) || *p++ != sep || !digits(&p, 2, &c->d))
		return false;
	if (c->mo < 1 || c->mo > 12 || c->d < 1 ||
	    c->d > mdays[c->mo - 1] + (c->mo == 2 && leap(c->y)))
		return false;
	if (*p == '\0')
		return true;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return false;
	p++;
	if (!digits(&p, 2, &c->h) || *p++ != ':' || !digits(&p, 2, &c->mi))
		return false;
	if (*p == ':' && (p++, !digits(&p, 2, &c->s)))
		return false;
	if (c->h > 23 || c->mi > 59 || c->s > 60)
		return false;
	if (*p == 'Z' || *p == 'z') {
		c->has_zone = true;
		return p[1] == '\0';
	}
	if (*p != '+' && *p != '-')
		return *p == '\0';
	c->has_zone = true;
	sep = *p++;
	if (!digits(&p, 2, &zh))
		return false;
	if (*p == ':')
		p++;
	if (!digits(&p, 2, &zm) || *p != '\0' || zh > 23 || zm > 59)
		return false;
	c->zone = (zh * 3600 + zm * 60) * (sep == '-' ? -1 : 1);
	return true;
}

static int64_t civil_seconds(const struct civil *c)
{
	return days_from_civil(c->y, (unsigned)c->mo, (unsigned)c->d) * 86400 +
	    c->h * 3600 + c->mi * 60 + c->s;
}

/* ---- terms -------------------------------------------------------------- */

struct prefix {
	const char *name;
	enum msg_search_field field;
};

static const struct prefix prefixes[] = {
	{ "to:", MSG_SEARCH_TO }, { "from:", MSG_SEARCH_FROM }, { "cc:", MSG_SEARCH_CC },
	{ "bcc:", MSG_SEARCH_BCC }, { "reply-to:", MSG_SEARCH_REPLY_TO },
	{ "addressed:", MSG_SEARCH_ADDRESSED }, { "subject:", MSG_SEARCH_SUBJECT },
	{ "message-id:", MSG_SEARCH_MESSAGE_ID }, { "tag:", MSG_SEARCH_TAG },
	{ "inbox:", MSG_SEARCH_INBOX }, { "rcpt:", MSG_SEARCH_RCPT },
	{ "larger:", MSG_SEARCH_LARGER }, { "smaller:", MSG_SEARCH_SMALLER },
	{ "before:", MSG_SEARCH_BEFORE }, { "after:", MSG_SEARCH_AFTER },
};

static const struct prefix flags[] = {
	{ "is:read", MSG_SEARCH_READ }, { "is:unread", MSG_SEARCH_READ },
	{ "is:tagged", MSG_SEARCH_TAGGED },
	{ "has:attachment", MSG_SEARCH_ATTACHMENT }, { "has:attachments", MSG_SEARCH_ATTACHMENT },
	{ "has:inline", MSG_SEARCH_INLINE }, { "has:inlines", MSG_SEARCH_INLINE },
};

static bool ascii_ieq(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char x = a[i], y = b[i];

		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (x != y)
			return false;
	}
	return true;
}

/* Mailpit skips an argument without a letter or digit ("-", "..."); any
 * non-ASCII character counts as one here (Mailpit's [a-zA-Z0-9] test
 * would drop a word in Cyrillic). */
static bool has_word_char(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z') || c >= 0x80)
			return true;
	}
	return false;
}

/* Copies v (folded unless raw) into the text buffer for term t. */
static void set_text(struct msg_search *s, struct msg_search_term *t, const char *v, bool raw)
{
	size_t n = strlen(v);
	char *out = s->text + s->used;

	if (raw) {
		memcpy(out, v, n + 1);
		t->len = n;
	} else
		t->len = msg_search_fold(v, n, out, s->cap - s->used);
	t->text = out;
	s->used += t->len + 1;
}

static const char *trim(char *v)
{
	size_t n;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		v[--n] = '\0';
	return v;
}

/* A value for an error message: at most 40 bytes, never half a
 * character, control characters as '?' (the message is one line). */
static const char *shown(const char *v, char *buf, size_t len)
{
	size_t i = 0, n;
	uint32_t cp;
	bool ok;

	while (v[i] != '\0') {
		n = utf8_get((const unsigned char *)v + i, strlen(v + i), &cp, &ok);
		if (i + n >= len || i + n > 40)
			break;
		memcpy(buf + i, v + i, n);
		if (cp < 0x20 || cp == 0x7f)
			buf[i] = '?';
		i += n;
	}
	buf[i] = '\0';
	return buf;
}

static int value_term(struct msg_search *s, struct msg_search_term *t, const char *v,
    const char *tz, char *err, size_t errlen)
{
	struct civil c;
	int64_t local;
	char sv[48];

	switch (t->field) {
	case MSG_SEARCH_LARGER:
	case MSG_SEARCH_SMALLER:
		if ((t->number = parse_size(v)) < 0) {
			snprintf(err, errlen, "bad size \"%s\" (use 100, 10kb, 2mb)",
			    shown(v, sv, sizeof(sv)));
			return -1;
		}
		return 0;
	case MSG_SEARCH_BEFORE:
	case MSG_SEARCH_AFTER:
		if (!parse_civil(v, &c)) {
			snprintf(err, errlen, "bad date \"%s\" (use YYYY-MM-DD"
			    " or YYYY-MM-DDTHH:MM:SS)", shown(v, sv, sizeof(sv)));
			return -1;
		}
		local = civil_seconds(&c);
		if (c.has_zone)
			t->number = local - c.zone;
		else if (msg_search_tz_utc(tz, local, &t->number) != 0) {
			snprintf(err, errlen, "unknown time zone \"%s\"", shown(tz, sv, sizeof(sv)));
			return -1;
		}
		return 0;
	default:
		set_text(s, t, v, t->field == MSG_SEARCH_INBOX);
		return 0;
	}
}

/* One argument (quotes removed; quoted: it had some) into a term; *skip
 * when Mailpit ignores it. */
static int arg_term(struct msg_search *s, char *a, bool quoted, const char *tz,
    struct msg_search_term *t, bool *skip, char *err, size_t errlen)
{
	size_t i, n;
	const char *v;

	memset(t, 0, sizeof(*t));
	*skip = true;
	if (strlen(a) > 1 && (a[0] == '-' || a[0] == '!')) {
		t->negated = true;
		a++;
	}
	if (!has_word_char(a))
		return 0;
	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		n = strlen(flags[i].name);
		if (strlen(a) == n && ascii_ieq(a, flags[i].name, n)) {
			t->field = flags[i].field;
			if (strcmp(flags[i].name, "is:unread") == 0)
				t->negated = !t->negated;
			*skip = false;
			return 0;
		}
	}
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		n = strlen(prefixes[i].name);
		if (strlen(a) >= n && ascii_ieq(a, prefixes[i].name, n)) {
			t->field = prefixes[i].field;
			v = trim(a + n);
			if (v[0] == '\0')
				return 0;
			*skip = false;
			return value_term(s, t, v, tz, err, errlen);
		}
	}
	t->field = MSG_SEARCH_TEXT;
	t->phrase = quoted;
	v = trim(a);
	if (v[0] == '\0')
		return 0;
	*skip = false;
	set_text(s, t, v, false);
	return 0;
}

/* The next argument at *p into buf (quotes removed, at most the input's
 * length); false at the end. */
static bool next_arg(const char **p, char *buf, bool *quoted)
{
	const char *q = *p;
	bool in = false;
	size_t n = 0;

	while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
		q++;
	if (*q == '\0')
		return false;
	*quoted = false;
	for (; *q != '\0'; q++) {
		if (*q == '"') {
			in = !in;
			*quoted = true;
		} else if (!in && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
			break;
		else
			buf[n++] = *q;
	}
	buf[n] = '\0';
	*p = q;
	return true;
}

int msg_search_parse(const char *query, const char *tz, struct msg_search **out,
    char *err, size_t errlen)
{
	struct msg_search *s;
	size_t qlen = strlen(query);
	char *arg;
	const char *p = query;
	bool quoted, skip;
	int64_t probe;
	char sv[48];

	*out = NULL;
	if (tz == NULL)
		tz = "";
	if (qlen > MSG_SEARCH_MAX_QUERY) {
		snprintf(err, errlen, "query longer than %d bytes", MSG_SEARCH_MAX_QUERY);
		return -1;
	}
	if (msg_search_tz_utc(tz, 0, &probe) != 0) {
		snprintf(err, errlen, "unknown time zone \"%s\"", shown(tz, sv, sizeof(sv)));
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL || (arg = malloc(qlen + 1)) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* Folding may grow a character by one byte per two (U+023A). */
	s->cap = qlen * 2 + MSG_SEARCH_MAX_TERMS + 1;
	if ((s->text = malloc(s->cap)) == NULL) {
		free(arg);
		free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (next_arg(&p, arg, &quoted)) {
		if (s->n == MSG_SEARCH_MAX_TERMS) {
			snprintf(err, errlen, "more than %d search terms", MSG_SEARCH_MAX_TERMS);
			goto fail;
		}
		if (arg_term(s, arg, quoted, tz, &s->terms[s->n], &skip, err, errlen) != 0)
			goto fail;
		if (!skip)
			s->n++;
	}
	free(arg);
	*out = s;
	return 0;
fail:
	free(arg);
	msg_search_free(s);
	return -1;
}

void msg_search_free(struct msg_search *s)
{
	if (s == NULL)
		return;
	free(s->text);
	free(s);
}

/* Whether keyword k[0..len) folds to the folded tag. Simple folding
 * changes a character's UTF-8 length by half at most (two bytes to
 * three), hence the room. */
static bool keyword_is(const char *k, size_t len, const char *tag, size_t taglen)
{
	char small[256], *buf = small;
	size_t room = len * 3 / 2 + 2;
	bool is;

	if (len == 0 || len > taglen * 3)
		return false;
	if (room > sizeof(small) && (buf = malloc(room)) == NULL)
		return false;
	is = msg_search_fold(k, len, buf, room > sizeof(small) ? room : sizeof(small)) ==
	    taglen && memcmp(buf, tag, taglen) == 0;
	if (buf != small)
		free(buf);
	return is;
}

static bool keywords_have(const char *keywords, const char *tag, size_t taglen)
{
	const char *k = keywords, *e;

	while (*k != '\0') {
		e = k + strcspn(k, " ");
		if (keyword_is(k, (size_t)(e - k), tag, taglen))
			return true;
		k = *e != '\0' ? e + 1 : e;
	}
	return false;
}

bool msg_search_state_holds(const struct msg_search *s, bool read, const char *keywords)
{
	const struct msg_search_term *t;
	bool holds;
	size_t i;

	for (i = 0; s != NULL && i < s->n; i++) {
		t = &s->terms[i];
		if (t->field == MSG_SEARCH_READ)
			holds = read;
		else if (t->field == MSG_SEARCH_TAGGED)
			holds = keywords[strspn(keywords, " ")] != '\0';
		else if (t->field == MSG_SEARCH_TAG)
			holds = keywords_have(keywords, t->text, t->len);
		else
			continue;
		if (holds == t->negated)
			return false;
	}
	return true;
}

size_t msg_search_nterms(const struct msg_search *s)
{
	return s != NULL ? s->n : 0;
}

const struct msg_search_term *msg_search_term(const struct msg_search *s, size_t i)
{
	return s != NULL && i < s->n ? &s->terms[i] : NULL;
}
