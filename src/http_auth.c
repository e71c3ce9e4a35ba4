/*
 * HTTP Basic credentials: parsing only (pure); src/http.c checks them
 * through auth_check_password and applies the failure delay.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/base64.h"
#include "mailsnare/http_auth.h"

static bool text_clean(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int http_auth_split(const char *text, size_t len, char *user, size_t userlen, char *pass,
    size_t passlen)
{
	const char *colon = memchr(text, ':', len);
	size_t ulen, plen;

	if (colon == NULL || !text_clean(text, len))
		return -1;
	ulen = (size_t)(colon - text);
	plen = len - ulen - 1;
	if (ulen == 0 || ulen >= userlen || plen >= passlen)
		return -1;
	memcpy(user, text, ulen);
	user[ulen] = '\0';
	memcpy(pass, colon + 1, plen);
	pass[plen] = '\0';
	return 0;
}

int http_auth_parse_basic(const char *header, char *user, size_t userlen, char *pass,
    size_t passlen)
{
	char decoded[HTTP_AUTH_USER_MAX + HTTP_AUTH_PASS_MAX + 2];
	const char *b64;
	size_t len;
	ssize_t n;

	if (strncasecmp(header, "Basic ", 6) != 0)
		return -1;
	b64 = header + 6;
	while (*b64 == ' ')
		b64++;
	len = strlen(b64);
	while (len > 0 && b64[len - 1] == ' ')
		len--;
	if (len == 0 || len > BASE64_ENCODED_SIZE(sizeof(decoded)))
		return -1;
	n = base64_decode(b64, len, decoded, sizeof(decoded));
	if (n < 0)
		return -1;
	return http_auth_split(decoded, (size_t)n, user, userlen, pass, passlen);
}
