/*
 * LIST pattern matching by the set of pattern positions reachable after
 * each name octet (a Thompson-style simulation), not by backtracking: a
 * pattern like "*a*a*a*ab" against a long name of a's took exponential
 * time in the recursive matcher and held up every client of the reactor.
 */
#include <ctype.h>
#include <string.h>

#include "mailsnare/imap_match.h"

struct pattern {
	char c[IMAP_MATCH_PATTERN_MAX];
	size_t len, literals, first_wild;
};

/* Folds runs of wildcards: "**", "*%", "%*" are "*", "%%" is "%". */
static bool fold(const char *pat, struct pattern *p)
{
	p->len = p->literals = 0;
	p->first_wild = (size_t)-1;
	for (; *pat; pat++) {
		bool wild = *pat == '*' || *pat == '%';
		if (wild && p->len > 0 && (p->c[p->len - 1] == '*' || p->c[p->len - 1] == '%')) {
			if (*pat == '*')
				p->c[p->len - 1] = '*';
			continue;
		}
		if (p->len == sizeof(p->c))
			return false;
		if (wild && p->first_wild == (size_t)-1)
			p->first_wild = p->len;
		p->literals += !wild;
		p->c[p->len++] = *pat;
	}
	return true;
}

static bool is_wild(char c)
{
	return c == '*' || c == '%';
}

/* A wildcard may match nothing: whoever stands on one may also stand
 * after it. Runs are folded, so one step is enough. */
static void close_empty(const struct pattern *p, unsigned char *at)
{
	size_t j;

	for (j = 0; j < p->len; j++)
		if (at[j] && is_wild(p->c[j]))
			at[j + 1] = 1;
}

bool imap_list_match(const char *pat, const char *name)
{
	struct pattern p;
	unsigned char cur[IMAP_MATCH_PATTERN_MAX + 1], next[IMAP_MATCH_PATTERN_MAX + 1];
	bool inbox = strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/');
	size_t k, j, n = strlen(name);
	bool any;

	if (!fold(pat, &p) || p.literals > n)
		return false;
	memset(cur, 0, p.len + 1);
	cur[0] = 1;
	close_empty(&p, cur);
	for (k = 0; k < n; k++) {
		unsigned char c = (unsigned char)name[k];
		/* INBOX's own letters, while no wildcard has been passed. */
		bool ci = inbox && k < 5;
		memset(next, 0, p.len + 1);
		any = false;
		for (j = 0; j < p.len; j++) {
			char pc = p.c[j];
			if (!cur[j])
				continue;
			if (pc == '*' || (pc == '%' && c != '/'))
				next[j] = 1;
			else if (!is_wild(pc) && ((unsigned char)pc == c ||
			    (ci && j < p.first_wild && tolower((unsigned char)pc) == tolower(c))))
				next[j + 1] = 1;
			else
				continue;
			any = true;
		}
		if (!any)
			return false;
		close_empty(&p, next);
		memcpy(cur, next, p.len + 1);
	}
	return cur[p.len] != 0;
}
