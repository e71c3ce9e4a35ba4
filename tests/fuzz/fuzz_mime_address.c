/*
 * RFC 5322 address lists as IMAP ENVELOPE and SEARCH see them. Checks:
 * at most max entries, every entry one of mailbox / group start / group
 * end, group ends only after a start; the SEARCH address text of the same
 * value is produced.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/imap_search.h"
#include "mailsnare/mime_header.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct mime_address *a = NULL;
	size_t max = 50, n, outlen, depth = 0;
	char *text;
	bool exact;

	if (size > 65536)
		return 0;
	n = mime_address_parse(s, size, max, &a);
	FUZZ_CHECK(n <= max && (n == 0) == (a == NULL));
	for (size_t i = 0; i < n; i++) {
		if (a[i].mailbox != NULL && a[i].host != NULL) {
			FUZZ_CHECK(a[i].mailbox[0] != '\0' && a[i].host[0] != '\0');
		} else if (a[i].mailbox != NULL) {
			depth++;            /* group start */
		} else {
			FUZZ_CHECK(a[i].host == NULL);
			FUZZ_CHECK(depth > 0);
			depth--;            /* group end */
		}
		if (a[i].name != NULL)
			(void)strlen(a[i].name);
		if (a[i].adl != NULL)
			(void)strlen(a[i].adl);
	}
	mime_addresses_free(a, n);
	text = imap_search_address_text(s, size, &outlen, &exact);
	FUZZ_CHECK(text != NULL && strlen(text) <= outlen);
	free(text);
	return 0;
}
