/* APOP digests (RFC 1939 §7). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "mailsnare/apop.h"
#include "mailsnare/sasl.h"

void apop_digest_hex(const char *timestamp, const char *password,
    char hex[APOP_DIGEST_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	hex[0] = '\0';
	if (ctx == NULL)
		return;
	/* Two updates: the concatenation never needs a buffer of its own. */
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
	    EVP_DigestUpdate(ctx, password, strlen(password)) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return;  /* "" never equals a 32-digit response */
	sasl_md5_hex(md, hex);
	OPENSSL_cleanse(md, sizeof(md));
}

bool apop_verify(const char *timestamp, const char *password, const char *digest)
{
	char expect[APOP_DIGEST_HEX], got[APOP_DIGEST_HEX];
	size_t i, n = strlen(digest);
	bool ok;

	if (n != 32)
		return false;
	/* RFC 1939 asks for lowercase; clients that send uppercase hex are
	 * not wrong about the password. Folding is branch-free per byte. */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)digest[i];
		got[i] = (char)(c | (unsigned char)(((unsigned)(c - 'A') < 6u) << 5));
	}
	got[n] = '\0';
	apop_digest_hex(timestamp, password, expect);
	ok = expect[0] != '\0' && sasl_streq_ct(expect, got);
	OPENSSL_cleanse(expect, sizeof(expect));
	return ok;
}
