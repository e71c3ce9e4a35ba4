/*
 * IMAP commands that change messages of the selected mailbox: STORE, COPY
 * and MOVE (and their UID forms). CHECK, CLOSE and EXPUNGE are in
 * imap_cmd_expunge.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/log.h"
#include "imap_session.h"

/* ---- STORE ---------------------------------------------------------------- */

struct store_req {
	enum store_flags_op op;
	bool silent;
	unsigned flags;
	const char *kw[64];
	size_t nkw;
	uint64_t unchangedsince;      /* 0: unconditional */
	struct imap_seqset modified;  /* failed UNCHANGEDSINCE (RFC 7162) */
	bool expunged;                /* the set named a message expunged elsewhere */
};

/* "(UNCHANGEDSINCE n)" before the item; returns the index of the item. */
static size_t store_modifiers(struct imap_session *s, const struct imap_command *cmd,
    struct store_req *r)
{
	const struct imap_arg *mods = &cmd->args[1];

	if (cmd->nargs < 2 || mods->type != IMAP_ARG_LIST)
		return 1;
	if (mods->count != 2 || !imap_arg_equals(&mods->list[0], "UNCHANGEDSINCE") ||
	    !imap_arg_number64(&mods->list[1], &r->unchangedsince))
		return 0;
	imap_condstore_enable(s);
	return 2;
}

static bool store_parse(struct imap_session *s, const struct imap_command *cmd,
    struct store_req *r)
{
	const char *item;
	size_t n, at = store_modifiers(s, cmd, r);

	if (at == 0 || cmd->nargs < at + 2 || cmd->args[at].type != IMAP_ARG_ATOM) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: STORE set [(UNCHANGEDSINCE n)]"
		    " (+|-)FLAGS[.SILENT] (flags)");
		return false;
	}
	item = cmd->args[at].str;
	r->op = item[0] == '+' ? STORE_FLAGS_ADD : item[0] == '-' ? STORE_FLAGS_REMOVE
	    : STORE_FLAGS_SET;
	item += r->op != STORE_FLAGS_SET;
	n = strlen(item);
	r->silent = n > 7 && strcasecmp(item + n - 7, ".SILENT") == 0;
	if (strncasecmp(item, "FLAGS", 5) != 0 || n != (r->silent ? 12u : 5u)) {
		imap_tagged(s, cmd->tag, "BAD", "Unknown STORE item");
		return false;
	}
	/* Flags come as one list, or as bare flags (RFC 3501 allows both). */
	if (cmd->nargs == at + 2)
		return imap_arg_flags(s, cmd->tag, &cmd->args[at + 1], &r->flags, r->kw, &r->nkw,
		    64);
	struct imap_arg list = { .type = IMAP_ARG_LIST, .list = &cmd->args[at + 1],
		.count = cmd->nargs - at - 1 };
	return imap_arg_flags(s, cmd->tag, &list, &r->flags, r->kw, &r->nkw, 64);
}

/* Applies the STORE to view message i; reports its new flags unless
 * silent. */
static int store_one(struct imap_session *s, size_t i, struct store_req *r, bool uid)
{
	struct imap_msg *m = &s->view->msgs[i];
	char kw[2048];
	unsigned flags;
	uint64_t modseq, before = m->modseq;
	int rc = store_message_store(s->srv->store, m->id, r->op, r->flags, r->kw, r->nkw,
	    r->unchangedsince, NULL);

	if (rc == STORE_NOTFOUND) {
		r->expunged = true;   /* expunged elsewhere: nothing to report yet */
		return STORE_OK;
	}
	if (rc == STORE_MODIFIED) {
		imap_seqset_add(&r->modified, uid ? m->uid : i + 1, uid ? m->uid : i + 1);
		return STORE_OK;
	}
	if (rc == STORE_OK)
		rc = store_message_state(s->srv->store, m->id, &flags, kw, sizeof(kw), &modseq);
	if (rc != STORE_OK)
		return rc;
	/* Its keywords may include one another session just introduced. */
	imap_view_announce_keywords(s, (const char *const[]){ kw }, 1);
	imap_view_set_state(m, flags, kw, modseq);
	if (!r->silent)
		imap_report_flags(s, i, uid);
	else if (s->condstore && modseq != before) {
		/* RFC 7162 §3.1.3: the new MODSEQ even with .SILENT. */
		imap_printf(s, "* %zu FETCH (", i + 1);
		if (uid)
			imap_printf(s, "UID %u ", m->uid);
		imap_printf(s, "MODSEQ (%llu))\r\n", (unsigned long long)modseq);
	}
	return STORE_OK;
}

void imap_cmd_store(struct imap_session *s, const struct imap_command *cmd)
{
	struct store_req r = { 0 };
	struct imap_seqset set;
	struct imap_seq_iter it;
	char modified[512];
	uint32_t n;
	int rc = STORE_OK;

	imap_seqset_init(&r.modified);
	if (!store_parse(s, cmd, &r))
		return;
	if (s->view->readonly) {
		imap_tagged(s, cmd->tag, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	imap_seqset_init(&set);
	if (!imap_view_select(s, cmd->tag, cmd->args[0].str, cmd->uid, &set)) {
		imap_seqset_free(&set);
		return;
	}
	/* Beyond max-keywords no new keyword is made (as Dovecot, NO and
	 * nothing stored). Keywords this session knows are not new: no
	 * look-up for them. */
	if (r.op != STORE_FLAGS_REMOVE && !imap_view_keywords_known(s, r.kw, r.nkw) &&
	    (rc = store_mailbox_keywords_room(s->srv->store, s->view->mb.id, r.kw, r.nkw,
	    NULL)) != STORE_OK) {
		imap_seqset_free(&set);
		imap_seqset_free(&r.modified);
		if (rc == STORE_LIMIT)
			imap_tagged(s, cmd->tag, "NO", "[LIMIT] Too many keywords in this mailbox"
			    " (max %u)", store_get_limits(s->srv->store)->keywords);
		else
			imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] %s", store_errmsg(s->srv->store));
		return;
	}
	/* New keywords go to FLAGS before any FETCH shows them; other
	 * sessions hear of them at their next sync. */
	if (r.op != STORE_FLAGS_REMOVE)
		imap_view_announce_keywords(s, r.kw, r.nkw);
	imap_seq_iter_init(&it, &set);
	while (rc == STORE_OK && imap_seq_iter_next(&it, &n)) {
		long i = cmd->uid ? imap_view_find_uid(s->view, n) : (long)n - 1;
		if (i < 0 || (size_t)i >= s->view->n)
			continue;
		if (s->view->msgs[i].gone)
			r.expunged = true;
		else
			rc = store_one(s, (size_t)i, &r, cmd->uid);
	}
	imap_seqset_free(&set);
	imap_seqset_normalize(&r.modified);
	if (rc != STORE_OK)
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] %s", store_errmsg(s->srv->store));
	else if (r.expunged)
		/* RFC 2180 §4.2.2, as Dovecot: the others were stored. */
		imap_tagged(s, cmd->tag, "NO", "[EXPUNGEISSUED] Some of the messages no longer exist");
	else if (r.modified.count > 0 &&
	    imap_seqset_format(&r.modified, modified, sizeof(modified)) < sizeof(modified))
		imap_tagged(s, cmd->tag, "OK", "[MODIFIED %s] Conditional STORE failed", modified);
	else
		imap_tagged(s, cmd->tag, "OK", "STORE completed");
	imap_seqset_free(&r.modified);
}

/* ---- COPY / MOVE ---------------------------------------------------------- */

/*
 * The destination's keywords while a COPY or MOVE goes on, for
 * max-keywords. A copy that would make the destination hold more goes
 * without the keywords that would be new there beyond the limit, rather
 * than the command failing: a client that cannot COPY or MOVE cannot file
 * its mail at all, over metadata RFC 3501 asks a COPY to keep only with
 * SHOULD (and Dovecot's maildir, its keyword file full, drops them too:
 * "Keyword limit reached"). STORE and APPEND, which name the keywords
 * themselves, are refused with NO [LIMIT] instead.
 */
#define COPY_KW_BUF (64 * 1024)
#define COPY_KW_DROP 64

struct kw_dest {
	char **names;
	size_t n, cap;
	unsigned limit;
	char *buf;                  /* a copied message's keywords */
};

static bool kw_dest_has(const struct kw_dest *kd, const char *name)
{
	size_t i;

	for (i = 0; i < kd->n; i++)
		if (strcmp(kd->names[i], name) == 0)
			return true;
	return false;
}

static int kw_dest_add(const char *name, void *arg)
{
	struct kw_dest *kd = arg;
	char **p;

	if (kd->n == kd->cap) {
		size_t cap = kd->cap ? kd->cap * 2 : 16;
		if ((p = realloc(kd->names, cap * sizeof(*p))) == NULL)
			return STORE_FULL;
		kd->names = p;
		kd->cap = cap;
	}
	if ((kd->names[kd->n] = strdup(name)) == NULL)
		return STORE_FULL;
	kd->n++;
	return 0;
}

static void kw_dest_free(struct kw_dest *kd)
{
	size_t i;

	for (i = 0; i < kd->n; i++)
		free(kd->names[i]);
	free(kd->names);
	free(kd->buf);
}

static int kw_dest_load(struct imap_session *s, int64_t dest, struct kw_dest *kd)
{
	memset(kd, 0, sizeof(*kd));
	kd->limit = store_get_limits(s->srv->store)->keywords;
	if ((kd->buf = malloc(COPY_KW_BUF)) == NULL)
		return STORE_FULL;
	return store_mailbox_keywords(s->srv->store, dest, kw_dest_add, kd);
}

/* The keywords of message id, now in the destination: those new there
 * are counted in, and those beyond the limit taken off it again. */
static int kw_trim(struct imap_session *s, struct kw_dest *kd, int64_t id)
{
	const char *drop[COPY_KW_DROP];
	size_t ndrop = 0;
	uint64_t modseq = 0;
	char *kw, *save = NULL;
	int rc = store_message_state(s->srv->store, id, NULL, kd->buf, COPY_KW_BUF, &modseq);

	for (kw = strtok_r(kd->buf, " ", &save); rc == STORE_OK && kw != NULL;
	    kw = strtok_r(NULL, " ", &save)) {
		if (kw_dest_has(kd, kw))
			continue;
		if (kd->n < kd->limit)
			rc = kw_dest_add(kw, kd);
		else if (ndrop < COPY_KW_DROP)
			drop[ndrop++] = kw;
		if (rc == STORE_OK && ndrop == COPY_KW_DROP) {
			rc = store_message_store(s->srv->store, id, STORE_FLAGS_REMOVE, 0, drop, ndrop,
			    0, &modseq);
			ndrop = 0;
		}
	}
	if (rc == STORE_OK && ndrop > 0)
		rc = store_message_store(s->srv->store, id, STORE_FLAGS_REMOVE, 0, drop, ndrop, 0,
		    &modseq);
	return rc;
}

struct copy_result {
	struct imap_seqset src, dst;
	bool expunged;              /* the set named a message expunged elsewhere */
	struct kw_dest kw;
};

static int copy_one(struct imap_session *s, const struct imap_msg *m, int64_t dest, bool move,
    struct copy_result *res)
{
	int64_t id = m->id;
	uint32_t uid = 0;
	int rc = move ? store_message_move(s->srv->store, m->id, dest, &uid)
	    : store_message_copy(s->srv->store, m->id, dest, &id, &uid);

	if (rc == STORE_NOTFOUND) {
		res->expunged = true;   /* expunged elsewhere meanwhile */
		return STORE_OK;
	}
	if (rc == STORE_OK)
		rc = kw_trim(s, &res->kw, id);
	if (rc == STORE_OK) {
		imap_seqset_add(&res->src, m->uid, m->uid);
		imap_seqset_add(&res->dst, uid, uid);
	}
	return rc;
}

static int copy_set(struct imap_session *s, const struct imap_seqset *set, bool uid,
    int64_t dest, bool move, struct copy_result *res)
{
	struct store *st = s->srv->store;
	struct imap_seq_iter it;
	uint32_t n;
	int rc = kw_dest_load(s, dest, &res->kw);

	if (rc != STORE_OK)
		return rc;
	rc = store_begin(st);

	imap_seq_iter_init(&it, set);
	while (rc == STORE_OK && imap_seq_iter_next(&it, &n)) {
		long i = uid ? imap_view_find_uid(s->view, n) : (long)n - 1;
		if (i < 0 || (size_t)i >= s->view->n)
			continue;
		if (s->view->msgs[i].gone)
			res->expunged = true;
		else
			rc = copy_one(s, &s->view->msgs[i], dest, move, res);
	}
	if (rc == STORE_OK)
		return store_commit(st);
	store_rollback(st);
	return rc;
}

/* COPYUID's two UID sets are in the same order (RFC 4315): the sets are
 * built in ascending source order and destination UIDs ascend with them. */
static void copy_reply(struct imap_session *s, const struct imap_command *cmd, bool move,
    uint32_t uidvalidity, struct copy_result *res)
{
	char src[4096], dst[4096];

	imap_seqset_normalize(&res->src);
	imap_seqset_normalize(&res->dst);
	if (res->expunged && res->src.count == 0) {
		/* RFC 2180 §4.4.1: nothing to copy; as Dovecot. */
		imap_tagged(s, cmd->tag, "NO", "[EXPUNGEISSUED] Some of the requested messages"
		    " no longer exist");
		return;
	}
	if (res->src.count == 0 || imap_seqset_format(&res->src, src, sizeof(src)) >= sizeof(src) ||
	    imap_seqset_format(&res->dst, dst, sizeof(dst)) >= sizeof(dst)) {
		imap_tagged(s, cmd->tag, "OK", "%s completed", move ? "MOVE" : "COPY");
		return;
	}
	if (move) {
		/* RFC 6851 §4.3: COPYUID before the expunges. */
		imap_printf(s, "* OK [COPYUID %u %s %s] Moved\r\n", uidvalidity, src, dst);
		imap_view_sync(s, true);
		imap_tagged(s, cmd->tag, "OK", "MOVE completed");
	} else {
		imap_tagged(s, cmd->tag, "OK", "[COPYUID %u %s %s] COPY completed", uidvalidity,
		    src, dst);
	}
}

void imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd)
{
	bool move = strstr(cmd->verb, "MOVE") != NULL;
	char name[STORE_MAILBOX_NAME_MAX];
	struct store_mailbox dest;
	struct copy_result res;
	struct imap_seqset set;
	int rc;

	const char *str;
	size_t len;

	if (cmd->nargs != 2 || cmd->args[0].type != IMAP_ARG_ATOM ||
	    !imap_arg_list_mailbox(&cmd->args[1], &str, &len)) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: %s sequence-set mailbox", cmd->verb);
		return;
	}
	/* A valid astring that names no mailbox (not modified UTF-7): NO. */
	if (!imap_arg_mailbox(s, &cmd->args[1], name, sizeof(name))) {
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] Mailbox name is not valid mUTF-7");
		return;
	}
	if (move && s->view->readonly) {
		imap_tagged(s, cmd->tag, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if (store_mailbox_get(s->srv->store, s->inbox.id, name, &dest) != STORE_OK) {
		imap_tagged(s, cmd->tag, "NO", "[TRYCREATE] Mailbox does not exist");
		return;
	}
	imap_seqset_init(&set);
	imap_seqset_init(&res.src);
	imap_seqset_init(&res.dst);
	res.expunged = false;
	memset(&res.kw, 0, sizeof(res.kw));
	if (imap_view_select(s, cmd->tag, cmd->args[0].str, cmd->uid, &set)) {
		rc = copy_set(s, &set, cmd->uid, dest.id, move, &res);
		if (rc != STORE_OK)
			imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] %s", store_errmsg(s->srv->store));
		else
			copy_reply(s, cmd, move, dest.uidvalidity, &res);
	}
	imap_seqset_free(&set);
	imap_seqset_free(&res.src);
	imap_seqset_free(&res.dst);
	kw_dest_free(&res.kw);
}
