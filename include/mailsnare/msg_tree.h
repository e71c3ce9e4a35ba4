/*
 * The MIME structure of a stored message, for every reader (IMAP FETCH,
 * SEARCH and SORT, POP3, the CLI, the HTTP API): the tree the ingest scan
 * kept in the store, or, for a message stored without one (an older
 * schema, a blob that no longer parses), a scan of its bytes now, which is
 * then kept so the next reader finds it.
 */
#ifndef MAILSNARE_MSG_TREE_H
#define MAILSNARE_MSG_TREE_H

#include <stdint.h>

#include "mailsnare/mime.h"
#include "mailsnare/store.h"

/* The tree of message id (free with mime_part_free), or NULL if the
 * message cannot be read or memory ran out. */
struct mime_part *msg_tree_load(struct store *st, int64_t id);

#endif
