/*
 * DATA/BDAT decoder: a byte state machine that keeps its state across
 * reads, so input split at any point decodes the same.
 */
#include <string.h>

#include "mailsnare/smtp_data.h"

enum {
	ST_BOL,       /* at the start of a line that followed a CRLF */
	ST_BOL_LF,    /* at the start of a line that followed a bare LF */
	ST_DOT,       /* a '.' at the start of a CRLF line */
	ST_DOT_LF,    /* a '.' at the start of a bare-LF line */
	ST_DOT_CR,    /* ".\r" at the start of a CRLF line */
	ST_DOT_LF_CR, /* ".\r" at the start of a bare-LF line */
	ST_MID,       /* inside a line */
	ST_CR         /* a CR inside a line, waiting to see if LF follows */
};

/* Batches output so the sink sees spans, not single bytes. */
struct out {
	char buf[4096];
	size_t len;
	smtp_data_sink sink;
	void *arg;
	int failed;
};

static void out_flush(struct out *o)
{
	if (o->len > 0 && !o->failed)
		o->failed = o->sink(o->arg, o->buf, o->len) != 0;
	o->len = 0;
}

static void out_put(struct out *o, const char *s, size_t n)
{
	if (o->len + n > sizeof(o->buf))
		out_flush(o);
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

void smtp_data_init(struct smtp_data *d, bool dot_mode)
{
	memset(d, 0, sizeof(*d));
	d->dot_mode = dot_mode;
	d->state = ST_BOL;
}

static void line_char(struct smtp_data *d, struct out *o, char ch)
{
	if (++d->linelen > SMTP_TEXT_LINE_MAX - 2 && d->dot_mode)
		d->line_too_long = true;
	out_put(o, &ch, 1);
}

static void line_end(struct smtp_data *d, struct out *o, unsigned next)
{
	out_put(o, "\r\n", 2);
	d->linelen = 0;
	d->state = next;
}

/* One byte in the middle of a line (also the first byte after an
 * unstuffed dot). */
static void mid_byte(struct smtp_data *d, struct out *o, char ch)
{
	if (ch == '\r')
		d->state = ST_CR;
	else if (ch == '\n')
		line_end(d, o, ST_BOL_LF);  /* bare LF: normalised */
	else {
		line_char(d, o, ch);
		d->state = ST_MID;
	}
}

/* Returns true when the byte completes the terminator. */
static bool step(struct smtp_data *d, struct out *o, char ch)
{
	switch (d->state) {
	case ST_BOL:
	case ST_BOL_LF:
		if (ch == '.' && d->dot_mode) {
			d->linelen = 1;
			d->state = d->state == ST_BOL ? ST_DOT : ST_DOT_LF;
		} else {
			mid_byte(d, o, ch);
		}
		return false;
	case ST_DOT:
	case ST_DOT_LF:
		if (ch == '\r') {
			d->state = d->state == ST_DOT ? ST_DOT_CR : ST_DOT_LF_CR;
		} else if (ch == '\n') {
			/* "<CRLF>.<LF>" or "<LF>.<LF>": a lone dot, kept as data. */
			line_char(d, o, '.');
			line_end(d, o, ST_BOL_LF);
		} else {
			mid_byte(d, o, ch);  /* the stuffed dot is dropped */
		}
		return false;
	case ST_DOT_CR:
	case ST_DOT_LF_CR:
		if (ch == '\n' && d->state == ST_DOT_CR)
			return true;
		if (ch == '\n') {
			/* "<LF>.<CRLF>": data, not the end. */
			line_char(d, o, '.');
			line_end(d, o, ST_BOL);
			return false;
		}
		/* ".\rX": the dot is stuffing; the CR is a bare CR. */
		line_char(d, o, '\r');
		d->state = ST_MID;
		mid_byte(d, o, ch);
		return false;
	case ST_CR:
		if (ch == '\n') {
			line_end(d, o, ST_BOL);
			return false;
		}
		line_char(d, o, '\r');
		d->state = ST_MID;
		mid_byte(d, o, ch);
		return false;
	default: /* ST_MID */
		mid_byte(d, o, ch);
		return false;
	}
}

ssize_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
    smtp_data_sink sink, void *arg)
{
	struct out o = { .len = 0, .sink = sink, .arg = arg, .failed = 0 };
	size_t i = 0;

	while (i < len && !d->done) {
		/* Fast path: copy plain bytes inside a line in one go. */
		if (d->state == ST_MID) {
			size_t start = i;
			while (i < len && in[i] != '\r' && in[i] != '\n')
				i++;
			if (i > start) {
				d->linelen += i - start;
				if (d->dot_mode && d->linelen > SMTP_TEXT_LINE_MAX - 2)
					d->line_too_long = true;
				out_flush(&o);
				if (!o.failed)
					o.failed = sink(arg, in + start, i - start) != 0;
				continue;
			}
		}
		if (step(d, &o, in[i++])) {
			d->done = true;
			d->linelen = 0;
		}
	}
	out_flush(&o);
	return o.failed ? -1 : (ssize_t)i;
}

int smtp_data_finish(struct smtp_data *d, smtp_data_sink sink, void *arg)
{
	struct out o = { .len = 0, .sink = sink, .arg = arg, .failed = 0 };

	if (d->state == ST_CR)
		out_put(&o, "\r", 1);
	d->state = ST_BOL;
	out_flush(&o);
	return o.failed ? -1 : 0;
}
