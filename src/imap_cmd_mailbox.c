/*
 * IMAP mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS (APPEND: imap_cmd_append.c).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailsnare/imap_date.h"
#include "mailsnare/log.h"
#include "imap_session.h"

#define NAME_MAX_ STORE_MAILBOX_NAME_MAX

static void reply_store_error(struct imap_session *s, const char *tag, int rc)
{
	if (rc == STORE_NOTFOUND)
		imap_tagged(s, tag, "NO", "[NONEXISTENT] Mailbox does not exist");
	else if (rc == STORE_EXISTS)
		imap_tagged(s, tag, "NO", "[ALREADYEXISTS] Mailbox already exists");
	else if (rc == STORE_LIMIT)
		imap_tagged(s, tag, "NO", "[LIMIT] %s", store_errmsg(s->srv->store));
	else
		imap_tagged(s, tag, "NO", "[SERVERBUG] %s", store_errmsg(s->srv->store));
}

/* One mailbox-name argument (imap_session.h); false after a BAD (not a mailbox argument
 * at all) or a NO (a valid astring that names no mailbox: empty, too long,
 * or not modified UTF-7 before ENABLE UTF8=ACCEPT) was sent. */
bool imap_mailbox_arg(struct imap_session *s, const struct imap_command *cmd, size_t i,
    char *out)
{
	const char *str;
	size_t len;

	if (cmd->nargs <= i || !imap_arg_list_mailbox(&cmd->args[i], &str, &len) ||
	    memchr(str, '\0', len) != NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Invalid mailbox name");
		return false;
	}
	if (imap_arg_mailbox(s, &cmd->args[i], out, NAME_MAX_))
		return true;
	if (len == 0)
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] Empty mailbox name");
	else if (len >= NAME_MAX_)
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] Mailbox name too long");
	else   /* Dovecot's words */
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] Mailbox name is not valid mUTF-7");
	return false;
}

/* ---- SELECT / EXAMINE --------------------------------------------------- */

/* The mailbox's keywords, space-separated, as long as they come. */
struct kwlist {
	char *buf;
	size_t len, cap;
};

static int kw_collect(const char *name, void *arg)
{
	struct kwlist *k = arg;
	size_t n = strlen(name);
	char *p;

	if (k->len + n + 2 > k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 256;
		while (cap < k->len + n + 2)
			cap *= 2;
		if ((p = realloc(k->buf, cap)) == NULL)
			return STORE_FULL;
		k->buf = p;
		k->cap = cap;
	}
	if (k->len)
		k->buf[k->len++] = ' ';
	memcpy(k->buf + k->len, name, n + 1);
	k->len += n;
	return 0;
}

static void select_report(struct imap_session *s)
{
	struct imap_view *v = s->view;
	struct kwlist kw = { 0 };
	size_t i;

	(void)store_mailbox_keywords(s->srv->store, v->mb.id, kw_collect, &kw);
	imap_view_send_flags(s, kw.len ? kw.buf : "");
	free(kw.buf);
	imap_view_sync(s, true);
	if (v->n == 0)
		imap_printf(s, s->rev2 ? "* 0 EXISTS\r\n" : "* 0 EXISTS\r\n* 0 RECENT\r\n");
	if (s->rev2) {
		/* RFC 9051 §6.3.2: the mailbox name as the server has it. */
		imap_printf(s, "* LIST () \"/\" ");
		imap_write_mailbox(s, v->mb.name);
		imap_printf(s, "\r\n");
	}
	for (i = 0; i < v->n && !s->rev2; i++) {
		if (!(v->msgs[i].flags & STORE_FLAG_SEEN)) {
			imap_printf(s, "* OK [UNSEEN %zu] First unseen\r\n", i + 1);
			break;
		}
	}
	imap_printf(s, "* OK [UIDVALIDITY %u] UIDs valid\r\n", v->mb.uidvalidity);
	imap_printf(s, "* OK [UIDNEXT %u] Predicted next UID\r\n", v->mb.uidnext);
	imap_printf(s, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
	    (unsigned long long)v->mb.highestmodseq);
}

/* SELECT's parameters: (CONDSTORE) and (QRESYNC (uidvalidity modseq
 * [known-uids])), RFC 7162. Returns false after a BAD. */
struct select_params {
	bool qresync;
	uint32_t uidvalidity;
	uint64_t modseq;
	const char *known_uids;     /* NULL: all */
};

static bool select_params(struct imap_session *s, const struct imap_command *cmd,
    struct select_params *p)
{
	const struct imap_arg *list, *q;
	size_t i;

	if (cmd->nargs == 1)
		return true;
	if (cmd->nargs != 2 || cmd->args[1].type != IMAP_ARG_LIST)
		goto bad;
	list = cmd->args[1].list;
	for (i = 0; i < cmd->args[1].count; i++) {
		if (imap_arg_equals(&list[i], "CONDSTORE")) {
			s->condstore = true;
			continue;
		}
		if (!imap_arg_equals(&list[i], "QRESYNC") || i + 1 >= cmd->args[1].count)
			goto bad;
		if (!s->qresync) {
			imap_tagged(s, cmd->tag, "BAD", "QRESYNC needs ENABLE QRESYNC first");
			return false;
		}
		q = &list[++i];
		if (q->type != IMAP_ARG_LIST || q->count < 2 ||
		    !imap_arg_number(&q->list[0], &p->uidvalidity) ||
		    !imap_arg_number64(&q->list[1], &p->modseq) ||
		    (q->count >= 3 && q->list[2].type != IMAP_ARG_ATOM))
			goto bad;
		p->qresync = true;
		p->known_uids = q->count >= 3 ? q->list[2].str : NULL;
	}
	return true;
bad:
	imap_tagged(s, cmd->tag, "BAD", "Invalid SELECT parameters");
	return false;
}

struct vanished_sel {
	struct imap_seqset known, out;
	bool all;
};

static int sel_vanished_add(uint32_t uid, void *arg)
{
	struct vanished_sel *v = arg;

	if (v->all || imap_seqset_contains(&v->known, uid))
		imap_seqset_add(&v->out, uid, uid);
	return 0;
}

/* QRESYNC resync (RFC 7162 §3.2.5): what vanished and what changed since
 * the client's modseq, if its UIDVALIDITY still holds. */
static void select_qresync(struct imap_session *s, const struct select_params *p)
{
	struct imap_view *v = s->view;
	struct vanished_sel vs = { .all = p->known_uids == NULL };
	struct imap_seqset parsed;
	size_t i;

	if (p->uidvalidity != v->mb.uidvalidity)
		return;
	imap_seqset_init(&vs.known);
	imap_seqset_init(&vs.out);
	imap_seqset_init(&parsed);
	if (!vs.all && (imap_seqset_parse(p->known_uids, strlen(p->known_uids), 10000, &parsed) !=
	    IMAP_SEQ_OK || imap_seqset_eval(&parsed, IMAP_SEQ_UID, UINT32_MAX, NULL, &vs.known) !=
	    IMAP_SEQ_OK))
		vs.all = true;
	if (store_mailbox_vanished(s->srv->store, v->mb.id, p->modseq, sel_vanished_add, &vs) ==
	    STORE_OK) {
		imap_seqset_normalize(&vs.out);
		imap_send_vanished(s, &vs.out, true);
	}
	for (i = 0; i < v->n; i++)
		if (v->msgs[i].modseq > p->modseq)
			imap_report_flags(s, i, true);
	imap_seqset_free(&vs.known);
	imap_seqset_free(&vs.out);
	imap_seqset_free(&parsed);
}

void imap_cmd_select(struct imap_session *s, const struct imap_command *cmd)
{
	bool examine = strcmp(cmd->verb, "EXAMINE") == 0;
	struct select_params p = { 0 };
	char name[NAME_MAX_];
	struct imap_view *v;
	int rc;

	if (!imap_mailbox_arg(s, cmd, 0, name) || !select_params(s, cmd, &p))
		return;
	/* Selecting closes the previous selection, even if this one fails. */
	if (s->view != NULL && s->qresync)
		imap_printf(s, "* OK [CLOSED] Previous mailbox closed\r\n");
	imap_view_free(s->view);
	s->view = NULL;
	imap_search_saved_reset(s);
	s->state = IMAP_AUTH;
	if ((v = calloc(1, sizeof(*v))) == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	if ((rc = store_mailbox_get(s->srv->store, s->inbox.id, name, &v->mb)) != STORE_OK) {
		free(v);
		reply_store_error(s, cmd->tag, rc);
		return;
	}
	v->readonly = examine;
	s->view = v;
	s->state = IMAP_SELECTED;
	select_report(s);
	if (p.qresync)
		select_qresync(s, &p);
	imap_tagged(s, cmd->tag, "OK", "[%s] %s completed", examine ? "READ-ONLY" : "READ-WRITE",
	    cmd->verb);
}

/* ---- CREATE / DELETE / RENAME / SUBSCRIBE ------------------------------- */

static bool name_ok(const char *name)
{
	size_t i, n = strlen(name);

	/* No control characters in new names (modified UTF-7 can carry
	 * them; Dovecot refuses them too). */
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	/* No empty levels, no leading or trailing delimiter, no wildcards. */
	return n > 0 && name[0] != '/' && name[n - 1] != '/' && !strstr(name, "//") &&
	    !strpbrk(name, "*%") && strcmp(name, "INBOX") != 0;
}

/* RFC 3501 §6.3.3: the server creates missing superiors. */
static int create_with_parents(struct imap_session *s, const char *name)
{
	char parent[NAME_MAX_];
	const char *p = name;
	int rc;

	while ((p = strchr(p, '/')) != NULL) {
		snprintf(parent, sizeof(parent), "%.*s", (int)(p - name), name);
		rc = store_mailbox_create(s->srv->store, s->inbox.id, parent, NULL);
		if (rc != STORE_OK && rc != STORE_EXISTS)
			return rc;
		p++;
	}
	return store_mailbox_create(s->srv->store, s->inbox.id, name, NULL);
}

void imap_cmd_create(struct imap_session *s, const struct imap_command *cmd)
{
	char name[NAME_MAX_];
	size_t n;
	int rc;

	if (!imap_mailbox_arg(s, cmd, 0, name))
		return;
	n = strlen(name);
	if (n > 1 && name[n - 1] == '/')   /* "foo/" creates foo (RFC 3501) */
		name[n - 1] = '\0';
	if (strcmp(name, "INBOX") == 0) {
		imap_tagged(s, cmd->tag, "NO", "[ALREADYEXISTS] INBOX always exists");
		return;
	}
	if (!name_ok(name)) {
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	/* Subscriptions are the client's own list (RFC 3501 §6.3.6):
	 * CREATE does not add to it, as in Dovecot. */
	if ((rc = create_with_parents(s, name)) != STORE_OK) {
		reply_store_error(s, cmd->tag, rc);
		return;
	}
	imap_tagged(s, cmd->tag, "OK", "CREATE completed");
}

void imap_cmd_delete(struct imap_session *s, const struct imap_command *cmd)
{
	char name[NAME_MAX_];
	struct store_mailbox mb;
	int rc;

	if (!imap_mailbox_arg(s, cmd, 0, name))
		return;
	if (strcmp(name, "INBOX") == 0) {
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] INBOX cannot be deleted");
		return;
	}
	if ((rc = store_mailbox_get(s->srv->store, s->inbox.id, name, &mb)) != STORE_OK) {
		reply_store_error(s, cmd->tag, rc);
		return;
	}
	/* Keeping a parent as \Noselect is not supported: refuse instead. */
	if (imap_mailbox_has_children(s, name)) {
		imap_tagged(s, cmd->tag, "NO", "[INUSE] Mailbox has children; delete them first");
		return;
	}
	/* The session would be left selected on nothing: CLOSE first. */
	if (s->view && s->view->mb.id == mb.id) {
		imap_tagged(s, cmd->tag, "NO", "[INUSE] Mailbox is selected; CLOSE or UNSELECT it first");
		return;
	}
	/* The subscription stays (RFC 3501 §6.3.6: the server must not
	 * remove a name from it unilaterally); LIST (SUBSCRIBED) shows it
	 * as \NonExistent. */
	if ((rc = store_mailbox_delete(s->srv->store, mb.id)) != STORE_OK) {
		reply_store_error(s, cmd->tag, rc);
		return;
	}
	imap_tagged(s, cmd->tag, "OK", "DELETE completed");
}

void imap_cmd_rename(struct imap_session *s, const struct imap_command *cmd)
{
	char from[NAME_MAX_], to[NAME_MAX_];
	int rc;

	if (!imap_mailbox_arg(s, cmd, 0, from) || !imap_mailbox_arg(s, cmd, 1, to))
		return;
	if (!name_ok(to)) {
		imap_tagged(s, cmd->tag, "NO", "[CANNOT] Invalid mailbox name");
		return;
	}
	/* Subscriptions stay as they were, as Dovecot does: they are names
	 * the client keeps (RFC 3501 §6.3.6); the old name stays subscribed
	 * (LIST (SUBSCRIBED) shows it \NonExistent). */
	if ((rc = store_mailbox_rename(s->srv->store, s->inbox.id, from, to)) != STORE_OK) {
		reply_store_error(s, cmd->tag, rc);
		return;
	}
	/* A renamed selected mailbox keeps its view; its name changes. */
	if (s->view && strcmp(s->view->mb.name, from) == 0 && strcmp(from, "INBOX") != 0)
		snprintf(s->view->mb.name, sizeof(s->view->mb.name), "%s", to);
	imap_tagged(s, cmd->tag, "OK", "RENAME completed");
}

void imap_cmd_subscribe(struct imap_session *s, const struct imap_command *cmd)
{
	bool on = strcmp(cmd->verb, "SUBSCRIBE") == 0;
	char name[NAME_MAX_];
	int rc;

	if (!imap_mailbox_arg(s, cmd, 0, name))
		return;
	rc = store_subscription_set(s->srv->store, s->inbox.id, name, on);
	if (rc != STORE_OK)
		reply_store_error(s, cmd->tag, rc);
	else
		imap_tagged(s, cmd->tag, "OK", "%s completed", cmd->verb);
}

/* ---- STATUS -------------------------------------------------------------- */

static bool status_known(const char *item)
{
	static const char *const names[] = { "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY",
		"UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(item, names[i]) == 0)
			return true;
	return false;
}

bool imap_status_items_valid(const struct imap_arg *items)
{
	size_t i;

	if (items->type != IMAP_ARG_LIST || items->count == 0)
		return false;
	for (i = 0; i < items->count; i++)
		if (items->list[i].type != IMAP_ARG_ATOM || !status_known(items->list[i].str))
			return false;
	return true;
}

static uint64_t status_value(struct imap_session *s, const char *item,
    const struct store_mailbox_status *st, uint32_t recent)
{
	if (strcasecmp(item, "MESSAGES") == 0)
		return st->messages;
	if (strcasecmp(item, "RECENT") == 0)
		return recent;
	if (strcasecmp(item, "UIDNEXT") == 0)
		return st->uidnext;
	if (strcasecmp(item, "UIDVALIDITY") == 0)
		return st->uidvalidity;
	if (strcasecmp(item, "UNSEEN") == 0)
		return st->unseen;
	if (strcasecmp(item, "SIZE") == 0)
		return st->size;
	if (strcasecmp(item, "DELETED") == 0)
		return st->deleted;
	s->condstore = true;   /* HIGHESTMODSEQ: a CONDSTORE enabling command */
	return st->highestmodseq;
}

static uint32_t view_recent(const struct imap_view *v)
{
	uint32_t n = 0;
	size_t i;

	for (i = 0; i < v->n; i++)
		n += (v->msgs[i].flags & IMAP_FLAG_RECENT) != 0;
	return n;
}

int imap_status_write(struct imap_session *s, const struct store_mailbox *mb,
    const struct imap_arg *items)
{
	struct store_mailbox_status st;
	int rc = store_mailbox_status(s->srv->store, mb->id, &st);

	if (rc == STORE_OK)
		imap_status_reply(s, mb, items, &st);
	return rc;
}

void imap_status_reply(struct imap_session *s, const struct store_mailbox *mb,
    const struct imap_arg *items, const struct store_mailbox_status *st)
{
	uint32_t recent;
	size_t i;

	recent = s->view && s->view->mb.id == mb->id ? view_recent(s->view) : st->recent;
	imap_printf(s, "* STATUS ");
	imap_write_mailbox(s, mb->name);
	imap_printf(s, " (");
	for (i = 0; i < items->count; i++) {
		char up[32];
		size_t k;
		for (k = 0; k + 1 < sizeof(up) && items->list[i].str[k]; k++)
			up[k] = (char)toupper((unsigned char)items->list[i].str[k]);
		up[k] = '\0';
		imap_printf(s, "%s%s %llu", i ? " " : "", up,
		    (unsigned long long)status_value(s, up, st, recent));
	}
	imap_printf(s, ")\r\n");
}

void imap_cmd_status(struct imap_session *s, const struct imap_command *cmd)
{
	char name[NAME_MAX_];
	struct store_mailbox mb;
	int rc;

	if (!imap_mailbox_arg(s, cmd, 0, name))
		return;
	if (cmd->nargs != 2 || !imap_status_items_valid(&cmd->args[1])) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: STATUS mailbox (items)");
		return;
	}
	rc = store_mailbox_get(s->srv->store, s->inbox.id, name, &mb);
	if (rc == STORE_OK)
		rc = imap_status_write(s, &mb, &cmd->args[1]);
	if (rc != STORE_OK)
		reply_store_error(s, cmd->tag, rc);
	else
		imap_tagged(s, cmd->tag, "OK", "STATUS completed");
}
