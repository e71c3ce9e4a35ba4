/*
 * SASL server mechanisms PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195),
 * shared by SMTP, POP3 and IMAP. Pure: the protocol session moves the
 * base64 lines between the client and these functions; checking the
 * password is done by sasl_verify() against the stored password.
 */
#ifndef MAILSNARE_SASL_H
#define MAILSNARE_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_USER_MAX 256
#define SASL_PASS_MAX 256
#define SASL_CHALLENGE_MAX 256
/* Room for a base64 challenge line sent to the client. */
#define SASL_OUT_MAX 512

enum sasl_mech { SASL_MECH_NONE = 0, SASL_MECH_PLAIN, SASL_MECH_LOGIN, SASL_MECH_CRAM_MD5 };

enum sasl_rc {
	SASL_CONTINUE,  /* send `out` (base64, may be "") as a challenge, wait for a line */
	SASL_DONE,      /* credentials complete: call sasl_verify() */
	SASL_MALFORMED, /* bad base64 or bad message format (SMTP 501 5.5.2) */
	SASL_CANCELLED  /* client sent "*" (SMTP 501 5.0.0) */
};

struct sasl {
	enum sasl_mech mech;
	int step;
	char user[SASL_USER_MAX];      /* authentication identity (NUL-terminated) */
	char authzid[SASL_USER_MAX];   /* PLAIN authorization identity, "" if none */
	char pass[SASL_PASS_MAX];      /* PLAIN/LOGIN password */
	char challenge[SASL_CHALLENGE_MAX]; /* CRAM-MD5 challenge, "<rand.time@host>" */
	char digest[33];               /* CRAM-MD5 response, lowercase hex */
};

/* "PLAIN", "LOGIN", "CRAM-MD5" (case-insensitive); SASL_MECH_NONE if unknown. */
enum sasl_mech sasl_mech_parse(const char *name);
const char *sasl_mech_name(enum sasl_mech mech);
/* true if the mechanism sends the password as it is (needs TLS unless
 * allow-plaintext-auth). */
bool sasl_mech_plaintext(enum sasl_mech mech);
/* The mechanisms, each as prefix + name, separated by one space, in the
 * order they are advertised; the plaintext ones only if plaintext_ok. */
void sasl_mech_list(bool plaintext_ok, const char *prefix, char *buf, size_t size);

/*
 * Starts an exchange. `initial` is the client's initial response as sent
 * (base64, or "=" for an empty one), or NULL when none was sent. `host`
 * goes into the CRAM-MD5 challenge. On SASL_CONTINUE, `out` holds the
 * base64 text of the next challenge (size at least SASL_OUT_MAX).
 * CRAM-MD5 with an initial response is malformed.
 */
enum sasl_rc sasl_start(struct sasl *s, enum sasl_mech mech, const char *initial,
    const char *host, char *out, size_t outsize);

/* Feeds one client line (without CRLF). Same results as sasl_start. */
enum sasl_rc sasl_step(struct sasl *s, const char *line, char *out, size_t outsize);

/* After SASL_DONE: true if the client proved knowledge of `password`.
 * Constant time in the password contents. */
bool sasl_verify(const struct sasl *s, const char *password);

/* Wipes credentials. */
void sasl_reset(struct sasl *s);

/* A 16-byte MD5 digest as 32 lowercase hex chars + NUL (CRAM-MD5, APOP). */
void sasl_md5_hex(const unsigned char md[16], char hex[33]);
/* HMAC-MD5(key, msg) as 32 lowercase hex chars + NUL into hex[33]. */
void sasl_hmac_md5_hex(const char *key, const char *msg, char hex[33]);

/* Constant-time comparison of two NUL-terminated strings. */
bool sasl_streq_ct(const char *a, const char *b);

#endif
