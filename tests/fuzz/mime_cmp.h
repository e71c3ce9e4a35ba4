/* Deep comparison of two MIME trees, field by field (for the MIME targets). */
#ifndef MAILSNARE_FUZZ_MIME_CMP_H
#define MAILSNARE_FUZZ_MIME_CMP_H

#include "mailsnare/mime.h"
#include "fuzz.h"

static bool str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool params_same(const struct mime_param *a, uint32_t na, const struct mime_param *b,
    uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (!str_same(a[i].name, b[i].name) || !str_same(a[i].value, b[i].value) ||
		    !str_same(a[i].charset, b[i].charset) || !str_same(a[i].lang, b[i].lang))
			return false;
	return true;
}

/* Same tree? flags are compared without the arena bit. */
static bool mime_same(const struct mime_part *a, const struct mime_part *b)
{
	const uint32_t arena = 1u << 31;

	for (; a != NULL && b != NULL; a = a->next, b = b->next) {
		if (a->hdr_off != b->hdr_off || a->hdr_size != b->hdr_size ||
		    a->body_off != b->body_off || a->body_size != b->body_size ||
		    a->body_lines != b->body_lines || (a->flags & ~arena) != (b->flags & ~arena) ||
		    a->nchildren != b->nchildren)
			return false;
		if (!str_same(a->type, b->type) || !str_same(a->subtype, b->subtype) ||
		    !str_same(a->id, b->id) || !str_same(a->description, b->description) ||
		    !str_same(a->encoding, b->encoding) || !str_same(a->md5, b->md5) ||
		    !str_same(a->language, b->language) || !str_same(a->location, b->location) ||
		    !str_same(a->disposition, b->disposition))
			return false;
		if (!params_same(a->params, a->nparams, b->params, b->nparams) ||
		    !params_same(a->disp_params, a->ndisp_params, b->disp_params, b->ndisp_params))
			return false;
		if (a->flags & MIME_PART_MESSAGE)
			for (int i = 0; i < MIME_ENV_COUNT; i++)
				if (!str_same(a->env[i], b->env[i]))
					return false;
		if (!mime_same(a->children, b->children))
			return false;
	}
	return a == NULL && b == NULL;
}

#endif
