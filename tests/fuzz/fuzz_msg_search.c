/*
 * Mailpit search queries (msg_search_parse) and the case folding they and
 * the store's index share. A query parses or fails with a message; a
 * parsed one keeps its bounds (terms, folded values no longer than the
 * buffer, flags without values); folding is idempotent, stays valid
 * where the input was, and a string always contains its own fold.
 * Time zone "" only: the zone database is the one part that reads files.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/msg_search.h"
#include "fuzz.h"

static void check_fold(const char *s, size_t n)
{
	char f1[1024], f2[1024];
	size_t n1, n2;

	n1 = msg_search_fold(s, n, f1, sizeof(f1));
	FUZZ_CHECK(n1 < sizeof(f1) && f1[n1] == '\0');
	n2 = msg_search_fold(f1, n1, f2, sizeof(f2));
	FUZZ_CHECK(n2 == n1 && memcmp(f1, f2, n1) == 0);
	if (n * 2 < sizeof(f1))
		FUZZ_CHECK(msg_search_contains(s, n, f1, n1));
	/* Small output buffers: never past them, never half a character. */
	n2 = msg_search_fold(s, n, f2, 3);
	FUZZ_CHECK(n2 < 3 && f2[n2] == '\0');
}

static void check_terms(const struct msg_search *s)
{
	size_t i, n = msg_search_nterms(s);

	FUZZ_CHECK(n <= MSG_SEARCH_MAX_TERMS);
	FUZZ_CHECK(msg_search_term(s, n) == NULL);
	for (i = 0; i < n; i++) {
		const struct msg_search_term *t = msg_search_term(s, i);

		FUZZ_CHECK(t != NULL);
		switch (t->field) {
		case MSG_SEARCH_READ: case MSG_SEARCH_TAGGED:
		case MSG_SEARCH_ATTACHMENT: case MSG_SEARCH_INLINE:
			FUZZ_CHECK(t->text == NULL);
			break;
		case MSG_SEARCH_LARGER: case MSG_SEARCH_SMALLER:
			FUZZ_CHECK(t->text == NULL && t->number >= 0);
			break;
		case MSG_SEARCH_BEFORE: case MSG_SEARCH_AFTER:
			FUZZ_CHECK(t->text == NULL);
			break;
		default:
			FUZZ_CHECK(t->text != NULL && t->len > 0 && strlen(t->text) == t->len);
			FUZZ_CHECK(t->len <= 2 * MSG_SEARCH_MAX_QUERY);
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char q[MSG_SEARCH_MAX_QUERY + 16];
	char err[128];
	struct msg_search *s = NULL;
	size_t n = size < sizeof(q) - 1 ? size : sizeof(q) - 1;

	memcpy(q, data, n);
	q[n] = '\0';
	check_fold(q, strlen(q) < 400 ? strlen(q) : 400);
	err[0] = '\0';
	if (msg_search_parse(q, "", &s, err, sizeof(err)) == 0) {
		FUZZ_CHECK(s != NULL);
		check_terms(s);
		msg_search_free(s);
	} else {
		FUZZ_CHECK(s == NULL && err[0] != '\0' && strchr(err, '\n') == NULL);
	}
	return 0;
}
