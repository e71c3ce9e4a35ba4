/*
 * IMAP mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, APPEND.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailsnare/header.h"
#include "mailsnare/imap_date.h"
#include "mailsnare/log.h"
#include "mailsnare/smtp_data.h"
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

/* One mailbox-name argument; false after a BAD (not a mailbox argument
 * at all) or a NO (a valid astring that names no mailbox: empty, too long,
 * or not modified UTF-7 before ENABLE UTF8=ACCEPT) was sent. */
static bool mailbox_arg(struct imap_session *s, const struct imap_command *cmd, size_t i,
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

	if (!mailbox_arg(s, cmd, 0, name) || !select_params(s, cmd, &p))
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

	if (!mailbox_arg(s, cmd, 0, name))
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

	if (!mailbox_arg(s, cmd, 0, name))
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

	if (!mailbox_arg(s, cmd, 0, from) || !mailbox_arg(s, cmd, 1, to))
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

	if (!mailbox_arg(s, cmd, 0, name))
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
	uint32_t recent;
	size_t i;
	int rc = store_mailbox_status(s->srv->store, mb->id, &st);

	if (rc != STORE_OK)
		return rc;
	recent = s->view && s->view->mb.id == mb->id ? view_recent(s->view) : st.recent;
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
		    (unsigned long long)status_value(s, up, &st, recent));
	}
	imap_printf(s, ")\r\n");
	return STORE_OK;
}

void imap_cmd_status(struct imap_session *s, const struct imap_command *cmd)
{
	char name[NAME_MAX_];
	struct store_mailbox mb;
	int rc;

	if (!mailbox_arg(s, cmd, 0, name))
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

/* ---- APPEND -------------------------------------------------------------- */

struct memsrc {
	const char *p;
	size_t len, pos;
};

struct normbuf {
	char *p;
	size_t len;
};

static int norm_sink(void *arg, const char *buf, size_t len)
{
	struct normbuf *n = arg;

	memcpy(n->p + n->len, buf, len);
	n->len += len;
	return 0;
}

/* Line ends as SMTP stores them: a bare LF becomes CRLF (the BDAT rule),
 * so POP3 and IMAP send CRLF lines whatever the client appended. */
static char *append_normalise(const char *in, size_t len, size_t *outlen)
{
	struct normbuf n = { malloc(len * 2 + 1), 0 };
	struct smtp_data d;

	if (n.p == NULL)
		return NULL;
	smtp_data_init(&d, false);
	(void)smtp_data_feed(&d, in, len, norm_sink, &n);
	(void)smtp_data_finish(&d, norm_sink, &n);
	*outlen = n.len;
	return n.p;
}

static ssize_t memsrc_read(void *arg, void *buf, size_t len)
{
	struct memsrc *m = arg;
	size_t n = m->len - m->pos < len ? m->len - m->pos : len;

	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

/* One message of an APPEND (RFC 3502 allows several). */
struct append_msg {
	unsigned flags;
	const char *kw[64];
	size_t nkw;
	int64_t date;
	const struct imap_arg *msg;
};

/* Parses the append-message at args[*i] ([flag-list] [date-time] literal,
 * or UTF8 (literal8) once UTF8=ACCEPT is on) and moves *i past it; false
 * after a BAD. */
static bool append_parse(struct imap_session *s, const struct imap_command *cmd, size_t *ip,
    struct append_msg *a)
{
	const struct imap_arg *args = cmd->args;
	size_t i = *ip, n = cmd->nargs;
	int zone;

	memset(a, 0, sizeof(*a));
	a->date = (int64_t)time(NULL);
	if (i < n && args[i].type == IMAP_ARG_LIST) {
		if (!imap_arg_flags(s, cmd->tag, &args[i], &a->flags, a->kw, &a->nkw, 64))
			return false;
		i++;
	}
	if (i + 1 < n && args[i].type == IMAP_ARG_QUOTED) {
		if (!imap_datetime_parse(args[i].str, args[i].len, &a->date, &zone)) {
			imap_tagged(s, cmd->tag, "BAD", "Invalid date-time");
			return false;
		}
		i++;
	}
	/* RFC 6855 §4: "UTF8 (~{n}...)" carries a message with UTF-8 headers,
	 * once UTF8=ACCEPT is enabled. */
	if (i + 1 < n && s->utf8 && imap_arg_equals(&args[i], "UTF8") &&
	    args[i + 1].type == IMAP_ARG_LIST && args[i + 1].count == 1 &&
	    args[i + 1].list[0].type == IMAP_ARG_LITERAL) {
		a->msg = &args[i + 1].list[0];
		*ip = i + 2;
		return true;
	}
	if (i >= n || args[i].type != IMAP_ARG_LITERAL) {
		imap_tagged(s, cmd->tag, "BAD",
		    "Syntax: APPEND mailbox 1*([(flags)] [date-time] literal)");
		return false;
	}
	/* NUL is not a CHAR8 (RFC 3501 §9): only a literal8 (~{n}, RFC 3516)
	 * may carry it. */
	if (!(args[i].flags & IMAP_AF_LITERAL8) && memchr(args[i].str, '\0', args[i].len) != NULL) {
		imap_tagged(s, cmd->tag, "BAD", "NUL in a literal; use a literal8 (~{n})");
		return false;
	}
	a->msg = &args[i];
	*ip = i + 1;
	return true;
}

static char *join_keywords(const char *const *kw, size_t n)
{
	size_t i, len = 1;
	char *s;

	for (i = 0; i < n; i++)
		len += strlen(kw[i]) + 1;
	if ((s = calloc(1, len)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, kw[i]);
	}
	return s;
}

/* A literal8 is stored as sent, octet for octet (RFC 3516 §4.4: the
 * client means binary); an ordinary literal is text, and gets the line
 * ends SMTP gives a message. */
static char *append_body(const struct imap_arg *msg, size_t *len)
{
	char *body;

	if (!(msg->flags & IMAP_AF_LITERAL8))
		return append_normalise(msg->str, msg->len, len);
	if ((body = malloc(msg->len + 1)) == NULL)
		return NULL;
	memcpy(body, msg->str, msg->len);
	*len = msg->len;
	return body;
}

static int append_store(struct imap_session *s, const struct store_mailbox *mb,
    const struct append_msg *a, int64_t *id)
{
	char from[512], to[512], subject[512], date[256];
	size_t len = 0, hlen;
	char *body = append_body(a->msg, &len);
	struct memsrc src = { body, len, 0 };
	struct store_new_message m = { 0 };
	char *kw;
	int rc;

	if (body == NULL)
		return STORE_FULL;
	hlen = header_section_len(body, len, NULL);
	kw = join_keywords(a->kw, a->nkw);
	m.inbox_id = s->inbox.id;
	m.mailbox_id = mb->id;
	m.flags = a->flags;
	m.keywords = kw;
	m.mail_from = "";
	m.auth_user = s->inbox.name;
	m.client_addr = conn_peer(s->conn);
	m.internal_date = a->date;
	m.hdr_from = header_get(body, hlen, "From", from, sizeof(from)) ? from : NULL;
	m.hdr_to = header_get(body, hlen, "To", to, sizeof(to)) ? to : NULL;
	m.hdr_subject = header_get(body, hlen, "Subject", subject, sizeof(subject)) ?
	    subject : NULL;
	m.hdr_date = header_get(body, hlen, "Date", date, sizeof(date)) ? date : NULL;
	m.src.size = len;
	m.src.read = memsrc_read;
	m.src.arg = &src;
	rc = store_message_add(s->srv->store, &m, id);
	free(kw);
	free(body);
	return rc;
}

static int uid_of(const struct store_message_info *m, void *arg)
{
	*(uint32_t *)arg = m->uid;
	return 0;
}

/* Stores every message of the command in one transaction (RFC 3502: all
 * or none), collecting their UIDs; other sessions hear of them together,
 * after the commit. The arguments were checked before. */
static int append_all(struct imap_session *s, const struct imap_command *cmd,
    const struct store_mailbox *mb, struct imap_seqset *uids)
{
	struct store *st = s->srv->store;
	struct append_msg a;
	size_t i = 1;
	int64_t id;
	uint32_t uid;
	int rc = store_begin(st);

	while (rc == STORE_OK && i < cmd->nargs) {
		if (!append_parse(s, cmd, &i, &a)) {
			rc = STORE_ERR;   /* cannot be: checked before */
			break;
		}
		uid = 0;
		if ((rc = append_store(s, mb, &a, &id)) == STORE_OK &&
		    (rc = store_message_get_info(st, id, uid_of, &uid)) == STORE_OK)
			imap_seqset_add(uids, uid, uid);
		if (rc == STORE_OK)
			log_info("imap: %s: appended message %lld to %s", conn_peer(s->conn),
			    (long long)id, mb->name);
	}
	if (rc == STORE_OK && (rc = store_commit(st)) == STORE_OK)
		return STORE_OK;
	store_rollback(st);
	return rc;
}

void imap_cmd_append(struct imap_session *s, const struct imap_command *cmd)
{
	char name[NAME_MAX_], set[4096];
	struct store_mailbox mb;
	struct append_msg a;
	struct imap_seqset uids;
	size_t i = 1, nmsg = 0;
	int rc;

	if (!mailbox_arg(s, cmd, 0, name))
		return;
	/* Every message is checked before any is stored. */
	do {
		if (!append_parse(s, cmd, &i, &a))
			return;
		nmsg++;
	} while (i < cmd->nargs);
	if (store_mailbox_get(s->srv->store, s->inbox.id, name, &mb) != STORE_OK) {
		imap_tagged(s, cmd->tag, "NO", "[TRYCREATE] Mailbox does not exist");
		return;
	}
	imap_seqset_init(&uids);
	if ((rc = append_all(s, cmd, &mb, &uids)) != STORE_OK) {
		imap_tagged(s, cmd->tag, "NO", rc == STORE_FULL || rc == STORE_BUSY ?
		    "[OVERQUOTA] Cannot store the messages now; none was stored" :
		    "[SERVERBUG] Cannot store; none of the messages was stored");
		imap_seqset_free(&uids);
		return;
	}
	if (s->dirty)
		imap_view_sync(s, true);
	imap_seqset_normalize(&uids);
	/* RFC 4315 §3: the UIDs as a set, "3955:3957" for three (none if
	 * one could not be kept: a wrong set is worse). */
	if (imap_seqset_count(&uids) == nmsg && imap_seqset_format(&uids, set, sizeof(set)) <
	    sizeof(set))
		imap_tagged(s, cmd->tag, "OK", "[APPENDUID %u %s] APPEND completed",
		    mb.uidvalidity, set);
	else
		imap_tagged(s, cmd->tag, "OK", "APPEND completed");
	imap_seqset_free(&uids);
}
