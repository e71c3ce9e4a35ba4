/* The self-signed certificate (files, modes, extensions, idempotence,
 * concurrent first starts) and server contexts, checked with a real
 * in-memory TLS handshake. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mailsnare/tls.h"

static char tmpdir[64];
static char cert_path[PATH_MAX], key_path[PATH_MAX];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/mailsnare-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	/* A directory that does not exist yet: it must be created 0700. */
	snprintf(cert_path, sizeof(cert_path), "%s/sub/dir/cert.pem", tmpdir);
	snprintf(key_path, sizeof(key_path), "%s/sub/dir/key.pem", tmpdir);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)system(cmd);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s missing", path);
	char *buf = malloc(65536);
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

static X509 *load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert_not_null(x);
	return x;
}

static void generate(void)
{
	char err[512] = "";
	cr_assert_eq(tls_ensure_selfsigned(cert_path, key_path, err, sizeof(err)), 0, "%s", err);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

Test(tls, generates_files_0600_in_new_0700_dir)
{
	struct stat st;
	char dir[PATH_MAX];

	generate();
	cr_assert_eq(stat(cert_path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(stat(key_path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	snprintf(dir, sizeof(dir), "%s/sub/dir", tmpdir);
	cr_assert_eq(stat(dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);

	/* No temporary files left behind. */
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 2", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(tls, certificate_contents)
{
	generate();
	X509 *x = load_cert(cert_path);

	/* Subject and issuer CN=localhost, self-signed. */
	char cn[64];
	cr_assert_gt(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	                 sizeof(cn)),
	    0);
	cr_assert_str_eq(cn, "localhost");
	cr_assert_eq(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	cr_assert_eq(X509_get_version(x), 2);
	cr_assert_eq(X509_get_signature_nid(x), NID_sha256WithRSAEncryption);

	/* RSA-2048, and the signature verifies with the cert's own key. */
	EVP_PKEY *pub = X509_get0_pubkey(x);
	cr_assert_eq(EVP_PKEY_get_base_id(pub), EVP_PKEY_RSA);
	cr_assert_eq(EVP_PKEY_get_bits(pub), 2048);
	cr_assert_eq(X509_verify(x, pub), 1);

	/* Valid for ten years from now. */
	int days = 0, secs = 0;
	cr_assert_eq(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
	cr_assert_eq(days, 3650);
	cr_assert_leq(X509_cmp_current_time(X509_get0_notBefore(x)), 0);

	/* The three subjectAltNames. */
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	cr_assert_not_null(sans);
	bool dns = false, v4 = false, v6 = false;
	static const unsigned char ip4[4] = { 127, 0, 0, 1 };
	static const unsigned char ip6[16] = { [15] = 1 };
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		if (gn->type == GEN_DNS) {
			dns = dns || strcmp((const char *)ASN1_STRING_get0_data(gn->d.dNSName),
			                 "localhost") == 0;
		} else if (gn->type == GEN_IPADD) {
			const unsigned char *ip = ASN1_STRING_get0_data(gn->d.iPAddress);
			int len = ASN1_STRING_length(gn->d.iPAddress);
			v4 = v4 || (len == 4 && memcmp(ip, ip4, 4) == 0);
			v6 = v6 || (len == 16 && memcmp(ip, ip6, 16) == 0);
		}
	}
	cr_assert_eq(sk_GENERAL_NAME_num(sans), 3);
	cr_assert(dns && v4 && v6);
	GENERAL_NAMES_free(sans);

	/* Hostname checks as a client does them. */
	cr_assert_eq(X509_check_host(x, "localhost", 0, 0, NULL), 1);
	cr_assert_eq(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
	cr_assert_eq(X509_check_ip_asc(x, "::1", 0), 1);
	cr_assert_neq(X509_check_host(x, "example.com", 0, 0, NULL), 1);

	/* A server certificate, not a CA. */
	cr_assert_eq(X509_check_ca(x), 0);
	cr_assert_eq(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
	cr_assert(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
	cr_assert(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
	cr_assert(X509_get_key_usage(x) & KU_KEY_ENCIPHERMENT);
	X509_free(x);
}

Test(tls, serials_are_random)
{
	char c2[PATH_MAX], k2[PATH_MAX], err[512];

	generate();
	snprintf(c2, sizeof(c2), "%s/c2.pem", tmpdir);
	snprintf(k2, sizeof(k2), "%s/k2.pem", tmpdir);
	cr_assert_eq(tls_ensure_selfsigned(c2, k2, err, sizeof(err)), 0, "%s", err);
	X509 *a = load_cert(cert_path), *b = load_cert(c2);
	cr_assert_neq(ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)), 0);
	X509_free(a);
	X509_free(b);
}

Test(tls, second_call_keeps_files)
{
	size_t cl1, kl1, cl2, kl2;

	generate();
	char *c1 = slurp(cert_path, &cl1), *k1 = slurp(key_path, &kl1);
	generate();
	char *c2 = slurp(cert_path, &cl2), *k2 = slurp(key_path, &kl2);
	cr_assert_eq(cl1, cl2);
	cr_assert_eq(kl1, kl2);
	cr_assert_eq(memcmp(c1, c2, cl1), 0);
	cr_assert_eq(memcmp(k1, k2, kl1), 0);
	free(c1), free(k1), free(c2), free(k2);
}

Test(tls, missing_key_regenerates_pair)
{
	char err[512];
	size_t l1, l2;

	generate();
	char *c1 = slurp(cert_path, &l1);
	cr_assert_eq(unlink(key_path), 0);
	generate();
	char *c2 = slurp(cert_path, &l2);
	cr_assert(l1 != l2 || memcmp(c1, c2, l1) != 0, "certificate not regenerated");
	SSL_CTX *ctx = tls_server_ctx_new(cert_path, key_path, err, sizeof(err));
	cr_assert_not_null(ctx, "%s", err);
	SSL_CTX_free(ctx);
	free(c1), free(c2);
}

Test(tls, concurrent_first_start_yields_one_matching_pair)
{
	enum { N = 4 };
	pid_t pids[N];

	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		cr_assert_geq(pids[i], 0);
		if (pids[i] == 0) {
			char err[512];
			_exit(tls_ensure_selfsigned(cert_path, key_path, err, sizeof(err)) == 0 ? 0 : 1);
		}
	}
	for (int i = 0; i < N; i++) {
		int status;
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	char err[512];
	SSL_CTX *ctx = tls_server_ctx_new(cert_path, key_path, err, sizeof(err));
	cr_assert_not_null(ctx, "key and certificate do not match: %s", err);
	SSL_CTX_free(ctx);
}

/* Runs a handshake between two SSL objects over a BIO pair. */
static bool handshake(SSL *client, SSL *server)
{
	BIO *cb, *sb;
	cr_assert_eq(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(client, cb, cb);
	SSL_set_bio(server, sb, sb);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	bool cdone = false, sdone = false;
	for (int i = 0; i < 100 && !(cdone && sdone); i++) {
		int rc;
		if (!cdone) {
			rc = SSL_do_handshake(client);
			if (rc == 1)
				cdone = true;
			else if (SSL_get_error(client, rc) != SSL_ERROR_WANT_READ)
				return false;
		}
		if (!sdone) {
			rc = SSL_do_handshake(server);
			if (rc == 1)
				sdone = true;
			else if (SSL_get_error(server, rc) != SSL_ERROR_WANT_READ)
				return false;
		}
	}
	return cdone && sdone;
}

Test(tls, server_ctx_handshakes_and_verifies_as_localhost)
{
	char err[512];

	generate();
	SSL_CTX *sctx = tls_server_ctx_new(cert_path, key_path, err, sizeof(err));
	cr_assert_not_null(sctx, "%s", err);
	cr_assert_eq(SSL_CTX_get_min_proto_version(sctx), TLS1_2_VERSION);
	cr_assert(SSL_CTX_get_options(sctx) & SSL_OP_NO_COMPRESSION);
	cr_assert(SSL_CTX_get_options(sctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	cr_assert_eq(SSL_CTX_get_session_cache_mode(sctx), SSL_SESS_CACHE_SERVER);

	/* A client that trusts exactly this certificate and checks the name. */
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	cr_assert_eq(SSL_CTX_load_verify_locations(cctx, cert_path, NULL), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	cr_assert_eq(SSL_set1_host(c, "localhost"), 1);
	cr_assert(handshake(c, s), "handshake failed");
	cr_assert_eq(SSL_get_verify_result(c), X509_V_OK);
	cr_assert_geq(SSL_version(c), TLS1_2_VERSION);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

Test(tls, tls11_client_is_refused)
{
	char err[512];

	generate();
	SSL_CTX *sctx = tls_server_ctx_new(cert_path, key_path, err, sizeof(err));
	cr_assert_not_null(sctx, "%s", err);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_security_level(cctx, 0);
	SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	cr_assert_not(handshake(c, s));
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	ERR_clear_error();
}

Test(tls, bad_paths_yield_null_and_message)
{
	char err[512] = "";
	char missing[PATH_MAX];

	snprintf(missing, sizeof(missing), "%s/nope.pem", tmpdir);
	cr_assert_null(tls_server_ctx_new(missing, missing, err, sizeof(err)));
	cr_assert_not_null(strstr(err, missing), "message \"%s\" lacks the path", err);
	cr_assert_gt(strlen(err), strlen(missing) + 10, "no OpenSSL reason in \"%s\"", err);

	/* A key that is not the certificate's. */
	char k2[PATH_MAX], c2[PATH_MAX];
	generate();
	snprintf(c2, sizeof(c2), "%s/c2.pem", tmpdir);
	snprintf(k2, sizeof(k2), "%s/k2.pem", tmpdir);
	cr_assert_eq(tls_ensure_selfsigned(c2, k2, err, sizeof(err)), 0, "%s", err);
	err[0] = '\0';
	cr_assert_null(tls_server_ctx_new(cert_path, k2, err, sizeof(err)));
	cr_assert_neq(err[0], '\0');

	/* A certificate path that is not PEM. */
	err[0] = '\0';
	cr_assert_null(tls_server_ctx_new(key_path, key_path, err, sizeof(err)));
	cr_assert_neq(err[0], '\0');
}

Test(tls, unwritable_location_reports_error)
{
	char err[512] = "";
	char file[128], cert[PATH_MAX];

	/* The "directory" is a regular file. */
	snprintf(file, sizeof(file), "%s/plainfile", tmpdir);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fclose(f);
	snprintf(cert, sizeof(cert), "%s/cert.pem", file);
	cr_assert_eq(tls_ensure_selfsigned(cert, cert, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "plainfile"), "%s", err);
}
