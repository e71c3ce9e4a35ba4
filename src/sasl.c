/*
 * SASL server side of PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login)
 * and CRAM-MD5 (RFC 2195). The session feeds base64 lines in and sends the
 * base64 challenges out; nothing here does I/O or looks up passwords.
 *
 * Every decoded client message passes through one bounded stack buffer
 * that is wiped before returning, so credentials live only in struct sasl
 * (which sasl_reset wipes).
 */
#include "mailsnare/sasl.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "mailsnare/base64.h"

/* Values of s->step. 0 means "not started or failed": sasl_step and
 * sasl_verify refuse to work from it. */
enum {
	STEP_IDLE = 0,
	STEP_PLAIN_RESPONSE,
	STEP_LOGIN_USER,
	STEP_LOGIN_PASS,
	STEP_CRAM_RESPONSE,
	STEP_DONE
};

/* The largest decoded message we accept: a PLAIN message with every part
 * at its maximum. Anything longer is malformed by definition. */
#define SASL_MSG_MAX (SASL_USER_MAX * 2 + SASL_PASS_MAX + 2)

#define CRAM_DIGEST_LEN 32

/* Every mechanism, in the order they are advertised. A new mechanism is
 * a row here and its steps below. */
static const struct {
	enum sasl_mech mech;
	const char *name;
	bool plaintext;     /* the password crosses the wire as it is */
} mech_names[] = {
	{ SASL_MECH_PLAIN, "PLAIN", true },
	{ SASL_MECH_LOGIN, "LOGIN", true },
	{ SASL_MECH_CRAM_MD5, "CRAM-MD5", false },
};

#define N_MECHS (sizeof(mech_names) / sizeof(mech_names[0]))

enum sasl_mech sasl_mech_parse(const char *name)
{
	if (name == NULL)
		return SASL_MECH_NONE;
	for (size_t i = 0; i < N_MECHS; i++)
		if (strcasecmp(name, mech_names[i].name) == 0)
			return mech_names[i].mech;
	return SASL_MECH_NONE;
}

const char *sasl_mech_name(enum sasl_mech mech)
{
	for (size_t i = 0; i < N_MECHS; i++)
		if (mech_names[i].mech == mech)
			return mech_names[i].name;
	return "NONE";
}

bool sasl_mech_plaintext(enum sasl_mech mech)
{
	for (size_t i = 0; i < N_MECHS; i++)
		if (mech_names[i].mech == mech)
			return mech_names[i].plaintext;
	return false;
}

void sasl_mech_list(bool plaintext_ok, const char *prefix, char *buf, size_t size)
{
	size_t len = 0;
	int n;

	if (size == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < N_MECHS; i++) {
		if (mech_names[i].plaintext && !plaintext_ok)
			continue;
		n = snprintf(buf + len, size - len, "%s%s%s", len ? " " : "", prefix,
		    mech_names[i].name);
		if (n < 0 || (size_t)n >= size - len) {
			buf[len] = '\0';   /* only whole names */
			return;
		}
		len += (size_t)n;
	}
}

void sasl_reset(struct sasl *s)
{
	/* OPENSSL_cleanse, unlike memset, is not optimised away. */
	OPENSSL_cleanse(s, sizeof(*s));
	s->mech = SASL_MECH_NONE;
	s->step = STEP_IDLE;
}

bool sasl_streq_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	/* Only the lengths may leak. With different lengths we still run the
	 * comparison (of a against itself) so the time depends on la alone. */
	int diff = CRYPTO_memcmp(a, la == lb ? b : a, la);
	return la == lb && diff == 0;
}

void sasl_md5_hex(const unsigned char md[16], char hex[33])
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned int i = 0; i < 16; i++) {
		hex[i * 2] = digits[md[i] >> 4];
		hex[i * 2 + 1] = digits[md[i] & 0x0f];
	}
	hex[32] = '\0';
}

void sasl_hmac_md5_hex(const char *key, const char *msg, char hex[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	hex[0] = '\0';
	if (HMAC(EVP_md5(), key, (int)strlen(key), (const unsigned char *)msg,
	        strlen(msg), md, &mdlen) == NULL || mdlen != 16)
		return; /* "" never equals a 32-digit response */
	sasl_md5_hex(md, hex);
	OPENSSL_cleanse(md, sizeof(md));
}

/* Ends the exchange with an error: nothing half-parsed survives, and
 * later sasl_step/sasl_verify calls fail. The mechanism stays for logs. */
static enum sasl_rc sasl_fail(struct sasl *s, enum sasl_rc rc, char *out, size_t outsize)
{
	enum sasl_mech mech = s->mech;

	sasl_reset(s);
	s->mech = mech;
	if (outsize > 0)
		out[0] = '\0';
	return rc;
}

static enum sasl_rc sasl_done(struct sasl *s, char *out, size_t outsize)
{
	s->step = STEP_DONE;
	if (outsize > 0)
		out[0] = '\0';
	return SASL_DONE;
}

/* Sends `text` base64-encoded as the next challenge. */
static enum sasl_rc sasl_challenge(struct sasl *s, int next_step, const char *text,
    char *out, size_t outsize)
{
	if (base64_encode(text, strlen(text), out, outsize) < 0)
		return sasl_fail(s, SASL_MALFORMED, out, outsize);
	s->step = next_step;
	return SASL_CONTINUE;
}

/* Decodes one client line into msg. "*" cancels; "=" is the empty
 * response, but only where RFC 4954 allows it (the initial response). */
static enum sasl_rc sasl_decode(const char *line, bool initial, unsigned char *msg,
    size_t msgsize, size_t *msglen)
{
	ssize_t n;

	if (strcmp(line, "*") == 0)
		return SASL_CANCELLED;
	if (initial && strcmp(line, "=") == 0) {
		*msglen = 0;
		return SASL_CONTINUE;
	}
	n = base64_decode(line, strlen(line), msg, msgsize);
	if (n < 0)
		return SASL_MALFORMED;
	*msglen = (size_t)n;
	return SASL_CONTINUE;
}

/* Copies a decoded field into a NUL-terminated struct member. Fields may
 * not contain NUL (it would silently cut them) and must fit. */
static bool copy_field(char *dst, size_t dstsize, const unsigned char *src, size_t len,
    bool allow_empty)
{
	if (len >= dstsize || (len == 0 && !allow_empty) || memchr(src, '\0', len) != NULL)
		return false;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return true;
}

/* RFC 4616: [authzid] NUL authcid NUL passwd, exactly two NULs. */
static bool plain_parse(struct sasl *s, const unsigned char *msg, size_t len)
{
	const unsigned char *nul1 = memchr(msg, '\0', len);
	const unsigned char *nul2, *end = msg + len;

	if (nul1 == NULL)
		return false;
	nul2 = memchr(nul1 + 1, '\0', (size_t)(end - (nul1 + 1)));
	if (nul2 == NULL)
		return false;
	/* copy_field rejects a third NUL in the password. */
	return copy_field(s->authzid, sizeof(s->authzid), msg, (size_t)(nul1 - msg), true) &&
	    copy_field(s->user, sizeof(s->user), nul1 + 1, (size_t)(nul2 - nul1 - 1), false) &&
	    copy_field(s->pass, sizeof(s->pass), nul2 + 1, (size_t)(end - nul2 - 1), false);
}

/* RFC 2195: "user SP digest", digest 32 hex digits. The last space
 * separates them so that a user name may itself contain spaces. */
static bool cram_parse(struct sasl *s, const unsigned char *msg, size_t len)
{
	const unsigned char *digest;
	size_t userlen;

	if (len < CRAM_DIGEST_LEN + 2)
		return false;
	digest = msg + len - CRAM_DIGEST_LEN;
	if (digest[-1] != ' ')
		return false;
	userlen = len - CRAM_DIGEST_LEN - 1;
	for (size_t i = 0; i < CRAM_DIGEST_LEN; i++) {
		if (!isxdigit(digest[i]))
			return false;
		s->digest[i] = (char)tolower(digest[i]);
	}
	s->digest[CRAM_DIGEST_LEN] = '\0';
	return copy_field(s->user, sizeof(s->user), msg, userlen, false);
}

/* "<random.unixtime@host>" (RFC 2195 uses a msg-id form). */
static bool cram_make_challenge(struct sasl *s, const char *host)
{
	uint64_t rnd;
	int n;

	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		return false;
	if (host == NULL || *host == '\0')
		host = "localhost";
	/* 20 digits each for random and time; cap the host so it fits. */
	n = snprintf(s->challenge, sizeof(s->challenge), "<%llu.%lld@%.200s>",
	    (unsigned long long)rnd, (long long)time(NULL), host);
	return n > 0 && (size_t)n < sizeof(s->challenge);
}

/* Handles one decoded client message for the current step. */
static enum sasl_rc sasl_consume(struct sasl *s, const unsigned char *msg, size_t len,
    char *out, size_t outsize)
{
	switch (s->step) {
	case STEP_PLAIN_RESPONSE:
		if (!plain_parse(s, msg, len))
			break;
		return sasl_done(s, out, outsize);
	case STEP_LOGIN_USER:
		if (!copy_field(s->user, sizeof(s->user), msg, len, false))
			break;
		return sasl_challenge(s, STEP_LOGIN_PASS, "Password:", out, outsize);
	case STEP_LOGIN_PASS:
		if (!copy_field(s->pass, sizeof(s->pass), msg, len, false))
			break;
		return sasl_done(s, out, outsize);
	case STEP_CRAM_RESPONSE:
		if (!cram_parse(s, msg, len))
			break;
		return sasl_done(s, out, outsize);
	default:
		break;
	}
	return sasl_fail(s, SASL_MALFORMED, out, outsize);
}

/* Decodes a line and hands it to the current step. */
static enum sasl_rc sasl_feed(struct sasl *s, const char *line, bool initial, char *out,
    size_t outsize)
{
	unsigned char msg[SASL_MSG_MAX];
	size_t len = 0;
	enum sasl_rc rc;

	rc = sasl_decode(line, initial, msg, sizeof(msg), &len);
	if (rc != SASL_CONTINUE)
		rc = sasl_fail(s, rc, out, outsize);
	else
		rc = sasl_consume(s, msg, len, out, outsize);
	OPENSSL_cleanse(msg, sizeof(msg));
	return rc;
}

enum sasl_rc sasl_start(struct sasl *s, enum sasl_mech mech, const char *initial,
    const char *host, char *out, size_t outsize)
{
	sasl_reset(s);
	s->mech = mech;
	switch (mech) {
	case SASL_MECH_PLAIN:
		s->step = STEP_PLAIN_RESPONSE;
		if (initial != NULL)
			return sasl_feed(s, initial, true, out, outsize);
		/* RFC 4616: the server's challenge is empty. */
		return sasl_challenge(s, STEP_PLAIN_RESPONSE, "", out, outsize);
	case SASL_MECH_LOGIN:
		s->step = STEP_LOGIN_USER;
		if (initial != NULL)
			return sasl_feed(s, initial, true, out, outsize);
		return sasl_challenge(s, STEP_LOGIN_USER, "Username:", out, outsize);
	case SASL_MECH_CRAM_MD5:
		/* The client cannot answer a challenge it has not seen. */
		if (initial != NULL) {
			if (strcmp(initial, "*") == 0)
				return sasl_fail(s, SASL_CANCELLED, out, outsize);
			return sasl_fail(s, SASL_MALFORMED, out, outsize);
		}
		if (!cram_make_challenge(s, host))
			return sasl_fail(s, SASL_MALFORMED, out, outsize);
		return sasl_challenge(s, STEP_CRAM_RESPONSE, s->challenge, out, outsize);
	default:
		return sasl_fail(s, SASL_MALFORMED, out, outsize);
	}
}

enum sasl_rc sasl_step(struct sasl *s, const char *line, char *out, size_t outsize)
{
	if (line == NULL)
		return sasl_fail(s, SASL_MALFORMED, out, outsize);
	if (s->step == STEP_IDLE || s->step == STEP_DONE) {
		/* A cancel is still a cancel, but the exchange is over. */
		enum sasl_rc rc = strcmp(line, "*") == 0 ? SASL_CANCELLED : SASL_MALFORMED;
		return sasl_fail(s, rc, out, outsize);
	}
	return sasl_feed(s, line, false, out, outsize);
}

bool sasl_verify(const struct sasl *s, const char *password)
{
	char expect[33];
	bool ok;

	if (s->step != STEP_DONE || password == NULL)
		return false;
	switch (s->mech) {
	case SASL_MECH_PLAIN:
	case SASL_MECH_LOGIN:
		return sasl_streq_ct(s->pass, password);
	case SASL_MECH_CRAM_MD5:
		sasl_hmac_md5_hex(password, s->challenge, expect);
		ok = expect[0] != '\0' && sasl_streq_ct(expect, s->digest);
		OPENSSL_cleanse(expect, sizeof(expect));
		return ok;
	default:
		return false;
	}
}
