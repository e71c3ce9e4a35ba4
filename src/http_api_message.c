/*
 * One message: /api/v1/message/{ID} (JSON, marks it read), /headers,
 * /raw, /part/{PartID}, and the /view/{ID}.html and .txt pages. {ID} is
 * the store's message id or "latest"; a message outside the request's
 * scope is as unknown as one that does not exist (404).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "mailsnare/mime.h"
#include "mailsnare/server.h"
#include "http_internal.h"

/* A header section read whole for /headers at most. */
#define HEADERS_READ_MAX (1024 * 1024)
#define VIEW_READ_MAX (32u * 1024 * 1024)
#define VIEW_CSP "default-src 'none'; img-src * data: 'self'; style-src 'unsafe-inline' *; " \
	"font-src * data:; sandbox allow-popups"

/* Loads the message of args[0]; 404 sent (HTTP_DONE) if there is none. */
static int load(struct http_req *r, struct http_msg *m)
{
	int64_t id;
	int rc;

	rc = http_resolve_id(r, r->args[0], &id);
	if (rc == STORE_OK)
		rc = http_msg_load(r->srv->store, id, r->inbox_id, m);
	if (rc == STORE_NOTFOUND)
		http_reply_404(r);
	else if (rc != STORE_OK)
		http_reply_text(r, 500, "store error");
	return rc;
}

enum http_rc http_api_message_get(struct http_req *r)
{
	struct http_msg m;
	json_t *j;

	if (load(r, &m) != STORE_OK)
		return HTTP_DONE;
	j = http_json_message(r->srv->store, &m);
	/* Read state is IMAP's \Seen: IMAP sessions see the FETCH FLAGS. */
	if (!(m.flags & STORE_FLAG_SEEN))
		(void)store_message_set_flags(r->srv->store, m.id, STORE_FLAG_SEEN, 0);
	http_msg_free(&m);
	http_reply_json(r, 200, j);
	return HTTP_DONE;
}

enum http_rc http_api_message_headers(struct http_req *r)
{
	struct http_msg m;
	json_t *j = NULL;
	char *text, *hdr;
	size_t len;

	if (load(r, &m) != STORE_OK)
		return HTTP_DONE;
	if ((hdr = http_msg_header(r->srv->store, &m, HEADERS_READ_MAX, &len)) != NULL)
		j = http_json_headers(hdr, len);
	free(hdr);
	http_msg_free(&m);
	/* Go's encoder writes a map's keys sorted. */
	if (j == NULL || (text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		json_decref(j);
		http_reply_text(r, 500, "store error");
		return HTTP_DONE;
	}
	json_decref(j);
	http_reply_data(r, 200, "application/json", text, strlen(text));
	free(text);
	return HTTP_DONE;
}

enum http_rc http_api_message_raw(struct http_req *r)
{
	const char *dl = http_query(r, "dl");
	char disp[96];
	struct http_msg m;
	int64_t id;
	uint64_t size;

	if (load(r, &m) != STORE_OK)
		return HTTP_DONE;
	id = m.id;
	size = m.size;
	http_msg_free(&m);
	http_add_header(r, "Content-Type", "text/plain; charset=utf-8");
	if (dl != NULL && strcmp(dl, "1") == 0) {
		snprintf(disp, sizeof(disp), "attachment; filename=\"%lld.eml\"", (long long)id);
		http_add_header(r, "Content-Disposition", disp);
	}
	return http_stream_message(r, id, 0, size, NULL, true);
}

/* A file name inside a quoted-string: quotes, backslashes and controls
 * would end or break it. */
static void quoted_filename(const char *name, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *name != '\0' && o + 1 < outlen; name++)
		if ((unsigned char)*name >= 0x20 && *name != '"' && *name != '\\' && *name != 0x7f)
			out[o++] = *name;
	out[o] = '\0';
}

enum http_rc http_api_message_part(struct http_req *r)
{
	const struct mime_part *p;
	char ctype[256], disp[600], fname[512], *name;
	struct http_msg m;
	uint64_t off, len;
	char *enc;
	int64_t id;
	enum http_rc rc;

	if (load(r, &m) != STORE_OK)
		return HTTP_DONE;
	if ((p = http_msg_part(&m, r->args[1])) == NULL || r->args[1][0] == '\0') {
		http_msg_free(&m);
		http_reply_404(r);
		return HTTP_DONE;
	}
	snprintf(ctype, sizeof(ctype), "%s/%s", p->type, p->subtype);
	name = http_part_filename(p);
	quoted_filename(name && name[0] ? name : (p->id ? p->id : ""), fname, sizeof(fname));
	free(name);
	snprintf(disp, sizeof(disp), "filename=\"%s\"", fname);
	http_add_header(r, "Content-Type", ctype);
	http_add_header(r, "Content-Disposition", disp);
	id = m.id;
	off = p->body_off;
	len = p->body_size;
	enc = p->encoding ? strdup(p->encoding) : NULL;
	http_msg_free(&m);
	rc = http_stream_message(r, id, off, len, enc, true);
	free(enc);
	return rc;
}

enum http_rc http_api_message_thumb(struct http_req *r)
{
	http_reply_404(r);
	return HTTP_DONE;
}

/* "cid:NAME" -> the part's URL, for the inline images of the HTML. */
static void rewrite_cids(struct evbuffer *out, const char *html, size_t len,
    const struct http_msg *m)
{
	const char *p = html, *end = html + len, *c;
	size_t i;

	while ((c = memmem(p, (size_t)(end - p), "cid:", 4)) != NULL) {
		const char *s = c + 4, *e = s;
		while (e < end && *e != '"' && *e != '\'' && *e != ')' && *e != ' ' && *e != '>')
			e++;
		evbuffer_add(out, p, (size_t)(c - p));
		p = c + 4;
		for (i = 0; i < m->nparts; i++) {
			const char *id = m->parts[i].p->id;
			size_t n;
			if (id == NULL)
				continue;
			if (id[0] == '<')
				id++;
			n = strcspn(id, ">");
			if (n == (size_t)(e - s) && memcmp(id, s, n) == 0) {
				evbuffer_add_printf(out, "/api/v1/message/%lld/part/%s",
				    (long long)m->id, m->parts[i].section);
				p = e;
				break;
			}
		}
		if (p != e)
			evbuffer_add(out, "cid:", 4);
	}
	evbuffer_add(out, p, (size_t)(end - p));
}

/* ?embed=1 (Mailpit's, for showing the page in an iframe): links open in
 * a new tab (a <base target>, after the doctype so the rendering mode
 * stays) and carry no referrer. Mailpit's height-reporting script is left
 * out: this page runs none. Returns the bytes of html already written. */
static size_t embed_head(struct evbuffer *out, const char *html, size_t len)
{
	static const char head[] = "<base target=\"_blank\">"
	    "<meta name=\"referrer\" content=\"no-referrer\">";
	size_t i = 0, done = 0;
	const char *gt;

	while (i < len && (html[i] == ' ' || html[i] == '\t' || html[i] == '\r' || html[i] == '\n'))
		i++;
	if (len - i >= 9 && strncasecmp(html + i, "<!doctype", 9) == 0 &&
	    (gt = memchr(html + i, '>', len - i)) != NULL) {
		done = (size_t)(gt + 1 - html);
		evbuffer_add(out, html, done);
	}
	evbuffer_add(out, head, sizeof(head) - 1);
	return done;
}

enum http_rc http_api_view_html(struct http_req *r)
{
	const char *embed = http_query(r, "embed");
	bool embedded = embed != NULL && strcmp(embed, "1") == 0;
	struct evbuffer *out;
	struct http_msg m;
	char *html;
	size_t len, skip = 0;

	if (r->nargs == 0)
		snprintf(r->args[0], sizeof(r->args[0]), "latest");
	if (load(r, &m) != STORE_OK)
		return HTTP_DONE;
	if (m.html == NULL ||
	    (html = http_msg_text(r->srv->store, &m, m.html, VIEW_READ_MAX, &len)) == NULL) {
		http_msg_free(&m);
		http_reply_404(r);
		return HTTP_DONE;
	}
	if ((out = evbuffer_new()) != NULL) {
		if (embedded)
			skip = embed_head(out, html, len);
		rewrite_cids(out, html + skip, len - skip, &m);
	}
	free(html);
	http_msg_free(&m);
	/* The message's HTML is untrusted: no scripts, no forms. Embedded, its
	 * links open as ordinary tabs, outside the sandbox. */
	http_add_header(r, "Content-Security-Policy", embedded ?
	    VIEW_CSP " allow-popups-to-escape-sandbox" : VIEW_CSP);
	if (embedded)
		http_add_header(r, "Referrer-Policy", "no-referrer");
	http_reply_buffer(r, out ? 200 : 500, "text/html; charset=utf-8", out);
	if (out)
		evbuffer_free(out);
	return HTTP_DONE;
}

enum http_rc http_api_view_txt(struct http_req *r)
{
	struct http_msg m;
	char *text = NULL;
	size_t len = 0;

	if (load(r, &m) != STORE_OK)
		return HTTP_DONE;
	if (m.text != NULL)
		text = http_msg_text(r->srv->store, &m, m.text, VIEW_READ_MAX, &len);
	http_msg_free(&m);
	http_reply_data(r, 200, "text/plain; charset=utf-8", text ? text : "", text ? len : 0);
	free(text);
	return HTTP_DONE;
}
