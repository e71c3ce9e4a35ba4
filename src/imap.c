/*
 * IMAP session: input through the command reader (imap_parse.c), one
 * command table, responses, and the selected mailbox's view kept in line
 * with the store. The commands themselves live in imap_cmd_*.c and
 * imap_fetch.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailsnare/log.h"
#include "imap_session.h"

/* ---- responses --------------------------------------------------------- */

void imap_printf(struct imap_session *s, const char *fmt, ...)
{
	char buf[1024], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		va_start(ap, fmt);
		n = vasprintf(&big, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
	}
	conn_write(s->conn, big ? big : buf, (size_t)n);
	free(big);
}

void imap_tagged(struct imap_session *s, const char *tag, const char *status,
    const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	conn_printf(s->conn, "%s %s %s\r\n", tag[0] ? tag : "*", status, text);
	log_debug("imap: %s: >>> %s %s %s", conn_peer(s->conn), tag, status, text);
	if (strcmp(status, "BAD") == 0 && ++s->bad_commands >= IMAP_MAX_BAD_COMMANDS) {
		conn_printf(s->conn, "* BYE Too many bad commands\r\n");
		s->mode = IMAP_M_DONE;
		conn_close(s->conn);
	}
}

/* Quoted strings may not hold CR, LF, NUL, or 8-bit octets unless the
 * client enabled UTF8=ACCEPT (and then only valid UTF-8); everything else
 * goes out as a literal. */
void imap_write_string(struct imap_session *s, const char *str, size_t len)
{
	bool eight = false;
	size_t i;

	if (str == NULL) {
		conn_write(s->conn, "NIL", 3);
		return;
	}
	for (i = 0; i < len && len <= 1024; i++) {
		unsigned char c = (unsigned char)str[i];
		if (c == '\r' || c == '\n' || c == 0 || (c >= 0x80 && !s->utf8))
			break;
		eight |= c >= 0x80;
	}
	if (i == len && eight && !imap_utf8_valid(str, len))
		i = 0;
	if (i < len || len > 1024) {
		conn_printf(s->conn, "{%zu}\r\n", len);
		conn_write(s->conn, str, len);
		return;
	}
	conn_write(s->conn, "\"", 1);
	for (i = 0; i < len; i++) {
		if (str[i] == '"' || str[i] == '\\')
			conn_write(s->conn, "\\", 1);
		conn_write(s->conn, str + i, 1);
	}
	conn_write(s->conn, "\"", 1);
}

void imap_write_mailbox(struct imap_session *s, const char *name)
{
	char enc[STORE_MAILBOX_NAME_MAX * 3];

	if (!s->utf8 && imap_utf8_to_mutf7(name, enc, sizeof(enc)) >= 0)
		name = enc;
	imap_write_string(s, name, strlen(name));
}

void imap_write_flags(struct imap_session *s, unsigned flags, const char *keywords)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ STORE_FLAG_ANSWERED, "\\Answered" }, { STORE_FLAG_FLAGGED, "\\Flagged" },
		{ STORE_FLAG_DELETED, "\\Deleted" }, { STORE_FLAG_SEEN, "\\Seen" },
		{ STORE_FLAG_DRAFT, "\\Draft" }, { IMAP_FLAG_RECENT, "\\Recent" },
	};
	const char *sep = "";
	size_t i;

	conn_write(s->conn, "(", 1);
	/* IMAP4rev2 has no \Recent (RFC 9051 Appendix E). */
	if (s->rev2)
		flags &= ~IMAP_FLAG_RECENT;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (flags & names[i].bit) {
			conn_printf(s->conn, "%s%s", sep, names[i].name);
			sep = " ";
		}
	}
	if (keywords && keywords[0])
		conn_printf(s->conn, "%s%s", sep, keywords);
	conn_write(s->conn, ")", 1);
}

/* Every capability this server has, in one place: the greeting, the
 * CAPABILITY command and the login reply all use it. */
#define IMAP_CAPS_COMMON "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT" \
	" CHILDREN UIDPLUS MULTIAPPEND MOVE SPECIAL-USE CONDSTORE QRESYNC LIST-EXTENDED LIST-STATUS" \
	" ESEARCH SEARCHRES SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES" \
	" UTF8=ACCEPT BINARY" \
	" COMPRESS=DEFLATE"

void imap_capability_string(struct imap_session *s, char *buf, size_t size)
{
	bool tls = conn_is_tls(s->conn);
	bool plain_ok = tls || s->srv->cfg->allow_plaintext_auth;
	char mechs[128] = "";

	if (s->state == IMAP_NOTAUTH)
		auth_mechanisms(plain_ok, "AUTH=", mechs, sizeof(mechs));
	snprintf(buf, size, "%s%s%s%s%s", IMAP_CAPS_COMMON,
	    s->state == IMAP_NOTAUTH && !tls && conn_tls_available(s->conn) ? " STARTTLS" : "",
	    s->state != IMAP_NOTAUTH || plain_ok ? "" : " LOGINDISABLED",
	    mechs[0] ? " " : "", mechs);
}

void imap_send_capability(struct imap_session *s)
{
	char caps[512];

	imap_capability_string(s, caps, sizeof(caps));
	imap_printf(s, "* CAPABILITY %s\r\n", caps);
}

/* ---- arguments --------------------------------------------------------- */

bool imap_arg_mailbox(struct imap_session *s, const struct imap_arg *a, char *out,
    size_t outsize)
{
	const char *str;
	size_t len;

	if (!imap_arg_list_mailbox(a, &str, &len) || len == 0 || memchr(str, '\0', len))
		return false;
	if (s->utf8 || (a->flags & IMAP_AF_8BIT)) {
		/* 8-bit names without UTF8=ACCEPT are taken if they are UTF-8
		 * (some clients send them so); anything else names nothing. */
		if (len >= outsize || !imap_utf8_valid(str, len))
			return false;
		memcpy(out, str, len);
		out[len] = '\0';
	} else if (imap_mutf7_to_utf8(str, len, out, outsize) < 0) {
		return false;
	}
	/* RFC 3501 §5.1: INBOX is case-insensitive, also as a parent. */
	if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' || out[5] == '/'))
		memcpy(out, "INBOX", 5);
	return true;
}

static bool flag_bit(const char *name, unsigned *bit)
{
	static const struct { const char *name; unsigned bit; } sys[] = {
		{ "\\Seen", STORE_FLAG_SEEN }, { "\\Answered", STORE_FLAG_ANSWERED },
		{ "\\Flagged", STORE_FLAG_FLAGGED }, { "\\Deleted", STORE_FLAG_DELETED },
		{ "\\Draft", STORE_FLAG_DRAFT }, { "\\Recent", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		if (strcasecmp(name, sys[i].name) == 0) {
			*bit = sys[i].bit;
			return true;
		}
	}
	return false;
}

static bool keyword_valid(const char *k)
{
	size_t n = strlen(k);

	return n > 0 && n < 128 && strpbrk(k, "(){ %*\"\\]") == NULL;
}

bool imap_arg_flags(struct imap_session *s, const char *tag, const struct imap_arg *a,
    unsigned *flags, const char **kw, size_t *nkw, size_t kwmax)
{
	const struct imap_arg *list = a->type == IMAP_ARG_LIST ? a->list : a;
	size_t n = a->type == IMAP_ARG_LIST ? a->count : 1, i;
	unsigned bit;

	*flags = 0;
	*nkw = 0;
	for (i = 0; i < n; i++) {
		const char *f = list[i].str;
		if (list[i].type != IMAP_ARG_ATOM) {
			imap_tagged(s, tag, "BAD", "Invalid flag");
			return false;
		}
		if (f[0] == '\\') {
			/* \Recent cannot be set by a client; it is ignored. */
			if (!flag_bit(f, &bit)) {
				imap_tagged(s, tag, "BAD", "Invalid system flag %s", f);
				return false;
			}
			*flags |= bit;
		} else if (!keyword_valid(f) || *nkw >= kwmax) {
			imap_tagged(s, tag, "BAD", "Invalid keyword");
			return false;
		} else {
			kw[(*nkw)++] = f;
		}
	}
	return true;
}

/* ---- the view of the selected mailbox ------------------------------------ */

void imap_view_set_state(struct imap_msg *m, unsigned flags, const char *keywords,
    uint64_t modseq)
{
	m->flags = (m->flags & IMAP_FLAG_RECENT) | flags;
	m->modseq = modseq;
	free(m->keywords);
	m->keywords = keywords && keywords[0] ? strdup(keywords) : NULL;
}

void imap_view_free(struct imap_view *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++)
		free(v->msgs[i].keywords);
	free(v->msgs);
	free(v->flags_sent);
	free(v);
}

long imap_view_find_uid(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v->msgs[mid].uid == uid)
			return (long)mid;
		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Rows read from the store (a whole mailbox, or what changed), by UID. */
struct snapshot {
	struct imap_msg *m;
	size_t n, cap;
};

static int snapshot_add(const struct store_msg *sm, void *arg)
{
	struct snapshot *sn = arg;
	struct imap_msg *m;

	if (sn->n == sn->cap) {
		size_t cap = sn->cap ? sn->cap * 2 : 64;
		if ((m = realloc(sn->m, cap * sizeof(*m))) == NULL)
			return STORE_FULL;
		sn->m = m;
		sn->cap = cap;
	}
	m = &sn->m[sn->n++];
	memset(m, 0, sizeof(*m));
	m->id = sm->id;
	m->uid = sm->uid;
	m->flags = sm->flags;
	m->modseq = sm->modseq;
	m->size = sm->size;
	m->internal_date = sm->internal_date;
	m->keywords = sm->keywords[0] ? strdup(sm->keywords) : NULL;
	return 0;
}

static void snapshot_free(struct snapshot *sn)
{
	size_t i;

	for (i = 0; i < sn->n; i++)
		free(sn->m[i].keywords);
	free(sn->m);
}

static bool same_keywords(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

void imap_report_flags(struct imap_session *s, size_t i, bool uid)
{
	struct imap_msg *m = &s->view->msgs[i];

	imap_printf(s, "* %zu FETCH (", i + 1);
	if (uid)
		imap_printf(s, "UID %u ", m->uid);
	imap_printf(s, "FLAGS ");
	imap_write_flags(s, m->flags, m->keywords);
	/* RFC 7162 §3.2.4: with CONDSTORE on, flag changes carry MODSEQ. */
	if (s->condstore)
		imap_printf(s, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	imap_printf(s, ")\r\n");
}

void imap_send_vanished(struct imap_session *s, const struct imap_seqset *uids, bool earlier)
{
	size_t need;
	char small[256], *buf = small;

	if (uids->count == 0)
		return;
	need = imap_seqset_format(uids, small, sizeof(small));
	if (need >= sizeof(small)) {
		if ((buf = malloc(need + 1)) == NULL)
			return;
		imap_seqset_format(uids, buf, need + 1);
	}
	imap_printf(s, "* VANISHED %s%s\r\n", earlier ? "(EARLIER) " : "", buf);
	if (buf != small)
		free(buf);
}

/* ---- keywords the client has been told of (RFC 3501 §7.2.6) ------------- */

static bool word_in(const char *list, const char *w, size_t len)
{
	const char *p = list;

	while (p && *p) {
		const char *end = strchr(p, ' ');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == len && strncasecmp(p, w, len) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

bool imap_view_keywords_known(const struct imap_session *s, const char *const *kw, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s->view == NULL || !word_in(s->view->flags_sent, kw[i], strlen(kw[i])))
			return false;
	return true;
}

static unsigned count_words(const char *p)
{
	unsigned n = 0;

	for (; *p != '\0'; p++)
		if (*p != ' ' && (p[1] == ' ' || p[1] == '\0'))
			n++;
	return n;
}

void imap_view_send_flags(struct imap_session *s, const char *keywords)
{
	struct imap_view *v = s->view;
	const char *kw = keywords ? keywords : "";
	char *copy = strdup(kw);

	if (copy == NULL)
		return;
	free(v->flags_sent);
	v->flags_sent = copy;
	imap_printf(s, "* FLAGS (" IMAP_SYSTEM_FLAGS "%s%s)\r\n", kw[0] ? " " : "", kw);
	if (v->readonly)
		imap_printf(s, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
	else
		/* No \* once the mailbox has as many keywords as it may
		 * (max-keywords): new ones cannot be made (RFC 3501 §7.1). */
		imap_printf(s, "* OK [PERMANENTFLAGS (" IMAP_SYSTEM_FLAGS "%s%s%s)] Flags permitted\r\n",
		    kw[0] ? " " : "", kw, count_words(kw) >= store_get_limits(s->srv->store)->keywords ?
		    "" : " \\*");
}

/* Adds to *acc (space-separated, malloc'd) the words of kw that neither
 * it nor flags_sent has. false on no memory. */
static bool keywords_merge(const char *sent, char **acc, const char *kw)
{
	const char *p = kw;

	while (p && *p) {
		const char *end = strchr(p, ' ');
		size_t n = end ? (size_t)(end - p) : strlen(p), have = *acc ? strlen(*acc) : 0;
		char *grown;
		if (n > 0 && !word_in(sent, p, n) && !word_in(*acc, p, n)) {
			if ((grown = realloc(*acc, have + n + 2)) == NULL)
				return false;
			if (have)
				grown[have++] = ' ';
			memcpy(grown + have, p, n);
			grown[have + n] = '\0';
			*acc = grown;
		}
		p = end ? end + 1 : NULL;
	}
	return true;
}

/* Sends FLAGS (and PERMANENTFLAGS) again if any of the keyword strings
 * names one the client was not told of, before a FETCH shows it. */
static void announce_keywords(struct imap_session *s, const char *const *kws, size_t n)
{
	struct imap_view *v = s->view;
	char *fresh = NULL, *all;
	size_t i;

	for (i = 0; i < n; i++)
		if (kws[i] && !keywords_merge(v->flags_sent, &fresh, kws[i]))
			break;
	if (fresh == NULL)
		return;
	if (v->flags_sent && v->flags_sent[0]) {
		if (asprintf(&all, "%s %s", v->flags_sent, fresh) < 0)
			all = NULL;
	} else {
		all = strdup(fresh);
	}
	if (all)
		imap_view_send_flags(s, all);
	free(all);
	free(fresh);
}

void imap_view_announce_keywords(struct imap_session *s, const char *const *kw, size_t n)
{
	char *joined = NULL;
	size_t i, len = 0;

	if (s->view == NULL || n == 0)
		return;
	for (i = 0; i < n; i++)
		len += strlen(kw[i]) + 1;
	if ((joined = malloc(len + 1)) == NULL)
		return;
	joined[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i)
			strcat(joined, " ");
		strcat(joined, kw[i]);
	}
	announce_keywords(s, (const char *const *)&joined, 1);
	free(joined);
}

/* ---- syncing the view with the store -------------------------------------- */

static bool view_grow(struct imap_view *v, size_t need)
{
	struct imap_msg *m;
	size_t cap;

	if (need <= v->cap)
		return true;
	cap = v->cap ? v->cap : 64;
	while (cap < need)
		cap *= 2;
	if ((m = realloc(v->msgs, cap * sizeof(*m))) == NULL)
		return false;
	v->msgs = m;
	v->cap = cap;
	return true;
}

/* Index of the first view message with a UID above uid, or -1. */
static long view_first_above(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v->msgs[mid].uid <= uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->n ? (long)lo : -1;
}

static void mark_gone(struct imap_view *v, size_t i)
{
	if (!v->msgs[i].gone) {
		v->msgs[i].gone = true;
		v->gone++;
	}
}

static int vanished_mark(uint32_t uid, void *arg)
{
	struct imap_view *v = arg;
	long i = imap_view_find_uid(v, uid);

	if (i >= 0)
		mark_gone(v, (size_t)i);
	return 0;
}

void imap_expunge_cursor_init(struct imap_expunge_cursor *c)
{
	c->at = c->kept = 0;
	imap_seqset_init(&c->vanished);
}

/* Announces and drops the messages expunged: EXPUNGE with the numbers as
 * they shift (RFC 3501 §7.4.1), or VANISHED for QRESYNC, looking at max
 * of the view's messages from c->at on. */
bool imap_view_expunge_step(struct imap_session *s, struct imap_expunge_cursor *c, size_t max)
{
	struct imap_view *v = s->view;
	size_t end = max < v->n - c->at ? c->at + max : v->n;

	/* A slot left behind holds no keywords of its own, so that the view
	 * may be freed between steps. */
	for (; c->at < end; c->at++) {
		struct imap_msg *m = &v->msgs[c->at];
		if (!m->gone) {
			if (c->kept != c->at) {
				v->msgs[c->kept] = *m;
				m->keywords = NULL;
			}
			c->kept++;
			continue;
		}
		if (m->flags & IMAP_FLAG_RECENT)
			v->recent--;
		if (s->qresync)
			imap_seqset_add(&c->vanished, m->uid, m->uid);
		else
			imap_printf(s, "* %zu EXPUNGE\r\n", c->kept + 1);
		free(m->keywords);
		m->keywords = NULL;
	}
	if (c->at < v->n)
		return false;
	v->n = c->kept;
	v->gone = 0;
	imap_seqset_normalize(&c->vanished);
	imap_send_vanished(s, &c->vanished, false);
	imap_seqset_free(&c->vanished);
	return true;
}

static void sync_expunges(struct imap_session *s)
{
	struct imap_expunge_cursor c;

	imap_expunge_cursor_init(&c);
	(void)imap_view_expunge_step(s, &c, SIZE_MAX);
}

/* Flag changes of messages the view has; returns the index in sn where
 * messages new to the view start (UIDs above the view's last). */
static size_t sync_flags(struct imap_session *s, struct snapshot *sn)
{
	struct imap_view *v = s->view;
	uint32_t last = v->n ? v->msgs[v->n - 1].uid : 0;
	size_t j;

	for (j = 0; j < sn->n && sn->m[j].uid <= last; j++) {
		struct imap_msg *c = &sn->m[j];
		long i = imap_view_find_uid(v, c->uid);
		struct imap_msg *m;
		if (i < 0)
			continue;   /* expunged and announced already */
		m = &v->msgs[i];
		if (m->gone)
			continue;
		if (c->flags != (m->flags & ~IMAP_FLAG_RECENT) ||
		    !same_keywords(c->keywords, m->keywords)) {
			imap_view_set_state(m, c->flags, c->keywords, c->modseq);
			imap_report_flags(s, (size_t)i, true);
		} else {
			m->modseq = c->modseq;
		}
	}
	return j;
}

/* Appends sn[from..] to the view and announces EXISTS and RECENT. A
 * read-write view claims \Recent; EXAMINE only counts it (RFC 3501
 * §6.3.2: no change of state, but RECENT is reported). */
static void sync_new(struct imap_session *s, struct snapshot *sn, size_t from,
    uint32_t recent_mark)
{
	struct imap_view *v = s->view;
	uint32_t above = recent_mark;
	size_t j, recent = 0;

	if (from >= sn->n || !view_grow(v, v->n + (sn->n - from)))
		return;
	if (!v->readonly && sn->m[sn->n - 1].uid > recent_mark)
		(void)store_mailbox_claim_recent(s->srv->store, v->mb.id, &above);
	for (j = from; j < sn->n; j++) {
		struct imap_msg *m = &v->msgs[v->n++];
		*m = sn->m[j];
		sn->m[j].keywords = NULL;  /* moved */
		if (!v->readonly && m->uid > above) {
			m->flags |= IMAP_FLAG_RECENT;
			v->recent++;
		}
	}
	/* Counted, not walked: a change must cost what changed, not the
	 * mailbox's size. EXAMINE's recent messages are those above the
	 * watermark, a suffix of the view. */
	if (v->readonly) {
		long first = view_first_above(v, recent_mark);
		recent = first < 0 ? 0 : v->n - (size_t)first;
	} else {
		recent = v->recent;
	}
	imap_printf(s, "* %zu EXISTS\r\n", v->n);
	if (!s->rev2)
		imap_printf(s, "* %zu RECENT\r\n", recent);
}

/* Reads what changed since the view's modseq: removals (tombstones) and
 * rows with a higher modseq (new messages, flag changes). A view that has
 * nothing yet reads the whole mailbox in UID order. */
static int sync_read(struct imap_session *s, struct snapshot *sn)
{
	struct imap_view *v = s->view;
	struct store *st = s->srv->store;
	int rc;

	if (v->synced_modseq == 0)
		return store_mailbox_foreach(st, v->mb.id, snapshot_add, sn);
	rc = store_mailbox_vanished(st, v->mb.id, v->synced_modseq, vanished_mark, v);
	if (rc == STORE_OK)
		rc = store_mailbox_changes(st, v->mb.id, v->synced_modseq, snapshot_add, sn);
	return rc;
}

void imap_view_sync(struct imap_session *s, bool expunges)
{
	struct imap_view *v = s->view;
	struct snapshot sn = { 0 };
	struct store_mailbox_state now = { 0 };
	uint64_t highest = 0;
	uint32_t recent_mark = 0;
	const char **kws;
	size_t from, j, n;
	int rc = STORE_NOTFOUND;

	if (v == NULL)
		return;
	s->dirty = false;
	if (!v->deleted)
		rc = store_mailbox_state(s->srv->store, v->mb.id, &now);
	highest = now.highestmodseq;
	recent_mark = now.recent_above;
	/* Deleted by another session (and maybe created again: a new
	 * UIDVALIDITY, perhaps the same id): every message is gone, and the
	 * view stays on the mailbox it had; nothing of a new one reaches it. */
	if (rc == STORE_OK && now.uidvalidity != v->mb.uidvalidity)
		rc = STORE_NOTFOUND;
	if (rc == STORE_NOTFOUND) {
		v->deleted = true;
		highest = v->synced_modseq;
		for (j = 0; j < v->n; j++)
			mark_gone(v, j);
	} else if (rc != STORE_OK || highest == v->synced_modseq) {
		highest = v->synced_modseq;
	} else if (sync_read(s, &sn) != STORE_OK) {
		snapshot_free(&sn);
		return;
	}
	/* Read the state before the changes: a commit in between (the CLI)
	 * is read again next time, and applying a change twice is harmless. */
	v->synced_modseq = highest;
	if (expunges && v->gone > 0)
		sync_expunges(s);
	if (sn.n > 0 && (kws = malloc(sn.n * sizeof(*kws))) != NULL) {
		for (j = n = 0; j < sn.n; j++)
			if (sn.m[j].keywords)
				kws[n++] = sn.m[j].keywords;
		announce_keywords(s, kws, n);
		free(kws);
	}
	from = sync_flags(s, &sn);
	sync_new(s, &sn, from, recent_mark);
	snapshot_free(&sn);
}

void imap_condstore_enable(struct imap_session *s)
{
	if (s->condstore)
		return;
	s->condstore = true;
	/* As Dovecot: the client learns where it stands at once. */
	if (s->view != NULL)
		imap_printf(s, "* OK [HIGHESTMODSEQ %llu] Highest\r\n",
		    (unsigned long long)s->view->synced_modseq);
}

static void view_star_mark(struct imap_session *s)
{
	struct imap_view *v = s->view;

	s->star.view = v;
	s->star.msn = v ? (uint32_t)v->n : 0;
	s->star.uid = v && v->n ? v->msgs[v->n - 1].uid : 0;
}

uint32_t imap_view_star(struct imap_session *s, bool uid)
{
	struct imap_view *v = s->view;

	/* A command that did not come through imap_dispatch's sync (or a
	 * view selected since) sees the view as it is. */
	if (v == NULL)
		return 0;
	if (s->star.view != v)
		return uid ? (v->n ? v->msgs[v->n - 1].uid : 0) : (uint32_t)v->n;
	/* Expunges reported by the sync (UID commands) only lower it. */
	if (uid)
		return s->star.uid;
	return s->star.msn < v->n ? s->star.msn : (uint32_t)v->n;
}

bool imap_view_select(struct imap_session *s, const char *tag, const char *set, bool uid,
    struct imap_seqset *out)
{
	struct imap_seqset parsed;
	enum imap_seq_rc rc;
	uint32_t max = imap_view_star(s, uid);

	imap_seqset_init(&parsed);
	rc = imap_seqset_parse(set, strlen(set), 10000, &parsed);
	if (rc == IMAP_SEQ_OK)
		rc = parsed.saved ? imap_search_saved_set(s, uid, out) :
		    imap_seqset_eval(&parsed, uid ? IMAP_SEQ_UID : IMAP_SEQ_MSN, max, NULL, out);
	imap_seqset_free(&parsed);
	/* "1:*" on an empty mailbox is what clients send after SELECT: it
	 * names nothing, as in Dovecot, rather than being an error. A set
	 * of plain numbers there is out of range, as anywhere else. */
	if (rc == IMAP_SEQ_ERR_EMPTY && strchr(set, '*') == NULL)
		rc = IMAP_SEQ_ERR_RANGE;
	if (rc == IMAP_SEQ_OK || rc == IMAP_SEQ_ERR_EMPTY) {
		if (rc == IMAP_SEQ_ERR_EMPTY)
			imap_seqset_clear(out);
		return true;
	}
	if (rc == IMAP_SEQ_ERR_RANGE)
		imap_tagged(s, tag, "BAD", "Invalid message sequence number");
	else
		imap_tagged(s, tag, "BAD", "Invalid sequence set");
	return false;
}

/* ---- dispatch ---------------------------------------------------------- */

#define ANY (IMAP_IN(IMAP_NOTAUTH) | IMAP_IN(IMAP_AUTH) | IMAP_IN(IMAP_SELECTED))
#define AUTHED (IMAP_IN(IMAP_AUTH) | IMAP_IN(IMAP_SELECTED))
#define SELECTED IMAP_IN(IMAP_SELECTED)

static const struct imap_cmd imap_commands[] = {
	{ "CAPABILITY", ANY, 0, imap_cmd_capability },
	{ "NOOP", ANY, 0, imap_cmd_noop },
	{ "LOGOUT", ANY, 0, imap_cmd_logout },
	{ "ID", ANY, 0, imap_cmd_id },
	{ "STARTTLS", IMAP_IN(IMAP_NOTAUTH), 0, imap_cmd_starttls },
	{ "LOGIN", IMAP_IN(IMAP_NOTAUTH), 0, imap_cmd_login },
	{ "AUTHENTICATE", IMAP_IN(IMAP_NOTAUTH), 0, imap_cmd_authenticate },
	{ "ENABLE", AUTHED, 0, imap_cmd_enable },
	{ "NAMESPACE", AUTHED, 0, imap_cmd_namespace },
	{ "IDLE", AUTHED, 0, imap_cmd_idle },
	{ "COMPRESS", AUTHED, 0, imap_cmd_compress },
	{ "SELECT", AUTHED, IMAP_CMD_NO_SYNC, imap_cmd_select },
	{ "EXAMINE", AUTHED, IMAP_CMD_NO_SYNC, imap_cmd_select },
	{ "CREATE", AUTHED, 0, imap_cmd_create },
	{ "DELETE", AUTHED, 0, imap_cmd_delete },
	{ "RENAME", AUTHED, 0, imap_cmd_rename },
	{ "SUBSCRIBE", AUTHED, 0, imap_cmd_subscribe },
	{ "UNSUBSCRIBE", AUTHED, 0, imap_cmd_subscribe },
	{ "LIST", AUTHED, 0, imap_cmd_list },
	{ "LSUB", AUTHED, 0, imap_cmd_list },
	{ "STATUS", AUTHED, 0, imap_cmd_status },
	{ "APPEND", AUTHED, 0, imap_cmd_append },
	{ "CHECK", SELECTED, 0, imap_cmd_check },
	{ "CLOSE", SELECTED, 0, imap_cmd_close },
	{ "UNSELECT", SELECTED, 0, imap_cmd_close },
	{ "EXPUNGE", SELECTED, 0, imap_cmd_expunge },
	{ "UID EXPUNGE", SELECTED, 0, imap_cmd_expunge },
	{ "SEARCH", SELECTED, IMAP_CMD_NO_EXPUNGE, imap_cmd_search },
	{ "UID SEARCH", SELECTED, 0, imap_cmd_search },
	{ "SORT", SELECTED, IMAP_CMD_NO_EXPUNGE, imap_cmd_sort },
	{ "UID SORT", SELECTED, 0, imap_cmd_sort },
	{ "THREAD", SELECTED, IMAP_CMD_NO_EXPUNGE, imap_cmd_thread },
	{ "UID THREAD", SELECTED, 0, imap_cmd_thread },
	{ "FETCH", SELECTED, IMAP_CMD_NO_EXPUNGE, imap_cmd_fetch },
	{ "UID FETCH", SELECTED, 0, imap_cmd_fetch },
	{ "STORE", SELECTED, IMAP_CMD_NO_EXPUNGE, imap_cmd_store },
	{ "UID STORE", SELECTED, 0, imap_cmd_store },
	/* COPY and MOVE take message numbers as the client had them: an
	 * expunge announced first would shift them (RFC 3501 §7.4.1). */
	{ "COPY", SELECTED, IMAP_CMD_NO_EXPUNGE, imap_cmd_copy },
	{ "UID COPY", SELECTED, 0, imap_cmd_copy },
	{ "MOVE", SELECTED, IMAP_CMD_NO_EXPUNGE, imap_cmd_copy },
	{ "UID MOVE", SELECTED, 0, imap_cmd_copy },
};

static const struct imap_cmd *imap_find(const char *verb)
{
	size_t i;

	for (i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++)
		if (strcmp(imap_commands[i].verb, verb) == 0)
			return &imap_commands[i];
	return NULL;
}

static void imap_dispatch(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_cmd *c = imap_find(cmd->verb);

	log_debug("imap: %s: <<< %s %s", conn_peer(s->conn), cmd->tag, cmd->verb);
	if (c == NULL) {
		imap_tagged(s, cmd->tag, "BAD", "Unknown command %s", cmd->verb);
		return;
	}
	if (!(c->states & IMAP_IN(s->state))) {
		imap_tagged(s, cmd->tag, "BAD", "%s not allowed %s", cmd->verb,
		    s->state == IMAP_NOTAUTH ? "before login" : "in this state");
		return;
	}
	/* Changes made elsewhere are reported before the command's own
	 * replies; expunges not while the client may rely on numbers. The
	 * sync costs one row when nothing changed, and also catches what
	 * another process (the CLI) did since the last poll. */
	view_star_mark(s);
	if (!(c->flags & IMAP_CMD_NO_SYNC))
		imap_view_sync(s, !(c->flags & IMAP_CMD_NO_EXPUNGE));
	c->run(s, cmd);
}

static void imap_reader_failed(struct imap_session *s)
{
	const struct imap_error *e = imap_reader_error(s->reader);
	const char *code = imap_err_resp_code(e->code);

	if (e->tag[0] == '\0') {
		imap_printf(s, "* BAD %s\r\n", e->msg);
		if (++s->bad_commands >= IMAP_MAX_BAD_COMMANDS) {
			imap_printf(s, "* BYE Too many bad commands\r\n");
			s->mode = IMAP_M_DONE;
			conn_close(s->conn);
		}
		return;
	}
	imap_tagged(s, e->tag, imap_err_is_no(e->code) ? "NO" : "BAD", "%s%s%s%s",
	    code ? "[" : "", code ? code : "", code ? "] " : "", e->msg);
}

/* Feeds buffered input to the reader until a command is complete or more
 * input is needed. Returns false when nothing more can be done now. */
static bool imap_input_command(struct imap_session *s)
{
	struct imap_command *cmd;
	const char *p;
	size_t used = 0, len;
	enum imap_read_rc rc;

	if (conn_output_full(s->conn) || (len = conn_peek(s->conn, &p)) == 0)
		return false;
	rc = imap_reader_feed(s->reader, p, len, &used);
	conn_consume(s->conn, used);
	switch (rc) {
	case IMAP_READ_CONTINUE:
		imap_printf(s, "+ Ready for literal data\r\n");
		return true;
	case IMAP_READ_ERROR:
		imap_append_spool_drop(s);
		imap_reader_failed(s);
		return true;
	case IMAP_READ_COMMAND:
		if ((cmd = imap_reader_take(s->reader)) != NULL) {
			imap_dispatch(s, cmd);
			if (s->pending.cmd == NULL)
				imap_command_free(cmd);
		}
		imap_append_spool_drop(s);
		return s->pending.cmd == NULL;
	default:
		return used > 0;
	}
}

static bool imap_input_line(struct imap_session *s)
{
	char line[SASL_OUT_MAX * 4];
	size_t len;

	switch (conn_readline(s->conn, line, sizeof(line), &len)) {
	case CONN_LINE_NONE:
		return false;
	case CONN_LINE_TOOLONG:
		line[0] = '\0';
		break;
	default:
		break;
	}
	if (s->mode == IMAP_M_AUTHENTICATE)
		imap_auth_line(s, line);
	else
		imap_idle_line(s, line);
	return true;
}

/* What changes once a client is logged in: literals up to the message
 * size, and the idle timeout. */
static void imap_session_authed(struct imap_session *s)
{
	if (s->state == IMAP_NOTAUTH || s->authed_limits)
		return;
	s->authed_limits = true;
	s->limits.max_literal = s->srv->cfg->max_message_size;
	s->limits.max_command = s->srv->cfg->max_message_size + 64 * 1024;
	imap_reader_set_limits(s->reader, &s->limits);
	/* Also ends an IDLE (RFC 2177 asks clients to re-issue it every 29
	 * minutes). */
	conn_set_timeout(s->conn, s->srv->cfg->imap_timeout);
}

/* Pipelined commands are taken for at most this long in one pass, then
 * the rest in the next: each SUBSCRIBE, CREATE or STORE is a commit, and
 * 8,000 of them (what fits under the output bound) were half a second. */
#define IMAP_INPUT_SLICE_NS 2000000L

static long elapsed_ns(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

static void imap_input(void *arg)
{
	struct imap_session *s = arg;
	bool progress = true;
	struct timespec t0;
	unsigned n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (progress) {
		if (n++ > 0 && elapsed_ns(&t0) > IMAP_INPUT_SLICE_NS) {
			conn_input_later(s->conn);
			return;
		}
		switch (s->mode) {
		case IMAP_M_COMMAND:
			progress = imap_input_command(s);
			break;
		case IMAP_M_AUTHENTICATE:
		case IMAP_M_IDLE:
			progress = imap_input_line(s);
			break;
		default:
			progress = false;
			break;
		}
		imap_session_authed(s);
	}
}

/* ---- commands that are not finished yet ---------------------------------- */

static void pending_wait(struct imap_session *s, enum imap_cont how)
{
	static const struct timeval now = { 0, 0 };

	s->pending.waiting = how;
	if (how == IMAP_CONT_WAIT)
		return;
	if (how == IMAP_CONT_OUTPUT)
		conn_wait_drain(s->conn);
	/* A timer, not event_active: the loop polls the sockets first. For
	 * OUTPUT too: the kernel may take all that is queued on the way out
	 * of this pass, and then no write is left whose completion would
	 * call us (the stress test found FETCHes stuck so). */
	evtimer_add(s->ev_resume, &now);
}

void imap_pending_start(struct imap_session *s, const struct imap_command *cmd,
    enum imap_cont how, enum imap_cont (*run)(struct imap_session *, void *),
    void (*free_state)(void *), void *state)
{
	s->pending.cmd = (struct imap_command *)cmd;
	s->pending.run = run;
	s->pending.free = free_state;
	s->pending.state = state;
	conn_pause(s->conn);
	pending_wait(s, how);
}

void imap_pending_wake(struct imap_session *s)
{
	if (s->pending.cmd != NULL && s->pending.waiting == IMAP_CONT_WAIT)
		pending_wait(s, IMAP_CONT_YIELD);
}

static void pending_end(struct imap_session *s)
{
	struct imap_pending p = s->pending;

	memset(&s->pending, 0, sizeof(s->pending));
	if (p.free)
		p.free(p.state);
	imap_command_free(p.cmd);
}

static void pending_resume(struct imap_session *s, enum imap_cont woken_by)
{
	enum imap_cont rc;

	if (s->pending.cmd == NULL || s->pending.waiting != woken_by)
		return;
	if ((rc = s->pending.run(s, s->pending.state)) != IMAP_CONT_DONE) {
		pending_wait(s, rc);
		conn_flush(s->conn);
		return;
	}
	pending_end(s);
	conn_resume(s->conn);
}

static void imap_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	(void)fd;
	(void)what;
	if (s->pending.waiting == IMAP_CONT_YIELD)
		pending_resume(s, IMAP_CONT_YIELD);
	else if (conn_output_pending(s->conn) <= CONN_WRITE_LOWWATER)
		pending_resume(s, IMAP_CONT_OUTPUT);
}

/* ---- notifications ----------------------------------------------------- */

static void imap_on_change(void *arg, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id)
{
	struct imap_session *s = arg;

	(void)what;
	(void)message_id;
	if (s->view == NULL || (mailbox_id != 0 && s->view->mb.id != mailbox_id))
		return;
	s->dirty = true;
	if (s->mode == IMAP_M_IDLE)
		imap_idle_notify(s);
}

/* An idling client hears of a change at once, unless it heard of one less
 * than IMAP_IDLE_COALESCE_MS ago: then the changes of that interval go out
 * together at its end. Under a stream of deliveries each idler then costs
 * a write per interval, not one per group commit (Dovecot delays its
 * notifications the same way, by more). Others hear at their next command. */
void imap_idle_notify(struct imap_session *s)
{
	struct timeval now, next, wait;

	if (evtimer_pending(s->ev_sync, NULL))
		return;
	event_base_gettimeofday_cached(s->srv->base, &now);
	next = s->idle_synced;
	next.tv_usec += IMAP_IDLE_COALESCE_MS * 1000;
	if (next.tv_usec >= 1000000) {
		next.tv_sec++;
		next.tv_usec -= 1000000;
	}
	if (!timercmp(&now, &next, <)) {
		event_active(s->ev_sync, EV_TIMEOUT, 0);
		return;
	}
	timersub(&next, &now, &wait);
	evtimer_add(s->ev_sync, &wait);
}

static void imap_sync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	(void)fd;
	(void)what;
	if (s->mode == IMAP_M_IDLE && s->dirty) {
		event_base_gettimeofday_cached(s->srv->base, &s->idle_synced);
		imap_view_sync(s, true);
		conn_flush(s->conn);
	}
}

/* ---- lifecycle --------------------------------------------------------- */

static void *imap_open(struct conn *c)
{
	struct imap_session *s = calloc(1, sizeof(*s));
	char caps[512];

	if (s == NULL)
		return NULL;
	s->conn = c;
	s->srv = conn_server(c);
	imap_limits_default(&s->limits);
	/* Before login a command needs a few KiB (LOGIN's literals, an ID);
	 * the message size only once authenticated (imap_session_authed). */
	s->limits.max_literal = IMAP_PREAUTH_LITERAL_MAX;
	s->limits.max_command = IMAP_PREAUTH_COMMAND_MAX;
	s->limits.utf8_quoted = &s->utf8;   /* RFC 6855 §3, once enabled */
	s->reader = imap_reader_new(&s->limits);
	if (s->reader != NULL)
		imap_append_sink_init(s);
	s->ev_delay = evtimer_new(s->srv->base, imap_auth_delay_cb, s);
	s->ev_sync = evtimer_new(s->srv->base, imap_sync_cb, s);
	s->ev_resume = evtimer_new(s->srv->base, imap_resume_cb, s);
	if (s->reader == NULL || s->ev_delay == NULL || s->ev_sync == NULL || s->ev_resume == NULL ||
	    store_subscribe(s->srv->store, imap_on_change, s) != STORE_OK) {
		imap_proto.free(s);
		return NULL;
	}
	/* login-timeout until the client has logged in; imap-timeout (at
	 * least 30 minutes, RFC 3501 §5.4) after. */
	conn_set_timeout(c, s->srv->cfg->login_timeout);
	imap_capability_string(s, caps, sizeof(caps));
	imap_printf(s, "* OK [CAPABILITY %s] mailsnare IMAP ready\r\n", caps);
	return s;
}

static void imap_timeout(void *arg)
{
	struct imap_session *s = arg;

	s->mode = IMAP_M_DONE;
	imap_printf(s, "* BYE Autologout; idle for too long\r\n");
}

static void imap_shutdown(void *arg)
{
	struct imap_session *s = arg;

	s->mode = IMAP_M_DONE;
	imap_printf(s, "* BYE Server shutting down\r\n");
	conn_close(s->conn);
}

static void imap_drained(void *arg)
{
	pending_resume(arg, IMAP_CONT_OUTPUT);
}

static void imap_free(void *arg)
{
	struct imap_session *s = arg;

	store_unsubscribe(s->srv->store, imap_on_change, s);
	if (s->pending.cmd != NULL)
		pending_end(s);
	if (s->ev_resume)
		event_free(s->ev_resume);
	imap_view_free(s->view);
	imap_search_saved_reset(s);
	imap_reader_free(s->reader);
	imap_append_spool_drop(s);
	auth_session_end(&s->auth);
	if (s->ev_delay)
		event_free(s->ev_delay);
	if (s->ev_sync)
		event_free(s->ev_sync);
	free(s);
}

const struct proto imap_proto = {
	.name = "imap",
	.busy_reply = "* BYE Too many connections, try again later\r\n",
	.open = imap_open,
	.input = imap_input,
	.timeout = imap_timeout,
	.shutdown = imap_shutdown,
	.free = imap_free,
	.drained = imap_drained,
};
