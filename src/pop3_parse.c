/*
 * POP3 command lines, byte-stuffing and TOP line counting: pure functions
 * over bytes (see pop3_parse.h).
 */
#include <string.h>
#include <strings.h>

#include "mailsnare/pop3_parse.h"

static const char *const pop3_verb_names[POP3_CMD_COUNT] = {
	[POP3_CMD_UNKNOWN] = "",
	[POP3_CMD_USER] = "USER", [POP3_CMD_PASS] = "PASS", [POP3_CMD_APOP] = "APOP",
	[POP3_CMD_AUTH] = "AUTH", [POP3_CMD_STLS] = "STLS", [POP3_CMD_CAPA] = "CAPA",
	[POP3_CMD_QUIT] = "QUIT", [POP3_CMD_STAT] = "STAT", [POP3_CMD_LIST] = "LIST",
	[POP3_CMD_RETR] = "RETR", [POP3_CMD_DELE] = "DELE", [POP3_CMD_NOOP] = "NOOP",
	[POP3_CMD_RSET] = "RSET", [POP3_CMD_TOP] = "TOP", [POP3_CMD_UIDL] = "UIDL",
};

const char *pop3_verb_name(enum pop3_verb verb)
{
	return verb > POP3_CMD_UNKNOWN && verb < POP3_CMD_COUNT ? pop3_verb_names[verb] : "";
}

enum pop3_verb pop3_parse_verb(const char *line, const char **args)
{
	size_t n = strcspn(line, " ");
	int v;

	*args = "";
	/* RFC 1939 §3: keywords are three or four characters. */
	if (n < 3 || n > 4)
		return POP3_CMD_UNKNOWN;
	for (v = POP3_CMD_UNKNOWN + 1; v < POP3_CMD_COUNT; v++) {
		if (strlen(pop3_verb_names[v]) == n &&
		    strncasecmp(line, pop3_verb_names[v], n) == 0) {
			line += n;
			while (*line == ' ')
				line++;
			*args = line;
			return (enum pop3_verb)v;
		}
	}
	return POP3_CMD_UNKNOWN;
}

/* Digits only, no sign, at most `max`; advances *p past trailing spaces. */
static int pop3_parse_decimal(const char **p, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (*s != '\0' && *s != ' ')
		return -1;
	while (*s == ' ')
		s++;
	*p = s;
	*out = v;
	return 0;
}

int pop3_parse_msgno(const char **p, uint32_t *out)
{
	const char *start = *p;
	uint64_t v;

	if (pop3_parse_decimal(p, POP3_MSGNO_MAX, &v) < 0)
		return -1;
	if (v == 0) {
		*p = start;
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int pop3_parse_count(const char **p, uint64_t *out)
{
	return pop3_parse_decimal(p, UINT64_MAX, out);
}

int pop3_parse_two_words(const char *args, char *word1, size_t size1,
    char *rest, size_t restsize)
{
	size_t n = strcspn(args, " "), m;

	if (n == 0 || n >= size1)
		return -1;
	memcpy(word1, args, n);
	word1[n] = '\0';
	args += n;
	while (*args == ' ')
		args++;
	m = strlen(args);
	while (m > 0 && args[m - 1] == ' ')
		m--;
	if (m >= restsize)
		return -1;
	memcpy(rest, args, m);
	rest[m] = '\0';
	return 0;
}

/* --- byte-stuffing --------------------------------------------------- */

void pop3_stuff_init(struct pop3_stuff *st)
{
	st->state = POP3_STUFF_BOL;
}

static enum pop3_stuff_state pop3_stuff_next(enum pop3_stuff_state s, unsigned char c)
{
	if (c == '\n')
		return s == POP3_STUFF_CR ? POP3_STUFF_BOL : POP3_STUFF_LF;
	return c == '\r' ? POP3_STUFF_CR : POP3_STUFF_MID;
}

/* Emits runs of the input between the points where a "." must be added,
 * so that a message costs a few calls per chunk, not one per byte. */
int pop3_stuff_feed(struct pop3_stuff *st, const void *buf, size_t len,
    pop3_emit emit, void *arg)
{
	const unsigned char *p = buf, *run = buf, *end = p + len;
	const unsigned char *stop, *cr;
	int rc;

	while (p < end) {
		bool bol = st->state == POP3_STUFF_BOL || st->state == POP3_STUFF_LF;
		if (bol && *p == '.') {
			if (p > run && (rc = emit(arg, run, (size_t)(p - run))) != 0)
				return rc;
			if ((rc = emit(arg, ".", 1)) != 0)
				return rc;
			run = p;  /* the original dot goes out with the next run */
			st->state = POP3_STUFF_MID;
			p++;
		} else if (*p == '\r' || *p == '\n') {
			st->state = pop3_stuff_next(st->state, *p);
			p++;
		} else {
			/* Inside a line: skip to its next CR or LF at memchr speed. */
			stop = memchr(p, '\n', (size_t)(end - p));
			if (stop == NULL)
				stop = end;
			if ((cr = memchr(p, '\r', (size_t)(stop - p))) != NULL)
				stop = cr;
			st->state = POP3_STUFF_MID;
			p = stop;
		}
	}
	if (p > run && (rc = emit(arg, run, (size_t)(p - run))) != 0)
		return rc;
	return 0;
}

int pop3_stuff_finish(struct pop3_stuff *st, pop3_emit emit, void *arg)
{
	/* RFC 1939 §3: the termination is CRLF "." CRLF; a message that does
	 * not end its last line gets the CRLF here, or the dot would be data. */
	const char *tail = st->state == POP3_STUFF_BOL ? ".\r\n" : "\r\n.\r\n";

	st->state = POP3_STUFF_BOL;
	return emit(arg, tail, strlen(tail));
}

/* --- TOP ------------------------------------------------------------- */

void pop3_top_init(struct pop3_top *t, uint64_t lines)
{
	t->state = POP3_TOP_HDR_BOL;
	t->lines_left = lines;
	t->done = false;
}

/* The header section ends at the first empty line (CRLF, or a bare LF). */
static void pop3_top_header_byte(struct pop3_top *t, unsigned char c)
{
	switch (t->state) {
	case POP3_TOP_HDR_BOL:
		if (c == '\n')
			t->state = POP3_TOP_BODY;
		else
			t->state = c == '\r' ? POP3_TOP_HDR_CR : POP3_TOP_HDR_MID;
		break;
	case POP3_TOP_HDR_CR:
		t->state = c == '\n' ? POP3_TOP_BODY : POP3_TOP_HDR_MID;
		break;
	default:
		if (c == '\n')
			t->state = POP3_TOP_HDR_BOL;
		break;
	}
}

size_t pop3_top_feed(struct pop3_top *t, const void *buf, size_t len)
{
	const unsigned char *p = buf, *end = p + len;

	while (p < end && !t->done) {
		if (t->state != POP3_TOP_BODY) {
			pop3_top_header_byte(t, *p++);
			if (t->state == POP3_TOP_BODY && t->lines_left == 0)
				t->done = true;
			continue;
		}
		const unsigned char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL)
			return len;
		p = lf + 1;
		if (--t->lines_left == 0)
			t->done = true;
	}
	return (size_t)(p - (const unsigned char *)buf);
}
