/*
 * Modified UTF-7 both ways. A name that decodes is in its one canonical
 * spelling, so encoding the UTF-8 again gives the same bytes; UTF-8 that
 * encodes decodes back to itself.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/imap.h"
#include "mailsnare/imap_parse.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = 8 * size + 16;
	char *in, *a = malloc(cap), *b = malloc(cap);
	int n, m;

	if (size > 4096)
		size = 4096;
	FUZZ_CHECK(a != NULL && b != NULL);
	in = fuzz_strdup(data, size);
	/* mutf7 -> utf8 -> mutf7 */
	n = imap_mutf7_to_utf8(in, size, a, cap);
	if (n >= 0) {
		FUZZ_CHECK((size_t)n == strlen(a));
		FUZZ_CHECK(imap_utf8_valid(a, (size_t)n));
		m = imap_utf8_to_mutf7(a, b, cap);
		FUZZ_CHECK(m >= 0);
		if ((size_t)m != size || memcmp(b, in, size) != 0) {
			fprintf(stderr, "in [%s] utf8 [%s] back [%s]\n", in, a, b);
			FUZZ_CHECK(!"mutf7 name not in its one spelling");
		}
	}
	/* utf8 -> mutf7 -> utf8 (up to the first NUL) */
	n = imap_utf8_to_mutf7(in, a, cap);
	if (n >= 0) {
		FUZZ_CHECK((size_t)n == strlen(a));
		FUZZ_CHECK(imap_utf8_valid(in, strlen(in)));
		for (int i = 0; i < n; i++)
			FUZZ_CHECK(a[i] >= 0x20 && a[i] < 0x7f);
		m = imap_mutf7_to_utf8(a, (size_t)n, b, cap);
		FUZZ_CHECK(m >= 0 && strcmp(b, in) == 0);
	}
	free(in);
	free(a);
	free(b);
	return 0;
}
