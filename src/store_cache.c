/*
 * The message lists of the last few mailboxes read whole (IMAP SELECT, a
 * POP3 maildrop), kept in memory and brought up to date from what changed
 * since (tombstones and rows above the cached modseq, both indexed), so a
 * second SELECT of a large mailbox copies an array instead of reading
 * every row again: what Dovecot's index files give it. Every change of a
 * mailbox raises its HIGHESTMODSEQ, the CLI's too (triggers), so the
 * cached modseq says whether the copy is current. An undone write could
 * leave rows in the copy that never were: then everything is dropped.
 */
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

struct cached_msg {
	int64_t id;
	uint32_t uid;
	unsigned flags;
	uint64_t size;
	int64_t internal_date;
	uint64_t modseq;
	char *keywords;              /* NULL if none */
};

struct store_cache_entry {
	int64_t mailbox_id;          /* 0: a free slot */
	uint32_t uidvalidity;        /* with the id: this mailbox, not a later one */
	uint64_t modseq;
	uint64_t used;               /* for LRU */
	struct cached_msg *m;
	size_t n, cap;
};

static void entry_clear(struct store_cache_entry *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->m[i].keywords);
	free(e->m);
	memset(e, 0, sizeof(*e));
}

int store_cache_init(struct sqlite_store *st)
{
	st->cache = calloc(STORE_CACHE_SLOTS, sizeof(*st->cache));
	return st->cache ? STORE_OK : STORE_FULL;
}

void store_cache_drop(struct sqlite_store *st)
{
	size_t i;

	for (i = 0; st->cache && i < STORE_CACHE_SLOTS; i++)
		entry_clear(&st->cache[i]);
}

static int set_row(struct cached_msg *c, const struct store_msg *m)
{
	char *kw = NULL;

	if (m->keywords[0] && (kw = strdup(m->keywords)) == NULL)
		return STORE_FULL;
	free(c->keywords);
	c->id = m->id;
	c->uid = m->uid;
	c->flags = m->flags;
	c->size = m->size;
	c->internal_date = m->internal_date;
	c->modseq = m->modseq;
	c->keywords = kw;
	return STORE_OK;
}

static long find_uid(const struct store_cache_entry *e, uint32_t uid)
{
	size_t lo = 0, hi = e->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (e->m[mid].uid == uid)
			return (long)mid;
		if (e->m[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* A row read from the store: an update of a cached UID, or a new one
 * above the last. Anything else means the copy is not what we think. */
static int cache_row(const struct store_msg *m, void *arg)
{
	struct store_cache_entry *e = arg;
	long i = e->n && m->uid <= e->m[e->n - 1].uid ? find_uid(e, m->uid) : -1;

	if (i >= 0)
		return set_row(&e->m[i], m);
	if (e->n && m->uid <= e->m[e->n - 1].uid)
		return STORE_ERR;
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 256;
		struct cached_msg *p;
		if (cap > STORE_CACHE_MAX_ROWS || (p = realloc(e->m, cap * sizeof(*p))) == NULL)
			return STORE_FULL;
		e->m = p;
		e->cap = cap;
	}
	memset(&e->m[e->n], 0, sizeof(e->m[0]));
	e->n++;
	return set_row(&e->m[e->n - 1], m);
}

/* Tombstones: the UID's row is marked (uid 0) and compacted away after. */
static int cache_vanished(uint32_t uid, void *arg)
{
	struct store_cache_entry *e = arg;
	long i = find_uid(e, uid);

	if (i >= 0) {
		free(e->m[i].keywords);
		e->m[i].keywords = NULL;
		e->m[i].id = 0;
	}
	return 0;
}

static void compact(struct store_cache_entry *e)
{
	size_t i, kept = 0;

	for (i = 0; i < e->n; i++)
		if (e->m[i].id != 0)
			e->m[kept++] = e->m[i];
	e->n = kept;
}

static struct store_cache_entry *slot_for(struct sqlite_store *st, int64_t mailbox_id)
{
	struct store_cache_entry *e, *lru = &st->cache[0];
	size_t i;

	for (i = 0; i < STORE_CACHE_SLOTS; i++) {
		e = &st->cache[i];
		if (e->mailbox_id == mailbox_id)
			return e;
		if (e->used < lru->used)
			lru = e;
	}
	entry_clear(lru);
	return lru;
}

/* The cached list of the mailbox, current; NULL when it cannot be had
 * (then the caller reads the store directly). *rc is STORE_NOTFOUND for a
 * mailbox that is gone. */
static struct store_cache_entry *cache_get(struct sqlite_store *st, int64_t mailbox_id, int *rc)
{
	struct store_cache_entry *e;
	struct store_mailbox_state now;

	e = slot_for(st, mailbox_id);
	if ((*rc = sq_mailbox_state(&st->base, mailbox_id, &now)) != STORE_OK) {
		if (e->mailbox_id == mailbox_id)
			entry_clear(e);
		return NULL;
	}
	if (e->mailbox_id == mailbox_id && e->uidvalidity != now.uidvalidity)
		entry_clear(e);
	if (e->mailbox_id == mailbox_id && e->modseq != now.highestmodseq) {
		*rc = sq_mailbox_vanished(&st->base, mailbox_id, e->modseq, cache_vanished, e);
		compact(e);
		if (*rc == STORE_OK)
			*rc = sq_mailbox_changes(&st->base, mailbox_id, e->modseq, cache_row, e);
	} else if (e->mailbox_id != mailbox_id) {
		entry_clear(e);
		e->mailbox_id = mailbox_id;
		e->uidvalidity = now.uidvalidity;
		*rc = store_mailbox_read_all(st, mailbox_id, cache_row, e);
	}
	if (*rc != STORE_OK) {
		entry_clear(e);
		return NULL;
	}
	e->modseq = now.highestmodseq;
	e->used = ++st->cache_tick;
	return e;
}

int sq_mailbox_foreach(struct store *base, int64_t mailbox_id, store_msg_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct store_cache_entry *e;
	struct store_msg m;
	size_t i;
	int rc = STORE_OK;

	if (st->cache == NULL || (e = cache_get(st, mailbox_id, &rc)) == NULL)
		return rc == STORE_NOTFOUND ? STORE_OK : store_mailbox_read_all(st, mailbox_id, cb, arg);
	for (i = 0; i < e->n; i++) {
		const struct cached_msg *c = &e->m[i];
		m.id = c->id;
		m.uid = c->uid;
		m.flags = c->flags;
		m.size = c->size;
		m.internal_date = c->internal_date;
		m.modseq = c->modseq;
		m.keywords = c->keywords ? c->keywords : "";
		if ((rc = cb(&m, arg)) != 0)
			return rc;
	}
	return STORE_OK;
}
