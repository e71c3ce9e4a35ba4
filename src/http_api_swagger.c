/*
 * GET /api/v1/swagger.json: the OpenAPI 2.0 document of the API. The
 * text is src/http_swagger.json, made into a C string at build time (the
 * http_swagger.c rule in Makefile.am), so the binary serves the document
 * of the routes it was built with.
 */
#include <stddef.h>

#include "http_internal.h"

/* The generated src/http_swagger.c. */
extern const char http_swagger_json[];
extern const size_t http_swagger_json_len;

enum http_rc http_api_swagger(struct http_req *r)
{
	http_reply_data(r, 200, "application/json", http_swagger_json, http_swagger_json_len);
	return HTTP_DONE;
}
