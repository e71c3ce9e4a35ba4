/*
 * A message on its way into the store, prepared once for every route in
 * (SMTP DATA and BDAT, IMAP APPEND, the HTTP send API): its bytes go to a
 * spool (memory, then an unlinked file, so a 30 MB message never sits
 * whole in memory) and through the MIME scanner as they arrive; at the end
 * the store columns come from what the scanner saw: the serialised
 * structure, the message-list fields (From, To, Subject, Date of the top
 * header, unfolded) and whether it carries an attachment.
 *
 *   struct ingest *in = ingest_new(&opts);
 *   ingest_write(in, chunk, n);          // any number of times, any split
 *   if (ingest_status(in) == INGEST_OK && ingest_finish(in, &msg) == 0)
 *           deliver_submit(d, &msg, done_cb, arg);   // deliver.h
 *   ...                                  // after done_cb (or cancel):
 *   ingest_free(in);
 *
 * No I/O but the spool's; nothing here waits.
 */
#ifndef MAILSNARE_INGEST_H
#define MAILSNARE_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailsnare/store.h"

/* The message-list columns are cut to this many bytes (on a UTF-8
 * character boundary), as the list shows them. */
#define INGEST_FIELD_MAX 511
/* Header bytes read back for X-Tags at most. */
#define INGEST_TAGS_HDR_MAX (256 * 1024)

struct ingest_options {
	size_t mem_limit;      /* bytes kept in memory before spilling */
	const char *tmpdir;    /* NULL: $TMPDIR or /tmp */
	uint64_t max_size;     /* bytes stored at most (0: no limit) */
	/* Bare LF and CR become CRLF, as SMTP stores them (IMAP APPEND of a
	 * literal; not of a literal8, which is kept octet for octet). */
	bool crlf;
};

enum ingest_status {
	INGEST_OK,
	INGEST_TOO_BIG,        /* more than max_size: the rest was dropped */
	INGEST_WRITE_FAILED    /* the spool could not take it (ENOSPC, EIO) */
};

struct ingest;

struct ingest *ingest_new(const struct ingest_options *opts);
/* Cancel the deliver request that uses it first. */
void ingest_free(struct ingest *in);
/* Changes opts.max_size (SMTP: the data's limit, after its own header). */
void ingest_set_max_size(struct ingest *in, uint64_t max_size);

/* Takes the next bytes. After a failure (see ingest_status) they are
 * counted but dropped. */
void ingest_write(struct ingest *in, const void *buf, size_t len);
enum ingest_status ingest_status(const struct ingest *in);
/* Bytes as they will be stored (after CRLF normalisation). */
uint64_t ingest_size(const struct ingest *in);
/* A NUL octet came in (IMAP refuses it outside a literal8). */
bool ingest_saw_nul(const struct ingest *in);

/*
 * Ends the input and fills in what the message carries: structure,
 * hdr_from/to/subject/date, has_attachment, keywords (the tags of an
 * X-Tags header, msg_tags.h; NULL without) and src (reading the stored
 * bytes back from the start). The rest of msg (where to, envelope, flags,
 * dates) is the caller's. What it points to belongs to in: keep in until
 * the message is stored. 0, or -1 (status not INGEST_OK, or the spool
 * cannot be read back).
 */
int ingest_finish(struct ingest *in, struct store_new_message *msg);

#endif
