/* The spool keeps small messages in memory, spills big ones to an unlinked
 * file, and always gives back exactly the bytes written. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mailsnare/spool.h"

static char tmpdir[64];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/mailsnare-spool-test-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	rmdir(tmpdir);
}

TestSuite(spool, .init = setup, .fini = teardown);

/* Deterministic, non-repeating-looking bytes (all 256 values occur). */
static void fill(unsigned char *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
}

/* Writes data in chunks of `wchunk`, then reads back in chunks of
 * `rchunk` and compares everything. */
static void round_trip(struct spool *sp, const unsigned char *data, size_t len, size_t wchunk,
    size_t rchunk)
{
	for (size_t off = 0; off < len; off += wchunk) {
		size_t n = len - off < wchunk ? len - off : wchunk;
		cr_assert_eq(spool_write(sp, data + off, n), 0, "write at %zu: %s", off,
		    strerror(errno));
	}
	cr_assert_eq(spool_size(sp), (uint64_t)len);
	cr_assert_eq(spool_rewind(sp), 0);

	unsigned char *back = malloc(len + 1);
	size_t got = 0;
	for (;;) {
		size_t want = rchunk;
		if (want > len + 1 - got)
			want = len + 1 - got;
		ssize_t r = spool_read(sp, back + got, want);
		cr_assert_geq(r, 0, "read: %s", strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
		cr_assert_leq(got, len, "read more than was written");
	}
	cr_assert_eq(got, len);
	cr_assert_eq(memcmp(back, data, len), 0, "bytes differ");
	free(back);
}

/* Number of entries in the test's temporary directory. */
static int dir_entries(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;
	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

Test(spool, empty)
{
	struct spool *sp = spool_new(1024, tmpdir);
	char buf[16];
	size_t len = 99;

	cr_assert_not_null(sp);
	cr_assert_eq(spool_size(sp), 0);
	cr_assert_not_null(spool_head(sp, &len));
	cr_assert_eq(len, 0);
	cr_assert_eq(spool_rewind(sp), 0);
	cr_assert_eq(spool_read(sp, buf, sizeof(buf)), 0);
	cr_assert_eq(spool_write(sp, "", 0), 0);
	spool_free(sp);
	spool_free(NULL);
}

Test(spool, below_limit_stays_in_memory)
{
	struct spool *sp = spool_new(65536, tmpdir);
	static const char msg[] = "Subject: hi\r\n\r\nbody\r\n";
	size_t len;

	cr_assert_eq(spool_write(sp, msg, 5), 0);
	cr_assert_eq(spool_write(sp, msg + 5, sizeof(msg) - 1 - 5), 0);
	const char *head = spool_head(sp, &len);
	cr_assert_eq(len, sizeof(msg) - 1);
	cr_assert_eq(memcmp(head, msg, len), 0);
	unsigned char data[1000];
	fill(data, sizeof(data), 1);
	spool_free(sp);

	sp = spool_new(65536, tmpdir);
	round_trip(sp, data, sizeof(data), 7, 13);
	spool_head(sp, &len);
	cr_assert_eq(len, sizeof(data));
	spool_free(sp);
}

Test(spool, exactly_at_limit)
{
	enum { LIMIT = 4096 };
	unsigned char data[LIMIT];
	struct spool *sp = spool_new(LIMIT, tmpdir);
	size_t len;

	fill(data, sizeof(data), 2);
	round_trip(sp, data, sizeof(data), LIMIT, LIMIT);
	const char *head = spool_head(sp, &len);
	cr_assert_eq(len, (size_t)LIMIT);
	cr_assert_eq(memcmp(head, data, LIMIT), 0);
	/* One more byte spills, and the head keeps the first LIMIT bytes. */
	cr_assert_eq(spool_write(sp, "x", 1), 0);
	cr_assert_eq(spool_size(sp), (uint64_t)LIMIT + 1);
	head = spool_head(sp, &len);
	cr_assert_eq(len, (size_t)LIMIT);
	cr_assert_eq(memcmp(head, data, LIMIT), 0);
	spool_free(sp);
}

Test(spool, spilled_10mib_byte_identical, .timeout = 60)
{
	size_t total = 10u << 20;
	unsigned char *data = malloc(total);
	struct spool *sp = spool_new(64 * 1024, tmpdir);
	size_t len;

	fill(data, total, 3);
	round_trip(sp, data, total, 65521, 4099);
	const char *head = spool_head(sp, &len);
	cr_assert_eq(len, 64u * 1024);
	cr_assert_eq(memcmp(head, data, len), 0);
	/* The temporary file was unlinked at once. */
	cr_assert_eq(dir_entries(), 0);
	/* A second pass reads the same bytes again. */
	unsigned char *back = malloc(total);
	cr_assert_eq(spool_rewind(sp), 0);
	size_t got = 0;
	ssize_t r;
	while ((r = spool_read(sp, back + got, total - got)) > 0)
		got += (size_t)r;
	cr_assert_eq(r, 0);
	cr_assert_eq(got, total);
	cr_assert_eq(memcmp(back, data, total), 0);
	spool_free(sp);
	free(back);
	free(data);
}

Test(spool, odd_chunk_sizes)
{
	static const size_t wchunks[] = { 1, 3, 1000, 4097, 100000 };
	static const size_t rchunks[] = { 1, 7, 4095, 4096, 65537, 1 << 20 };
	size_t total = 300000;
	unsigned char *data = malloc(total);

	fill(data, total, 4);
	for (size_t w = 0; w < sizeof(wchunks) / sizeof(wchunks[0]); w++) {
		for (size_t r = 0; r < sizeof(rchunks) / sizeof(rchunks[0]); r++) {
			struct spool *sp = spool_new(10007, tmpdir);
			round_trip(sp, data, total, wchunks[w], rchunks[r]);
			spool_free(sp);
		}
	}
	free(data);
}

Test(spool, read_fills_across_memory_file_boundary)
{
	unsigned char data[300], back[300];
	struct spool *sp = spool_new(100, tmpdir);

	fill(data, sizeof(data), 5);
	cr_assert_eq(spool_write(sp, data, sizeof(data)), 0);
	spool_rewind(sp);
	cr_assert_eq(spool_read(sp, back, 50), 50);
	cr_assert_eq(spool_read(sp, back + 50, 200), 200);
	cr_assert_eq(spool_read(sp, back + 250, 200), 50);
	cr_assert_eq(spool_read(sp, back, 200), 0);
	cr_assert_eq(memcmp(back, data, sizeof(data)), 0);
	spool_free(sp);
}

Test(spool, zero_limit_goes_straight_to_file)
{
	unsigned char data[5000];
	struct spool *sp = spool_new(0, tmpdir);
	size_t len = 1;

	fill(data, sizeof(data), 6);
	round_trip(sp, data, sizeof(data), 333, 777);
	spool_head(sp, &len);
	cr_assert_eq(len, 0);
	spool_free(sp);
}

Test(spool, write_after_rewind_is_appended)
{
	struct spool *sp = spool_new(4, tmpdir);
	char back[32];

	cr_assert_eq(spool_write(sp, "abcdef", 6), 0);
	spool_rewind(sp);
	cr_assert_eq(spool_read(sp, back, 3), 3);
	cr_assert_eq(spool_write(sp, "ghi", 3), 0);
	cr_assert_eq(spool_read(sp, back + 3, sizeof(back) - 3), 6);
	cr_assert_eq(memcmp(back, "abcdefghi", 9), 0);
	spool_free(sp);
}

Test(spool, tmpdir_from_environment)
{
	char sub[128];
	unsigned char data[3000];

	snprintf(sub, sizeof(sub), "%s", tmpdir);
	cr_assert_eq(setenv("TMPDIR", sub, 1), 0);
	struct spool *sp = spool_new(1000, NULL);
	fill(data, sizeof(data), 7);
	round_trip(sp, data, sizeof(data), 3000, 3000);
	spool_free(sp);

	/* A TMPDIR that does not exist: the spill fails with errno. */
	cr_assert_eq(setenv("TMPDIR", "/nonexistent/mailsnare", 1), 0);
	sp = spool_new(10, NULL);
	cr_assert_eq(spool_write(sp, data, 10), 0);
	errno = 0;
	cr_assert_eq(spool_write(sp, data, 11), -1);
	cr_assert_eq(errno, ENOENT);
	spool_free(sp);
}

Test(spool, failed_spill_reports_errno_and_stays_failed)
{
	struct spool *sp = spool_new(16, "/nonexistent/dir");
	unsigned char data[64];

	fill(data, sizeof(data), 8);
	cr_assert_eq(spool_write(sp, data, 16), 0);
	errno = 0;
	cr_assert_eq(spool_write(sp, data, 17), -1);
	cr_assert_eq(errno, ENOENT);
	/* Poisoned: even a write that would fit nowhere new fails the same way. */
	errno = 0;
	cr_assert_eq(spool_write(sp, data, 1), -1);
	cr_assert_eq(errno, ENOENT);
	spool_free(sp);
}

Test(spool, file_size_limit_gives_efbig)
{
	/* RLIMIT_FSIZE makes the kernel refuse the write like a full disk
	 * would (EFBIG instead of ENOSPC); the worker process is our own. */
	struct rlimit rl = { .rlim_cur = 8192, .rlim_max = RLIM_INFINITY };
	unsigned char data[20000];

	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	fill(data, sizeof(data), 9);
	struct spool *sp = spool_new(1024, tmpdir);
	cr_assert_eq(spool_write(sp, data, 5000), 0);
	errno = 0;
	cr_assert_eq(spool_write(sp, data + 5000, 15000), -1);
	cr_assert_eq(errno, EFBIG);
	cr_assert_eq(spool_write(sp, data, 1), -1);
	cr_assert_eq(errno, EFBIG);
	spool_free(sp);
}
