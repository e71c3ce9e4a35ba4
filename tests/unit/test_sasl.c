/* SASL PLAIN, LOGIN and CRAM-MD5 exchanges driven with the base64 lines a
 * real client sends, including the RFC 2195 example. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "mailsnare/base64.h"
#include "mailsnare/sasl.h"

/* base64 of an arbitrary byte string (may contain NULs). */
static const char *b64(const void *data, size_t len)
{
	static char buf[2048];
	cr_assert_geq(base64_encode(data, len, buf, sizeof(buf)), 0);
	return buf;
}

/* Decodes a challenge line to text for comparison. */
static const char *unb64(const char *line)
{
	static char buf[1024];
	ssize_t n = base64_decode(line, strlen(line), buf, sizeof(buf) - 1);
	cr_assert_geq(n, 0, "challenge \"%s\" is not base64", line);
	buf[n] = '\0';
	return buf;
}

#define PLAIN_MSG(lit) b64(lit, sizeof(lit) - 1)

Test(sasl, mech_names)
{
	cr_assert_eq(sasl_mech_parse("PLAIN"), SASL_MECH_PLAIN);
	cr_assert_eq(sasl_mech_parse("login"), SASL_MECH_LOGIN);
	cr_assert_eq(sasl_mech_parse("Cram-Md5"), SASL_MECH_CRAM_MD5);
	cr_assert_eq(sasl_mech_parse("DIGEST-MD5"), SASL_MECH_NONE);
	cr_assert_eq(sasl_mech_parse(""), SASL_MECH_NONE);
	cr_assert_eq(sasl_mech_parse(NULL), SASL_MECH_NONE);
	cr_assert_str_eq(sasl_mech_name(SASL_MECH_CRAM_MD5), "CRAM-MD5");
	cr_assert_str_eq(sasl_mech_name(SASL_MECH_PLAIN), "PLAIN");
	cr_assert_str_eq(sasl_mech_name(SASL_MECH_LOGIN), "LOGIN");
}

Test(sasl, plain_initial_response_without_authzid)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, PLAIN_MSG("\0dev\0secret"), "h", out,
	                 sizeof(out)),
	    SASL_DONE);
	cr_assert_str_eq(s.user, "dev");
	cr_assert_str_eq(s.authzid, "");
	cr_assert(sasl_verify(&s, "secret"));
	cr_assert_not(sasl_verify(&s, "secreT"));
	cr_assert_not(sasl_verify(&s, "secret2"));
	cr_assert_not(sasl_verify(&s, ""));
	sasl_reset(&s);
	cr_assert_not(sasl_verify(&s, "secret"));
	cr_assert_str_eq(s.pass, "");
}

Test(sasl, plain_with_authzid)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, PLAIN_MSG("admin\0tim\0tanstaaf"), "h", out,
	                 sizeof(out)),
	    SASL_DONE);
	cr_assert_str_eq(s.authzid, "admin");
	cr_assert_str_eq(s.user, "tim");
	cr_assert(sasl_verify(&s, "tanstaaf"));
}

Test(sasl, plain_via_empty_challenge)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_str_eq(out, "");
	cr_assert_eq(sasl_step(&s, PLAIN_MSG("\0dev\0dev"), out, sizeof(out)), SASL_DONE);
	cr_assert_str_eq(s.user, "dev");
	cr_assert(sasl_verify(&s, "dev"));
	/* The exchange is over: more lines are errors. */
	cr_assert_eq(sasl_step(&s, "", out, sizeof(out)), SASL_MALFORMED);
}

Test(sasl, plain_8bit_credentials)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, PLAIN_MSG("\0j\xc3\xb6rg\0p\xc3\xa4ss"), "h",
	                 out, sizeof(out)),
	    SASL_DONE);
	cr_assert_str_eq(s.user, "j\xc3\xb6rg");
	cr_assert(sasl_verify(&s, "p\xc3\xa4ss"));
}

Test(sasl, plain_malformed)
{
	static const struct {
		const char *msg;
		size_t len;
	} bad[] = {
		{ "dev\0secret", 10 },         /* one NUL */
		{ "devsecret", 9 },            /* none */
		{ "\0dev\0", 5 },              /* empty password */
		{ "\0\0secret", 8 },           /* empty authcid */
		{ "\0dev\0sec\0ret", 12 },     /* three NULs */
		{ "", 0 },                     /* empty */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sasl s;
		char out[SASL_OUT_MAX];
		cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, b64(bad[i].msg, bad[i].len), "h", out,
		                 sizeof(out)),
		    SASL_MALFORMED, "case %zu", i);
		cr_assert_not(sasl_verify(&s, "secret"));
	}
}

Test(sasl, plain_bad_base64_and_empty_initial)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, "AGRldgBzZWNyZXQ", "h", out, sizeof(out)),
	    SASL_MALFORMED);
	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, "AGRl dgBzZWNyZXQ=", "h", out, sizeof(out)),
	    SASL_MALFORMED);
	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, "!!!!", "h", out, sizeof(out)),
	    SASL_MALFORMED);
	/* "=" is an empty initial response, which is no valid PLAIN message. */
	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, "=", "h", out, sizeof(out)), SASL_MALFORMED);
	/* Via the challenge, an empty line is an empty response. */
	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_eq(sasl_step(&s, "", out, sizeof(out)), SASL_MALFORMED);
}

Test(sasl, plain_too_long_fields)
{
	struct sasl s;
	char out[SASL_OUT_MAX];
	char msg[SASL_USER_MAX + SASL_PASS_MAX + 8];
	size_t n = 0;

	/* A user name of exactly SASL_USER_MAX bytes leaves no room for NUL. */
	msg[n++] = '\0';
	memset(msg + n, 'u', SASL_USER_MAX);
	n += SASL_USER_MAX;
	msg[n++] = '\0';
	msg[n++] = 'p';
	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, b64(msg, n), "h", out, sizeof(out)),
	    SASL_MALFORMED);

	/* One byte shorter fits. */
	n = 0;
	msg[n++] = '\0';
	memset(msg + n, 'u', SASL_USER_MAX - 1);
	n += SASL_USER_MAX - 1;
	msg[n++] = '\0';
	memset(msg + n, 'p', SASL_PASS_MAX - 1);
	n += SASL_PASS_MAX - 1;
	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, b64(msg, n), "h", out, sizeof(out)), SASL_DONE);
	cr_assert_eq(strlen(s.user), SASL_USER_MAX - 1);
	cr_assert_eq(strlen(s.pass), SASL_PASS_MAX - 1);

	/* A huge line is refused, not overflowed. */
	static char big[8192];
	memset(big, 'A', sizeof(big) - 1);
	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, big, "h", out, sizeof(out)), SASL_MALFORMED);
}

Test(sasl, cancel_at_any_step)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_eq(sasl_step(&s, "*", out, sizeof(out)), SASL_CANCELLED);
	cr_assert_not(sasl_verify(&s, ""));

	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_eq(sasl_step(&s, "*", out, sizeof(out)), SASL_CANCELLED);

	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_eq(sasl_step(&s, "dXNlcg==", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_eq(sasl_step(&s, "*", out, sizeof(out)), SASL_CANCELLED);
	cr_assert_str_eq(s.user, "", "credentials survive a cancel");

	cr_assert_eq(sasl_start(&s, SASL_MECH_CRAM_MD5, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_eq(sasl_step(&s, "*", out, sizeof(out)), SASL_CANCELLED);

	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, "*", "h", out, sizeof(out)), SASL_CANCELLED);
}

Test(sasl, login_without_initial_response)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_str_eq(out, "VXNlcm5hbWU6");
	cr_assert_str_eq(unb64(out), "Username:");
	cr_assert_eq(sasl_step(&s, "ZGV2", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_str_eq(out, "UGFzc3dvcmQ6");
	cr_assert_str_eq(unb64(out), "Password:");
	cr_assert_eq(sasl_step(&s, "c2VjcmV0", out, sizeof(out)), SASL_DONE);
	cr_assert_str_eq(s.user, "dev");
	cr_assert(sasl_verify(&s, "secret"));
	cr_assert_not(sasl_verify(&s, "secre"));
}

Test(sasl, login_with_initial_response)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, "ZGV2", "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_str_eq(unb64(out), "Password:");
	cr_assert_eq(sasl_step(&s, "c2VjcmV0", out, sizeof(out)), SASL_DONE);
	cr_assert_str_eq(s.user, "dev");
	cr_assert(sasl_verify(&s, "secret"));
}

Test(sasl, login_malformed)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, "ZGV2=", "h", out, sizeof(out)),
	    SASL_MALFORMED);
	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, "=", "h", out, sizeof(out)), SASL_MALFORMED);
	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	/* A NUL inside the user name would silently cut it. */
	cr_assert_eq(sasl_step(&s, b64("de\0v", 4), out, sizeof(out)), SASL_MALFORMED);
	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, "ZGV2", "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_eq(sasl_step(&s, "", out, sizeof(out)), SASL_MALFORMED);
}

Test(sasl, cram_md5_rfc2195_example)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_CRAM_MD5, NULL, "postoffice.reston.mci.net", out,
	                 sizeof(out)),
	    SASL_CONTINUE);
	strcpy(s.challenge, "<1896.697170952@postoffice.reston.mci.net>");
	cr_assert_eq(sasl_step(&s, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", out,
	                 sizeof(out)),
	    SASL_DONE);
	cr_assert_str_eq(s.user, "tim");
	cr_assert_str_eq(s.digest, "b913a602c7eda7a495b4e6e7334d3890");
	cr_assert(sasl_verify(&s, "tanstaaftanstaaf"));
	cr_assert_not(sasl_verify(&s, "tanstaaftanstaaF"));
	cr_assert_not(sasl_verify(&s, "tanstaaf"));
}

Test(sasl, cram_md5_hmac_vector)
{
	char hex[33];

	sasl_hmac_md5_hex("tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>", hex);
	cr_assert_str_eq(hex, "b913a602c7eda7a495b4e6e7334d3890");
	/* RFC 2104 test case 2. */
	sasl_hmac_md5_hex("Jefe", "what do ya want for nothing?", hex);
	cr_assert_str_eq(hex, "750c783e6ab0b503eaa86e310a5db738");
	/* Empty key works too. */
	sasl_hmac_md5_hex("", "", hex);
	cr_assert_str_eq(hex, "74e6f7298a9c2d168935f58c001bad88");
}

Test(sasl, cram_md5_challenge_shape_and_uppercase_digest)
{
	struct sasl s;
	char out[SASL_OUT_MAX], first[SASL_CHALLENGE_MAX], resp[512], hex[33];

	cr_assert_eq(sasl_start(&s, SASL_MECH_CRAM_MD5, NULL, "mail.test", out, sizeof(out)),
	    SASL_CONTINUE);
	cr_assert_str_eq(unb64(out), s.challenge);
	cr_assert_eq(s.challenge[0], '<');
	cr_assert_eq(s.challenge[strlen(s.challenge) - 1], '>');
	cr_assert_not_null(strstr(s.challenge, "@mail.test>"));
	cr_assert_not_null(strchr(s.challenge, '.'));
	strcpy(first, s.challenge);

	/* A client computes the digest over the challenge it received. */
	sasl_hmac_md5_hex("dev", s.challenge, hex);
	for (char *p = hex; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	snprintf(resp, sizeof(resp), "dev %s", hex);
	cr_assert_eq(sasl_step(&s, b64(resp, strlen(resp)), out, sizeof(out)), SASL_DONE);
	cr_assert_str_eq(s.user, "dev");
	cr_assert(sasl_verify(&s, "dev"));
	cr_assert_not(sasl_verify(&s, "dew"));

	/* Challenges differ between exchanges. */
	cr_assert_eq(sasl_start(&s, SASL_MECH_CRAM_MD5, NULL, "mail.test", out, sizeof(out)),
	    SASL_CONTINUE);
	cr_assert_str_neq(s.challenge, first);
}

Test(sasl, cram_md5_malformed)
{
	static const char *bad[] = {
		"tim b913a602c7eda7a495b4e6e7334d389",    /* 31 digits */
		"tim b913a602c7eda7a495b4e6e7334d38900",  /* 33 digits */
		"timb913a602c7eda7a495b4e6e7334d3890",    /* no space */
		" b913a602c7eda7a495b4e6e7334d3890",      /* empty user */
		"tim g913a602c7eda7a495b4e6e7334d3890",   /* not hex */
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sasl s;
		char out[SASL_OUT_MAX];
		cr_assert_eq(sasl_start(&s, SASL_MECH_CRAM_MD5, NULL, "h", out, sizeof(out)),
		    SASL_CONTINUE);
		cr_assert_eq(sasl_step(&s, b64(bad[i], strlen(bad[i])), out, sizeof(out)),
		    SASL_MALFORMED, "accepted \"%s\"", bad[i]);
		cr_assert_not(sasl_verify(&s, "tanstaaftanstaaf"));
	}
}

Test(sasl, cram_md5_initial_response_is_malformed)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_CRAM_MD5,
	                 "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", "h", out, sizeof(out)),
	    SASL_MALFORMED);
	cr_assert_eq(sasl_start(&s, SASL_MECH_NONE, NULL, "h", out, sizeof(out)), SASL_MALFORMED);
}

Test(sasl, verify_before_done_fails)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, "ZGV2", "h", out, sizeof(out)), SASL_CONTINUE);
	cr_assert_not(sasl_verify(&s, ""));
	cr_assert_not(sasl_verify(&s, NULL));
}

Test(sasl, streq_ct)
{
	cr_assert(sasl_streq_ct("", ""));
	cr_assert(sasl_streq_ct("secret", "secret"));
	cr_assert_not(sasl_streq_ct("secret", "Secret"));
	cr_assert_not(sasl_streq_ct("secret", "secreT"));
	cr_assert_not(sasl_streq_ct("secret", "secre"));
	cr_assert_not(sasl_streq_ct("secre", "secret"));
	cr_assert_not(sasl_streq_ct("", "x"));
	cr_assert_not(sasl_streq_ct("x", ""));
	cr_assert(sasl_streq_ct("\xff\x80", "\xff\x80"));
	cr_assert_not(sasl_streq_ct("\xff\x80", "\xff\x81"));
}

Test(sasl, reset_wipes)
{
	struct sasl s;
	char out[SASL_OUT_MAX];

	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, PLAIN_MSG("z\0dev\0secret"), "h", out,
	                 sizeof(out)),
	    SASL_DONE);
	sasl_reset(&s);
	const unsigned char *p = (const unsigned char *)&s;
	for (size_t i = 0; i < sizeof(s); i++)
		cr_assert_eq(p[i], 0, "byte %zu not wiped", i);
	cr_assert_eq(s.mech, SASL_MECH_NONE);
}
