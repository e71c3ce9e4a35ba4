/*
 * Mailpit's search syntax into terms (include/mailsnare/msg_search.h).
 * First version: the interface only; the parser follows.
 */
#include "mailsnare/msg_search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct msg_search {
	struct msg_search_term terms[MSG_SEARCH_MAX_TERMS];
	size_t n;
};

int msg_search_parse(const char *query, const char *tz, struct msg_search **out,
    char *err, size_t errlen)
{
	(void)query;
	(void)tz;
	*out = NULL;
	snprintf(err, errlen, "search is not implemented yet");
	return -1;
}

void msg_search_free(struct msg_search *s)
{
	free(s);
}

size_t msg_search_nterms(const struct msg_search *s)
{
	return s != NULL ? s->n : 0;
}

const struct msg_search_term *msg_search_term(const struct msg_search *s, size_t i)
{
	return s != NULL && i < s->n ? &s->terms[i] : NULL;
}

size_t msg_search_fold(const char *in, size_t len, char *out, size_t outlen)
{
	size_t n = len < outlen ? len : outlen - 1;

	if (outlen == 0)
		return 0;
	memcpy(out, in, n);
	out[n] = '\0';
	return n;
}

bool msg_search_contains(const char *hay, size_t haylen, const char *needle, size_t nlen)
{
	size_t i;

	for (i = 0; nlen <= haylen && i <= haylen - nlen; i++)
		if (memcmp(hay + i, needle, nlen) == 0)
			return true;
	return false;
}
