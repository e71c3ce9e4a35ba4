/* TLS server contexts (OpenSSL) and the self-signed certificate made on
 * first start. */
#ifndef MAILSNARE_TLS_H
#define MAILSNARE_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/*
 * Creates cert_path and key_path (PEM, mode 0600) with a new RSA-2048 key
 * and a self-signed certificate for CN=localhost with subjectAltName
 * DNS:localhost, IP:127.0.0.1, IP:::1, valid for 10 years, unless both
 * files already exist. Returns 0, or -1 with a message in err.
 */
int tls_ensure_selfsigned(const char *cert_path, const char *key_path,
    char *err, size_t errlen);

/* A server context with TLS 1.2 minimum and the given PEM certificate
 * chain and key. NULL with a message in err on failure. */
SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path,
    char *err, size_t errlen);

#endif
