/*
 * List-Unsubscribe (RFC 2369) as Mailpit's message view checks it: see
 * include/mailsnare/list_unsub.h.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/list_unsub.h"

/* A <URI> of the value: its text between the brackets. */
struct span {
	const char *p;
	size_t len;
};

/* Every error is the offending text in quotes, then what is wrong. */
static void add_error(struct list_unsub *u, const char *what, size_t len, const char *why)
{
	size_t used = strlen(u->errors);

	if (used > 0 && used + 2 < sizeof(u->errors)) {
		memcpy(u->errors + used, ", ", 3);
		used += 2;
	}
	if (len > INT32_MAX)
		len = INT32_MAX;
	/* Cut at the bound, as documented. */
	(void)snprintf(u->errors + used, sizeof(u->errors) - used, "\"%.*s\" %s", (int)len,
	    what, why);
}

/* The value without its (comments), trimmed; malloc'd. A '(' without
 * its ')' is not a comment and stays. */
static char *strip_comments(const char *v, size_t len)
{
	char *out = malloc(len + 1);
	const char *close;
	size_t i = 0, o = 0, start;

	if (out == NULL)
		return NULL;
	while (i < len) {
		if (v[i] == '(' && (close = memchr(v + i, ')', len - i)) != NULL) {
			i = (size_t)(close - v) + 1;
			continue;
		}
		out[o++] = v[i++];
	}
	while (o > 0 && isspace((unsigned char)out[o - 1]))
		o--;
	out[o] = '\0';
	for (start = 0; isspace((unsigned char)out[start]); start++)
		;
	memmove(out, out + start, o - start + 1);
	return out;
}

/* Between two <URI>s only a comma and white space around it. */
static bool valid_join(const char *p, const char *end)
{
	while (p < end && isspace((unsigned char)*p))
		p++;
	if (p == end || *p++ != ',')
		return false;
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p == end;
}

static bool has_space(const struct span *s)
{
	for (size_t i = 0; i < s->len; i++)
		if (isspace((unsigned char)s->p[i]))
			return true;
	return false;
}

static bool starts(const struct span *s, const char *prefix, bool nocase)
{
	size_t n = strlen(prefix);

	if (s->len <= n || (nocase ? strncasecmp(s->p, prefix, n) : strncmp(s->p, prefix, n)) != 0)
		return false;
	return isalnum((unsigned char)s->p[n]) && ((unsigned char)s->p[n] < 0x80);
}

/* Each link: one of each kind, no spaces. */
static int check_links(struct list_unsub *u, const struct span *s, size_t n)
{
	bool mailto = false, http = false, *seen;
	size_t i;

	for (i = 0; i < n; i++) {
		if (has_space(&s[i])) {
			add_error(u, s[i].p, s[i].len, "should not contain spaces");
			continue;
		}
		if (starts(&s[i], "mailto:", false))
			seen = &mailto;
		else if (starts(&s[i], "http://", true) || starts(&s[i], "https://", true))
			seen = &http;
		else {
			add_error(u, s[i].p, s[i].len, "should start with either http(s):// or mailto:");
			continue;
		}
		if (*seen) {
			add_error(u, s[i].p, s[i].len, seen == &mailto ?
			    "should only contain one mailto:" : "should only contain one HTTP link");
			continue;
		}
		*seen = true;
		if ((u->links[u->nlinks] = strndup(s[i].p, s[i].len)) == NULL)
			return -1;
		u->nlinks++;
	}
	return 0;
}

/* The <URI>s of v from its start, at most max of them into s; returns
 * how many there are, even beyond max. */
static size_t spans(const char *v, struct span *s, size_t max)
{
	const char *p = v, *lt, *gt;
	size_t n = 0;

	while ((lt = strchr(p, '<')) != NULL && (gt = strchr(lt + 1, '>')) != NULL) {
		if (n < max)
			s[n] = (struct span){ lt + 1, (size_t)(gt - lt - 1) };
		n++;
		p = gt + 1;
	}
	return n;
}

static int parse(struct list_unsub *u, const char *v)
{
	struct span s[LIST_UNSUB_LINKS_MAX];
	size_t len = strlen(v), n = spans(v, s, LIST_UNSUB_LINKS_MAX), i;

	if (n == 0) {
		add_error(u, v, len, "no valid unsubscribe links found");
		return 0;
	}
	if (v[0] != '<' || v[len - 1] != '>') {
		add_error(u, v, len, "should be enclosed in <>");
		return 0;
	}
	if (n > LIST_UNSUB_LINKS_MAX) {
		add_error(u, v, len, "should include a maximum of one email and one HTTP link");
		return 0;
	}
	for (i = 1; i < n; i++) {
		if (!valid_join(s[i - 1].p + s[i - 1].len + 1, s[i].p - 1)) {
			add_error(u, v, len, "<> should be split with a comma and optional spaces");
			return 0;
		}
	}
	return check_links(u, s, n);
}

int list_unsub_parse(const char *value, size_t len, struct list_unsub *out)
{
	char *v;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((v = strip_comments(value, len)) == NULL)
		return -1;
	rc = parse(out, v);
	free(v);
	if (rc < 0)
		list_unsub_free(out);
	return rc;
}

void list_unsub_free(struct list_unsub *u)
{
	for (size_t i = 0; i < u->nlinks; i++)
		free(u->links[i]);
	u->nlinks = 0;
}
