/*
 * SASL exchanges (PLAIN, LOGIN, CRAM-MD5): the input is lines split at
 * LF, the first naming the mechanism, the second the initial response
 * ("-" for none). Checks: credentials stay NUL-terminated within their
 * buffers, challenges fit, an exchange ends within its steps, and a done
 * PLAIN/LOGIN exchange verifies its own password and no other.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/sasl.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = fuzz_strdup(data, size > 4096 ? 4096 : size), *line, *save = NULL;
	char out[SASL_OUT_MAX];
	struct sasl s;
	enum sasl_rc rc;
	enum sasl_mech mech;
	const char *initial;
	int steps = 0;

	line = strtok_r(in, "\n", &save);
	mech = sasl_mech_parse(line != NULL ? line : "");
	if (mech == SASL_MECH_NONE) {
		free(in);
		return 0;
	}
	line = strtok_r(NULL, "\n", &save);
	initial = line == NULL || strcmp(line, "-") == 0 ? NULL : line;
	memset(&s, 0, sizeof(s));
	rc = sasl_start(&s, mech, initial, "fuzz.example", out, sizeof(out));
	while (rc == SASL_CONTINUE) {
		FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL);
		FUZZ_CHECK(++steps <= 4);
		if ((line = strtok_r(NULL, "\n", &save)) == NULL)
			break;
		rc = sasl_step(&s, line, out, sizeof(out));
	}
	FUZZ_CHECK(memchr(s.user, '\0', sizeof(s.user)) != NULL);
	FUZZ_CHECK(memchr(s.authzid, '\0', sizeof(s.authzid)) != NULL);
	FUZZ_CHECK(memchr(s.pass, '\0', sizeof(s.pass)) != NULL);
	if (rc == SASL_DONE && mech != SASL_MECH_CRAM_MD5) {
		char other[SASL_PASS_MAX + 2];
		FUZZ_CHECK(sasl_verify(&s, s.pass));
		snprintf(other, sizeof(other), "%sx", s.pass);
		FUZZ_CHECK(!sasl_verify(&s, other));
	} else if (rc == SASL_DONE) {
		(void)sasl_verify(&s, "secret");
	}
	sasl_reset(&s);
	free(in);
	return 0;
}
