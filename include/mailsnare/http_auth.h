/*
 * HTTP Basic credentials (RFC 7617): the pure part, parsing the
 * Authorization header. The check itself is src/auth.c's
 * auth_check_password, shared with every mail protocol.
 */
#ifndef MAILSNARE_HTTP_AUTH_H
#define MAILSNARE_HTTP_AUTH_H

#include <stddef.h>

#define HTTP_AUTH_USER_MAX 128
#define HTTP_AUTH_PASS_MAX 256

/* Splits "Basic BASE64(user:password)" (scheme case-insensitive) into
 * user and password, NUL-terminated. 0, or -1 if the header is not Basic,
 * the base64 is malformed, there is no ':', either part does not fit, or
 * the credentials hold a NUL or control character. */
int http_auth_parse_basic(const char *header, char *user, size_t userlen, char *pass,
    size_t passlen);

/* Splits "user:password" (http-admin) the same way; -1 if malformed. */
int http_auth_split(const char *text, size_t len, char *user, size_t userlen, char *pass,
    size_t passlen);

#endif
