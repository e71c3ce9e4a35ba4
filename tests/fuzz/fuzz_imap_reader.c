/*
 * The IMAP command reader: the same bytes fed in one piece and in chunks
 * of sizes taken from the input must give the same events and the same
 * commands (imap_parse.h promises split-invariance). Every command is also
 * walked through the typed accessors. The first byte picks the limits.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailsnare/imap_parse.h"
#include "fuzz.h"

static void log_args(struct fbuf *log, const struct imap_arg *a, size_t n, unsigned depth)
{
	const char *s;
	size_t len;
	uint32_t u;
	uint64_t u64;

	FUZZ_CHECK(depth <= 64);
	for (size_t i = 0; i < n; i++) {
		fbuf_addf(log, "<%d %x %zu:", (int)a[i].type, a[i].flags, a[i].len);
		FUZZ_CHECK(a[i].str != NULL || a[i].len == 0);
		if (a[i].type == IMAP_ARG_SECTION) {
			fbuf_adds(log, a[i].str);
		} else if (a[i].str != NULL) {
			fbuf_add(log, a[i].str, a[i].len);
			FUZZ_CHECK(a[i].str[a[i].len] == '\0');
		}
		if (a[i].partial != NULL)
			fbuf_adds(log, a[i].partial);
		/* The accessors must not crash on any node. */
		(void)imap_arg_is_nil(&a[i]);
		(void)imap_arg_atom(&a[i], &s);
		(void)imap_arg_astring(&a[i], &s, &len);
		(void)imap_arg_string(&a[i], &s, &len);
		(void)imap_arg_nstring(&a[i], &s, &len);
		(void)imap_arg_list_mailbox(&a[i], &s, &len);
		(void)imap_arg_number(&a[i], &u);
		(void)imap_arg_number64(&a[i], &u64);
		(void)imap_arg_flag(&a[i], true, &s);
		if (a[i].type == IMAP_ARG_LIST || a[i].type == IMAP_ARG_SECTION) {
			fbuf_adds(log, "(");
			log_args(log, a[i].list, a[i].count, depth + 1);
			fbuf_adds(log, ")");
		}
		fbuf_adds(log, ">");
	}
}

static void log_command(struct fbuf *log, struct imap_command *cmd)
{
	FUZZ_CHECK(cmd != NULL);
	FUZZ_CHECK(strlen(cmd->tag) <= IMAP_TAG_MAX);
	FUZZ_CHECK(strlen(cmd->verb) <= IMAP_VERB_MAX);
	fbuf_addf(log, "CMD[%s][%s][%d][%zu]", cmd->tag, cmd->verb, cmd->uid, cmd->nargs);
	log_args(log, cmd->args, cmd->nargs, 0);
	fbuf_adds(log, "\n");
	imap_command_free(cmd);
}

static void run(const struct imap_limits *lim, const uint8_t *d, size_t n, uint64_t seed,
    bool split, struct fbuf *log)
{
	struct imap_reader *r = imap_reader_new(lim);
	size_t off = 0, steps = 0;

	FUZZ_CHECK(r != NULL);
	while (off < n) {
		size_t end = off + (split ? fuzz_chunk(&seed, n - off) : n - off);
		while (off < end) {
			size_t consumed = 99999999;
			enum imap_read_rc rc = imap_reader_feed(r, d + off, end - off, &consumed);
			FUZZ_CHECK(consumed <= end - off);
			FUZZ_CHECK(++steps < 4 * n + 64);
			if (rc == IMAP_READ_MORE) {
				FUZZ_CHECK(consumed == end - off);
				off = end;
				break;
			}
			off += consumed;
			if (rc == IMAP_READ_COMMAND) {
				log_command(log, imap_reader_take(r));
			} else if (rc == IMAP_READ_CONTINUE) {
				fbuf_addf(log, "CONT %llu [%s][%s]\n",
				    (unsigned long long)imap_reader_literal_size(r),
				    imap_reader_tag(r), imap_reader_verb(r));
			} else {
				const struct imap_error *e = imap_reader_error(r);
				FUZZ_CHECK(rc == IMAP_READ_ERROR && e != NULL);
				FUZZ_CHECK(e->code != IMAP_ERR_NONE);
				FUZZ_CHECK(memchr(e->msg, '\0', sizeof(e->msg)) != NULL);
				fbuf_addf(log, "ERR %d [%s] %s\n", (int)e->code, e->tag, e->msg);
				(void)imap_err_resp_code(e->code);
			}
		}
	}
	fbuf_addf(log, "END %d\n", imap_reader_idle(r));
	imap_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_limits lim;
	struct fbuf one = { 0 }, chunked = { 0 };
	bool utf8;
	uint64_t seed;
	unsigned mode;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	seed = fuzz_seed(&data, &size);
	imap_limits_default(&lim);
	/* Small bounds so the fuzzer reaches every TOOBIG path. */
	if (mode & 1) {
		lim.max_line = 64;
		lim.max_literal = 100;
		lim.max_command = 300;
		lim.max_depth = 4;
		lim.max_args = 20;
	}
	if (mode & 2)
		lim.max_nonsync = IMAP_LITERAL_MINUS_MAX;
	if (mode & 4)
		lim.max_nonsync = 0;
	lim.allow_8bit_quoted = (mode & 8) != 0;
	utf8 = (mode & 16) != 0;
	lim.utf8_quoted = &utf8;

	run(&lim, data, size, seed, false, &one);
	run(&lim, data, size, seed, true, &chunked);
	if (!fbuf_eq(&one, &chunked)) {
		fprintf(stderr, "one piece:\n%.*s\nchunked:\n%.*s\n", (int)one.len, one.p,
		    (int)chunked.len, chunked.p);
		FUZZ_CHECK(!"split changes the events");
	}
	fbuf_free(&one);
	fbuf_free(&chunked);
	return 0;
}
