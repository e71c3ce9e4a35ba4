/*
 * A message being received, kept in memory up to mem_limit bytes and
 * spilled to an unlinked temporary file beyond that.
 *
 * Layout: bytes [0, memlen) live in memory and never move, so the header
 * section is always available from spool_head(); bytes [memlen, size) live
 * in the file at offset (pos - memlen). Writes use pwrite at the end of the
 * file and reads use pread at their own position, so the two never disturb
 * each other and no file offset has to be tracked.
 *
 * After a failed write the spool is poisoned: every later write fails with
 * the same errno, so a caller can never store a message with a hole in it.
 */
#include "mailsnare/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* First allocation; small messages (most of them) fit without a realloc. */
#define SPOOL_INITIAL_CAP 4096

struct spool {
	char *mem;          /* bytes [0, memlen) */
	size_t memlen;
	size_t memcap;
	size_t mem_limit;
	int fd;             /* -1 until spilled; holds bytes [memlen, size) */
	uint64_t filelen;
	uint64_t size;
	uint64_t rpos;      /* next byte spool_read returns */
	int error;          /* sticky errno of a failed write, 0 if none */
	char *tmpdir;
};

struct spool *spool_new(size_t mem_limit, const char *tmpdir)
{
	struct spool *sp = calloc(1, sizeof(*sp));

	if (sp == NULL)
		return NULL;
	if (tmpdir == NULL) {
		tmpdir = getenv("TMPDIR");
		if (tmpdir == NULL || *tmpdir == '\0')
			tmpdir = "/tmp";
	}
	/* Copied: the caller's string (or the environment) may change. */
	sp->tmpdir = strdup(tmpdir);
	if (sp->tmpdir == NULL) {
		free(sp);
		return NULL;
	}
	sp->mem_limit = mem_limit;
	sp->fd = -1;
	return sp;
}

static spool_closer_fn closer;
static void *closer_arg;

void spool_set_closer(spool_closer_fn fn, void *arg)
{
	closer = fn;
	closer_arg = arg;
}

void spool_free(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->fd >= 0 && (closer == NULL || !closer(closer_arg, sp->fd, sp->filelen)))
		close(sp->fd);
	free(sp->mem);
	free(sp->tmpdir);
	free(sp);
}

uint64_t spool_size(const struct spool *sp)
{
	return sp->size;
}

const char *spool_head(const struct spool *sp, size_t *len)
{
	*len = sp->memlen;
	return sp->mem != NULL ? sp->mem : "";
}

/* Makes room for `need` bytes in memory (need <= mem_limit), doubling the
 * capacity so that n appends cost O(n) copying in total. */
static int mem_reserve(struct spool *sp, size_t need)
{
	size_t cap = sp->memcap;
	char *p;

	if (need <= cap)
		return 0;
	if (cap == 0)
		cap = SPOOL_INITIAL_CAP;
	while (cap < need && cap <= sp->mem_limit / 2)
		cap *= 2;
	if (cap < need || cap > sp->mem_limit)
		cap = sp->mem_limit; /* the last step lands exactly on the limit */
	p = realloc(sp->mem, cap);
	if (p == NULL) {
		errno = ENOMEM;
		return -1;
	}
	sp->mem = p;
	sp->memcap = cap;
	return 0;
}

/* Creates the temporary file; it is unlinked at once so that it vanishes
 * with the process, whatever happens to it. */
static int spill_open(struct spool *sp)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/mailsnare-spool-XXXXXX", sp->tmpdir) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (unlink(path) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	sp->fd = fd;
	return 0;
}

/* Appends to the file, retrying short writes and EINTR. */
static int file_append(struct spool *sp, const char *buf, size_t len)
{
	while (len > 0) {
		size_t chunk = len > (size_t)SSIZE_MAX ? (size_t)SSIZE_MAX : len;
		ssize_t n = pwrite(sp->fd, buf, chunk, (off_t)sp->filelen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO; /* no progress and no reason: do not spin */
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		sp->filelen += (uint64_t)n;
		sp->size += (uint64_t)n;
	}
	return 0;
}

/* Copies up to `len` bytes into memory, as far as mem_limit allows, and
 * returns how many were taken. Only called before spilling. */
static int mem_append(struct spool *sp, const char *buf, size_t len, size_t *taken)
{
	size_t room = sp->mem_limit - sp->memlen;
	size_t n = len < room ? len : room;

	*taken = 0;
	if (n == 0)
		return 0;
	if (mem_reserve(sp, sp->memlen + n) < 0)
		return -1;
	memcpy(sp->mem + sp->memlen, buf, n);
	sp->memlen += n;
	sp->size += n;
	*taken = n;
	return 0;
}

static int spool_write_unpoisoned(struct spool *sp, const char *buf, size_t len)
{
	size_t taken = 0;

	if (sp->fd < 0) {
		if (mem_append(sp, buf, len, &taken) < 0)
			return -1;
		buf += taken;
		len -= taken;
		if (len == 0)
			return 0;
		if (spill_open(sp) < 0)
			return -1;
	}
	return file_append(sp, buf, len);
}

int spool_write(struct spool *sp, const void *buf, size_t len)
{
	if (sp->error != 0) {
		errno = sp->error;
		return -1;
	}
	if (len == 0)
		return 0;
	if (UINT64_MAX - sp->size < len) {
		errno = EFBIG;
		return -1;
	}
	if (spool_write_unpoisoned(sp, buf, len) < 0) {
		sp->error = errno;
		return -1;
	}
	return 0;
}

int spool_rewind(struct spool *sp)
{
	sp->rpos = 0;
	return 0;
}

/* Reads file bytes at the read position; short only at end of file. */
static ssize_t file_read(struct spool *sp, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		uint64_t off = sp->rpos - sp->memlen;
		ssize_t n = pread(sp->fd, buf + got, len - got, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return got > 0 ? (ssize_t)got : -1;
		if (n == 0) {
			errno = EIO; /* the file is shorter than what we wrote */
			return got > 0 ? (ssize_t)got : -1;
		}
		got += (size_t)n;
		sp->rpos += (uint64_t)n;
	}
	return (ssize_t)got;
}

ssize_t spool_read(struct spool *sp, void *buf, size_t len)
{
	char *out = buf;
	size_t got = 0;
	ssize_t n;

	if (len > (size_t)SSIZE_MAX)
		len = (size_t)SSIZE_MAX;
	if (len > sp->size - sp->rpos)
		len = (size_t)(sp->size - sp->rpos);
	/* The memory part first, then (in the same call) the file part, so a
	 * caller's buffer is filled across the boundary. */
	if (sp->rpos < sp->memlen) {
		size_t m = sp->memlen - (size_t)sp->rpos;
		if (m > len)
			m = len;
		memcpy(out, sp->mem + sp->rpos, m);
		sp->rpos += m;
		got = m;
	}
	if (got < len) {
		n = file_read(sp, out + got, len - got);
		if (n < 0)
			return got > 0 ? (ssize_t)got : -1;
		got += (size_t)n;
	}
	return (ssize_t)got;
}
