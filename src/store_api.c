/*
 * The store API in front of the backends: store_open picks a backend by
 * name, every other call goes through the store's table of operations
 * (struct store_backend), and committed changes fan out from here to the
 * subscribers, whatever backend made them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/store.h"
#include "store_internal.h"

/* The first is the default. */
static const struct store_backend *const backends[] = {
	&store_sqlite_backend,
};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

static const char *const backend_names[N_BACKENDS + 1] = {
	"sqlite",
	NULL
};

const char *const *store_backends(void)
{
	return backend_names;
}

static struct store *opened(struct store *st, const struct store_options *opts)
{
	if (st == NULL)
		return NULL;
	st->limits = opts->limits;
	if (st->limits.mailboxes == 0)
		st->limits.mailboxes = STORE_MAX_MAILBOXES;
	if (st->limits.subscriptions == 0)
		st->limits.subscriptions = STORE_MAX_SUBSCRIPTIONS;
	if (st->limits.keywords == 0)
		st->limits.keywords = STORE_MAX_KEYWORDS;
	return st;
}

struct store *store_open(const struct store_options *opts)
{
	size_t i;

	if (opts->backend == NULL)
		return opened(backends[0]->open(opts), opts);
	for (i = 0; i < N_BACKENDS; i++)
		if (strcmp(backends[i]->name, opts->backend) == 0)
			return opened(backends[i]->open(opts), opts);
	if (opts->err != NULL)
		snprintf(opts->err, opts->errlen, "no store backend '%s'", opts->backend);
	return NULL;
}

const struct store_limits *store_get_limits(const struct store *st)
{
	return &st->limits;
}

/* The code point of the UTF-8 sequence at s[0..len), its length in *n;
 * -1 if it is not the one shortest encoding of a scalar value. */
static long utf8_next(const unsigned char *s, size_t len, size_t *n)
{
	static const long min[4] = { 0, 0x80, 0x800, 0x10000 };
	size_t k, i;
	long cp;

	if (s[0] < 0x80) {
		*n = 1;
		return s[0];
	}
	k = s[0] >= 0xf0 ? 3 : s[0] >= 0xe0 ? 2 : s[0] >= 0xc0 ? 1 : 0;
	if (k == 0 || s[0] >= 0xf8 || k >= len)
		return -1;
	cp = s[0] & (0x3f >> k);
	for (i = 1; i <= k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*n = k + 1;
	return cp;
}

const char *store_inbox_name_check(const char *name, size_t len)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t i, n;
	long cp;

	if (name == NULL || len == 0)
		return "empty";
	if (len >= STORE_NAME_MAX)
		return "longer than 63 bytes";
	if (s[0] == ' ' || s[len - 1] == ' ')
		return "leading or trailing space";
	if (s[0] == '.')
		return "leading '.'";
	for (i = 0; i < len; i += n) {
		if ((cp = utf8_next(s + i, len - i, &n)) < 0)
			return "not valid UTF-8";
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return "a control character";
		if (cp == '/')
			return "a '/'";
	}
	return NULL;
}

bool store_inbox_name_valid(const char *name)
{
	return name != NULL && store_inbox_name_check(name, strlen(name)) == NULL;
}

/* ---- change notifications ---------------------------------------------- */

static int subscribe(struct store *st, int64_t inbox_id, store_change_cb cb, void *arg)
{
	struct store_sub *p;
	size_t cap;

	if (cb == NULL)
		return STORE_ERR;
	if (st->n_subs == st->cap_subs) {
		cap = st->cap_subs ? st->cap_subs * 2 : 4;
		p = realloc(st->subs, cap * sizeof(*p));
		if (p == NULL)
			return STORE_FULL;
		st->subs = p;
		st->cap_subs = cap;
	}
	st->subs[st->n_subs].cb = cb;
	st->subs[st->n_subs].arg = arg;
	st->subs[st->n_subs].inbox_id = inbox_id;
	st->n_subs++;
	return STORE_OK;
}

int store_subscribe(struct store *st, store_change_cb cb, void *arg)
{
	return subscribe(st, 0, cb, arg);
}

int store_subscribe_inbox(struct store *st, int64_t inbox_id, store_change_cb cb, void *arg)
{
	if (inbox_id == 0)
		return STORE_ERR;
	return subscribe(st, inbox_id, cb, arg);
}

static void compact_subs(struct store *st)
{
	size_t i, n = 0;

	for (i = 0; i < st->n_subs; i++)
		if (st->subs[i].cb != NULL)
			st->subs[n++] = st->subs[i];
	st->n_subs = n;
}

void store_unsubscribe(struct store *st, store_change_cb cb, void *arg)
{
	size_t i;

	for (i = 0; i < st->n_subs; i++) {
		if (st->subs[i].cb == cb && st->subs[i].arg == arg) {
			st->subs[i].cb = NULL;
			break;
		}
	}
	if (st->dispatching == 0)
		compact_subs(st);
}

/* st->subs is indexed afresh on each call: a subscriber may (un)subscribe. */
void store_dispatch(struct store *st, const struct store_event *ev, size_t n)
{
	const struct store_sub *sub;
	size_t i, j;

	st->dispatching++;
	for (i = 0; i < n; i++) {
		for (j = 0; j < st->n_subs; j++) {
			sub = &st->subs[j];
			if (sub->cb == NULL || (sub->inbox_id != 0 &&
			    ev[i].what != STORE_CHANGE_EXTERNAL &&
			    sub->inbox_id != ev[i].inbox_id))
				continue;
			sub->cb(sub->arg, ev[i].what, ev[i].inbox_id, ev[i].mailbox_id,
			    ev[i].message_id);
		}
	}
	if (--st->dispatching == 0)
		compact_subs(st);
}

/* ---- the operations ---------------------------------------------------- */

void store_close(struct store *st)
{
	if (st != NULL)
		st->be->close(st);
}

const char *store_errmsg(struct store *st)
{
	return st != NULL ? st->be->errmsg(st) : "no store";
}

int store_inbox_add(struct store *st, const char *name, const char *password,
    struct store_inbox *out)
{
	return st->be->inbox_add(st, name, password, out);
}

int store_inbox_get(struct store *st, const char *name, struct store_inbox *out)
{
	return st->be->inbox_get(st, name, out);
}

int store_inbox_ensure(struct store *st, const char *name, const char *password,
    struct store_inbox *out)
{
	return st->be->inbox_ensure(st, name, password, out);
}

int store_inbox_set_password(struct store *st, const char *name, const char *password)
{
	return st->be->inbox_set_password(st, name, password);
}

int store_inbox_del(struct store *st, const char *name)
{
	return st->be->inbox_del(st, name);
}

int store_inbox_foreach(struct store *st, store_inbox_cb cb, void *arg)
{
	return st->be->inbox_foreach(st, cb, arg);
}

int store_begin(struct store *st)
{
	return st->be->begin(st);
}

int store_commit(struct store *st)
{
	return st->be->commit(st);
}

void store_rollback(struct store *st)
{
	st->be->rollback(st);
}

int store_message_add(struct store *st, const struct store_new_message *msg, int64_t *id)
{
	return st->be->message_add(st, msg, id);
}

int store_inbox_prune(struct store *st, int64_t inbox_id, uint64_t keep)
{
	return st->be->inbox_prune(st, inbox_id, keep);
}

int store_prune_older(struct store *st, int64_t before, uint64_t *pruned)
{
	return st->be->prune_older(st, before, pruned);
}

int store_space(struct store *st, struct store_space *out)
{
	return st->be->space(st, out);
}

int store_vacuum_step(struct store *st, unsigned pages)
{
	return st->be->vacuum_step(st, pages);
}

int store_make_incremental(struct store *st)
{
	return st->be->make_incremental(st);
}

int store_inbox_counts(struct store *st, store_inbox_count_cb cb, void *arg)
{
	return st->be->inbox_counts(st, cb, arg);
}

int store_message_foreach(struct store *st, const char *inbox, store_message_cb cb, void *arg)
{
	return st->be->message_foreach(st, inbox, cb, arg);
}

int store_message_get_info(struct store *st, int64_t id, store_message_cb cb, void *arg)
{
	return st->be->message_get_info(st, id, cb, arg);
}

int store_message_query(struct store *st, const struct store_query *q,
    store_message_cb cb, void *arg, uint64_t *total)
{
	return st->be->message_query(st, q, cb, arg, total, NULL);
}

int store_message_query_counted(struct store *st, const struct store_query *q,
    store_message_cb cb, void *arg, uint64_t *total, uint64_t *unseen)
{
	return st->be->message_query(st, q, cb, arg, total, unseen);
}

static int count_row(const struct store_message_info *m, void *arg)
{
	(void)m;
	(*(int *)arg)++;
	return 0;
}

/* The backend's own query, on the one id: what matches a listing matches
 * here, with no second evaluator to keep in step. */
int store_message_matches(struct store *st, int64_t id, const struct msg_search *s)
{
	struct store_query q = { .before_id = id + 1, .after_id = id - 1, .limit = 1,
	    .search = s };
	int rows = 0, rc;

	if (id <= 0 || id == INT64_MAX)
		return 0;
	if ((rc = st->be->message_query(st, &q, count_row, &rows, NULL, NULL)) != STORE_OK)
		return rc < 0 ? rc : 0;
	return rows > 0;
}

int store_message_read(struct store *st, int64_t id, store_sink sink, void *arg)
{
	return st->be->message_read(st, id, sink, arg);
}

int store_message_del(struct store *st, int64_t id)
{
	return st->be->message_del(st, id);
}

int store_message_del_inbox(struct store *st, const char *inbox, int64_t *count)
{
	return st->be->message_del_inbox(st, inbox, count);
}

int store_mailbox_get(struct store *st, int64_t inbox_id, const char *name,
    struct store_mailbox *out)
{
	return st->be->mailbox_get(st, inbox_id, name, out);
}

int store_mailbox_get_by_id(struct store *st, int64_t id, struct store_mailbox *out)
{
	return st->be->mailbox_get_by_id(st, id, out);
}

int store_mailbox_list(struct store *st, int64_t inbox_id, store_mailbox_cb cb, void *arg)
{
	return st->be->mailbox_list(st, inbox_id, cb, arg);
}

int store_mailbox_create(struct store *st, int64_t inbox_id, const char *name,
    struct store_mailbox *out)
{
	return st->be->mailbox_create(st, inbox_id, name, out);
}

int store_mailbox_delete(struct store *st, int64_t mailbox_id)
{
	return st->be->mailbox_delete(st, mailbox_id);
}

int store_mailbox_rename(struct store *st, int64_t inbox_id, const char *from, const char *to)
{
	return st->be->mailbox_rename(st, inbox_id, from, to);
}

int store_mailbox_status(struct store *st, int64_t mailbox_id, struct store_mailbox_status *out)
{
	return st->be->mailbox_status(st, mailbox_id, out);
}

int store_mailbox_claim_recent(struct store *st, int64_t mailbox_id, uint32_t *above)
{
	return st->be->mailbox_claim_recent(st, mailbox_id, above);
}

int store_mailbox_keywords(struct store *st, int64_t mailbox_id, store_name_cb cb, void *arg)
{
	return st->be->mailbox_keywords(st, mailbox_id, cb, arg);
}

struct kw_room {
	const char *const *kw;
	size_t n;
	bool *known;                 /* kw[i] is in use already */
	unsigned in_use;
};

static int kw_room_cb(const char *name, void *arg)
{
	struct kw_room *r = arg;
	size_t i;

	r->in_use++;
	for (i = 0; i < r->n; i++)
		if (!r->known[i] && strcmp(r->kw[i], name) == 0)
			r->known[i] = true;
	return 0;
}

int store_mailbox_keywords_room(struct store *st, int64_t mailbox_id, const char *const *kw,
    size_t n, unsigned *in_use)
{
	struct kw_room r = { .kw = kw, .n = n };
	size_t i, j, fresh = 0;
	int rc;

	if ((r.known = calloc(n ? n : 1, sizeof(*r.known))) == NULL)
		return STORE_FULL;
	rc = store_mailbox_keywords(st, mailbox_id, kw_room_cb, &r);
	/* Each new keyword once, however often the request names it. */
	for (i = 0; i < n && rc == STORE_OK; i++) {
		for (j = 0; j < i && (r.known[j] || strcmp(kw[j], kw[i]) != 0); j++)
			;
		if (!r.known[i] && j == i)
			fresh++;
	}
	free(r.known);
	if (in_use != NULL)
		*in_use = r.in_use;
	if (rc == STORE_OK && fresh > 0 && r.in_use + fresh > st->limits.keywords)
		rc = STORE_LIMIT;
	return rc;
}

int store_mailbox_vanished(struct store *st, int64_t mailbox_id, uint64_t since,
    store_uid_cb cb, void *arg)
{
	return st->be->mailbox_vanished(st, mailbox_id, since, cb, arg);
}

int store_subscription_set(struct store *st, int64_t inbox_id, const char *name, bool on)
{
	return st->be->subscription_set(st, inbox_id, name, on);
}

int store_subscription_list(struct store *st, int64_t inbox_id, store_name_cb cb, void *arg)
{
	return st->be->subscription_list(st, inbox_id, cb, arg);
}

int store_mailbox_foreach(struct store *st, int64_t mailbox_id, store_msg_cb cb, void *arg)
{
	return st->be->mailbox_foreach(st, mailbox_id, cb, arg);
}

int store_mailbox_changes(struct store *st, int64_t mailbox_id, uint64_t since,
    store_msg_cb cb, void *arg)
{
	return st->be->mailbox_changes(st, mailbox_id, since, cb, arg);
}

int store_mailbox_state(struct store *st, int64_t mailbox_id, struct store_mailbox_state *out)
{
	return st->be->mailbox_state(st, mailbox_id, out);
}

int store_message_set_flags(struct store *st, int64_t id, unsigned add, unsigned remove)
{
	return st->be->message_set_flags(st, id, add, remove);
}

int store_message_copy(struct store *st, int64_t id, int64_t dest_mailbox,
    int64_t *new_id, uint32_t *new_uid)
{
	return st->be->message_copy(st, id, dest_mailbox, new_id, new_uid);
}

int store_message_move(struct store *st, int64_t id, int64_t dest_mailbox, uint32_t *new_uid)
{
	return st->be->message_move(st, id, dest_mailbox, new_uid);
}

int store_message_store(struct store *st, int64_t id, enum store_flags_op op, unsigned flags,
    const char *const *keywords, size_t n_keywords, uint64_t unchangedsince,
    uint64_t *modseq)
{
	return st->be->message_store(st, id, op, flags, keywords, n_keywords, unchangedsince,
	    modseq);
}

int store_message_state(struct store *st, int64_t id, unsigned *flags, char *kw, size_t kwsize,
    uint64_t *modseq)
{
	return st->be->message_state(st, id, flags, kw, kwsize, modseq);
}

int store_message_structure(struct store *st, int64_t id, void **blob, size_t *len)
{
	return st->be->message_structure(st, id, blob, len);
}

int store_message_set_structure(struct store *st, int64_t id, const void *blob, size_t len)
{
	return st->be->message_set_structure(st, id, blob, len);
}

int store_message_read_range(struct store *st, int64_t id, uint64_t offset, uint64_t len,
    store_sink sink, void *arg)
{
	return st->be->message_read_range(st, id, offset, len, sink, arg);
}

bool store_poll_external(struct store *st)
{
	return st->be->poll_external(st);
}

int store_integrity_check(struct store *st)
{
	return st->be->integrity_check(st);
}

int store_scope_counts(struct store *st, int64_t inbox_id, uint64_t *messages, uint64_t *unseen)
{
	return st->be->scope_counts(st, inbox_id, messages, unseen);
}

int store_keyword_counts(struct store *st, store_keyword_cb cb, void *arg)
{
	return st->be->keyword_counts(st, cb, arg);
}
