/*
 * The web page: GET / is web/index.html, GET /web/NAME the other files of
 * web/, all compiled in (include/mailsnare/http_web.h). They hold no mail,
 * so they are served without credentials; the page asks for them when
 * the API answers 401. Each reply carries its file's ETag and
 * "Cache-Control: no-cache": a browser revalidates and gets 304 until the
 * binary is rebuilt with other files.
 */
#include <string.h>

#include "mailsnare/http_web.h"
#include "http_internal.h"

/* The page's own policy: scripts only from its files, no plugins, no
 * framing of the page, and API calls to its origin only. Message HTML is
 * shown in a sandboxed srcdoc iframe, which inherits this policy and adds
 * its own stricter one (web/view.js): so inline styles, and images and
 * fonts from anywhere, must pass here for the message view to show them
 * once the user allows them; scripts never do. */
#define WEB_CSP "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " \
	"img-src 'self' data: blob: *; font-src 'self' data: *; connect-src 'self'; " \
	"frame-src 'self' blob: data:; object-src 'none'; base-uri 'none'; " \
	"form-action 'none'; frame-ancestors 'none'"

static const struct http_web_asset *web_find(const char *name)
{
	size_t i;

	for (i = 0; i < http_web_assets_count; i++)
		if (strcmp(http_web_assets[i].name, name) == 0)
			return &http_web_assets[i];
	return NULL;
}

/* If-None-Match: a list of entity tags, or "*". */
static bool web_not_modified(struct http_req *r, const char *etag)
{
	const char *inm = http_header(r, "If-None-Match");

	return inm != NULL && (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0);
}

static enum http_rc web_serve(struct http_req *r, const struct http_web_asset *a, bool page)
{
	http_add_header(r, "ETag", a->etag);
	http_add_header(r, "Cache-Control", "no-cache");
	http_add_header(r, "X-Content-Type-Options", "nosniff");
	http_add_header(r, "Referrer-Policy", "no-referrer");
	if (page) {
		http_add_header(r, "Content-Security-Policy", WEB_CSP);
		http_add_header(r, "X-Frame-Options", "DENY");
	}
	if (web_not_modified(r, a->etag))
		http_reply_data(r, 304, NULL, NULL, 0);
	else
		http_reply_data(r, 200, a->ctype, a->data, a->len);
	return HTTP_DONE;
}

enum http_rc http_web_page(struct http_req *r)
{
	const struct http_web_asset *a = web_find("index.html");

	if (a == NULL) {
		http_reply_404(r);
		return HTTP_DONE;
	}
	return web_serve(r, a, true);
}

enum http_rc http_web_file(struct http_req *r)
{
	const struct http_web_asset *a = web_find(r->args[0]);

	/* index.html only as the page, with its policy. */
	if (a == NULL || strcmp(a->name, "index.html") == 0) {
		http_reply_404(r);
		return HTTP_DONE;
	}
	return web_serve(r, a, false);
}
