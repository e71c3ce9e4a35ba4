/*
 * Helpers shared by the libFuzzer targets: a growing byte buffer (for
 * comparing outputs of two runs), a check that aborts with a message (so
 * libFuzzer keeps the input as a crash), and a tiny deterministic PRNG
 * seeded from the input for chunk sizes and split points.
 */
#ifndef MAILSNARE_FUZZ_H
#define MAILSNARE_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

struct fbuf {
	unsigned char *p;
	size_t len, cap;
};

static inline void fbuf_add(struct fbuf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		FUZZ_CHECK(b->p != NULL);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static inline void fbuf_adds(struct fbuf *b, const char *s)
{
	fbuf_add(b, s, strlen(s));
}

static inline void fbuf_addf(struct fbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static inline void fbuf_addf(struct fbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	FUZZ_CHECK(n >= 0 && (size_t)n < sizeof(tmp));
	fbuf_add(b, tmp, (size_t)n);
}

static inline void fbuf_free(struct fbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static inline int fbuf_eq(const struct fbuf *a, const struct fbuf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* xorshift64*: chunk sizes derived from a seed taken from the input. */
static inline uint64_t fuzz_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Takes up to 8 bytes of the input as a seed (never 0). */
static inline uint64_t fuzz_seed(const uint8_t **data, size_t *size)
{
	uint64_t s = 0x9e3779b97f4a7c15ull;
	size_t i;

	for (i = 0; i < 8 && *size > 0; i++, (*data)++, (*size)--)
		s = (s << 8 | s >> 56) ^ **data;
	return s ? s : 1;
}

/* A chunk length in 1..max, mostly small so splits fall everywhere. */
static inline size_t fuzz_chunk(uint64_t *s, size_t max)
{
	uint64_t r = fuzz_rand(s);
	size_t n = (r & 3) == 0 ? (size_t)(r >> 8) % 64 + 1 : (size_t)(r >> 8) % 8 + 1;

	return n < max ? n : max;
}

/* A NUL-terminated copy (inputs for C-string APIs). */
static inline char *fuzz_strdup(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);

	FUZZ_CHECK(s != NULL);
	memcpy(s, d, n);
	s[n] = '\0';
	return s;
}

#endif
