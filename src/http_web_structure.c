/*
 * GET /api/v1/message/{ID}/structure (ours, for the page's MIME tab): the
 * part tree as stored at delivery, with each part's type, encoding, size
 * and PartID (IMAP section numbering, as /part/{PartID} takes it). The
 * tree is at most MIME_MAX_DEPTH deep, so the walk recurses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/mime.h"
#include "mailsnare/server.h"
#include "http_internal.h"

static json_t *str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *part_json(const struct mime_part *p, const char *section)
{
	const struct mime_param *cs = mime_part_param(p, "charset");
	const struct mime_part *c;
	char ctype[256], sub[HTTP_SECTION_MAX];
	json_t *o, *kids;
	char *name;
	unsigned n = 0;

	snprintf(ctype, sizeof(ctype), "%s/%s", p->type, p->subtype);
	name = http_part_filename(p);
	o = json_pack("{s:s, s:s, s:o, s:o, s:I, s:I, s:o, s:o, s:o}",
	    "PartID", section, "ContentType", ctype,
	    "Charset", str_or_null(cs ? cs->value : NULL),
	    "Encoding", str_or_null(p->encoding),
	    "Size", (json_int_t)p->body_size, "HeaderSize", (json_int_t)p->hdr_size,
	    "Disposition", str_or_null(p->disposition),
	    "FileName", json_string(name ? name : ""),
	    "ContentID", str_or_null(p->id));
	free(name);
	if (o == NULL || (kids = json_array()) == NULL)
		return o;
	for (c = p->children; c != NULL; c = c->next) {
		/* A multipart numbers its parts; message/rfc822's one child is
		 * the message it holds, under the same number. */
		if (p->flags & MIME_PART_MULTIPART)
			snprintf(sub, sizeof(sub), "%s%s%u", section, section[0] ? "." : "", ++n);
		else
			snprintf(sub, sizeof(sub), "%s", section);
		json_array_append_new(kids, part_json(c, sub));
	}
	json_object_set_new(o, "Parts", kids);
	return o;
}

enum http_rc http_api_message_structure(struct http_req *r)
{
	struct http_msg m;
	json_t *j;
	int64_t id;
	int rc;

	rc = http_resolve_id(r, r->args[0], &id);
	if (rc == STORE_OK)
		rc = http_msg_load(r->srv->store, id, r->inbox_id, &m);
	if (rc == STORE_NOTFOUND) {
		http_reply_404(r);
		return HTTP_DONE;
	}
	if (rc != STORE_OK) {
		http_reply_text(r, 500, "store error");
		return HTTP_DONE;
	}
	/* The root of a single-part message is part "1" (mime.h). */
	j = part_json(m.root, (m.root->flags & MIME_PART_MULTIPART) ? "" : "1");
	http_msg_free(&m);
	http_reply_json(r, 200, j);
	return HTTP_DONE;
}
