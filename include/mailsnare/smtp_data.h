/*
 * Decoding of message data as it arrives: DATA (dot-stuffed, ended by
 * <CRLF>.<CRLF> only) and BDAT chunks (taken as they are). Line ends are
 * normalised to CRLF. Pure: bytes in, decoded bytes to a sink.
 *
 * Only <CRLF>.<CRLF> ends DATA: "<LF>.<LF>", "<LF>.<CRLF>" and
 * "<CRLF>.<LF>" are data, so a message cannot smuggle a second one past a
 * server that ends DATA differently (SMTP smuggling, 2023).
 */
#ifndef MAILSNARE_SMTP_DATA_H
#define MAILSNARE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* RFC 5321 §4.5.3.1.6: 1000 octets including the CRLF. */
#define SMTP_TEXT_LINE_MAX 1000

/* Receives decoded bytes; non-zero stops the decoder. */
typedef int (*smtp_data_sink)(void *arg, const char *buf, size_t len);

struct smtp_data {
	unsigned state;
	size_t linelen;         /* octets of the current line so far */
	bool dot_mode;          /* DATA: dot-stuffing and terminator */
	bool line_too_long;     /* a line exceeded SMTP_TEXT_LINE_MAX */
	bool done;              /* the terminator was seen (DATA) */
};

/* dot_mode: true for DATA, false for BDAT. */
void smtp_data_init(struct smtp_data *d, bool dot_mode);

/* Decodes in[0..len). In DATA mode it stops right after the terminator
 * (d->done set) and returns the bytes consumed, so what follows stays
 * for the command reader. Returns -1 if the sink failed. */
ssize_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
    smtp_data_sink sink, void *arg);

/* BDAT LAST: emits a held trailing CR. 0, or -1 if the sink failed. */
int smtp_data_finish(struct smtp_data *d, smtp_data_sink sink, void *arg);

#endif
