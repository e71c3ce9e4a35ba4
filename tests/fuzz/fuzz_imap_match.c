/*
 * LIST/LSUB pattern matching. Input: pattern, a NUL, then the name. The
 * matcher must be linear (pattern x name steps): run.sh's -timeout catches
 * blowups, nothing is asserted about time here. On short inputs the result
 * is compared with a naive backtracking matcher of RFC 3501 §6.3.8 ('*'
 * anything, '%' anything but '/', INBOX's letters case-insensitive before
 * the first wildcard when the name is INBOX or INBOX/...).
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/imap_match.h"
#include "fuzz.h"

static bool naive(const char *p, const char *n, size_t k, bool inbox, bool passed)
{
	if (*p == '\0')
		return *n == '\0';
	if (*p == '*' || *p == '%') {
		for (const char *q = n;; q++) {
			if (naive(p + 1, q, k + (size_t)(q - n), inbox, true))
				return true;
			if (*q == '\0' || (*p == '%' && *q == '/'))
				return false;
		}
	}
	if (*n == '\0')
		return false;
	if (*p == *n || (inbox && !passed && k < 5 &&
	    tolower((unsigned char)*p) == tolower((unsigned char)*n)))
		return naive(p + 1, n + 1, k + 1, inbox, passed);
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	char *pat, *name;
	bool got;

	if (nul == NULL || size > 8192)
		return 0;
	pat = fuzz_strdup(data, (size_t)(nul - data));
	name = fuzz_strdup(nul + 1, size - (size_t)(nul - data) - 1);
	got = imap_list_match(pat, name);
	if (strlen(pat) <= 12 && strlen(name) <= 24) {
		bool inbox = strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/');
		char folded[13];
		size_t k = 0;
		bool want;
		/* Runs of wildcards are one ('*' if any is '*'), which keeps the
		 * backtracking reference polynomial on these lengths. */
		for (const char *q = pat; *q; q++) {
			bool w = *q == '*' || *q == '%';
			if (w && k > 0 && (folded[k - 1] == '*' || folded[k - 1] == '%')) {
				if (*q == '*')
					folded[k - 1] = '*';
				continue;
			}
			folded[k++] = *q;
		}
		folded[k] = '\0';
		want = naive(folded, name, 0, inbox, false);
		if (got != want) {
			fprintf(stderr, "pattern [%s] name [%s]: got %d, naive %d\n", pat, name,
			    got, want);
			FUZZ_CHECK(!"matcher differs from the naive reference");
		}
	}
	free(pat);
	free(name);
	return 0;
}
