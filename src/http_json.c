/*
 * Messages as Mailpit's JSON: the summary of a listing and the whole
 * message (field names and casing of Mailpit's storage.MessageSummary
 * and storage.Message), plus ours: Inbox, MailFrom, RcptTo.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "mailsnare/imap_sort.h"
#include "mailsnare/list_unsub.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_decode.h"
#include "mailsnare/mime_header.h"
#include "http_internal.h"

#define SNIPPET_CHARS 250
/* Bytes of a body read for its snippet. */
#define SNIPPET_READ (16 * 1024)
/* Text and HTML bodies shown at most this long (bytes stored). */
#define BODY_READ_MAX (32u * 1024 * 1024)
#define ADDRESSES_MAX 1000
/* Header bytes searched for List-Unsubscribe at most. */
#define LIST_UNSUB_HDR_MAX (256 * 1024)

char *http_header_text(const char *value)
{
	char *unfolded, *dec;
	size_t len;

	if (value == NULL)
		return strdup("");
	if ((unfolded = mime_header_unfold(value, strlen(value), MIME_MAX_VALUE)) == NULL)
		return strdup("");
	dec = mime_header_decode(unfolded, strlen(unfolded), &len);
	free(unfolded);
	return dec ? dec : strdup("");
}

static json_t *address_object(const struct mime_address *a)
{
	char addr[1024], *name;
	size_t len;
	json_t *o;

	snprintf(addr, sizeof(addr), "%s%s%s", a->mailbox, a->host && a->host[0] ? "@" : "",
	    a->host ? a->host : "");
	name = a->name ? mime_header_decode(a->name, strlen(a->name), &len) : strdup("");
	o = json_pack("{s:s, s:s}", "Name", name ? name : "", "Address", addr);
	free(name);
	return o;
}

json_t *http_json_address_list(const char *value)
{
	struct mime_address *a = NULL;
	json_t *arr = json_array();
	size_t n, i;

	if (value == NULL || arr == NULL)
		return arr;
	n = mime_address_parse(value, strlen(value), ADDRESSES_MAX, &a);
	for (i = 0; i < n; i++)
		if (a[i].mailbox != NULL)   /* group markers have none */
			json_array_append_new(arr, address_object(&a[i]));
	mime_addresses_free(a, n);
	return arr;
}

json_t *http_json_address(const char *value)
{
	json_t *arr = http_json_address_list(value), *first;

	if (arr == NULL || json_array_size(arr) == 0) {
		json_decref(arr);
		return json_null();
	}
	first = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return first;
}

/* IMAP keywords are the tags; system flags are not. */
json_t *http_json_tags(const char *keywords)
{
	json_t *arr = json_array();
	const char *p = keywords, *e;

	while (arr != NULL && p != NULL && *p != '\0') {
		while (*p == ' ')
			p++;
		e = strchrnul(p, ' ');
		if (e > p && *p != '\\')
			json_array_append_new(arr, json_stringn(p, (size_t)(e - p)));
		p = e;
	}
	return arr;
}

json_t *http_json_time(int64_t t)
{
	time_t tt = (time_t)t;
	char buf[40];
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

/* "<id@host>" -> "id@host", as Mailpit shows the Message-ID. */
static json_t *message_id(const struct mime_part *root)
{
	char *v = http_header_text(mime_part_env(root, MIME_ENV_MESSAGE_ID)), *p = v, *e;
	json_t *j;

	while (*p == ' ' || *p == '<')
		p++;
	e = p + strlen(p);
	while (e > p && (e[-1] == ' ' || e[-1] == '>'))
		e--;
	j = json_stringn(p, (size_t)(e - p));
	free(v);
	return j;
}

static json_t *subject(const struct mime_part *root)
{
	char *v = http_header_text(mime_part_env(root, MIME_ENV_SUBJECT));
	json_t *j = json_string(v);

	if (j == NULL)   /* not UTF-8 after all */
		j = json_string("");
	free(v);
	return j;
}

/* The envelope recipients, stored joined with ", ". */
static json_t *rcpt_list(const char *rcpts)
{
	json_t *arr = json_array();
	const char *p = rcpts, *e;

	while (arr != NULL && p != NULL && *p != '\0') {
		e = strstr(p, ", ");
		if (e == NULL)
			e = p + strlen(p);
		if (e > p)
			json_array_append_new(arr, json_stringn(p, (size_t)(e - p)));
		p = *e ? e + 2 : e;
	}
	return arr;
}

static json_t *utf8_string(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);

	return j ? j : json_string("");
}

/* Drops tags (and what <style>/<script>/<head> hold), keeps the text. */
static size_t strip_html(const char *in, size_t len, char *out)
{
	static const char *const skip[] = { "style", "script", "head" };
	size_t i = 0, o = 0, k;

	while (i < len) {
		if (in[i] != '<') {
			out[o++] = in[i++];
			continue;
		}
		for (k = 0; k < sizeof(skip) / sizeof(skip[0]); k++) {
			size_t n = strlen(skip[k]);
			if (i + 1 + n <= len && strncasecmp(in + i + 1, skip[k], n) == 0) {
				char close[16];
				const char *end;
				snprintf(close, sizeof(close), "</%s", skip[k]);
				end = strcasestr(in + i, close);
				if (end != NULL && (size_t)(end - in) < len)
					i = (size_t)(end - in);
				break;
			}
		}
		while (i < len && in[i] != '>')
			i++;
		i++;
		out[o++] = ' ';
	}
	return o;
}

/* Mailpit's snippet: the HTML's text, else the text, white space
 * collapsed, at most 250 characters and then "...". */
static json_t *snippet(struct store *st, const struct http_msg *m)
{
	const struct mime_part *p = m->html ? m->html : m->text;
	char *text, *buf, *out;
	size_t len, n, o = 0, chars = 0, i;
	bool space = true;
	json_t *j;

	if (p == NULL || (text = http_msg_text(st, m, p, SNIPPET_READ, &len)) == NULL)
		return json_string("");
	if ((buf = malloc(len + 1)) == NULL || (out = malloc(len + 4)) == NULL) {
		free(buf);
		free(text);
		return json_string("");
	}
	n = p == m->html ? strip_html(text, len, buf) : (memcpy(buf, text, len), len);
	for (i = 0; i < n && chars <= SNIPPET_CHARS; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (isspace(c)) {
			if (!space && chars < SNIPPET_CHARS)
				out[o++] = ' ';
			space = true;
			continue;
		}
		if ((c & 0xc0) != 0x80 && ++chars > SNIPPET_CHARS)
			break;
		out[o++] = (char)c;
		space = false;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	if (chars > SNIPPET_CHARS) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	j = utf8_string(out, o);
	free(out);
	free(buf);
	free(text);
	return j;
}

static size_t attachment_count(const struct http_msg *m)
{
	size_t i, n = 0;

	for (i = 0; i < m->nparts; i++)
		if (!m->parts[i].is_inline)
			n++;
	return n;
}

static json_t *common_fields(const struct http_msg *m)
{
	const struct mime_part *root = m->root;
	char id[32];

	snprintf(id, sizeof(id), "%lld", (long long)m->id);
	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:s, s:o}",
	    "ID", id,
	    "MessageID", message_id(root),
	    "From", http_json_address(mime_part_env(root, MIME_ENV_FROM)),
	    "To", http_json_address_list(mime_part_env(root, MIME_ENV_TO)),
	    "Cc", http_json_address_list(mime_part_env(root, MIME_ENV_CC)),
	    "Bcc", http_json_address_list(mime_part_env(root, MIME_ENV_BCC)),
	    "ReplyTo", http_json_address_list(mime_part_env(root, MIME_ENV_REPLY_TO)),
	    "Subject", subject(root),
	    "Username", m->auth_user,
	    "Tags", http_json_tags(m->keywords),
	    "Inbox", m->inbox,
	    "Size", json_integer((json_int_t)m->size),
	    "MailFrom", m->mail_from,
	    "RcptTo", rcpt_list(m->rcpts));
}

json_t *http_json_summary(struct store *st, const struct http_msg *m)
{
	json_t *o = common_fields(m);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "Read", json_boolean(m->flags & STORE_FLAG_SEEN));
	json_object_set_new(o, "Created", http_json_time(m->internal_date));
	json_object_set_new(o, "Attachments", json_integer((json_int_t)attachment_count(m)));
	json_object_set_new(o, "Snippet", snippet(st, m));
	return o;
}

/* --- attachments: decoded size and checksums ------------------------------ */

struct digest_sink {
	struct mime_decoder dec;
	EVP_MD_CTX *md[3];
	uint64_t size;
	char out[MIME_DECODE_OUT_MAX(16384)];
};

static void digest_feed(struct digest_sink *d, const char *buf, size_t len)
{
	size_t k;

	d->size += len;
	for (k = 0; k < 3; k++)
		EVP_DigestUpdate(d->md[k], buf, len);
}

static int digest_cb(void *arg, const void *data, size_t len)
{
	struct digest_sink *d = arg;
	const char *p = data;
	size_t n;

	while (len > 0) {
		n = len < 16384 ? len : 16384;
		digest_feed(d, d->out, mime_decoder_feed(&d->dec, p, n, d->out));
		p += n;
		len -= n;
	}
	return 0;
}

static json_t *digest_hex(EVP_MD_CTX *md)
{
	unsigned char v[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned n = 0, i;

	EVP_DigestFinal_ex(md, v, &n);
	for (i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", v[i]);
	hex[2 * n] = '\0';
	return json_string(hex);
}

static json_t *attachment(struct store *st, const struct http_msg *m, const struct http_part *hp)
{
	const struct mime_part *p = hp->p;
	struct digest_sink *d = calloc(1, sizeof(*d));
	const EVP_MD *mds[3] = { EVP_md5(), EVP_sha1(), EVP_sha256() };
	char ctype[256], cid[512], *name;
	json_t *o = NULL, *sums;
	size_t k;

	if (d == NULL)
		return NULL;
	mime_decoder_init(&d->dec, mime_encoding_from_name(p->encoding));
	for (k = 0; k < 3; k++)
		if ((d->md[k] = EVP_MD_CTX_new()) == NULL || !EVP_DigestInit_ex(d->md[k], mds[k], NULL))
			goto out;
	if (store_message_read_range(st, m->id, p->body_off, p->body_size, digest_cb, d) != STORE_OK)
		goto out;
	digest_feed(d, d->out, mime_decoder_finish(&d->dec, d->out));
	snprintf(ctype, sizeof(ctype), "%s/%s", p->type, p->subtype);
	snprintf(cid, sizeof(cid), "%s", p->id ? p->id + (p->id[0] == '<') : "");
	if (cid[0] != '\0' && cid[strlen(cid) - 1] == '>' && p->id[0] == '<')
		cid[strlen(cid) - 1] = '\0';
	sums = json_pack("{s:o, s:o, s:o}", "MD5", digest_hex(d->md[0]), "SHA1",
	    digest_hex(d->md[1]), "SHA256", digest_hex(d->md[2]));
	name = http_part_filename(p);
	o = json_pack("{s:s, s:o, s:s, s:s, s:I, s:o}", "PartID", hp->section,
	    "FileName", name ? utf8_string(name, strlen(name)) : json_string(""),
	    "ContentType", ctype, "ContentID", cid, "Size", (json_int_t)d->size,
	    "Checksums", sums);
	free(name);
out:
	for (k = 0; k < 3; k++)
		EVP_MD_CTX_free(d->md[k]);
	free(d);
	return o;
}

static json_t *body_text(struct store *st, const struct http_msg *m, const struct mime_part *p)
{
	char *text;
	size_t len;
	json_t *j;

	if (p == NULL || (text = http_msg_text(st, m, p, BODY_READ_MAX, &len)) == NULL)
		return json_string("");
	j = utf8_string(text, len);
	free(text);
	return j;
}

/* The first field `name` of the header block, unfolded and decoded;
 * NULL if absent. */
static char *header_field(const char *hdr, size_t len, const char *name)
{
	struct mime_field f;
	size_t pos = 0, n;
	char *unfolded, *dec;

	while (mime_header_next(hdr, len, &pos, &f)) {
		if (f.name_len != strlen(name) || strncasecmp(f.name, name, f.name_len) != 0)
			continue;
		if ((unfolded = mime_header_unfold(f.value, f.value_len, MIME_MAX_VALUE)) == NULL)
			return NULL;
		dec = mime_header_decode(unfolded, strlen(unfolded), &n);
		free(unfolded);
		return dec;
	}
	return NULL;
}

/* Mailpit's ListUnsubscribe: the List-Unsubscribe header, the links in
 * it that pass list_unsub.h's checks, what did not, and the
 * List-Unsubscribe-Post header (RFC 8058) beside it. */
static json_t *list_unsubscribe(struct store *st, const struct http_msg *m)
{
	struct list_unsub u = { .nlinks = 0 };
	char *value = NULL, *post = NULL, *hdr;
	json_t *o, *links = json_array();
	size_t i, len;

	hdr = http_msg_header(st, m, LIST_UNSUB_HDR_MAX, &len);
	if (hdr != NULL && (value = header_field(hdr, len, "List-Unsubscribe")) != NULL) {
		post = header_field(hdr, len, "List-Unsubscribe-Post");
		if (list_unsub_parse(value, strlen(value), &u) < 0)
			snprintf(u.errors, sizeof(u.errors), "out of memory");
	}
	free(hdr);
	for (i = 0; links != NULL && i < u.nlinks; i++)
		json_array_append_new(links, utf8_string(u.links[i], strlen(u.links[i])));
	o = json_pack("{s:o, s:o, s:o, s:o}", "Header", utf8_string(value ? value : "",
	    value ? strlen(value) : 0), "Links", links, "Errors",
	    utf8_string(u.errors, strlen(u.errors)), "HeaderPost",
	    utf8_string(post ? post : "", post ? strlen(post) : 0));
	list_unsub_free(&u);
	free(value);
	free(post);
	return o;
}

static json_t *header_date(const struct http_msg *m)
{
	const char *d = mime_part_env(m->root, MIME_ENV_DATE);
	int64_t t;

	if (d == NULL || !imap_sort_parse_date(d, &t))
		t = m->internal_date;
	return http_json_time(t);
}

json_t *http_json_message(struct store *st, const struct http_msg *m)
{
	json_t *o = common_fields(m), *att = json_array(), *inl = json_array();
	size_t i;

	if (o == NULL || att == NULL || inl == NULL) {
		json_decref(o);
		json_decref(att);
		json_decref(inl);
		return NULL;
	}
	for (i = 0; i < m->nparts; i++) {
		json_t *a = attachment(st, m, &m->parts[i]);
		if (a != NULL)
			json_array_append_new(m->parts[i].is_inline ? inl : att, a);
	}
	json_object_set_new(o, "ReturnPath", json_string(m->mail_from));
	json_object_set_new(o, "ClientAddress", json_string(m->client_addr));
	json_object_set_new(o, "ListUnsubscribe", list_unsubscribe(st, m));
	json_object_set_new(o, "Date", header_date(m));
	json_object_set_new(o, "Text", body_text(st, m, m->text));
	json_object_set_new(o, "HTML", body_text(st, m, m->html));
	json_object_set_new(o, "Inline", inl);
	json_object_set_new(o, "Attachments", att);
	return o;
}

/* --- headers: Go's mail.Header, as Mailpit marshals it ---------------------- */

/* textproto.CanonicalMIMEHeaderKey: "content-type" -> "Content-Type";
 * a key with a character outside token characters stays as it is. */
static void canonical_key(const char *name, size_t len, char *out, size_t outlen)
{
	bool upper = true, ok = true;
	size_t i;

	if (len >= outlen)
		len = outlen - 1;
	for (i = 0; i < len; i++)
		if (name[i] == ' ' || name[i] == ':' || (unsigned char)name[i] < 0x21 ||
		    (unsigned char)name[i] > 0x7e)
			ok = false;
	for (i = 0; i < len; i++) {
		char c = name[i];
		if (ok)
			c = upper ? (char)toupper((unsigned char)c) : (char)tolower((unsigned char)c);
		out[i] = c;
		upper = c == '-';
	}
	out[len] = '\0';
}

/* Continuation lines joined with one space, as Go's textproto does. */
static json_t *unfolded_value(const char *v, size_t len)
{
	char *out = malloc(len + 1);
	size_t i = 0, o = 0;
	json_t *j;

	if (out == NULL)
		return NULL;
	while (i < len && (v[i] == ' ' || v[i] == '\t'))
		i++;
	while (i < len) {
		if (v[i] == '\r' || v[i] == '\n') {
			while (i < len && (v[i] == '\r' || v[i] == '\n' || v[i] == ' ' || v[i] == '\t'))
				i++;
			if (i < len)
				out[o++] = ' ';
			continue;
		}
		out[o++] = v[i++];
	}
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	j = json_stringn(out, o);
	if (j == NULL) {        /* 8-bit header bytes: shown as Latin-1 would be */
		size_t n;
		char *u = mime_charset_to_utf8("ISO-8859-1", out, o, &n);
		j = u ? json_stringn(u, n) : json_string("");
		free(u);
	}
	free(out);
	return j;
}

json_t *http_json_headers(const char *hdr, size_t len)
{
	json_t *o = json_object(), *arr;
	struct mime_field f;
	char key[256];
	size_t pos = 0;

	while (o != NULL && mime_header_next(hdr, len, &pos, &f)) {
		canonical_key(f.name, f.name_len, key, sizeof(key));
		if ((arr = json_object_get(o, key)) == NULL) {
			arr = json_array();
			json_object_set_new(o, key, arr);
		}
		json_array_append_new(arr, unfolded_value(f.value, f.value_len));
	}
	return o;
}
