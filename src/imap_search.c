/* SEARCH program, SORT criteria and THREAD algorithm parsing: see imap_search.h. */
#include "mailsnare/imap_search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/mime_header.h"

enum argkind { A_NONE, A_KEYWORD, A_STR, A_HEADER, A_DATE, A_NUM, A_UID, A_NOT, A_OR, A_MODSEQ };

static const struct {
	const char *name;
	enum imap_search_key key;
	enum argkind kind;
} search_keys[] = {
	{ "ALL", IMAP_SK_ALL, A_NONE }, { "ANSWERED", IMAP_SK_ANSWERED, A_NONE },
	{ "DELETED", IMAP_SK_DELETED, A_NONE }, { "DRAFT", IMAP_SK_DRAFT, A_NONE },
	{ "FLAGGED", IMAP_SK_FLAGGED, A_NONE }, { "NEW", IMAP_SK_NEW, A_NONE },
	{ "OLD", IMAP_SK_OLD, A_NONE }, { "RECENT", IMAP_SK_RECENT, A_NONE },
	{ "SEEN", IMAP_SK_SEEN, A_NONE }, { "UNANSWERED", IMAP_SK_UNANSWERED, A_NONE },
	{ "UNDELETED", IMAP_SK_UNDELETED, A_NONE }, { "UNDRAFT", IMAP_SK_UNDRAFT, A_NONE },
	{ "UNFLAGGED", IMAP_SK_UNFLAGGED, A_NONE }, { "UNSEEN", IMAP_SK_UNSEEN, A_NONE },
	{ "KEYWORD", IMAP_SK_KEYWORD, A_KEYWORD }, { "UNKEYWORD", IMAP_SK_UNKEYWORD, A_KEYWORD },
	{ "BCC", IMAP_SK_BCC, A_STR }, { "BODY", IMAP_SK_BODY, A_STR },
	{ "CC", IMAP_SK_CC, A_STR }, { "FROM", IMAP_SK_FROM, A_STR },
	{ "SUBJECT", IMAP_SK_SUBJECT, A_STR }, { "TEXT", IMAP_SK_TEXT, A_STR },
	{ "TO", IMAP_SK_TO, A_STR }, { "HEADER", IMAP_SK_HEADER, A_HEADER },
	{ "BEFORE", IMAP_SK_BEFORE, A_DATE }, { "ON", IMAP_SK_ON, A_DATE },
	{ "SINCE", IMAP_SK_SINCE, A_DATE }, { "SENTBEFORE", IMAP_SK_SENTBEFORE, A_DATE },
	{ "SENTON", IMAP_SK_SENTON, A_DATE }, { "SENTSINCE", IMAP_SK_SENTSINCE, A_DATE },
	{ "LARGER", IMAP_SK_LARGER, A_NUM }, { "SMALLER", IMAP_SK_SMALLER, A_NUM },
	{ "UID", IMAP_SK_UID, A_UID }, { "NOT", IMAP_SK_NOT, A_NOT },
	{ "OR", IMAP_SK_OR, A_OR }, { "MODSEQ", IMAP_SK_MODSEQ, A_MODSEQ },
};

#define NKEYS (sizeof(search_keys) / sizeof(search_keys[0]))

struct sctx {
	const struct imap_search_limits *lim;
	struct imap_search *s;
	struct imap_error *err;
};

/* A cursor over one argument array (the program or a group's list). */
struct cursor {
	const struct imap_arg *a;
	size_t n, i;
};

static bool serr(struct sctx *c, enum imap_err code, const char *msg)
{
	if (c->err->code == IMAP_ERR_NONE) {
		c->err->code = code;
		snprintf(c->err->msg, sizeof(c->err->msg), "%s", msg);
	}
	return false;
}

static void node_free(struct imap_search_node *n)
{
	for (size_t i = 0; i < n->nchildren; i++)
		node_free(&n->children[i]);
	free(n->children);
	imap_seqset_free(&n->set);
	memset(n, 0, sizeof(*n));
}

static const struct imap_arg *next_arg(struct sctx *c, struct cursor *cur, const char *what)
{
	if (cur->i >= cur->n) {
		serr(c, IMAP_ERR_SYNTAX, what);
		return NULL;
	}
	return &cur->a[cur->i++];
}

static bool add_child(struct sctx *c, struct imap_search_node *parent,
    const struct imap_search_node *child)
{
	struct imap_search_node *n = realloc(parent->children,
	    (parent->nchildren + 1) * sizeof(*n));

	if (n == NULL)
		return serr(c, IMAP_ERR_NOMEM, "Out of memory");
	parent->children = n;
	parent->children[parent->nchildren++] = *child;
	return true;
}

static bool parse_key(struct sctx *c, struct cursor *cur, unsigned depth,
    struct imap_search_node *out);

static bool parse_children(struct sctx *c, struct cursor *cur, unsigned depth, size_t count,
    struct imap_search_node *out)
{
	if (depth >= c->lim->max_depth)
		return serr(c, IMAP_ERR_TOO_DEEP, "Search keys nested too deep");
	for (size_t k = 0; k < count; k++) {
		struct imap_search_node child;

		if (!parse_key(c, cur, depth + 1, &child))
			return false;
		if (!add_child(c, out, &child)) {
			node_free(&child);
			return false;
		}
	}
	return true;
}

static bool parse_set(struct sctx *c, const struct imap_arg *a, struct imap_search_node *out)
{
	if (a->type != IMAP_ARG_ATOM || (a->flags & ~IMAP_AF_WILDCARD) != 0)
		return serr(c, IMAP_ERR_SYNTAX, "Bad sequence set");
	switch (imap_seqset_parse(a->str, a->len, c->lim->max_ranges, &out->set)) {
	case IMAP_SEQ_OK:
		c->s->uses_saved |= out->set.saved;
		return true;
	case IMAP_SEQ_ERR_NOMEM:
		return serr(c, IMAP_ERR_NOMEM, "Out of memory");
	default:
		return serr(c, IMAP_ERR_SYNTAX, "Bad sequence set");
	}
}

/* MODSEQ ["/flags/name" ("priv" / "shared" / "all")] mod-sequence-valzer */
static bool parse_modseq(struct sctx *c, struct cursor *cur, struct imap_search_node *out)
{
	const struct imap_arg *a = next_arg(c, cur, "MODSEQ needs a value");
	const char *t;

	c->s->modseq = true;
	if (a != NULL && a->type == IMAP_ARG_QUOTED) {
		out->field = a->str;
		if ((a = next_arg(c, cur, "MODSEQ needs an entry type")) == NULL ||
		    !imap_arg_atom(a, &t))
			return serr(c, IMAP_ERR_SYNTAX, "Bad MODSEQ entry type");
		if (strcasecmp(t, "priv") == 0)
			out->modseq_type = IMAP_MODSEQ_PRIV;
		else if (strcasecmp(t, "shared") == 0)
			out->modseq_type = IMAP_MODSEQ_SHARED;
		else if (strcasecmp(t, "all") == 0)
			out->modseq_type = IMAP_MODSEQ_ALL;
		else
			return serr(c, IMAP_ERR_SYNTAX, "Bad MODSEQ entry type");
		a = next_arg(c, cur, "MODSEQ needs a value");
	}
	if (a == NULL || !imap_arg_number64(a, &out->number))
		return serr(c, IMAP_ERR_SYNTAX, "Bad MODSEQ value");
	return true;
}

static bool parse_astr(struct sctx *c, struct cursor *cur, const char **s, size_t *len)
{
	const struct imap_arg *a = next_arg(c, cur, "Missing search argument");

	if (a == NULL)
		return false;
	if (!imap_arg_astring(a, s, len))
		return serr(c, IMAP_ERR_SYNTAX, "Bad search string");
	return true;
}

static bool parse_arg(struct sctx *c, struct cursor *cur, enum argkind kind, unsigned depth,
    struct imap_search_node *out)
{
	const struct imap_arg *a;

	switch (kind) {
	case A_NONE:
		return true;
	case A_KEYWORD:
		if ((a = next_arg(c, cur, "KEYWORD needs a flag")) == NULL)
			return false;
		out->len = a->len;
		return imap_arg_atom(a, &out->str) || serr(c, IMAP_ERR_SYNTAX, "Bad keyword");
	case A_STR:
		return parse_astr(c, cur, &out->str, &out->len);
	case A_HEADER:
		return parse_astr(c, cur, &out->field, NULL) &&
		    parse_astr(c, cur, &out->str, &out->len);
	case A_DATE:
		return parse_astr(c, cur, &out->str, &out->len) &&
		    (imap_date_parse(out->str, out->len, &out->date) ||
		    serr(c, IMAP_ERR_SYNTAX, "Bad date"));
	case A_NUM:
		if ((a = next_arg(c, cur, "Missing number")) == NULL)
			return false;
		return imap_arg_number64(a, &out->number) || serr(c, IMAP_ERR_SYNTAX, "Bad number");
	case A_UID:
		return (a = next_arg(c, cur, "UID needs a set")) != NULL && parse_set(c, a, out);
	case A_NOT:
		return parse_children(c, cur, depth, 1, out);
	case A_OR:
		return parse_children(c, cur, depth, 2, out);
	case A_MODSEQ:
		return parse_modseq(c, cur, out);
	}
	return false;
}

static bool parse_group(struct sctx *c, const struct imap_arg *a, unsigned depth,
    struct imap_search_node *out)
{
	struct cursor sub = { .a = a->list, .n = a->count };

	out->key = IMAP_SK_AND;
	if (sub.n == 0)
		return serr(c, IMAP_ERR_SYNTAX, "Empty search group");
	while (sub.i < sub.n)
		if (!parse_children(c, &sub, depth, 1, out))
			return false;
	return true;
}

static bool parse_key(struct sctx *c, struct cursor *cur, unsigned depth,
    struct imap_search_node *out)
{
	const struct imap_arg *a = next_arg(c, cur, "Missing search key");
	bool ok;

	memset(out, 0, sizeof(*out));
	if (a == NULL)
		return false;
	if (a->type == IMAP_ARG_LIST) {
		ok = parse_group(c, a, depth, out);
	} else if (a->type == IMAP_ARG_ATOM && a->len > 0 &&
	    ((a->str[0] >= '0' && a->str[0] <= '9') || a->str[0] == '*' || a->str[0] == '$')) {
		out->key = IMAP_SK_SEQSET;
		ok = parse_set(c, a, out);
	} else {
		size_t k;

		for (k = 0; k < NKEYS; k++)
			if (imap_arg_equals(a, search_keys[k].name) && a->flags == 0)
				break;
		if (k == NKEYS)
			return serr(c, IMAP_ERR_SYNTAX, "Unknown search key");
		out->key = search_keys[k].key;
		ok = parse_arg(c, cur, search_keys[k].kind, depth, out);
	}
	if (!ok)
		node_free(out);
	return ok;
}

bool imap_search_parse_return(const struct imap_arg *list, unsigned *ret, struct imap_error *err)
{
	static const struct { const char *name; unsigned bit; } opts[] = {
		{ "MIN", IMAP_SEARCH_RET_MIN }, { "MAX", IMAP_SEARCH_RET_MAX },
		{ "ALL", IMAP_SEARCH_RET_ALL }, { "COUNT", IMAP_SEARCH_RET_COUNT },
		{ "SAVE", IMAP_SEARCH_RET_SAVE },
	};
	const struct imap_arg *items;
	size_t n;

	*ret = 0;
	if (!imap_arg_list(list, &items, &n)) {
		err->code = IMAP_ERR_SYNTAX;
		snprintf(err->msg, sizeof(err->msg), "RETURN needs a list");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
			if (items[i].flags == 0 && imap_arg_equals(&items[i], opts[k].name))
				break;
		if (k == sizeof(opts) / sizeof(opts[0])) {
			err->code = IMAP_ERR_SYNTAX;
			snprintf(err->msg, sizeof(err->msg), "Unknown RETURN option");
			return false;
		}
		*ret |= opts[k].bit;
	}
	if (n == 0)
		*ret = IMAP_SEARCH_RET_ALL;
	return true;
}

static bool parse_charset(struct sctx *c, struct cursor *cur)
{
	const char *cs;

	if (!parse_astr(c, cur, &cs, NULL))
		return false;
	c->s->utf8 = strcasecmp(cs, "UTF-8") == 0;
	if (!c->s->utf8 && strcasecmp(cs, "US-ASCII") != 0)
		return serr(c, IMAP_ERR_BADCHARSET, "Unsupported charset");
	return true;
}

/* [RETURN (opts)] [CHARSET cs]; SORT and THREAD: a bare charset. */
static bool parse_prefix(struct sctx *c, struct cursor *cur)
{
	if (cur->n > 0 && imap_arg_equals(&cur->a[0], "RETURN") &&
	    !(c->lim->flags & IMAP_SEARCH_NO_RETURN)) {
		if (cur->n < 2 || !imap_search_parse_return(&cur->a[1], &c->s->ret, c->err))
			return serr(c, IMAP_ERR_SYNTAX, "Bad RETURN options");
		c->s->esearch = true;
		cur->i = 2;
	}
	c->s->utf8 = true;
	if (c->lim->flags & IMAP_SEARCH_CHARSET_REQUIRED)
		return parse_charset(c, cur);
	if (cur->i < cur->n && imap_arg_equals(&cur->a[cur->i], "CHARSET")) {
		cur->i++;
		return parse_charset(c, cur);
	}
	return true;
}

bool imap_search_parse(const struct imap_arg *args, size_t nargs,
    const struct imap_search_limits *lim, struct imap_search *out, struct imap_error *err)
{
	struct sctx c = { .lim = lim, .s = out, .err = err };
	struct cursor cur = { .a = args, .n = nargs };
	bool ok;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	out->root.key = IMAP_SK_AND;
	ok = parse_prefix(&c, &cur);
	if (ok && cur.i >= cur.n)
		ok = serr(&c, IMAP_ERR_SYNTAX, "Missing search key");
	while (ok && cur.i < cur.n)
		ok = parse_children(&c, &cur, 0, 1, &out->root);
	if (!ok)
		imap_search_free(out);
	return ok;
}

void imap_search_free(struct imap_search *s)
{
	node_free(&s->root);
}

bool imap_sort_parse(const struct imap_arg *list, struct imap_sort_crit *out, size_t max,
    size_t *n, struct imap_error *err)
{
	static const char *const names[] = {
		"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"
	};
	const struct imap_arg *items;
	size_t count;
	bool reverse = false;

	*n = 0;
	err->code = IMAP_ERR_SYNTAX;
	snprintf(err->msg, sizeof(err->msg), "Bad sort criteria");
	if (!imap_arg_list(list, &items, &count) || count == 0)
		return false;
	for (size_t i = 0; i < count; i++) {
		size_t k;

		if (imap_arg_equals(&items[i], "REVERSE") && !reverse) {
			reverse = true;
			continue;
		}
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			if (items[i].flags == 0 && imap_arg_equals(&items[i], names[k]))
				break;
		if (k == sizeof(names) / sizeof(names[0]) || *n >= max)
			return false;
		out[(*n)++] = (struct imap_sort_crit){ .key = (enum imap_sort_key)k, .reverse = reverse };
		reverse = false;
	}
	if (reverse)
		return false;
	err->code = IMAP_ERR_NONE;
	err->msg[0] = '\0';
	return true;
}

bool imap_thread_parse(const struct imap_arg *a, enum imap_thread_alg *alg,
    struct imap_error *err)
{
	if (imap_arg_equals(a, "ORDEREDSUBJECT") && a->flags == 0) {
		*alg = IMAP_THREAD_ORDEREDSUBJECT;
	} else if (imap_arg_equals(a, "REFERENCES") && a->flags == 0) {
		*alg = IMAP_THREAD_REFERENCES;
	} else {
		err->code = IMAP_ERR_SYNTAX;
		snprintf(err->msg, sizeof(err->msg), "Unknown threading algorithm");
		return false;
	}
	return true;
}

/* ---- address text for SEARCH FROM/TO/CC/BCC ----------------------------- */

struct abuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void abuf_add(struct abuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		char *q;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((q = realloc(b->p, cap)) == NULL) {
			b->failed = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void abuf_str(struct abuf *b, const char *s)
{
	abuf_add(b, s, strlen(s));
}

/* A display name, RFC 2047-decoded (encoded words are kept as sent in
 * ENVELOPE, but a user searches for what the client shows). */
static void abuf_name(struct abuf *b, const char *name)
{
	size_t n;
	char *dec = mime_header_decode(name, strlen(name), &n);

	if (dec == NULL)
		b->failed = true;
	else
		abuf_add(b, dec, n);
	free(dec);
}

/* One mailbox entry: "name <adl:mailbox@host>" or "mailbox@host"; the
 * placeholders of an incomplete address are left out. */
static void abuf_mailbox(struct abuf *b, const struct mime_address *a, bool *exact)
{
	bool no_local = strcmp(a->mailbox, "MISSING_MAILBOX") == 0;
	bool no_host = strcmp(a->host, "MISSING_DOMAIN") == 0;

	if (no_local || no_host)
		*exact = false;
	if (a->name != NULL) {
		abuf_name(b, a->name);
		abuf_str(b, " <");
	}
	if (a->adl != NULL && a->name != NULL) {
		abuf_str(b, a->adl);
		abuf_str(b, ":");
	}
	if (!no_local)
		abuf_str(b, a->mailbox);
	if (!no_local && !no_host)
		abuf_str(b, "@");
	if (!no_host)
		abuf_str(b, a->host);
	if (a->name != NULL)
		abuf_str(b, ">");
}

char *imap_search_address_text(const char *value, size_t len, size_t *outlen, bool *exact)
{
	struct abuf b = { 0 };
	struct mime_address *a;
	/* Every entry takes at least one octet of the value (a group's end
	 * its ';'), and the parser takes at most 4096 tokens: this bounds
	 * the list without a big allocation per message. */
	size_t n = mime_address_parse(value, len, len < 4096 ? len + 2 : 4098, &a), i;
	bool sep = false;

	*exact = n > 0;
	abuf_add(&b, "", 0);
	for (i = 0; i < n; i++) {
		if (a[i].mailbox == NULL) {             /* group end */
			abuf_str(&b, ";");
			sep = true;
			continue;
		}
		if (sep)
			abuf_str(&b, ", ");
		if (a[i].host == NULL) {                /* group start */
			abuf_name(&b, a[i].mailbox);
			abuf_str(&b, ": ");
			sep = false;
			continue;
		}
		abuf_mailbox(&b, &a[i], exact);
		sep = true;
	}
	mime_addresses_free(a, n);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	*outlen = b.len;
	return b.p;
}
