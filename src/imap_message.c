/*
 * Message contents for FETCH and SEARCH: byte ranges from the store, and
 * the MIME structure (msg_tree.c).
 */
#include <stdlib.h>
#include <string.h>

#include "mailsnare/imap_envelope.h"
#include "mailsnare/log.h"
#include "mailsnare/mime.h"
#include "mailsnare/msg_tree.h"
#include "imap_session.h"

struct mime_part *imap_msg_tree(struct imap_session *s, const struct imap_msg *m)
{
	return msg_tree_load(s->srv->store, m->id);
}

struct membuf {
	char *p;
	size_t len;
};

static int mem_sink(void *arg, const void *buf, size_t len)
{
	struct membuf *b = arg;

	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

char *imap_msg_read(struct imap_session *s, const struct imap_msg *m, uint64_t off,
    uint64_t len)
{
	struct membuf b;

	if (off > m->size)
		off = m->size;
	if (len > m->size - off)
		len = m->size - off;
	if ((b.p = malloc(len + 1)) == NULL)
		return NULL;
	b.len = 0;
	if (store_message_read_range(s->srv->store, m->id, off, len, mem_sink, &b) != STORE_OK) {
		free(b.p);
		return NULL;
	}
	b.p[b.len] = '\0';
	return b.p;
}

/* A NUL cannot go out in a literal (RFC 3501 §9, only BINARY's literal8
 * may carry one): stored NULs (SMTP accepts them) are sent as 0x80, as
 * Dovecot does. */
static void literal_put(void (*put)(void *, const void *, size_t), void *arg,
    const char *p, size_t len)
{
	const char *nul;

	while (len > 0 && (nul = memchr(p, '\0', len)) != NULL) {
		put(arg, p, (size_t)(nul - p));
		put(arg, "\x80", 1);
		len -= (size_t)(nul - p) + 1;
		p = nul + 1;
	}
	put(arg, p, len);
}

static void conn_put(void *arg, const void *buf, size_t len)
{
	conn_write(arg, buf, len);
}

static int conn_sink(void *arg, const void *buf, size_t len)
{
	literal_put(conn_put, arg, buf, len);
	return 0;
}

int imap_msg_send(struct imap_session *s, const struct imap_msg *m, uint64_t off,
    uint64_t len)
{
	return store_message_read_range(s->srv->store, m->id, off, len, conn_sink, s->conn);
}

static void buf_put(void *arg, const void *buf, size_t len)
{
	imap_buf_add(arg, buf, len);
}

static int buf_sink(void *arg, const void *buf, size_t len)
{
	literal_put(buf_put, arg, buf, len);
	return 0;
}

int imap_msg_copy(struct imap_session *s, const struct imap_msg *m, uint64_t off,
    uint64_t len, struct imap_buf *b)
{
	size_t before = b->len;
	int rc = store_message_read_range(s->srv->store, m->id, off, len, buf_sink, b);

	if (rc == STORE_OK && b->failed)
		rc = STORE_ERR;
	if (rc != STORE_OK)
		b->len = before;
	return rc;
}
