/* RFC 4648 base64: the §10 test vectors both ways, and strict rejection of
 * everything that is not canonical padded base64. */
#include <criterion/criterion.h>
#include <string.h>

#include "mailsnare/base64.h"

struct vector {
	const char *plain;
	const char *encoded;
};

/* RFC 4648 §10. */
static const struct vector rfc4648[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

#define NVECTORS (sizeof(rfc4648) / sizeof(rfc4648[0]))

Test(base64, rfc4648_encode)
{
	for (size_t i = 0; i < NVECTORS; i++) {
		char out[64];
		size_t n = strlen(rfc4648[i].plain);
		ssize_t r = base64_encode(rfc4648[i].plain, n, out, sizeof(out));
		cr_assert_eq(r, (ssize_t)strlen(rfc4648[i].encoded), "vector %zu", i);
		cr_assert_str_eq(out, rfc4648[i].encoded);
	}
}

Test(base64, rfc4648_decode)
{
	for (size_t i = 0; i < NVECTORS; i++) {
		char out[64];
		const char *e = rfc4648[i].encoded;
		ssize_t r = base64_decode(e, strlen(e), out, sizeof(out));
		cr_assert_eq(r, (ssize_t)strlen(rfc4648[i].plain), "vector %zu", i);
		cr_assert_eq(memcmp(out, rfc4648[i].plain, (size_t)r), 0);
	}
}

Test(base64, empty_decodes_to_zero_even_with_no_buffer)
{
	cr_assert_eq(base64_decode("", 0, NULL, 0), 0);
}

Test(base64, encoded_size_macro_is_exact)
{
	for (size_t n = 0; n < 10; n++) {
		unsigned char in[10] = { 0 };
		char out[BASE64_ENCODED_SIZE(10)];
		ssize_t r = base64_encode(in, n, out, BASE64_ENCODED_SIZE(n));
		cr_assert_eq((size_t)r + 1, BASE64_ENCODED_SIZE(n));
		/* One byte less must be refused, not truncated. */
		cr_assert_eq(base64_encode(in, n, out, BASE64_ENCODED_SIZE(n) - 1), -1);
	}
}

Test(base64, all_byte_values_round_trip)
{
	unsigned char in[256], back[256];
	char enc[BASE64_ENCODED_SIZE(256)];

	for (int i = 0; i < 256; i++)
		in[i] = (unsigned char)i;
	for (size_t n = 0; n <= 256; n += 37) {
		ssize_t e = base64_encode(in, n, enc, sizeof(enc));
		cr_assert_geq(e, 0);
		ssize_t d = base64_decode(enc, (size_t)e, back, sizeof(back));
		cr_assert_eq(d, (ssize_t)n);
		cr_assert_eq(memcmp(in, back, n), 0);
	}
	/* High bytes use '+' and '/'. */
	unsigned char hi[3] = { 0xfb, 0xff, 0xbf };
	cr_assert_eq(base64_encode(hi, 3, enc, sizeof(enc)), 4);
	cr_assert_str_eq(enc, "+/+/");
}

Test(base64, malformed_rejected)
{
	static const char *bad[] = {
		"Zg",        /* padding missing */
		"Zg=",       /* length not a multiple of 4 */
		"Zm9vY",
		"Z===",      /* three pad characters */
		"====",
		"Zg==Zm8=",  /* padding in the middle */
		"Z=g=",      /* pad before data */
		"Zm9v\n",    /* white space */
		" Zm9v",
		"Zm 9",
		"Zm9-",      /* URL-safe alphabet is not base64 */
		"Zm9_",
		"Zm\x80v",   /* 8-bit */
		"Zh==",      /* non-zero padding bits */
		"Zm9=",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char out[64];
		cr_assert_eq(base64_decode(bad[i], strlen(bad[i]), out, sizeof(out)), -1,
		    "accepted \"%s\"", bad[i]);
	}
}

Test(base64, embedded_nul_rejected)
{
	char out[8];
	cr_assert_eq(base64_decode("Zm\0v", 4, out, sizeof(out)), -1);
}

Test(base64, small_dst_rejected)
{
	char out[8];
	memset(out, 'x', sizeof(out));
	cr_assert_eq(base64_decode("Zm9vYmFy", 8, out, 5), -1);
	cr_assert_eq(base64_decode("Zm9vYg==", 8, out, 3), -1);
	cr_assert_eq(base64_decode("Zm9vYg==", 8, out, 4), 4);
	cr_assert_eq(memcmp(out, "foob", 4), 0);
	cr_assert_eq(base64_encode("foo", 3, out, 4), -1);
	cr_assert_eq(base64_encode("foo", 3, out, 5), 4);
}
