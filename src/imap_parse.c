/*
 * IMAP command assembly (lines, {n}, {n+}, ~{n}) and the generic argument
 * parser of RFC 3501 §9. See imap_parse.h for the contract.
 *
 * The reader keeps one buffer per command: each line without its CRLF,
 * then '\n'; after a line that announced a literal, the literal's data
 * and a '\0' sentinel (so literal values are C strings too). Once the
 * last line is in, the whole buffer is parsed in one pass, which is what
 * makes the result independent of how the input was split.
 */
#include "mailsnare/imap_parse.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- classes */

bool imap_is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

bool imap_is_astring_char(unsigned char c)
{
	return c == ']' || imap_is_atom_char(c);
}

bool imap_is_tag_char(unsigned char c)
{
	return c != '+' && imap_is_astring_char(c);
}

bool imap_is_list_char(unsigned char c)
{
	return c == '%' || c == '*' || imap_is_astring_char(c);
}

void imap_limits_default(struct imap_limits *lim)
{
	lim->max_line = IMAP_LINE_MAX_DEFAULT;
	lim->max_literal = 32u * 1024 * 1024;
	lim->max_nonsync = UINT64_MAX;
	lim->max_command = 32u * 1024 * 1024 + 65536;
	lim->max_depth = 16;
	lim->max_args = 10000;
	lim->allow_8bit_quoted = true;
	lim->utf8_quoted = NULL;
}

bool imap_utf8_valid(const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		n = (p[i] & 0xe0) == 0xc0 ? 2 : (p[i] & 0xf0) == 0xe0 ? 3 :
		    (p[i] & 0xf8) == 0xf0 ? 4 : 0;
		if (n == 0 || n > len - i)
			return false;
		cp = p[i] & (0x7fu >> n);
		for (k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3fu);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && (cp < 0x800 ||
		    (cp >= 0xd800 && cp < 0xe000))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += n;
	}
	return true;
}

const char *imap_err_resp_code(enum imap_err code)
{
	switch (code) {
	case IMAP_ERR_LINE_TOO_LONG:
	case IMAP_ERR_LITERAL_TOO_BIG:
	case IMAP_ERR_NONSYNC_TOO_BIG:
	case IMAP_ERR_COMMAND_TOO_BIG:
		return "TOOBIG";
	case IMAP_ERR_BADCHARSET:
		return "BADCHARSET (UTF-8 US-ASCII)";
	default:
		return NULL;
	}
}

bool imap_err_is_no(enum imap_err code)
{
	return code == IMAP_ERR_LITERAL_TOO_BIG || code == IMAP_ERR_BADCHARSET ||
	    code == IMAP_ERR_NOMEM;
}

static void set_err(struct imap_error *err, enum imap_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(struct imap_error *err, enum imap_err code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* ----------------------------------------------------------------- parser */

struct pctx {
	const char *p, *end;
	const struct imap_limits *lim;
	char *pool;
	size_t poolpos, poolcap;
	struct imap_arg *stack;      /* children of the lists still open */
	size_t sp, stackcap;
	struct imap_arg *nodes;      /* closed lists' children, by index */
	size_t nnodes, nodecap;
	unsigned depth, nargs;
	bool in_section;
	const uint8_t *streamed;     /* by literal ordinal: its data went to a sink */
	size_t nstreamed, nlit;
	struct imap_error *err;
};

static bool perr(struct pctx *c, enum imap_err code, const char *msg)
{
	if (c->err->code == IMAP_ERR_NONE)
		set_err(c->err, code, "%s", msg);
	return false;
}

static char *pool_put(struct pctx *c, const char *s, size_t n)
{
	char *d;

	if (c->poolpos + n + 1 > c->poolcap)
		return NULL;
	d = c->pool + c->poolpos;
	memcpy(d, s, n);
	d[n] = '\0';
	c->poolpos += n + 1;
	return d;
}

static bool push(struct pctx *c, const struct imap_arg *a)
{
	if (++c->nargs > c->lim->max_args)
		return perr(c, IMAP_ERR_TOO_MANY_ARGS, "Too many arguments");
	if (c->sp == c->stackcap) {
		size_t ncap = c->stackcap ? c->stackcap * 2 : 16;
		struct imap_arg *n = realloc(c->stack, ncap * sizeof(*n));

		if (n == NULL)
			return perr(c, IMAP_ERR_NOMEM, "Out of memory");
		c->stack = n;
		c->stackcap = ncap;
	}
	c->stack[c->sp++] = *a;
	return true;
}

/* Moves the top `count` stacked args into nodes; returns their index. */
static bool close_level(struct pctx *c, size_t count, size_t *index)
{
	if (c->nnodes + count > c->nodecap) {
		size_t ncap = c->nodecap ? c->nodecap : 16;
		struct imap_arg *n;

		while (ncap < c->nnodes + count)
			ncap *= 2;
		n = realloc(c->nodes, ncap * sizeof(*n));
		if (n == NULL)
			return perr(c, IMAP_ERR_NOMEM, "Out of memory");
		c->nodes = n;
		c->nodecap = ncap;
	}
	*index = c->nnodes;
	if (count > 0)
		memcpy(c->nodes + c->nnodes, c->stack + c->sp - count, count * sizeof(*c->nodes));
	c->nnodes += count;
	c->sp -= count;
	return true;
}

static bool parse_arg(struct pctx *c);

/* Arguments separated by single spaces up to `closer` (consumed). */
static bool parse_seq(struct pctx *c, char closer, size_t *count)
{
	size_t base = c->sp;

	if (c->p < c->end && *c->p == closer) {
		c->p++;
		*count = 0;
		return true;
	}
	for (;;) {
		if (!parse_arg(c))
			return false;
		if (c->p >= c->end)
			return perr(c, IMAP_ERR_SYNTAX, "Unexpected end of command");
		/* mutt (with Cyrus SASL and SASL-IR) sends "AUTHENTICATE
		 * CRAM-MD5 " with a trailing space; one is taken as the end of
		 * the line, as Dovecot does. */
		if (closer == '\n' && *c->p == ' ' && c->p + 1 < c->end && c->p[1] == '\n')
			c->p++;
		if (*c->p == closer) {
			c->p++;
			*count = c->sp - base;
			return true;
		}
		if (*c->p != ' ' || c->p + 1 >= c->end || c->p[1] == closer || c->p[1] == ' ')
			return perr(c, IMAP_ERR_SYNTAX, closer == '\n' ?
			    "Unexpected character after argument" : "Missing closing bracket");
		c->p++;
	}
}

static bool parse_list(struct pctx *c)
{
	struct imap_arg a = { .type = IMAP_ARG_LIST, .str = "" };
	bool in_section = c->in_section;
	size_t idx;

	if (++c->depth > c->lim->max_depth)
		return perr(c, IMAP_ERR_TOO_DEEP, "Lists nested too deep");
	c->p++;
	c->in_section = false;   /* "(c]d)" inside BODY[...] is an astring */
	if (!parse_seq(c, ')', &a.count) || !close_level(c, a.count, &idx))
		return false;
	c->in_section = in_section;
	c->depth--;
	a.list = (const struct imap_arg *)(uintptr_t)idx;
	return push(c, &a);
}

static bool parse_quoted(struct pctx *c)
{
	struct imap_arg a = { .type = IMAP_ARG_QUOTED };
	char *d = c->pool + c->poolpos;
	const char *p = c->p + 1;

	for (; p < c->end && *p != '"'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '\\') {
			if (p + 1 >= c->end || (p[1] != '\\' && p[1] != '"'))
				return perr(c, IMAP_ERR_SYNTAX, "Bad escape in quoted string");
			ch = (unsigned char)*++p;
		} else if (ch == '\0' || ch == '\r' || ch == '\n') {
			return perr(c, IMAP_ERR_SYNTAX, "Bad character in quoted string");
		} else if (ch >= 0x80) {
			if (!c->lim->allow_8bit_quoted)
				return perr(c, IMAP_ERR_SYNTAX, "8-bit octets in quoted string");
			a.flags |= IMAP_AF_8BIT;
		}
		if (a.len + 2 > c->poolcap - c->poolpos)
			return perr(c, IMAP_ERR_NOMEM, "Out of memory");
		d[a.len++] = (char)ch;
	}
	if (p >= c->end)
		return perr(c, IMAP_ERR_SYNTAX, "Unterminated quoted string");
	/* RFC 6855 §3: after UTF8=ACCEPT, 8-bit quoted text is UTF-8 or the
	 * command is BAD (rather than a SEARCH that silently matches nothing
	 * or a mailbox name nobody can type again). */
	if ((a.flags & IMAP_AF_8BIT) && c->lim->utf8_quoted != NULL && *c->lim->utf8_quoted &&
	    !imap_utf8_valid(d, a.len))
		return perr(c, IMAP_ERR_SYNTAX, "Quoted string is not valid UTF-8");
	d[a.len] = '\0';
	c->poolpos += a.len + 1;
	a.str = d;
	c->p = p + 1;
	return push(c, &a);
}

/* "{n}" / "{n+}" / "~{n}" at the end of a line, then its data and '\0'. */
static bool parse_literal(struct pctx *c)
{
	struct imap_arg a = { .type = IMAP_ARG_LITERAL };
	uint64_t n = 0;
	const char *p;

	if (*c->p == '~') {
		a.flags |= IMAP_AF_LITERAL8;
		c->p++;
	}
	for (p = c->p + 1; p < c->end && isdigit((unsigned char)*p); p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return perr(c, IMAP_ERR_SYNTAX, "Literal size too large");
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (p == c->p + 1)
		return perr(c, IMAP_ERR_SYNTAX, "Bad literal size");
	if (p < c->end && *p == '+') {
		a.flags |= IMAP_AF_NONSYNC;
		p++;
	}
	if (p + 2 > c->end || p[0] != '}' || p[1] != '\n')
		return perr(c, IMAP_ERR_SYNTAX, "Literal must end the line");
	p += 2;
	/* Streamed: its octets went to the reader's sink, only the sentinel
	 * is here; the argument says how many there were. */
	if (c->nlit < c->nstreamed && c->streamed[c->nlit++]) {
		if (p >= c->end || *p != '\0')
			return perr(c, IMAP_ERR_SYNTAX, "Truncated literal");
		a.str = p;
		a.len = (size_t)n;
		a.flags |= IMAP_AF_STREAMED;
		c->p = p + 1;
		return push(c, &a);
	}
	if ((uint64_t)(c->end - p) < n + 1 || p[n] != '\0')
		return perr(c, IMAP_ERR_SYNTAX, "Truncated literal");
	a.str = p;
	a.len = (size_t)n;
	if (memchr(p, '\0', a.len) != NULL)
		a.flags |= IMAP_AF_NUL;
	for (size_t i = 0; i < a.len && !(a.flags & IMAP_AF_8BIT); i++)
		if ((unsigned char)p[i] >= 0x80)
			a.flags |= IMAP_AF_8BIT;
	c->p = p + n + 1;
	return push(c, &a);
}

static bool is_section_name(const char *s, size_t n)
{
	static const char *const names[] = {
		"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && strncasecmp(names[i], s, n) == 0)
			return true;
	return false;
}

/* BODY[...]<...>: c->p is at '['; name is the text before it. */
static bool parse_section(struct pctx *c, const char *name, size_t namelen)
{
	struct imap_arg a = { .type = IMAP_ARG_SECTION };
	const char *start;
	bool outer = c->in_section;
	size_t idx;

	if (++c->depth > c->lim->max_depth)
		return perr(c, IMAP_ERR_TOO_DEEP, "Sections nested too deep");
	a.str = pool_put(c, name, namelen);
	c->p++;
	c->in_section = true;
	if (!parse_seq(c, ']', &a.count) || !close_level(c, a.count, &idx))
		return false;
	c->in_section = outer;
	c->depth--;
	a.list = (const struct imap_arg *)(uintptr_t)idx;
	for (start = c->p; c->p < c->end && imap_is_atom_char((unsigned char)*c->p); c->p++)
		;
	a.partial = pool_put(c, start, (size_t)(c->p - start));
	if (a.str == NULL || a.partial == NULL)
		return perr(c, IMAP_ERR_NOMEM, "Out of memory");
	return push(c, &a);
}

/* \Flag, \* */
static bool parse_flag(struct pctx *c)
{
	struct imap_arg a = { .type = IMAP_ARG_ATOM, .flags = IMAP_AF_FLAG };
	const char *start = c->p++;

	if (c->p < c->end && *c->p == '*') {
		a.flags |= IMAP_AF_WILDCARD;
		c->p++;
	} else {
		while (c->p < c->end && imap_is_atom_char((unsigned char)*c->p))
			c->p++;
		if (c->p == start + 1)
			return perr(c, IMAP_ERR_SYNTAX, "Bad flag");
	}
	a.len = (size_t)(c->p - start);
	a.str = pool_put(c, start, a.len);
	return push(c, &a);
}

/* Atom-like token: atom chars plus list-wildcards and ']' (flagged). */
static bool parse_atom(struct pctx *c)
{
	struct imap_arg a = { .type = IMAP_ARG_ATOM };
	const char *start = c->p;

	for (; c->p < c->end; c->p++) {
		unsigned char ch = (unsigned char)*c->p;

		if (ch == '[' && is_section_name(start, (size_t)(c->p - start)))
			return parse_section(c, start, (size_t)(c->p - start));
		if (ch >= 0x80)
			return perr(c, IMAP_ERR_SYNTAX, "8-bit octets in atom");
		if (ch == ']' && c->in_section)
			break;
		if (!imap_is_list_char(ch))
			break;
		if (ch == '*' || ch == '%')
			a.flags |= IMAP_AF_WILDCARD;
		else if (ch == ']')
			a.flags |= IMAP_AF_RESP;
	}
	if (c->p == start)
		return perr(c, IMAP_ERR_SYNTAX, *c->p == '\0' ? "NUL octet in command" :
		    "Unexpected character");
	a.len = (size_t)(c->p - start);
	a.str = pool_put(c, start, a.len);
	return push(c, &a);
}

static bool parse_arg(struct pctx *c)
{
	if (c->p >= c->end)
		return perr(c, IMAP_ERR_SYNTAX, "Missing argument");
	switch (*c->p) {
	case '(':
		return parse_list(c);
	case ')':
		return perr(c, IMAP_ERR_SYNTAX, "Unexpected ')'");
	case '"':
		return parse_quoted(c);
	case '{':
		return parse_literal(c);
	case '~':
		if (c->p + 1 < c->end && c->p[1] == '{')
			return parse_literal(c);
		return parse_atom(c);
	case '\\':
		return parse_flag(c);
	default:
		return parse_atom(c);
	}
}

static void fixup(struct imap_arg *a, size_t n, struct imap_arg *nodes)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].type == IMAP_ARG_LIST || a[i].type == IMAP_ARG_SECTION)
			a[i].list = nodes + (uintptr_t)a[i].list;
}

static bool parse_tag(struct pctx *c, char *tag)
{
	const char *start = c->p;

	while (c->p < c->end && imap_is_tag_char((unsigned char)*c->p))
		c->p++;
	if (c->p == start || c->p - start > IMAP_TAG_MAX || c->p >= c->end || *c->p != ' ')
		return perr(c, IMAP_ERR_BAD_TAG, "Invalid tag");
	memcpy(tag, start, (size_t)(c->p - start));
	tag[c->p - start] = '\0';
	c->p++;
	return true;
}

static bool parse_word(struct pctx *c, char *out, size_t outsize)
{
	size_t n = 0;

	while (c->p < c->end && imap_is_atom_char((unsigned char)*c->p)) {
		if (n + 1 >= outsize)
			return perr(c, IMAP_ERR_SYNTAX, "Unknown command");
		out[n++] = (char)toupper((unsigned char)*c->p++);
	}
	out[n] = '\0';
	if (n == 0)
		return perr(c, IMAP_ERR_SYNTAX, "Missing command name");
	return true;
}

static bool parse_verb(struct pctx *c, struct imap_command *cmd)
{
	size_t n;

	if (!parse_word(c, cmd->verb, sizeof(cmd->verb)))
		return false;
	if (strcmp(cmd->verb, "UID") != 0)
		return true;
	cmd->uid = true;
	if (c->p >= c->end || *c->p != ' ')
		return perr(c, IMAP_ERR_SYNTAX, "UID needs a command");
	c->p++;
	n = strlen(cmd->verb);
	cmd->verb[n++] = ' ';
	return parse_word(c, cmd->verb + n, sizeof(cmd->verb) - n);
}

static bool parse_all(struct pctx *c, struct imap_command *cmd)
{
	size_t idx;

	if (!parse_tag(c, cmd->tag) || !parse_verb(c, cmd))
		return false;
	if (c->p < c->end && *c->p == ' ') {
		c->p++;
		if (!parse_seq(c, '\n', &cmd->nargs))
			return false;
	} else if (c->p >= c->end || *c->p != '\n') {
		return perr(c, IMAP_ERR_SYNTAX, c->p < c->end && *c->p == '\0' ?
		    "NUL octet in command" : "Bad character in command name");
	} else {
		c->p++;
	}
	if (c->p != c->end)
		return perr(c, IMAP_ERR_SYNTAX, "Garbage after command");
	if (!close_level(c, cmd->nargs, &idx))
		return false;
	fixup(c->nodes, c->nnodes, c->nodes);
	/* A command without arguments has no nodes at all: NULL + 0 is
	 * undefined behaviour (UBSan), so leave args NULL then. */
	cmd->args = c->nodes != NULL ? c->nodes + idx : NULL;
	return true;
}

void imap_command_free(struct imap_command *cmd)
{
	if (cmd == NULL)
		return;
	free(cmd->raw);
	free(cmd->pool);
	free(cmd->nodes);
	free(cmd);
}

/* Parses the reader's buffer (taking ownership of raw) into *out. */
static bool parse_buffer(const struct imap_limits *lim, char *raw, size_t len,
    size_t line_bytes, const uint8_t *streamed, size_t nstreamed, struct imap_command **out,
    struct imap_error *err)
{
	struct pctx c = { .p = raw, .end = raw + len, .lim = lim, .err = err,
	    .streamed = streamed, .nstreamed = nstreamed };
	struct imap_command *cmd = calloc(1, sizeof(*cmd));
	bool ok;

	c.poolcap = 2 * line_bytes + 16;
	c.pool = malloc(c.poolcap);
	if (cmd == NULL || c.pool == NULL) {
		ok = perr(&c, IMAP_ERR_NOMEM, "Out of memory");
	} else {
		ok = parse_all(&c, cmd);
	}
	free(c.stack);
	if (cmd != NULL) {
		cmd->raw = raw;
		cmd->pool = c.pool;
		cmd->nodes = c.nodes;
		snprintf(err->tag, sizeof(err->tag), "%s", cmd->tag);
	} else {
		free(raw);
		free(c.pool);
		free(c.nodes);
	}
	if (!ok) {
		imap_command_free(cmd);
		cmd = NULL;
	}
	*out = cmd;
	return ok;
}

/* ----------------------------------------------------------------- reader */

enum lit_state { LS_NONE, LS_OPEN, LS_DIGITS, LS_PLUS, LS_CLOSED };

struct imap_reader {
	struct imap_limits lim;
	char *buf;
	size_t len, cap;
	size_t line_len;         /* octets of the current line */
	size_t line_bytes;       /* octets of all lines of the command */
	uint64_t total;          /* octets of the command on the wire */
	bool in_literal;
	uint64_t lit_left, lit_size;
	bool discard;            /* skipping the rest of a failed command */
	bool cr, in_quote, escape;
	enum lit_state ls;
	uint64_t ls_n;
	bool ls_plus, ls_overflow;
	struct imap_literal_sink sink;   /* sink.open NULL: none */
	bool streaming;                  /* the current literal goes to the sink */
	uint8_t *streamed;               /* by literal ordinal, this command */
	size_t nlit, streamed_cap;
	struct imap_command *done;
	struct imap_error err;
	char tag[IMAP_TAG_MAX + 1];
	char verb[IMAP_VERB_MAX + 1];
};

struct imap_reader *imap_reader_new(const struct imap_limits *lim)
{
	struct imap_reader *r = calloc(1, sizeof(*r));

	if (r != NULL)
		r->lim = *lim;
	return r;
}

void imap_reader_free(struct imap_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r->streamed);
	imap_command_free(r->done);
	free(r);
}

void imap_reader_set_limits(struct imap_reader *r, const struct imap_limits *lim)
{
	r->lim = *lim;
}

static void reset_command(struct imap_reader *r)
{
	r->len = 0;
	r->line_len = 0;
	r->line_bytes = 0;
	r->total = 0;
	r->in_literal = false;
	r->discard = false;
	r->cr = r->in_quote = r->escape = false;
	r->ls = LS_NONE;
	r->streaming = false;
	r->nlit = 0;
}

void imap_reader_set_sink(struct imap_reader *r, const struct imap_literal_sink *sink)
{
	if (sink != NULL)
		r->sink = *sink;
	else
		memset(&r->sink, 0, sizeof(r->sink));
}

/* Records whether literal number r->nlit of the command is streamed. */
static bool note_literal(struct imap_reader *r, bool streamed)
{
	uint8_t *n;

	if (r->nlit == r->streamed_cap) {
		size_t ncap = r->streamed_cap ? r->streamed_cap * 2 : 8;

		if ((n = realloc(r->streamed, ncap)) == NULL)
			return false;
		r->streamed = n;
		r->streamed_cap = ncap;
	}
	r->streamed[r->nlit++] = streamed;
	return true;
}

/* Offers the literal just announced (the buffer ends with its "{n}") to
 * the sink. */
static bool offer_literal(struct imap_reader *r, uint64_t n)
{
	size_t open = r->len;
	bool lit8;

	if (r->sink.open == NULL)
		return false;
	while (open > 0 && r->buf[open - 1] != '{')
		open--;
	if (open == 0)
		return false;
	lit8 = open > 1 && r->buf[open - 2] == '~';
	return r->sink.open(r->sink.arg, r->buf, r->len, n, lit8);
}

static bool buf_reserve(struct imap_reader *r, size_t extra)
{
	size_t ncap;
	char *n;

	if (r->cap - r->len >= extra)
		return true;
	ncap = r->cap ? r->cap : 256;
	while (ncap - r->len < extra)
		ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
	n = realloc(r->buf, ncap);
	if (n == NULL)
		return false;
	r->buf = n;
	r->cap = ncap;
	return true;
}

/* Tag of the command in the buffer, if its first line got that far. */
static void find_tag(const struct imap_reader *r, char *tag)
{
	size_t i;

	tag[0] = '\0';
	for (i = 0; i < r->len && i <= IMAP_TAG_MAX && imap_is_tag_char((unsigned char)r->buf[i]); i++)
		;
	if (i > 0 && i <= IMAP_TAG_MAX && i < r->len && r->buf[i] == ' ') {
		memcpy(tag, r->buf, i);
		tag[i] = '\0';
	}
}

static enum imap_read_rc fail(struct imap_reader *r, enum imap_err code, const char *msg)
{
	set_err(&r->err, code, "%s", msg);
	find_tag(r, r->err.tag);
	if (code == IMAP_ERR_BAD_TAG)
		r->err.tag[0] = '\0';
	r->discard = true;
	return IMAP_READ_ERROR;
}

/* Quote and "{n}" tracking over the octets of a line. */
static void track(struct imap_reader *r, unsigned char ch)
{
	if (r->in_quote) {
		if (r->escape)
			r->escape = false;
		else if (ch == '\\')
			r->escape = true;
		else if (ch == '"')
			r->in_quote = false;
		r->ls = LS_NONE;
	} else if (ch == '"') {
		r->in_quote = true;
		r->ls = LS_NONE;
	} else if (ch == '{') {
		r->ls = LS_OPEN;
		r->ls_n = 0;
		r->ls_plus = r->ls_overflow = false;
	} else if ((r->ls == LS_OPEN || r->ls == LS_DIGITS) && ch >= '0' && ch <= '9') {
		if (r->ls_n > (UINT64_MAX - 9) / 10)
			r->ls_overflow = true;
		r->ls_n = r->ls_n * 10 + (uint64_t)(ch - '0');
		r->ls = LS_DIGITS;
	} else if (r->ls == LS_DIGITS && ch == '+') {
		r->ls = LS_PLUS;
	} else if ((r->ls == LS_DIGITS || r->ls == LS_PLUS) && ch == '}') {
		r->ls_plus = r->ls == LS_PLUS;
		r->ls = LS_CLOSED;
	} else {
		r->ls = LS_NONE;
	}
}

static enum imap_read_rc line_octet(struct imap_reader *r, unsigned char ch)
{
	track(r, ch);
	r->line_len++;
	r->total++;
	if (r->discard)
		return IMAP_READ_MORE;
	if (r->line_len > r->lim.max_line)
		return fail(r, IMAP_ERR_LINE_TOO_LONG, "Command line too long");
	if (r->total > r->lim.max_command)
		return fail(r, IMAP_ERR_COMMAND_TOO_BIG, "Command too long");
	if (!buf_reserve(r, 1))
		return fail(r, IMAP_ERR_NOMEM, "Out of memory");
	r->buf[r->len++] = (char)ch;
	r->line_bytes++;
	return IMAP_READ_MORE;
}

/* Refuses a literal announcement: sync ones end the command (no "+"). */
static enum imap_read_rc refuse_literal(struct imap_reader *r, enum imap_err code,
    const char *msg)
{
	enum imap_read_rc rc = fail(r, code, msg);

	if (r->ls_plus && !r->ls_overflow) {
		r->in_literal = true;
		r->lit_left = r->ls_n;
	} else {
		reset_command(r);
	}
	return rc;
}

static enum imap_read_rc start_literal(struct imap_reader *r)
{
	uint64_t n = r->ls_n;

	if (r->discard) {
		if (r->ls_plus && !r->ls_overflow) {
			r->in_literal = true;
			r->lit_left = n;
		} else {
			reset_command(r);
		}
		return IMAP_READ_MORE;
	}
	if (r->ls_plus && r->lim.max_nonsync == 0)
		return refuse_literal(r, IMAP_ERR_NONSYNC_REFUSED, "Non-synchronizing literals not allowed");
	if (r->ls_overflow || n > r->lim.max_literal)
		return refuse_literal(r, r->ls_plus ? IMAP_ERR_NONSYNC_TOO_BIG :
		    IMAP_ERR_LITERAL_TOO_BIG, "Literal too big");
	if (r->ls_plus && n > r->lim.max_nonsync)
		return refuse_literal(r, IMAP_ERR_NONSYNC_TOO_BIG, "Non-synchronizing literal too big");
	if (n > r->lim.max_command || r->total + n > r->lim.max_command)
		return refuse_literal(r, IMAP_ERR_COMMAND_TOO_BIG, "Command too long");
	r->streaming = offer_literal(r, n);
	if (!note_literal(r, r->streaming) ||
	    !buf_reserve(r, r->streaming ? 2 : (size_t)n + 2))
		return refuse_literal(r, IMAP_ERR_NOMEM, "Out of memory");
	r->buf[r->len++] = '\n';
	r->in_literal = true;
	r->lit_left = r->lit_size = n;
	return r->ls_plus ? IMAP_READ_MORE : IMAP_READ_CONTINUE;
}

static enum imap_read_rc end_line(struct imap_reader *r)
{
	struct imap_error perr_ = { 0 };
	char *raw;
	size_t len, lb, nlit;

	if (r->ls == LS_CLOSED && !r->in_quote) {
		r->ls = LS_NONE;
		r->line_len = 0;
		return start_literal(r);
	}
	if (r->discard || (r->len == 0 && r->line_len == 0)) {
		reset_command(r);
		return IMAP_READ_MORE;
	}
	if (!buf_reserve(r, 1))
		return fail(r, IMAP_ERR_NOMEM, "Out of memory");
	r->buf[r->len++] = '\n';
	raw = r->buf;
	len = r->len;
	lb = r->line_bytes;
	nlit = r->nlit;
	r->buf = NULL;
	r->cap = 0;
	reset_command(r);
	if (parse_buffer(&r->lim, raw, len, lb, r->streamed, nlit, &r->done, &perr_))
		return IMAP_READ_COMMAND;
	r->err = perr_;
	if (r->err.code == IMAP_ERR_BAD_TAG)
		r->err.tag[0] = '\0';
	return IMAP_READ_ERROR;
}

static void literal_data(struct imap_reader *r, const unsigned char *p, size_t n)
{
	if (r->streaming && !r->discard && n > 0) {
		r->sink.data(r->sink.arg, p, n);
	} else if (!r->discard) {
		memcpy(r->buf + r->len, p, n);
		r->len += n;
	}
	r->lit_left -= n;
	r->total += n;
}

static void end_literal(struct imap_reader *r)
{
	if (!r->discard)
		r->buf[r->len++] = '\0';
	r->in_literal = false;
	r->streaming = false;
	r->line_len = 0;
	r->in_quote = r->escape = r->cr = false;
	r->ls = LS_NONE;
}

/* One step of the line state machine for octet ch (CR handling here). */
static enum imap_read_rc line_step(struct imap_reader *r, unsigned char ch)
{
	enum imap_read_rc rc;

	if (ch == '\n') {
		r->cr = false;
		return end_line(r);
	}
	if (r->cr) {
		r->cr = false;
		rc = line_octet(r, '\r');
		if (rc != IMAP_READ_MORE)
			return rc;
	}
	if (ch == '\r') {
		r->cr = true;
		return IMAP_READ_MORE;
	}
	return line_octet(r, ch);
}

enum imap_read_rc imap_reader_feed(struct imap_reader *r, const void *data, size_t len,
    size_t *consumed)
{
	const unsigned char *p = data;
	size_t i = 0;
	enum imap_read_rc rc = IMAP_READ_MORE;

	while (rc == IMAP_READ_MORE) {
		if (r->in_literal) {
			size_t n = r->lit_left < len - i ? (size_t)r->lit_left : len - i;

			literal_data(r, p + i, n);
			i += n;
			if (r->lit_left == 0)
				end_literal(r);
			else
				break;
			continue;
		}
		if (i >= len)
			break;
		rc = line_step(r, p[i++]);
	}
	*consumed = i;
	return rc;
}

struct imap_command *imap_reader_take(struct imap_reader *r)
{
	struct imap_command *cmd = r->done;

	r->done = NULL;
	return cmd;
}

const struct imap_error *imap_reader_error(const struct imap_reader *r)
{
	return &r->err;
}

uint64_t imap_reader_literal_size(const struct imap_reader *r)
{
	return r->lit_size;
}

const char *imap_reader_tag(const struct imap_reader *r)
{
	struct imap_reader *w = (struct imap_reader *)r;

	find_tag(r, w->tag);
	return r->tag;
}

const char *imap_reader_verb(const struct imap_reader *r)
{
	struct imap_reader *w = (struct imap_reader *)r;
	size_t i, n = 0, t = strlen(imap_reader_tag(r));

	w->verb[0] = '\0';
	if (t == 0)
		return r->verb;
	for (i = t + 1; i < r->len && n < IMAP_VERB_MAX; i++) {
		unsigned char ch = (unsigned char)r->buf[i];

		if (!imap_is_atom_char(ch) && !(ch == ' ' && n == 3 &&
		    strncmp(w->verb, "UID", 3) == 0))
			break;
		w->verb[n++] = (char)toupper(ch);
	}
	w->verb[n] = '\0';
	return r->verb;
}

bool imap_reader_idle(const struct imap_reader *r)
{
	return r->len == 0 && r->line_len == 0 && !r->in_literal && !r->discard && !r->cr;
}

int imap_parse_command(const struct imap_limits *lim, const void *data, size_t len,
    struct imap_command **out, struct imap_error *err)
{
	struct imap_reader *r = imap_reader_new(lim);
	size_t off = 0, used;
	enum imap_read_rc rc = IMAP_READ_MORE;

	*out = NULL;
	memset(err, 0, sizeof(*err));
	if (r == NULL) {
		set_err(err, IMAP_ERR_NOMEM, "Out of memory");
		return -1;
	}
	do {
		rc = imap_reader_feed(r, (const char *)data + off, len - off, &used);
		off += used;
	} while (rc == IMAP_READ_CONTINUE);
	if (rc == IMAP_READ_COMMAND && off == len)
		*out = imap_reader_take(r);
	else if (rc == IMAP_READ_ERROR)
		*err = r->err;
	else
		set_err(err, IMAP_ERR_SYNTAX, "%s", rc == IMAP_READ_MORE ? "Incomplete command" :
		    "Data after the command");
	imap_reader_free(r);
	return *out != NULL ? 0 : -1;
}

/* --------------------------------------------------------------- accessors */

bool imap_arg_is_nil(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && a->flags == 0 && strcasecmp(a->str, "NIL") == 0;
}

bool imap_arg_atom(const struct imap_arg *a, const char **s)
{
	if (a->type != IMAP_ARG_ATOM || a->flags != 0)
		return false;
	*s = a->str;
	return true;
}

bool imap_arg_string(const struct imap_arg *a, const char **s, size_t *len)
{
	if (a->type == IMAP_ARG_QUOTED || (a->type == IMAP_ARG_LITERAL &&
	    !(a->flags & (IMAP_AF_LITERAL8 | IMAP_AF_NUL | IMAP_AF_STREAMED)))) {
		*s = a->str;
		if (len != NULL)
			*len = a->len;
		return true;
	}
	return false;
}

bool imap_arg_astring(const struct imap_arg *a, const char **s, size_t *len)
{
	if (a->type == IMAP_ARG_ATOM && (a->flags & ~IMAP_AF_RESP) == 0) {
		*s = a->str;
		if (len != NULL)
			*len = a->len;
		return true;
	}
	return imap_arg_string(a, s, len);
}

bool imap_arg_nstring(const struct imap_arg *a, const char **s, size_t *len)
{
	if (imap_arg_is_nil(a)) {
		*s = NULL;
		if (len != NULL)
			*len = 0;
		return true;
	}
	return imap_arg_string(a, s, len);
}

bool imap_arg_list_mailbox(const struct imap_arg *a, const char **s, size_t *len)
{
	if (a->type == IMAP_ARG_ATOM && !(a->flags & IMAP_AF_FLAG)) {
		*s = a->str;
		if (len != NULL)
			*len = a->len;
		return true;
	}
	return imap_arg_string(a, s, len);
}

bool imap_arg_list(const struct imap_arg *a, const struct imap_arg **items, size_t *n)
{
	if (a->type != IMAP_ARG_LIST)
		return false;
	*items = a->list;
	*n = a->count;
	return true;
}

bool imap_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

bool imap_arg_number(const struct imap_arg *a, uint32_t *out)
{
	uint64_t v;

	if (a->type != IMAP_ARG_ATOM || a->flags != 0 ||
	    !imap_parse_uint(a->str, a->len, UINT32_MAX, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

bool imap_arg_number64(const struct imap_arg *a, uint64_t *out)
{
	return a->type == IMAP_ARG_ATOM && a->flags == 0 &&
	    imap_parse_uint(a->str, a->len, INT64_MAX, out);
}

bool imap_arg_flag(const struct imap_arg *a, bool allow_perm, const char **s)
{
	if (a->type != IMAP_ARG_ATOM)
		return false;
	if (a->flags == (IMAP_AF_FLAG | IMAP_AF_WILDCARD)) {
		if (!allow_perm)
			return false;
	} else if (a->flags != IMAP_AF_FLAG && a->flags != 0) {
		return false;
	}
	*s = a->str;
	return true;
}

bool imap_arg_equals(const struct imap_arg *a, const char *word)
{
	return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, word) == 0;
}

bool imap_mailbox_is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

bool imap_mailbox_canonical(const char *name, char delim, char *out, size_t outsize)
{
	size_t n = strlen(name);

	if (n + 1 > outsize)
		return false;
	memcpy(out, name, n + 1);
	if (strncasecmp(name, "INBOX", 5) == 0 &&
	    (name[5] == '\0' || (delim != '\0' && name[5] == delim)))
		memcpy(out, "INBOX", 5);
	return true;
}
