/* SASL PLAIN, LOGIN and CRAM-MD5 exchanges driven with the base64 lines a
 * real client sends, including the RFC 2195 example; then the shared
 * authentication flow (auth.h) over a real store and event_base, and the
 * failure budget per address with a simulated clock. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailsnare/apop.h"
#include "mailsnare/auth.h"
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

Test(sasl, mech_list)
{
	char buf[64];

	sasl_mech_list(true, "", buf, sizeof(buf));
	cr_assert_str_eq(buf, "PLAIN LOGIN CRAM-MD5");
	sasl_mech_list(false, "", buf, sizeof(buf));
	cr_assert_str_eq(buf, "CRAM-MD5");
	sasl_mech_list(true, "AUTH=", buf, sizeof(buf));
	cr_assert_str_eq(buf, "AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5");
	/* Only whole names fit. */
	sasl_mech_list(true, "", buf, 12);
	cr_assert_str_eq(buf, "PLAIN LOGIN");
	cr_assert(sasl_mech_plaintext(SASL_MECH_PLAIN));
	cr_assert(sasl_mech_plaintext(SASL_MECH_LOGIN));
	cr_assert_not(sasl_mech_plaintext(SASL_MECH_CRAM_MD5));
}

/* ---- the shared flow (auth.c) -------------------------------------- */

static char auth_dir[64], auth_db[96];
static struct store *auth_st;
static struct event_base *auth_base;
static struct event *auth_timer;
static struct auth_policy *auth_pol;    /* large (the budget table) */
static struct auth_session as;
static struct store_inbox auth_inbox;
static int auth_fired;

static void auth_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	auth_fired++;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void auth_setup_policy(bool accept_any, bool allow_plaintext)
{
	char err[256];

	snprintf(auth_dir, sizeof(auth_dir), "/tmp/mailsnare-auth-XXXXXX");
	cr_assert_not_null(mkdtemp(auth_dir));
	snprintf(auth_db, sizeof(auth_db), "%s/m.db", auth_dir);
	auth_st = store_open(&(struct store_options){ .path = auth_db,
	    .durability = DURABILITY_NORMAL, .err = err, .errlen = sizeof(err) });
	cr_assert_not_null(auth_st, "store_open: %s", err);
	cr_assert_eq(store_inbox_add(auth_st, "dev", "secret", NULL), STORE_OK);
	auth_base = event_base_new();
	cr_assert_not_null(auth_base);
	auth_timer = evtimer_new(auth_base, auth_timer_cb, NULL);
	auth_pol = calloc(1, sizeof(*auth_pol));
	cr_assert_not_null(auth_pol);
	auth_pol->accept_any = accept_any;
	auth_fired = 0;
	auth_session_init(&as, &(struct auth_session_params){
	    .proto = "test", .store = auth_st, .policy = auth_pol, .host = "h",
	    .allow_plaintext = allow_plaintext, .step_ms = 10, .max_ms = 30,
	    .ev_delay = auth_timer }, "192.0.2.1", &auth_inbox);
}

/* Criterion runs the suite's init before a test's own, so tests that
 * want another policy change it in their body. */
static void auth_setup(void) { auth_setup_policy(false, true); }

static void auth_teardown(void)
{
	auth_session_end(&as);
	event_free(auth_timer);
	event_base_free(auth_base);
	store_close(auth_st);
	free(auth_pol);
	nftw(auth_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(auth, .init = auth_setup, .fini = auth_teardown);

/* The answer to a CRAM-MD5 challenge line for user and password. */
static const char *cram_answer(const char *challenge_b64, const char *user, const char *pw)
{
	char text[300], digest[33];

	snprintf(text, sizeof(text), "%s", unb64(challenge_b64));
	cr_assert_eq(text[0], '<', "challenge %s", text);
	sasl_hmac_md5_hex(pw, text, digest);
	snprintf(text, sizeof(text), "%s %s", user, digest);
	return b64(text, strlen(text));
}

Test(auth, plain_initial_response)
{
	cr_assert_eq(auth_start(&as, false, "plain", PLAIN_MSG("\0dev\0secret")), AUTH_OK);
	cr_assert_str_eq(auth_inbox.name, "dev");
	cr_assert_not(as.active);
	cr_assert_eq(as.failures, 0);
	cr_assert_not(evtimer_pending(auth_timer, NULL));
	cr_assert_str_eq(as.sasl.pass, "", "credentials are wiped");
}

Test(auth, plain_after_empty_challenge)
{
	cr_assert_eq(auth_start(&as, false, "PLAIN", NULL), AUTH_CHALLENGE);
	cr_assert_str_eq(as.out, "");
	cr_assert(as.active);
	cr_assert_eq(auth_step(&as, PLAIN_MSG("dev\0dev\0secret")), AUTH_OK);
	cr_assert_not(as.active);
}

Test(auth, login_two_challenges)
{
	cr_assert_eq(auth_start(&as, false, "LOGIN", NULL), AUTH_CHALLENGE);
	cr_assert_str_eq(as.out, "VXNlcm5hbWU6");      /* "Username:" */
	cr_assert_eq(auth_step(&as, "ZGV2"), AUTH_CHALLENGE);
	cr_assert_str_eq(as.out, "UGFzc3dvcmQ6");      /* "Password:" */
	cr_assert_eq(auth_step(&as, "c2VjcmV0"), AUTH_OK);
	cr_assert_str_eq(auth_inbox.name, "dev");
}

Test(auth, cram_md5)
{
	char chal[SASL_OUT_MAX];

	cr_assert_eq(auth_start(&as, false, "CRAM-MD5", NULL), AUTH_CHALLENGE);
	snprintf(chal, sizeof(chal), "%s", as.out);
	cr_assert_eq(auth_step(&as, cram_answer(chal, "dev", "secret")), AUTH_OK);
	cr_assert_eq(auth_start(&as, false, "CRAM-MD5", NULL), AUTH_CHALLENGE);
	snprintf(chal, sizeof(chal), "%s", as.out);
	cr_assert_eq(auth_step(&as, cram_answer(chal, "dev", "wrong")), AUTH_FAILED);
	/* An initial response cannot answer an unseen challenge. */
	cr_assert_eq(auth_start(&as, false, "CRAM-MD5", "ZGV2"), AUTH_MALFORMED);
	cr_assert_eq(auth_start(&as, false, "CRAM-MD5", "*"), AUTH_CANCELLED);
}

Test(auth, cancel_and_malformed)
{
	cr_assert_eq(auth_start(&as, false, "LOGIN", NULL), AUTH_CHALLENGE);
	cr_assert_eq(auth_step(&as, "*"), AUTH_CANCELLED);
	cr_assert_not(as.active);
	cr_assert_eq(auth_start(&as, false, "PLAIN", "!!!"), AUTH_MALFORMED);
	cr_assert_eq(auth_start(&as, false, "PLAIN", "="), AUTH_MALFORMED);
	cr_assert_eq(auth_start(&as, false, "PLAIN", NULL), AUTH_CHALLENGE);
	cr_assert_eq(auth_step(&as, "bm8gbnVscw=="), AUTH_MALFORMED);   /* "no nuls" */
	/* A line after the exchange ended is not a second exchange. */
	cr_assert_eq(auth_step(&as, PLAIN_MSG("\0dev\0secret")), AUTH_MALFORMED);
	cr_assert_eq(as.failures, 0, "malformed input is not a failed login");
	cr_assert_eq(auth_start(&as, false, "DIGEST-MD5", NULL), AUTH_NOMECH);
	cr_assert_eq(auth_start(&as, false, "", NULL), AUTH_NOMECH);
}

Test(auth, wrong_password_answered_after_the_delay)
{
	struct timeval tv;

	cr_assert_eq(auth_start(&as, false, "PLAIN", PLAIN_MSG("\0dev\0Secret")), AUTH_FAILED);
	cr_assert_eq(as.failures, 1);
	cr_assert(evtimer_pending(auth_timer, NULL));
	cr_assert_eq(auth_fired, 0);
	event_base_loop(auth_base, EVLOOP_ONCE);
	cr_assert_eq(auth_fired, 1, "the owner's callback answers the failure");
	/* The second failure waits 20 ms, the fourth the 30 ms maximum. */
	cr_assert_eq(auth_password(&as, "dev", "x"), AUTH_FAILED);
	cr_assert(evtimer_pending(auth_timer, &tv));
	event_base_loop(auth_base, EVLOOP_ONCE);
	cr_assert_eq(auth_password(&as, "nobody", "secret"), AUTH_FAILED);
	event_base_loop(auth_base, EVLOOP_ONCE);
	cr_assert_eq(as.failures, 3);
	cr_assert_eq(auth_fired, 3);
	cr_assert_eq(auth_failure_delay_ms(1, 10, 30), 10);
	cr_assert_eq(auth_failure_delay_ms(2, 10, 30), 20);
	cr_assert_eq(auth_failure_delay_ms(4, 10, 30), 30);
	cr_assert_eq(auth_failure_delay_ms(4000000000u, 10, 30), 30);
	/* A success is never delayed, whatever came before. */
	cr_assert_eq(auth_password(&as, "dev", "secret"), AUTH_OK);
	cr_assert_not(evtimer_pending(auth_timer, NULL));
}

Test(auth, authzid_of_someone_else_fails)
{
	cr_assert_eq(auth_start(&as, false, "PLAIN", PLAIN_MSG("other\0dev\0secret")),
	    AUTH_FAILED);
	cr_assert_eq(auth_start(&as, false, "PLAIN", PLAIN_MSG("dev\0dev\0secret")), AUTH_OK);
}

Test(auth, apop)
{
	const char *ts = "<1.2@h>";
	char hex[APOP_DIGEST_HEX];

	apop_digest_hex(ts, "secret", hex);
	cr_assert_eq(auth_apop(&as, ts, "dev", hex), AUTH_OK);
	cr_assert_eq(auth_apop(&as, ts, "dev", "00000000000000000000000000000000"), AUTH_FAILED);
	cr_assert_eq(auth_apop(&as, ts, "nobody", hex), AUTH_FAILED);
}

Test(auth, plaintext_policy)
{
	char buf[64];

	as.p.allow_plaintext = false;

	cr_assert_not(auth_plaintext_ok(&as, false));
	cr_assert(auth_plaintext_ok(&as, true));
	cr_assert_eq(auth_start(&as, false, "PLAIN", PLAIN_MSG("\0dev\0secret")), AUTH_NEED_TLS);
	cr_assert_eq(auth_start(&as, false, "LOGIN", NULL), AUTH_NEED_TLS);
	cr_assert_eq(auth_start(&as, false, "CRAM-MD5", NULL), AUTH_CHALLENGE);
	cr_assert_eq(auth_start(&as, true, "PLAIN", PLAIN_MSG("\0dev\0secret")), AUTH_OK);
	cr_assert_eq(auth_start(&as, false, "NOPE", NULL), AUTH_NOMECH);
	auth_mechanisms(auth_plaintext_ok(&as, false), "", buf, sizeof(buf));
	cr_assert_str_eq(buf, "CRAM-MD5");
	auth_mechanisms(auth_plaintext_ok(&as, true), "", buf, sizeof(buf));
	cr_assert_str_eq(buf, "PLAIN LOGIN CRAM-MD5");
}

Test(auth, accept_any)
{
	char chal[SASL_OUT_MAX];
	struct store_inbox in;

	auth_pol->accept_any = true;

	cr_assert_eq(auth_start(&as, false, "PLAIN", PLAIN_MSG("\0fixture-1\0whatever")), AUTH_OK);
	cr_assert_str_eq(auth_inbox.name, "fixture-1");
	cr_assert_eq(store_inbox_get(auth_st, "fixture-1", &in), STORE_OK);
	cr_assert_eq(auth_password(&as, "fixture-2", "pw"), AUTH_OK);
	/* CRAM-MD5 never shows the password: a new inbox gets its name. */
	cr_assert_eq(auth_start(&as, false, "CRAM-MD5", NULL), AUTH_CHALLENGE);
	snprintf(chal, sizeof(chal), "%s", as.out);
	cr_assert_eq(auth_step(&as, cram_answer(chal, "fixture-3", "anything")), AUTH_OK);
	cr_assert_eq(store_inbox_get(auth_st, "fixture-3", &in), STORE_OK);
	cr_assert_str_eq(in.password, "fixture-3");
	cr_assert_eq(auth_apop(&as, "<1@h>", "fixture-4", "x"), AUTH_OK);
	/* A name that cannot be an inbox is still a failure. */
	cr_assert_eq(auth_password(&as, "", "pw"), AUTH_FAILED);
}

Test(auth, accept_any_keeps_existing_passwords)
{
	char chal[SASL_OUT_MAX], digest[APOP_DIGEST_HEX];

	auth_pol->accept_any = true;
	/* "dev" exists with password "secret" (auth_setup). */
	cr_assert_eq(auth_password(&as, "dev", "other"), AUTH_FAILED);
	cr_assert_eq(auth_start(&as, false, "PLAIN", PLAIN_MSG("\0dev\0other")), AUTH_FAILED);
	cr_assert_eq(auth_password(&as, "dev", "secret"), AUTH_OK);
	cr_assert_eq(auth_start(&as, false, "CRAM-MD5", NULL), AUTH_CHALLENGE);
	snprintf(chal, sizeof(chal), "%s", as.out);
	cr_assert_eq(auth_step(&as, cram_answer(chal, "dev", "other")), AUTH_FAILED);
	cr_assert_eq(auth_start(&as, false, "CRAM-MD5", NULL), AUTH_CHALLENGE);
	snprintf(chal, sizeof(chal), "%s", as.out);
	cr_assert_eq(auth_step(&as, cram_answer(chal, "dev", "secret")), AUTH_OK);
	apop_digest_hex("<1@h>", "other", digest);
	cr_assert_eq(auth_apop(&as, "<1@h>", "dev", digest), AUTH_FAILED);
	apop_digest_hex("<1@h>", "secret", digest);
	cr_assert_eq(auth_apop(&as, "<1@h>", "dev", digest), AUTH_OK);
	/* A new name keeps the password its first login gave. */
	cr_assert_eq(auth_password(&as, "fixture-5", "first"), AUTH_OK);
	cr_assert_eq(auth_password(&as, "fixture-5", "second"), AUTH_FAILED);
	/* Names the store refuses are failures, and no inbox. */
	cr_assert_eq(auth_password(&as, " lead", "pw"), AUTH_FAILED);
	cr_assert_eq(auth_password(&as, "bad\xff", "pw"), AUTH_FAILED);
	cr_assert_eq(store_inbox_get(auth_st, " lead", &auth_inbox), STORE_NOTFOUND);
}

Test(auth, store_error_is_temporary)
{
	sqlite3 *db;

	/* The inbox table vanishes under the store (a second connection). */
	cr_assert_eq(sqlite3_open(auth_db, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "ALTER TABLE inbox RENAME TO gone", NULL, NULL, NULL),
	    SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
	cr_assert_eq(auth_password(&as, "dev", "secret"), AUTH_TEMPFAIL);
	cr_assert_eq(auth_start(&as, false, "PLAIN", PLAIN_MSG("\0dev\0secret")), AUTH_TEMPFAIL);
	cr_assert_eq(as.failures, 0, "the server's failure is not the client's");
	cr_assert_not(evtimer_pending(auth_timer, NULL));
}

/* ---- the failure budget per address --------------------------------- */

static struct auth_budget *budget_new(void)
{
	struct auth_budget *b = calloc(1, sizeof(*b));

	cr_assert_not_null(b);
	return b;
}

Test(auth_budget, under_the_budget_only_the_connection_delay)
{
	struct auth_budget *b = budget_new();

	for (int i = 0; i < AUTH_BUDGET_FAILURES; i++)
		cr_assert_eq(auth_budget_charge(b, "10.0.0.1", 1000, 200), 200, "failure %d", i);
	/* Beyond it, one answer per slot for the whole address... */
	cr_assert_eq(auth_budget_charge(b, "10.0.0.1", 1000, 0), 0);
	cr_assert_eq(auth_budget_charge(b, "10.0.0.1", 1000, 0), AUTH_BUDGET_SPACING_MS);
	cr_assert_eq(auth_budget_charge(b, "10.0.0.1", 1000, 100), 2 * AUTH_BUDGET_SPACING_MS);
	/* ...a longer connection delay still wins... */
	cr_assert_eq(auth_budget_charge(b, "10.0.0.1", 1000, 5000), 5000);
	/* ...and another address is not affected. */
	cr_assert_eq(auth_budget_charge(b, "10.0.0.2", 1000, 200), 200);
	free(b);
}

Test(auth_budget, drains_in_a_minute)
{
	struct auth_budget *b = budget_new();
	uint64_t t = 1000;

	for (int i = 0; i < 200; i++)
		auth_budget_charge(b, "::1", t, 0);
	/* Still over the budget a few seconds later... */
	cr_assert_gt(auth_budget_charge(b, "::1", t + 5000, 0), 0);
	/* ...back under it about a minute after the last failure. */
	t += 5000 + AUTH_BUDGET_WINDOW_MS + 1000;
	cr_assert_eq(auth_budget_charge(b, "::1", t, 100), 100);
	free(b);
}

Test(auth_budget, bounded_wait)
{
	struct auth_budget *b = budget_new();
	unsigned ms = 0;

	for (int i = 0; i < 1000; i++)
		ms = auth_budget_charge(b, "10.1.1.1", 1000, 0);
	cr_assert_eq(ms, AUTH_BUDGET_MAX_DELAY_MS);
	free(b);
}

Test(auth_budget, table_is_bounded_least_recent_makes_room)
{
	struct auth_budget *b = budget_new();
	char addr[32];

	for (int i = 0; i < 30; i++)
		auth_budget_charge(b, "10.9.9.9", 1000, 0);
	cr_assert_gt(auth_budget_charge(b, "10.9.9.9", 1000, 0), 0);
	/* Fill every other entry with more recent addresses. */
	for (int i = 0; i < AUTH_BUDGET_ADDRS; i++) {
		snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 256, i % 256);
		auth_budget_charge(b, addr, 2000 + (uint64_t)i, 0);
	}
	/* 10.9.9.9 was the least recent: it starts again from nothing. */
	cr_assert_eq(auth_budget_charge(b, "10.9.9.9", 4000, 7), 7);
	free(b);
}

/* 30 connections from one address retry as soon as each failure is
 * answered, for 5 s: the answers stay within the budget plus one per slot. */
Test(auth_budget, parallel_connections_share_one_rate)
{
	struct auth_budget *b = budget_new();
	uint64_t ready[30];
	unsigned answered = 0;

	for (int i = 0; i < 30; i++)
		ready[i] = 0;
	for (uint64_t now = 0; now < 5000; now++)
		for (int i = 0; i < 30; i++)
			if (ready[i] <= now) {
				ready[i] = now + auth_budget_charge(b, "127.0.0.1", now, 200);
				answered++;
			}
	cr_assert_leq(answered, AUTH_BUDGET_FAILURES + 30 + 5000 / AUTH_BUDGET_SPACING_MS,
	    "%u attempts in 5 s", answered);
	free(b);
}
