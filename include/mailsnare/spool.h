/*
 * A message being received: kept in memory up to a threshold, then spilled
 * to an unlinked temporary file, so a large DATA never sits whole in memory.
 */
#ifndef MAILSNARE_SPOOL_H
#define MAILSNARE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct spool;

/* mem_limit: bytes kept in memory before spilling to a file in tmpdir
 * (NULL = $TMPDIR or /tmp). NULL on allocation failure. */
struct spool *spool_new(size_t mem_limit, const char *tmpdir);
void spool_free(struct spool *sp);
/* Who closes a spilled spool's file (its length given) instead of
 * spool_free, which closes it itself when fn is NULL or returns false:
 * closing an unlinked file of 28 MB frees its page cache in that one call
 * (11-80 ms on the project's VM), so the server closes large ones a slice
 * at a time (spool_reap.h). */
typedef bool (*spool_closer_fn)(void *arg, int fd, uint64_t len);
void spool_set_closer(spool_closer_fn fn, void *arg);

/* Appends; 0, or -1 with errno set (ENOSPC, EIO, ...). */
int spool_write(struct spool *sp, const void *buf, size_t len);
uint64_t spool_size(const struct spool *sp);

/* The first bytes, as long as they are in memory (at least the first
 * mem_limit bytes are). Sets *len. */
const char *spool_head(const struct spool *sp, size_t *len);

/* Reading back from the start: spool_rewind, then spool_read until it
 * returns 0. Returns bytes read, or -1 with errno set. */
int spool_rewind(struct spool *sp);
ssize_t spool_read(struct spool *sp, void *buf, size_t len);

#endif
