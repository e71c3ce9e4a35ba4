/*
 * IMAP APPEND (RFC 3501 §6.3.11) and MULTIAPPEND (RFC 3502), with
 * APPENDUID (RFC 4315) and UTF8 (RFC 6855 §4).
 *
 * A message literal never sits whole in memory: the reader hands its
 * octets to the sink here as they arrive (imap_reader_set_sink), and they
 * go to an ingest (spool and MIME scan, as SMTP DATA). The command then
 * submits the messages to the group commit (deliver.h) as one group, all
 * or none, and answers when they are committed.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mailsnare/deliver.h"
#include "mailsnare/imap_date.h"
#include "mailsnare/ingest.h"
#include "mailsnare/log.h"
#include "imap_session.h"

/* Bytes of an appended message kept in memory before it spills to a
 * file (SMTP keeps more: most mail is small, appends are often large). */
#define APPEND_SPOOL_MEM (64 * 1024)
#define APPEND_KEYWORDS_MAX 64

/* ---- the literals, as they are read -------------------------------------- */

static struct ingest *append_ingest_new(bool literal8)
{
	/* A literal8 is stored as sent, octet for octet (RFC 3516 §4.4: the
	 * client means binary); an ordinary literal is text, and gets the
	 * line ends SMTP gives a message, so POP3 and IMAP send CRLF lines
	 * whatever the client appended. The literal limit (max-message-size)
	 * bounds what comes in. */
	struct ingest_options o = { .mem_limit = APPEND_SPOOL_MEM, .crlf = !literal8 };

	return ingest_new(&o);
}

/* The literal being announced at the end of cmd[0..len) is a message of
 * an APPEND: the verb is APPEND and the literal is not its first argument
 * (the mailbox name may be a literal too; flags and dates cannot). */
static bool append_literal_is_message(const char *cmd, size_t len)
{
	const char *sp = memchr(cmd, ' ', len), *args, *open = cmd + len;

	if (sp == NULL || (size_t)(cmd + len - sp) < sizeof(" APPEND ") ||
	    strncasecmp(sp, " APPEND ", sizeof(" APPEND ") - 1) != 0)
		return false;
	args = sp + sizeof(" APPEND ") - 1;
	while (open > args && open[-1] != '{')
		open--;
	if (open > args && open - 1 > args && open[-2] == '~')
		open--;
	return open - 1 > args;
}

static bool append_sink_open(void *arg, const char *cmd, size_t len, uint64_t size,
    bool literal8)
{
	struct imap_session *s = arg;
	struct imap_append_spool *sp = &s->append_spool;
	struct ingest **n;

	(void)size;
	if (s->state == IMAP_NOTAUTH || !append_literal_is_message(cmd, len))
		return false;
	if (sp->n == sp->cap) {
		size_t ncap = sp->cap ? sp->cap * 2 : 4;

		if ((n = realloc(sp->in, ncap * sizeof(*n))) == NULL)
			return false;
		sp->in = n;
		sp->cap = ncap;
	}
	/* Without memory for it, the literal is kept in the command. */
	if ((sp->in[sp->n] = append_ingest_new(literal8)) == NULL)
		return false;
	sp->n++;
	return true;
}

static void append_sink_data(void *arg, const void *buf, size_t len)
{
	struct imap_session *s = arg;

	ingest_write(s->append_spool.in[s->append_spool.n - 1], buf, len);
}

void imap_append_sink_init(struct imap_session *s)
{
	const struct imap_literal_sink sink = { append_sink_open, append_sink_data, s };

	imap_reader_set_sink(s->reader, &sink);
}

void imap_append_spool_drop(struct imap_session *s)
{
	struct imap_append_spool *sp = &s->append_spool;
	size_t i;

	for (i = 0; i < sp->n; i++)
		ingest_free(sp->in[i]);
	free(sp->in);
	memset(sp, 0, sizeof(*sp));
}

/* ---- the command ----------------------------------------------------------- */

/* One message of an APPEND (RFC 3502 allows several). */
struct append_msg {
	unsigned flags;
	const char *kw[APPEND_KEYWORDS_MAX];
	size_t nkw;
	int64_t date;
	const struct imap_arg *msg;
	struct ingest *in;
	char *keywords;
	struct store_new_message m;
};

struct append_job {
	struct imap_session *s;
	const char *tag;
	struct store_mailbox mb;
	struct append_msg *msgs;
	size_t n, cap;
	const struct store_new_message **submit;
	struct ingest **streamed;       /* taken from the session, in order */
	size_t nstreamed, next_streamed;
	struct deliver_req *req;
	bool committed;
	int rc;
	struct imap_seqset uids;
};

static void append_job_free(void *arg)
{
	struct append_job *job = arg;
	size_t i;

	if (job->req != NULL)
		deliver_cancel(job->req);
	for (i = 0; i < job->n; i++) {
		free(job->msgs[i].keywords);
		if (job->msgs[i].in != NULL)
			ingest_free(job->msgs[i].in);
	}
	for (i = job->next_streamed; i < job->nstreamed; i++)
		ingest_free(job->streamed[i]);
	free(job->streamed);
	free(job->msgs);
	free(job->submit);
	imap_seqset_free(&job->uids);
	free(job);
}

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
		if (!imap_arg_flags(s, cmd->tag, &args[i], &a->flags, a->kw, &a->nkw,
		    APPEND_KEYWORDS_MAX))
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
	a->msg = &args[i];
	*ip = i + 1;
	return true;
}

/* The message bytes of a: streamed already, or (when the reader could not
 * stream them) in the command, written to an ingest now. */
static bool append_input(struct append_job *job, struct append_msg *a)
{
	const struct imap_arg *lit = a->msg;

	if (lit->flags & IMAP_AF_STREAMED) {
		if (job->next_streamed >= job->nstreamed)
			return false;
		a->in = job->streamed[job->next_streamed++];
		return true;
	}
	if ((a->in = append_ingest_new(lit->flags & IMAP_AF_LITERAL8)) == NULL)
		return false;
	ingest_write(a->in, lit->str, lit->len);
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

/* Every message of the command is parsed and its bytes found before any
 * is stored; false after a tagged reply. */
static bool append_collect(struct append_job *job, const struct imap_command *cmd)
{
	struct imap_session *s = job->s;
	struct append_msg *a, *n;
	size_t i = 1;

	do {
		if (job->n == job->cap) {
			job->cap = job->cap ? job->cap * 2 : 1;
			if ((n = realloc(job->msgs, job->cap * sizeof(*n))) == NULL) {
				imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
				return false;
			}
			job->msgs = n;
		}
		a = &job->msgs[job->n];
		if (!append_parse(s, cmd, &i, a))
			return false;
		job->n++;
		if (!append_input(job, a)) {
			imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot receive the message");
			return false;
		}
		/* NUL is not a CHAR8 (RFC 3501 §9): only a literal8 (~{n},
		 * RFC 3516) may carry it. */
		if (!(a->msg->flags & IMAP_AF_LITERAL8) && ingest_saw_nul(a->in)) {
			imap_tagged(s, cmd->tag, "BAD", "NUL in a literal; use a literal8 (~{n})");
			return false;
		}
	} while (i < cmd->nargs);
	return true;
}

/* Beyond max-keywords APPEND makes no new keyword, as STORE (NO [LIMIT],
 * nothing stored): the keywords of all its messages together, since
 * MULTIAPPEND stores all or none. False after a tagged reply. */
static bool append_keywords_room(struct append_job *job)
{
	struct imap_session *s = job->s;
	const char **kw;
	size_t i, j, n = 0;
	int rc;

	for (i = 0; i < job->n; i++)
		n += job->msgs[i].nkw;
	if (n == 0)
		return true;
	if ((kw = malloc(n * sizeof(*kw))) == NULL) {
		imap_tagged(s, job->tag, "NO", "[SERVERBUG] Out of memory");
		return false;
	}
	for (i = 0, n = 0; i < job->n; i++)
		for (j = 0; j < job->msgs[i].nkw; j++)
			kw[n++] = job->msgs[i].kw[j];
	rc = store_mailbox_keywords_room(s->srv->store, job->mb.id, kw, n, NULL);
	free(kw);
	if (rc == STORE_LIMIT)
		imap_tagged(s, job->tag, "NO", "[LIMIT] Too many keywords in this mailbox (max %u)",
		    store_get_limits(s->srv->store)->keywords);
	else if (rc != STORE_OK)
		imap_tagged(s, job->tag, "NO", "[SERVERBUG] %s", store_errmsg(s->srv->store));
	return rc == STORE_OK;
}

/* The store columns of each message; false after a tagged reply. */
static bool append_prepare(struct append_job *job)
{
	struct imap_session *s = job->s;
	size_t i;

	if ((job->submit = calloc(job->n, sizeof(*job->submit))) == NULL)
		goto fail;
	for (i = 0; i < job->n; i++) {
		struct append_msg *a = &job->msgs[i];
		struct store_new_message *m = &a->m;

		if (ingest_finish(a->in, m) < 0 || (a->nkw > 0 &&
		    (a->keywords = join_keywords(a->kw, a->nkw)) == NULL))
			goto fail;
		m->inbox_id = s->inbox.id;
		m->mailbox_id = job->mb.id;
		m->flags = a->flags;
		m->keywords = a->keywords;
		m->mail_from = "";
		m->auth_user = s->inbox.name;
		m->client_addr = conn_peer(s->conn);
		m->internal_date = a->date;
		job->submit[i] = m;
	}
	return true;
fail:
	imap_tagged(s, job->tag, "NO", "[OVERQUOTA] Cannot store the messages now; none was stored");
	return false;
}

static void append_committed(void *arg, int rc, const struct deliver_result *res, size_t n)
{
	struct append_job *job = arg;
	size_t i;

	job->req = NULL;
	job->committed = true;
	job->rc = rc;
	for (i = 0; rc == STORE_OK && i < n; i++) {
		imap_seqset_add(&job->uids, res[i].uid, res[i].uid);
		log_info("imap: %s: appended message %lld to %s", conn_peer(job->s->conn),
		    (long long)res[i].id, job->mb.name);
	}
	imap_pending_wake(job->s);
}

/* Runs when the group commit is done: the tagged reply. */
static enum imap_cont append_reply(struct imap_session *s, void *arg)
{
	struct append_job *job = arg;
	char set[4096];

	if (!job->committed)
		return IMAP_CONT_WAIT;
	if (job->rc != STORE_OK) {
		imap_tagged(s, job->tag, "NO", job->rc == STORE_FULL || job->rc == STORE_BUSY ?
		    "[OVERQUOTA] Cannot store the messages now; none was stored" :
		    "[SERVERBUG] Cannot store; none of the messages was stored");
		return IMAP_CONT_DONE;
	}
	if (s->dirty)
		imap_view_sync(s, true);
	imap_seqset_normalize(&job->uids);
	/* RFC 4315 §3: the UIDs as a set, "3955:3957" for three (none if
	 * one could not be kept: a wrong set is worse). */
	if (imap_seqset_count(&job->uids) == job->n &&
	    imap_seqset_format(&job->uids, set, sizeof(set)) < sizeof(set))
		imap_tagged(s, job->tag, "OK", "[APPENDUID %u %s] APPEND completed",
		    job->mb.uidvalidity, set);
	else
		imap_tagged(s, job->tag, "OK", "APPEND completed");
	return IMAP_CONT_DONE;
}

void imap_cmd_append(struct imap_session *s, const struct imap_command *cmd)
{
	char name[STORE_MAILBOX_NAME_MAX];
	struct append_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		imap_append_spool_drop(s);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	job->s = s;
	job->tag = cmd->tag;
	job->streamed = s->append_spool.in;
	job->nstreamed = s->append_spool.n;
	memset(&s->append_spool, 0, sizeof(s->append_spool));
	imap_seqset_init(&job->uids);
	if (!imap_mailbox_arg(s, cmd, 0, name) || !append_collect(job, cmd))
		goto done;
	if (store_mailbox_get(s->srv->store, s->inbox.id, name, &job->mb) != STORE_OK) {
		imap_tagged(s, cmd->tag, "NO", "[TRYCREATE] Mailbox does not exist");
		goto done;
	}
	if (!append_keywords_room(job) || !append_prepare(job))
		goto done;
	job->req = deliver_submit_group(s->srv->deliver, job->submit, job->n, append_committed,
	    job);
	if (job->req == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		goto done;
	}
	imap_pending_start(s, cmd, IMAP_CONT_WAIT, append_reply, append_job_free, job);
	return;
done:
	append_job_free(job);
}
