/*
 * The stored form of a MIME tree: "MSMT", a version byte, then the parts in
 * pre-order. Numbers are LEB128 varints (little-endian base 128), strings
 * a varint of length+1 (0 for NULL) and the bytes. Per part:
 *
 *   flags hdr_off hdr_size body_size body_lines   (body_off = hdr_off+hdr_size)
 *   type subtype nparams {name value charset lang}
 *   id description encoding md5 language location disposition
 *   ndisp_params {name value charset lang}
 *   [10 envelope strings if MIME_PART_MESSAGE]
 *   nchildren {part}
 *
 * The parser trusts nothing: every read is bounds-checked, and the tree it
 * returns satisfies what the scanner guarantees (see check_part).
 *
 * The parsed tree lives in one arena (a few chunks: FETCH parses a tree
 * per message, and a part has a dozen strings): the root carries
 * MIME_PART_ARENA and mime_part_free() releases the chunks.
 */
#include "mailsnare/mime.h"

#include <stdint.h>

#include "mime_internal.h"

#define BLOB_VERSION 1
#define BLOB_STR_MAX (1u << 20)
#define BLOB_PARAMS_MAX 4096
#define BLOB_DEPTH_MAX (2 * MIME_MAX_DEPTH + 4)

static void put_num(struct mstr *m, uint64_t v)
{
	do {
		unsigned char b = v & 0x7f;
		v >>= 7;
		mstr_addc(m, (char)(b | (v ? 0x80 : 0)));
	} while (v != 0);
}

static void put_str(struct mstr *m, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	put_num(m, s != NULL ? (uint64_t)n + 1 : 0);
	mstr_add(m, s != NULL ? s : "", n);
}

static void put_params(struct mstr *m, const struct mime_param *p, uint32_t n)
{
	put_num(m, n);
	for (uint32_t i = 0; i < n; i++) {
		put_str(m, p[i].name);
		put_str(m, p[i].value);
		put_str(m, p[i].charset);
		put_str(m, p[i].lang);
	}
}

static void put_part(struct mstr *m, const struct mime_part *p)
{
	put_num(m, p->flags & ~MIME_PART_ARENA);
	put_num(m, p->hdr_off);
	put_num(m, p->hdr_size);
	put_num(m, p->body_size);
	put_num(m, p->body_lines);
	put_str(m, p->type);
	put_str(m, p->subtype);
	put_params(m, p->params, p->nparams);
	put_str(m, p->id);
	put_str(m, p->description);
	put_str(m, p->encoding);
	put_str(m, p->md5);
	put_str(m, p->language);
	put_str(m, p->location);
	put_str(m, p->disposition);
	put_params(m, p->disp_params, p->ndisp_params);
	if (p->flags & MIME_PART_MESSAGE) {
		for (int i = 0; i < MIME_ENV_COUNT; i++)
			put_str(m, p->env[i]);
	}
	put_num(m, p->nchildren);
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		put_part(m, c);
}

bool mime_tree_serialize(const struct mime_part *root, unsigned char **buf, size_t *len)
{
	struct mstr m;

	mstr_init(&m, SIZE_MAX / 2);
	mstr_add(&m, "MSMT", 4);
	mstr_addc(&m, BLOB_VERSION);
	put_part(&m, root);
	*len = m.len;
	*buf = (unsigned char *)mstr_take(&m);
	return *buf != NULL;
}

/* ---- the arena ---- */

struct arena_chunk {
	struct arena_chunk *next;   /* the first chunk lists the others */
	size_t used, cap;
};

/* Chunk headers keep what follows aligned for any type. */
#define ARENA_HDR ((sizeof(struct arena_chunk) + 15) & ~(size_t)15)
#define ARENA_CHUNK 4096

struct arena {
	struct arena_chunk *first, *cur;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c = a->cur;
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (c == NULL || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		if ((c = malloc(ARENA_HDR + cap)) == NULL)
			return NULL;
		c->used = 0;
		c->cap = cap;
		c->next = NULL;
		if (a->first == NULL) {
			a->first = c;
		} else {
			c->next = a->first->next;
			a->first->next = c;
		}
		a->cur = c;
	}
	p = (char *)c + ARENA_HDR + c->used;
	c->used += n;
	return p;
}

static void arena_release(struct arena_chunk *first)
{
	struct arena_chunk *c, *next;

	if (first == NULL)
		return;
	for (c = first->next; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(first);
}

/* The root is the first thing in the first chunk. */
void mime_arena_free(struct mime_part *root)
{
	arena_release((struct arena_chunk *)(void *)((char *)root - ARENA_HDR));
}

/* ---- parsing ---- */

struct rd {
	const unsigned char *p, *end;
	unsigned parts;
	bool bad;
	struct arena arena;
};

static void *rd_zalloc(struct rd *r, size_t n)
{
	void *p = arena_alloc(&r->arena, n);

	if (p == NULL)
		r->bad = true;
	else
		memset(p, 0, n);
	return p;
}

static uint64_t get_num(struct rd *r)
{
	uint64_t v = 0;

	for (unsigned shift = 0; !r->bad; shift += 7) {
		if (r->p >= r->end || shift > 63) {
			r->bad = true;
			break;
		}
		v |= (uint64_t)(*r->p & 0x7f) << shift;
		if ((*r->p++ & 0x80) == 0)
			return v;
	}
	return 0;
}

/* A string; NUL bytes inside are garbage. *dst stays NULL for NULL. */
static void get_str(struct rd *r, char **dst)
{
	uint64_t n = get_num(r);

	if (r->bad || n == 0)
		return;
	n--;
	if (n > BLOB_STR_MAX || n > (uint64_t)(r->end - r->p) || memchr(r->p, '\0', n) != NULL) {
		r->bad = true;
		return;
	}
	if ((*dst = arena_alloc(&r->arena, n + 1)) == NULL) {
		r->bad = true;
		return;
	}
	memcpy(*dst, r->p, n);
	(*dst)[n] = '\0';
	r->p += n;
}

static void get_params(struct rd *r, struct mime_param **out, uint32_t *count)
{
	uint64_t n = get_num(r);

	if (r->bad || n == 0)
		return;
	if (n > BLOB_PARAMS_MAX || n > (uint64_t)(r->end - r->p) ||
	    (*out = rd_zalloc(r, n * sizeof(**out))) == NULL) {
		r->bad = true;
		return;
	}
	*count = (uint32_t)n;
	for (uint64_t i = 0; i < n && !r->bad; i++) {
		get_str(r, &(*out)[i].name);
		get_str(r, &(*out)[i].value);
		get_str(r, &(*out)[i].charset);
		get_str(r, &(*out)[i].lang);
		if ((*out)[i].name == NULL || (*out)[i].value == NULL)
			r->bad = true;
	}
}

static void get_fields(struct rd *r, struct mime_part *p)
{
	p->flags = (uint32_t)get_num(r);
	p->hdr_off = get_num(r);
	p->hdr_size = get_num(r);
	p->body_size = get_num(r);
	p->body_lines = get_num(r);
	get_str(r, &p->type);
	get_str(r, &p->subtype);
	get_params(r, &p->params, &p->nparams);
	get_str(r, &p->id);
	get_str(r, &p->description);
	get_str(r, &p->encoding);
	get_str(r, &p->md5);
	get_str(r, &p->language);
	get_str(r, &p->location);
	get_str(r, &p->disposition);
	get_params(r, &p->disp_params, &p->ndisp_params);
	if (p->flags & MIME_PART_MESSAGE) {
		for (int i = 0; i < MIME_ENV_COUNT; i++)
			get_str(r, &p->env[i]);
	}
}

/* What the scanner guarantees of one part, given its parent. */
static bool check_part(const struct mime_part *p, const struct mime_part *parent, uint64_t nchildren)
{
	const uint32_t known = (MIME_PART_NO_BLANK << 1) - 1;
	bool msg = (p->flags & MIME_PART_MESSAGE) != 0;

	if ((p->flags & ~known) != 0 || p->type == NULL || p->subtype == NULL)
		return false;
	if (p->hdr_off > UINT64_MAX / 4 || p->hdr_size > UINT64_MAX / 4 || p->body_size > UINT64_MAX / 4)
		return false;
	if ((p->flags & MIME_PART_MULTIPART) && (p->flags & MIME_PART_RFC822))
		return false;
	/* the writers rely on type and flags agreeing */
	if (((p->flags & MIME_PART_MULTIPART) != 0) != (strcmp(p->type, "multipart") == 0))
		return false;
	if (((p->flags & MIME_PART_RFC822) != 0)
	    != (strcmp(p->type, "message") == 0 && strcmp(p->subtype, "rfc822") == 0))
		return false;
	if ((p->flags & MIME_PART_RFC822) ? nchildren != 1
	    : (!(p->flags & MIME_PART_MULTIPART) && nchildren != 0))
		return false;
	if (parent == NULL ? !msg : msg != ((parent->flags & MIME_PART_RFC822) != 0))
		return false;
	return p->body_lines <= p->body_size;
}

/* The part lies within its parent's body, after its previous sibling. */
static bool check_place(const struct mime_part *p, const struct mime_part *parent, uint64_t min_off)
{
	uint64_t end = p->body_off + p->body_size;

	if (parent == NULL)
		return p->hdr_off == 0;
	return p->hdr_off >= min_off && p->hdr_off >= parent->body_off
	    && end <= parent->body_off + parent->body_size;
}

static struct mime_part *get_part(struct rd *r, struct mime_part *parent, uint64_t min_off,
    unsigned depth);

static void get_children(struct rd *r, struct mime_part *p, uint64_t n, unsigned depth)
{
	struct mime_part *last = NULL;
	uint64_t min_off = p->body_off;

	for (uint64_t i = 0; i < n && !r->bad; i++) {
		struct mime_part *c = get_part(r, p, min_off, depth + 1);
		if (c == NULL)
			return;
		if (last == NULL)
			p->children = c;
		else
			last->next = c;
		last = c;
		p->nchildren++;
		min_off = c->body_off + c->body_size;
	}
}

static struct mime_part *get_part(struct rd *r, struct mime_part *parent, uint64_t min_off,
    unsigned depth)
{
	struct mime_part *p;
	uint64_t n;

	if (depth > BLOB_DEPTH_MAX || ++r->parts > MIME_MAX_PARTS || (p = rd_zalloc(r, sizeof(*p))) == NULL) {
		r->bad = true;
		return NULL;
	}
	p->parent = parent;
	get_fields(r, p);
	p->body_off = p->hdr_off + p->hdr_size;
	n = get_num(r);
	/* On failure nothing is freed here: the arena goes as a whole. */
	if (r->bad || !check_part(p, parent, n) || !check_place(p, parent, min_off)) {
		r->bad = true;
		return NULL;
	}
	get_children(r, p, n, depth);
	if (!r->bad && p->nchildren != n)
		r->bad = true;
	return r->bad ? NULL : p;
}

struct mime_part *mime_tree_parse(const void *blob, size_t len)
{
	struct rd r = { blob, (const unsigned char *)blob + len, 0, false, { NULL, NULL } };
	struct mime_part *root;

	if (blob == NULL || len < 5 || memcmp(blob, "MSMT", 4) != 0 || r.p[4] != BLOB_VERSION)
		return NULL;
	r.p += 5;
	root = get_part(&r, NULL, 0, 0);
	if (root == NULL || r.bad || r.p != r.end) {
		arena_release(r.arena.first);
		return NULL;
	}
	root->flags |= MIME_PART_ARENA;
	return root;
}
