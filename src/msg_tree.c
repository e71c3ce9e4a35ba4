/*
 * Loading the MIME structure of a stored message; see msg_tree.h.
 */
#include <stdlib.h>

#include "mailsnare/log.h"
#include "mailsnare/msg_tree.h"

static int scan_sink(void *arg, const void *buf, size_t len)
{
	mime_scan_feed(arg, buf, len);
	return 0;
}

/* Scans the stored bytes and keeps the result (a failure to keep it is
 * not the reader's: it only costs the next reader a scan too). */
static struct mime_part *scan_stored(struct store *st, int64_t id)
{
	struct mime_scan *sc = mime_scan_new();
	struct mime_part *root;
	unsigned char *blob;
	size_t len;

	if (sc == NULL)
		return NULL;
	if (store_message_read(st, id, scan_sink, sc) != STORE_OK) {
		mime_scan_abort(sc);
		return NULL;
	}
	root = mime_scan_finish(sc);
	if (root != NULL && mime_tree_serialize(root, &blob, &len)) {
		(void)store_message_set_structure(st, id, blob, len);
		free(blob);
	}
	return root;
}

struct mime_part *msg_tree_load(struct store *st, int64_t id)
{
	struct mime_part *root = NULL;
	void *blob = NULL;
	size_t len = 0;

	if (store_message_structure(st, id, &blob, &len) != STORE_OK)
		return NULL;
	if (blob != NULL) {
		root = mime_tree_parse(blob, len);
		free(blob);
		if (root == NULL)
			log_warn("store: message %lld: stored structure unreadable; rescanning",
			    (long long)id);
	}
	return root != NULL ? root : scan_stored(st, id);
}
