/*
 * TLS server contexts and the self-signed certificate made on first start.
 *
 * Generation is safe against two servers starting at once on the same
 * files: the check-and-generate runs under flock() on the certificate's
 * directory, and each file appears by rename() of a complete, fsynced
 * temporary file, so no reader ever sees half a PEM file or a key that
 * belongs to another certificate.
 */
#include "mailsnare/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS_RSA_BITS 2048
#define TLS_VALID_DAYS 3650
/* RFC 5280 allows 20 octets of serial; 159 bits stays positive. */
#define TLS_SERIAL_BITS 159

/* Appends the reasons in OpenSSL's error queue, oldest (the root cause,
 * e.g. "No such file or directory") first, and empties the queue so the
 * next caller starts clean. */
static void append_openssl_errors(char *err, size_t errlen, size_t used)
{
	const char *last = NULL;
	unsigned long e;

	while ((e = ERR_get_error()) != 0) {
		const char *reason = ERR_reason_error_string(e);
		char code[32];
		int n;

#ifdef ERR_SYSTEM_ERROR
		/* OpenSSL 3 packs errno into system errors, without a string. */
		if (ERR_SYSTEM_ERROR(e))
			reason = strerror(ERR_GET_REASON(e));
#endif
		if (reason == NULL) {
			snprintf(code, sizeof(code), "error %08lx", e);
			reason = code;
		} else if (last != NULL && strcmp(last, reason) == 0) {
			continue;
		}
		if (used >= errlen)
			continue; /* keep draining the queue */
		n = snprintf(err + used, errlen - used, ": %s", reason);
		used = n < 0 ? errlen : used + (size_t)n;
		last = reason == code ? NULL : reason;
	}
}

/* Formats a message into err, followed by OpenSSL's reasons (if any). */
static void tls_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tls_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0) {
		ERR_clear_error();
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	append_openssl_errors(err, errlen, n < 0 ? errlen : (size_t)n);
}

/* Copies the directory part of path into dir ("." if there is none). */
static int dir_of(const char *path, char *dir, size_t dirsize)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL) {
		n = 1;
		path = ".";
	} else {
		n = slash == path ? 1 : (size_t)(slash - path); /* "/x" -> "/" */
	}
	if (n >= dirsize) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

/* mkdir -p with mode 0700 for each directory it creates: the directory
 * holds a private key. */
static int mkdir_parents(const char *dir)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = saved;
		if (saved == '\0')
			break;
	}
	return 0;
}

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static X509_NAME *localhost_name(void)
{
	X509_NAME *name = X509_NAME_new();

	if (name != NULL &&
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	        (const unsigned char *)"localhost", -1, -1, 0) != 1) {
		X509_NAME_free(name);
		return NULL;
	}
	return name;
}

static int set_random_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int ok = 0;

	if (bn != NULL && BN_rand(bn, TLS_SERIAL_BITS, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1)
		ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* The extensions a browser or mail client checks on a server cert. */
static int add_server_exts(X509 *x)
{
	X509V3_CTX ctx;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
	    add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") < 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0)
		return -1;
	return 0;
}

/* A self-signed X509v3 certificate for localhost over pkey. */
static X509 *make_cert(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_NAME *name = localhost_name();

	if (x == NULL || name == NULL ||
	    X509_set_version(x, 2) != 1 || /* 2 means v3 */
	    set_random_serial(x) < 0 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), TLS_VALID_DAYS, 0, NULL) == NULL ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    X509_set_pubkey(x, pkey) != 1 ||
	    add_server_exts(x) < 0 ||
	    X509_sign(x, pkey, EVP_sha256()) <= 0) {
		X509_free(x);
		x = NULL;
	}
	X509_NAME_free(name);
	return x;
}

/* What a PEM writer gets: one of the two objects. */
struct pem_item {
	EVP_PKEY *key;
	X509 *cert;
};

static int pem_write(FILE *f, const struct pem_item *item)
{
	if (item->key != NULL)
		return PEM_write_PrivateKey(f, item->key, NULL, NULL, 0, NULL, NULL) == 1 ? 0 : -1;
	return PEM_write_X509(f, item->cert) == 1 ? 0 : -1;
}

/* fsyncs a directory so a rename in it survives a crash. */
static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/*
 * Writes item to path atomically: a temporary file in the same directory
 * (mkstemp creates it 0600), flushed and fsynced, then renamed over path.
 */
static int write_pem_atomic(const char *path, const struct pem_item *item, char *err,
    size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	FILE *f;
	int fd;

	if (dir_of(path, dir, sizeof(dir)) < 0 ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
		tls_error(err, errlen, "%s: path too long", path);
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		tls_error(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
		return -1;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(tmp);
		tls_error(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) < 0 || pem_write(f, item) < 0 || fflush(f) != 0 || fsync(fd) < 0) {
		int e = errno;
		fclose(f);
		unlink(tmp);
		tls_error(err, errlen, "%s: cannot write: %s", path, strerror(e));
		return -1;
	}
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		tls_error(err, errlen, "%s: cannot write: %s", path, strerror(e));
		return -1;
	}
	fsync_dir(dir);
	return 0;
}

/* Generates the key and certificate and writes both files. The key goes
 * first: a crash in between leaves only a key, and the next start (which
 * needs both files) regenerates the pair. */
static int generate_pair(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	EVP_PKEY *pkey = EVP_RSA_gen(TLS_RSA_BITS);
	struct pem_item key_item = { .key = pkey, .cert = NULL };
	struct pem_item cert_item = { .key = NULL, .cert = NULL };
	X509 *cert = NULL;
	int rc = -1;

	if (pkey == NULL) {
		tls_error(err, errlen, "cannot generate an RSA key");
		return -1;
	}
	cert = make_cert(pkey);
	if (cert == NULL) {
		tls_error(err, errlen, "cannot make a self-signed certificate");
		goto out;
	}
	cert_item.cert = cert;
	if (write_pem_atomic(key_path, &key_item, err, errlen) < 0 ||
	    write_pem_atomic(cert_path, &cert_item, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(pkey);
	return rc;
}

/* Creates the directories of both files and opens the certificate's
 * directory for locking. Returns the directory fd or -1. */
static int prepare_dirs(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	const char *paths[2] = { key_path, cert_path };
	int fd;

	for (int i = 0; i < 2; i++) {
		if (dir_of(paths[i], dir, sizeof(dir)) < 0 || mkdir_parents(dir) < 0) {
			tls_error(err, errlen, "%s: cannot create directory: %s", paths[i],
			    strerror(errno));
			return -1;
		}
	}
	/* dir now holds the certificate's directory. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		tls_error(err, errlen, "%s: %s", dir, strerror(errno));
	return fd;
}

int tls_ensure_selfsigned(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	int dirfd, rc = 0;

	if (cert_path == NULL || key_path == NULL || *cert_path == '\0' || *key_path == '\0') {
		tls_error(err, errlen, "no certificate or key path");
		return -1;
	}
	if (file_exists(cert_path) && file_exists(key_path))
		return 0;
	dirfd = prepare_dirs(cert_path, key_path, err, errlen);
	if (dirfd < 0)
		return -1;
	/* Serialise with another process doing the same; then check again,
	 * since it may have generated the pair while we waited. */
	while (flock(dirfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			tls_error(err, errlen, "%s: cannot lock directory: %s", cert_path,
			    strerror(errno));
			close(dirfd);
			return -1;
		}
	}
	if (!(file_exists(cert_path) && file_exists(key_path)))
		rc = generate_pair(cert_path, key_path, err, errlen);
	flock(dirfd, LOCK_UN);
	close(dirfd);
	return rc;
}

SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, char *err,
    size_t errlen)
{
	SSL_CTX *ctx;

	if (cert_path == NULL || key_path == NULL) {
		tls_error(err, errlen, "no certificate or key path");
		return NULL;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		tls_error(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		tls_error(err, errlen, "cannot set TLS 1.2 as minimum");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		tls_error(err, errlen, "%s: cannot load certificate", cert_path);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errlen, "%s: cannot load private key", key_path);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "%s does not match %s", key_path, cert_path);
		goto fail;
	}
	/* No compression (CRIME); our cipher order, not the client's; no
	 * client-initiated renegotiation (a cheap way to burn server CPU). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
