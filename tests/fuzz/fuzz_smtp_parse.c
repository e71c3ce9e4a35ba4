/*
 * SMTP command lines: verb, MAIL/RCPT paths and ESMTP parameters, BDAT
 * arguments, numbers. Checks: paths fit and are NUL-terminated, the
 * parameter iterator always advances and stops, numbers equal their digits.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/smtp_parse.h"
#include "fuzz.h"

static void check_params(const char *p)
{
	char key[64], value[256];
	int rc, steps = 0;

	while ((rc = smtp_parse_param(&p, key, sizeof(key), value, sizeof(value))) == 1) {
		FUZZ_CHECK(++steps <= 1000);
		FUZZ_CHECK(key[0] != '\0' && strlen(key) < sizeof(key));
		FUZZ_CHECK(strlen(value) < sizeof(value));
		for (const char *k = key; *k; k++)
			FUZZ_CHECK(!(*k >= 'a' && *k <= 'z'));
	}
	FUZZ_CHECK(rc == 0 || rc == -1);
}

static void check_u64(const char *s)
{
	uint64_t v, ref = 0;
	bool digits = *s != '\0', over = false;

	for (const char *q = s; *q; q++) {
		if (*q < '0' || *q > '9') {
			digits = false;
			break;
		}
		if (ref > (UINT64_MAX - (uint64_t)(*q - '0')) / 10)
			over = true;
		ref = ref * 10 + (uint64_t)(*q - '0');
	}
	if (smtp_parse_u64(s, &v) == 0)
		FUZZ_CHECK(digits && !over && v == ref);
	else
		FUZZ_CHECK(!digits || over);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = fuzz_strdup(data, size > 4096 ? 4096 : size);
	const char *args;
	struct smtp_path path;
	enum smtp_verb v = smtp_parse_verb(line, &args);
	enum smtp_path_rc rc;
	uint64_t n;
	bool last;

	FUZZ_CHECK(v < SMTP_CMD_COUNT && args != NULL);
	FUZZ_CHECK(*args == '\0' || (args >= line && args <= line + strlen(line)));
	(void)smtp_verb_name(v);
	for (int i = 0; i < 2; i++) {
		memset(&path, 0x55, sizeof(path));
		rc = smtp_parse_path(args, i ? "TO" : "FROM", i == 0, &path);
		if (rc == SMTP_PATH_OK) {
			FUZZ_CHECK(memchr(path.addr, '\0', sizeof(path.addr)) != NULL);
			FUZZ_CHECK(path.params != NULL);
			check_params(path.params);
			if (path.addr[0] != '\0')
				(void)smtp_mailbox_valid(path.addr);
		}
	}
	check_params(args);
	if (smtp_parse_bdat(args, &n, &last) == 0)
		FUZZ_CHECK(last == true || last == false);
	check_u64(args);
	(void)smtp_mailbox_valid(args);
	free(line);
	return 0;
}
