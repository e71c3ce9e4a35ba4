/* APOP digests: the RFC 1939 §7 example and verification. */
#include <criterion/criterion.h>
#include <string.h>

#include "mailsnare/apop.h"

#define RFC_TS "<1896.697170952@dbc.mtview.ca.us>"
#define RFC_PASS "tanstaaf"
#define RFC_DIGEST "c4c9334bac560ecc979e58001b3e22fb"

Test(apop, rfc1939_example)
{
	char hex[APOP_DIGEST_HEX];

	apop_digest_hex(RFC_TS, RFC_PASS, hex);
	cr_expect_str_eq(hex, RFC_DIGEST);
}

Test(apop, verify)
{
	cr_expect(apop_verify(RFC_TS, RFC_PASS, RFC_DIGEST));
	/* Uppercase hex from a sloppy client is still the right digest. */
	cr_expect(apop_verify(RFC_TS, RFC_PASS, "C4C9334BAC560ECC979E58001B3E22FB"));
	cr_expect_not(apop_verify(RFC_TS, "tanstaaF", RFC_DIGEST));
	cr_expect_not(apop_verify("<1896.697170953@dbc.mtview.ca.us>", RFC_PASS, RFC_DIGEST));
	cr_expect_not(apop_verify(RFC_TS, RFC_PASS, "c4c9334bac560ecc979e58001b3e22f"));
	cr_expect_not(apop_verify(RFC_TS, RFC_PASS, RFC_DIGEST "0"));
	cr_expect_not(apop_verify(RFC_TS, RFC_PASS, ""));
	/* A byte that is not a hex digit never folds into one. */
	cr_expect_not(apop_verify(RFC_TS, RFC_PASS, "c4c9334bac560ecc979e58001b3e22f\x02"));
}

Test(apop, empty_password)
{
	char hex[APOP_DIGEST_HEX];

	/* MD5 of the timestamp alone. */
	apop_digest_hex("", "", hex);
	cr_expect_str_eq(hex, "d41d8cd98f00b204e9800998ecf8427e");
	cr_expect(apop_verify("", "", "d41d8cd98f00b204e9800998ecf8427e"));
}
