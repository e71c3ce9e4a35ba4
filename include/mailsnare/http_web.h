/*
 * The web page's files (web/), compiled into the binary: the generated
 * src/http_web_assets.c (web/embed.sh, run by Makefile.am) defines the
 * table, src/http_web.c serves it.
 */
#ifndef MAILSNARE_HTTP_WEB_H
#define MAILSNARE_HTTP_WEB_H

#include <stddef.h>

struct http_web_asset {
	const char *name;                  /* "app.js": its name under web/ */
	const char *ctype;                 /* "text/javascript; charset=utf-8" */
	const char *etag;                  /* "\"CRC-LENGTH\"" of the file */
	const unsigned char *data;
	size_t len;
};

extern const struct http_web_asset http_web_assets[];
extern const size_t http_web_assets_count;

#endif
