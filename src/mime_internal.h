/*
 * Private helpers shared by the MIME files (mime*.c, imap_envelope.c,
 * imap_bodystructure.c): a bounded growing string. Appends beyond `max`
 * are dropped (the string is truncated, never overrun); an allocation
 * failure sets `failed` and later appends are ignored.
 */
#ifndef MAILSNARE_MIME_INTERNAL_H
#define MAILSNARE_MIME_INTERNAL_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct mstr {
	char *p;
	size_t len, cap, max;
	bool failed;
};

static inline void mstr_init(struct mstr *s, size_t max)
{
	s->p = NULL;
	s->len = s->cap = 0;
	s->max = max;
	s->failed = false;
}

static inline bool mstr_reserve(struct mstr *s, size_t n)
{
	size_t want = s->len + n + 1, cap = s->cap ? s->cap : 32;
	char *np;

	if (want <= s->cap)
		return true;
	while (cap < want)
		cap *= 2;
	if ((np = realloc(s->p, cap)) == NULL) {
		s->failed = true;
		return false;
	}
	s->p = np;
	s->cap = cap;
	return true;
}

static inline void mstr_add(struct mstr *s, const void *d, size_t n)
{
	if (s->failed)
		return;
	if (n > s->max - s->len)
		n = s->max - s->len;
	if (n == 0 || !mstr_reserve(s, n))
		return;
	memcpy(s->p + s->len, d, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static inline void mstr_addc(struct mstr *s, char c)
{
	mstr_add(s, &c, 1);
}

static inline void mstr_adds(struct mstr *s, const char *str)
{
	mstr_add(s, str, strlen(str));
}

/* The NUL-terminated result ("" if nothing was added), or NULL if an
 * allocation failed. Ownership passes to the caller. */
static inline char *mstr_take(struct mstr *s)
{
	char *r;

	if (s->failed || !mstr_reserve(s, 0)) {
		free(s->p);
		mstr_init(s, s->max);
		return NULL;
	}
	s->p[s->len] = '\0';
	r = s->p;
	mstr_init(s, s->max);
	return r;
}

static inline void mstr_free(struct mstr *s)
{
	free(s->p);
	mstr_init(s, s->max);
}

/* The root of a tree from mime_tree_parse: the tree lives in one arena
 * that mime_arena_free (mime_blob.c) releases. Never stored. */
#define MIME_PART_ARENA (1u << 31)
struct mime_part;
void mime_arena_free(struct mime_part *root);

static inline char mime_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static inline char *mime_strndup_lower(const char *s, size_t n)
{
	char *r = malloc(n + 1);
	size_t i;

	if (r == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		r[i] = mime_lower(s[i]);
	r[n] = '\0';
	return r;
}

#endif
