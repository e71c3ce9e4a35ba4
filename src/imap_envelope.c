/*
 * IMAP ENVELOPE and IMAP string quoting (RFC 3501 §4.3, §7.4.2).
 */
#include "mailsnare/imap_envelope.h"

#include <event2/buffer.h>
#include <string.h>

#include "mailsnare/mime.h"

#define ENVELOPE_ADDRESSES_MAX 1000

static bool needs_literal(const char *s, size_t len)
{
	if (len > IMAP_QUOTED_MAX)
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
			return true;
	}
	return false;
}

int imap_envelope_write_nstring(struct evbuffer *out, const char *s, size_t len)
{
	size_t i = 0;
	int rc = 0;

	if (s == NULL)
		return evbuffer_add(out, "NIL", 3);
	if (needs_literal(s, len)) {
		if (evbuffer_add_printf(out, "{%zu}\r\n", len) < 0)
			return -1;
		return evbuffer_add(out, s, len);
	}
	rc |= evbuffer_add(out, "\"", 1);
	while (i < len) {
		size_t run = 0;
		while (i + run < len && s[i + run] != '"' && s[i + run] != '\\')
			run++;
		rc |= evbuffer_add(out, s + i, run);
		i += run;
		if (i < len) {
			char esc[2] = { '\\', s[i++] };
			rc |= evbuffer_add(out, esc, 2);
		}
	}
	rc |= evbuffer_add(out, "\"", 1);
	return rc ? -1 : 0;
}

int imap_envelope_write_cstring(struct evbuffer *out, const char *s)
{
	return imap_envelope_write_nstring(out, s, s != NULL ? strlen(s) : 0);
}

static int write_address(struct evbuffer *out, const struct mime_address *a)
{
	int rc = evbuffer_add(out, "(", 1);

	rc |= imap_envelope_write_cstring(out, a->name);
	rc |= evbuffer_add(out, " ", 1);
	rc |= imap_envelope_write_cstring(out, a->adl);
	rc |= evbuffer_add(out, " ", 1);
	rc |= imap_envelope_write_cstring(out, a->mailbox);
	rc |= evbuffer_add(out, " ", 1);
	rc |= imap_envelope_write_cstring(out, a->host);
	rc |= evbuffer_add(out, ")", 1);
	return rc ? -1 : 0;
}

/* The list for value, or for fallback if value has no address; NIL if
 * neither has one. */
static int write_addresses_or(const char *value, const char *fallback, struct evbuffer *out)
{
	struct mime_address *a = NULL;
	size_t n = 0;
	int rc = 0;

	if (value != NULL)
		n = mime_address_parse(value, strlen(value), ENVELOPE_ADDRESSES_MAX, &a);
	if (n == 0 && fallback != NULL) {
		mime_addresses_free(a, n);
		n = mime_address_parse(fallback, strlen(fallback), ENVELOPE_ADDRESSES_MAX, &a);
	}
	if (n == 0) {
		mime_addresses_free(a, n);
		return evbuffer_add(out, "NIL", 3);
	}
	rc |= evbuffer_add(out, "(", 1);
	for (size_t i = 0; i < n; i++)
		rc |= write_address(out, &a[i]);
	rc |= evbuffer_add(out, ")", 1);
	mime_addresses_free(a, n);
	return rc ? -1 : 0;
}

int imap_envelope_write_addresses(const char *value, struct evbuffer *out)
{
	return write_addresses_or(value, NULL, out);
}

int imap_envelope_write(const struct mime_part *msg, struct evbuffer *out)
{
	const char *from = mime_part_env(msg, MIME_ENV_FROM);
	int rc = evbuffer_add(out, "(", 1);

	rc |= imap_envelope_write_cstring(out, mime_part_env(msg, MIME_ENV_DATE));
	rc |= evbuffer_add(out, " ", 1);
	rc |= imap_envelope_write_cstring(out, mime_part_env(msg, MIME_ENV_SUBJECT));
	rc |= evbuffer_add(out, " ", 1);
	rc |= write_addresses_or(from, NULL, out);
	rc |= evbuffer_add(out, " ", 1);
	rc |= write_addresses_or(mime_part_env(msg, MIME_ENV_SENDER), from, out);
	rc |= evbuffer_add(out, " ", 1);
	rc |= write_addresses_or(mime_part_env(msg, MIME_ENV_REPLY_TO), from, out);
	for (int f = MIME_ENV_TO; f <= MIME_ENV_BCC; f++) {
		rc |= evbuffer_add(out, " ", 1);
		rc |= write_addresses_or(mime_part_env(msg, (enum mime_env_field)f), NULL, out);
	}
	rc |= evbuffer_add(out, " ", 1);
	rc |= imap_envelope_write_cstring(out, mime_part_env(msg, MIME_ENV_IN_REPLY_TO));
	rc |= evbuffer_add(out, " ", 1);
	rc |= imap_envelope_write_cstring(out, mime_part_env(msg, MIME_ENV_MESSAGE_ID));
	rc |= evbuffer_add(out, ")", 1);
	return rc ? -1 : 0;
}
