/*
 * Header decoding: field iteration, unfolding, Content-Type and
 * Content-Disposition parameters with RFC 2231 continuations and charsets,
 * RFC 2047 encoded words, HEADER.FIELDS filtering. The first byte picks
 * what the rest is fed to. Checks: iteration covers the block in order,
 * parameter names are lowercase and unique, the filter's include and
 * exclude outputs together hold every field once.
 */
#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "mailsnare/mime_header.h"
#include "fuzz.h"

static void check_params(const struct mime_param *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(p[i].name != NULL && p[i].value != NULL);
		/* A '*' stays in names that are not RFC 2231 syntax. */
		for (const char *c = p[i].name; *c; c++)
			FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z'));
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(p[i].name, p[j].name) != 0);
	}
}

static void fields(const char *s, size_t n)
{
	static const char *const names[] = { "subject", "From", "x-a" };
	struct mime_field f;
	struct evbuffer *in = evbuffer_new(), *ex = evbuffer_new();
	size_t pos = 0, last = 0, total = 0, steps = 0;
	long a, b;

	FUZZ_CHECK(in != NULL && ex != NULL);
	while (mime_header_next(s, n, &pos, &f)) {
		FUZZ_CHECK(++steps <= n + 1);
		FUZZ_CHECK(pos > last && pos <= n);
		FUZZ_CHECK(f.start >= s + last && f.start + f.len <= s + n);
		FUZZ_CHECK(f.name >= f.start && f.value >= f.name + f.name_len);
		FUZZ_CHECK(f.value + f.value_len <= f.start + f.len);
		free(mime_header_unfold(f.value, f.value_len, 1000));
		last = pos;
		/* The filter ends a last field that lacks one with CRLF. */
		total += f.len + (f.len == 0 || f.start[f.len - 1] != '\n' ? 2 : 0);
	}
	a = mime_header_filter(s, n, names, 3, false, in);
	b = mime_header_filter(s, n, names, 3, true, ex);
	FUZZ_CHECK(a >= 2 && b >= 2);
	FUZZ_CHECK((size_t)a + (size_t)b == total + 4);
	evbuffer_free(in);
	evbuffer_free(ex);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data + 1;
	size_t n = size - 1, outlen, np;
	struct mime_param *params = NULL;
	char *tok = NULL, *type = NULL, *sub = NULL, *dec;

	if (size < 1 || size > 65536)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fields(s, n);
		break;
	case 1:
		np = mime_header_parse_params(s, n, &tok, &params);
		check_params(params, np);
		if (tok != NULL)
			for (const char *c = tok; *c; c++)
				FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z'));
		mime_params_free(params, np);
		free(tok);
		break;
	case 2:
		np = mime_header_parse_content_type(s, n, &type, &sub, &params);
		FUZZ_CHECK((type == NULL) == (sub == NULL));
		check_params(params, np);
		mime_params_free(params, np);
		free(type);
		free(sub);
		break;
	default:
		dec = mime_header_decode(s, n, &outlen);
		FUZZ_CHECK(dec != NULL && dec[outlen] == '\0');
		free(dec);
		dec = mime_charset_to_utf8("iso-8859-1", s, n, &outlen);
		FUZZ_CHECK(dec != NULL);
		free(dec);
		break;
	}
	return 0;
}
