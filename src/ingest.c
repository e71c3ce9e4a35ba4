/*
 * A message on its way into the store: spool, line ends, MIME scan and the
 * columns taken from the scan. See ingest.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/ingest.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_header.h"
#include "mailsnare/msg_tags.h"
#include "mailsnare/smtp_data.h"
#include "mailsnare/spool.h"

struct ingest {
	struct spool *spool;
	struct mime_scan *scan;     /* NULL once finished, or if memory ran out */
	struct smtp_data crlf;      /* line-end normaliser, when opts.crlf */
	bool normalise;
	uint64_t max_size;
	enum ingest_status status;
	bool nul;
	unsigned char *structure;
	size_t structure_len;
	char fields[4][INGEST_FIELD_MAX + 1];
	char *tags;                 /* from X-Tags, space-separated */
};

struct ingest *ingest_new(const struct ingest_options *opts)
{
	struct ingest *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return NULL;
	in->spool = spool_new(opts->mem_limit, opts->tmpdir);
	in->scan = mime_scan_new();
	if (in->spool == NULL || in->scan == NULL) {
		ingest_free(in);
		return NULL;
	}
	in->normalise = opts->crlf;
	in->max_size = opts->max_size;
	smtp_data_init(&in->crlf, false);
	return in;
}

void ingest_free(struct ingest *in)
{
	if (in == NULL)
		return;
	if (in->scan != NULL)
		mime_scan_abort(in->scan);
	spool_free(in->spool);
	free(in->structure);
	free(in->tags);
	free(in);
}

void ingest_set_max_size(struct ingest *in, uint64_t max_size)
{
	in->max_size = max_size;
}

/* Bytes as they are stored: to the spool and the scanner. */
static int store_bytes(void *arg, const char *buf, size_t len)
{
	struct ingest *in = arg;

	if (in->status != INGEST_OK)
		return 0;
	if (in->max_size > 0 && spool_size(in->spool) + len > in->max_size) {
		in->status = INGEST_TOO_BIG;
		return 0;
	}
	if (spool_write(in->spool, buf, len) < 0) {
		in->status = INGEST_WRITE_FAILED;
		return 0;
	}
	mime_scan_feed(in->scan, buf, len);
	return 0;
}

void ingest_write(struct ingest *in, const void *buf, size_t len)
{
	if (len > 0 && memchr(buf, '\0', len) != NULL)
		in->nul = true;
	if (in->scan == NULL || in->status != INGEST_OK)
		return;
	if (in->normalise)
		(void)smtp_data_feed(&in->crlf, buf, len, store_bytes, in);
	else
		(void)store_bytes(in, buf, len);
}

enum ingest_status ingest_status(const struct ingest *in)
{
	return in->status;
}

uint64_t ingest_size(const struct ingest *in)
{
	return spool_size(in->spool);
}

bool ingest_saw_nul(const struct ingest *in)
{
	return in->nul;
}

/* A part sent as an attachment (Content-Disposition: attachment) or named
 * as a file (filename=, or Content-Type's older name=): what a mail client
 * shows a paper clip for. */
static bool part_is_attachment(const struct mime_part *p)
{
	uint32_t i;

	if (p->disposition != NULL && strcmp(p->disposition, "attachment") == 0)
		return true;
	for (i = 0; i < p->ndisp_params; i++)
		if (strcmp(p->disp_params[i].name, "filename") == 0)
			return true;
	return !(p->flags & MIME_PART_MULTIPART) && mime_part_param(p, "name") != NULL;
}

static bool tree_has_attachment(const struct mime_part *p)
{
	const struct mime_part *c;

	for (c = p->children; c != NULL; c = c->next)
		if (part_is_attachment(c) || tree_has_attachment(c))
			return true;
	return false;
}

/* The scanner's unfolded value cut to the list's width, never inside a
 * UTF-8 sequence; NULL if the header has no such field. */
static const char *list_field(struct ingest *in, int slot, const struct mime_part *root,
    enum mime_env_field f)
{
	const char *v = mime_part_env(root, f);
	size_t n;

	if (v == NULL)
		return NULL;
	if ((n = strlen(v)) > INGEST_FIELD_MAX) {
		n = INGEST_FIELD_MAX;
		while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(in->fields[slot], v, n);
	in->fields[slot][n] = '\0';
	return in->fields[slot];
}

/* The X-Tags of the top header (msg_tags.h), read back from the spool
 * (at most INGEST_TAGS_HDR_MAX bytes of the header), which is left
 * rewound. NULL if none. */
static char *header_tags(struct ingest *in, const struct mime_part *root)
{
	uint64_t want = root->hdr_off + root->hdr_size;
	struct mime_field f;
	size_t pos = 0, got = 0;
	char *hdr, *v, *tags = NULL;
	ssize_t r;

	if (want > INGEST_TAGS_HDR_MAX)
		want = INGEST_TAGS_HDR_MAX;
	if (want <= root->hdr_off || (hdr = malloc(want)) == NULL)
		return NULL;
	while (got < want && (r = spool_read(in->spool, hdr + got, want - got)) > 0)
		got += (size_t)r;
	while (got > root->hdr_off && tags == NULL &&
	    mime_header_next(hdr + root->hdr_off, got - root->hdr_off, &pos, &f)) {
		if (f.name_len != 6 || strncasecmp(f.name, "X-Tags", 6) != 0)
			continue;
		if ((v = mime_header_unfold(f.value, f.value_len, MIME_MAX_VALUE)) == NULL)
			break;
		tags = msg_tags_parse(v, strlen(v));
		free(v);
		break;
	}
	free(hdr);
	if (spool_rewind(in->spool) < 0) {
		free(tags);
		return NULL;
	}
	return tags;
}

static ssize_t spool_source(void *arg, void *buf, size_t len)
{
	return spool_read(arg, buf, len);
}

int ingest_finish(struct ingest *in, struct store_new_message *msg)
{
	struct mime_part *root;

	if (in->scan == NULL || in->status != INGEST_OK)
		return -1;
	if (in->normalise)
		(void)smtp_data_finish(&in->crlf, store_bytes, in);
	root = mime_scan_finish(in->scan);
	in->scan = NULL;
	if (in->status != INGEST_OK || spool_rewind(in->spool) < 0) {
		mime_part_free(root);
		return -1;
	}
	/* Without a tree (memory ran out) the message is still stored; its
	 * readers scan it later (msg_tree.c). */
	if (root != NULL) {
		if (mime_tree_serialize(root, &in->structure, &in->structure_len)) {
			msg->structure = in->structure;
			msg->structure_len = in->structure_len;
		}
		msg->hdr_from = list_field(in, 0, root, MIME_ENV_FROM);
		msg->hdr_to = list_field(in, 1, root, MIME_ENV_TO);
		msg->hdr_subject = list_field(in, 2, root, MIME_ENV_SUBJECT);
		msg->hdr_date = list_field(in, 3, root, MIME_ENV_DATE);
		msg->has_attachment = tree_has_attachment(root);
		msg->keywords = in->tags = header_tags(in, root);
		mime_part_free(root);
	}
	msg->src.size = spool_size(in->spool);
	msg->src.read = spool_source;
	msg->src.arg = in->spool;
	return 0;
}
