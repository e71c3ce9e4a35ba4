/*
 * IMAP commands that clean up or leave the selected mailbox: CHECK,
 * CLOSE, UNSELECT (RFC 3691), EXPUNGE and UID EXPUNGE (RFC 4315).
 *
 * Removing many messages is done in bounded steps: at most
 * EXPUNGE_STEP_ROWS deletions, and no more than EXPUNGE_STEP_MS of them,
 * per store transaction, one step per loop pass (struct imap_pending), so
 * that expunging 100,000 messages holds no other client up (a deletion
 * costs from 20 microseconds to a millisecond, with its tombstone, body
 * and index rows, depending on the machine and its load). Each step commits on its own: other sessions (and POP3) see the
 * messages go a step at a time, each removal complete with its tombstone,
 * which is what they would see of expunges from several sessions. This
 * session reads no input meanwhile, and reports the EXPUNGEs (or VANISHED)
 * once, at the end, from what its view sync finds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_session.h"

/* Deletions per transaction and loop pass: a few milliseconds. */
#define EXPUNGE_STEP_ROWS 256
#define EXPUNGE_STEP_MS 4
/* Messages of the view looked at per pass when the expunges are reported
 * (20,000 EXPUNGE lines in one pass were tens of milliseconds). */
#define EXPUNGE_REPORT_STEP 2048

void imap_cmd_check(struct imap_session *s, const struct imap_command *cmd)
{
	imap_view_sync(s, true);
	imap_tagged(s, cmd->tag, "OK", "CHECK completed");
}

/* An EXPUNGE, UID EXPUNGE or CLOSE going on in steps. */
struct expunge_job {
	const struct imap_command *cmd;
	struct imap_seqset uids;  /* UID EXPUNGE: only these */
	bool only;
	bool close;               /* CLOSE: silently, then leave the mailbox */
	size_t next;              /* the view index to look at next */
	int rc;
	bool reporting;           /* deletions done; the EXPUNGEs going out */
	struct imap_expunge_cursor report;
};

static void expunge_job_free(void *arg)
{
	struct expunge_job *job = arg;

	imap_seqset_free(&job->uids);
	if (job->reporting)
		imap_seqset_free(&job->report.vanished);
	free(job);
}

/* Removes up to EXPUNGE_STEP_ROWS \Deleted messages of the view from
 * job->next on, in one transaction; true when the view is done or a step
 * failed (job->rc). */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool expunge_step(struct imap_session *s, struct expunge_job *job)
{
	struct imap_view *v = s->view;
	struct store *st = s->srv->store;
	size_t rows = 0;
	int64_t until = now_ms() + EXPUNGE_STEP_MS;
	int rc = store_begin(st);

	while (rc == STORE_OK && job->next < v->n && rows < EXPUNGE_STEP_ROWS &&
	    (rows == 0 || now_ms() < until)) {
		struct imap_msg *m = &v->msgs[job->next++];
		if (!(m->flags & STORE_FLAG_DELETED) || m->gone ||
		    (job->only && !imap_seqset_contains(&job->uids, m->uid)))
			continue;
		rows++;
		rc = store_message_del(st, m->id);
		if (rc == STORE_NOTFOUND)
			rc = STORE_OK;   /* another session was first */
	}
	if (rc == STORE_OK)
		rc = store_commit(st);
	else
		store_rollback(st);
	job->rc = rc;
	return rc != STORE_OK || job->next >= v->n;
}

static void close_view(struct imap_session *s, const struct imap_command *cmd)
{
	imap_view_free(s->view);
	s->view = NULL;
	imap_search_saved_reset(s);
	s->dirty = false;
	s->state = IMAP_AUTH;
	imap_tagged(s, cmd->tag, "OK", "%s completed", cmd->verb);
}

static enum imap_cont expunge_cont(struct imap_session *s, void *arg)
{
	struct expunge_job *job = arg;

	if (!job->reporting && !expunge_step(s, job))
		return IMAP_CONT_YIELD;
	if (job->close) {
		/* CLOSE expunges silently, failed or not. */
		close_view(s, job->cmd);
		return IMAP_CONT_DONE;
	}
	/* What changed (this session's removals among it), then the
	 * removals reported a slice at a time, waiting for the client to
	 * read: the FETCHes and EXISTS of the sync use the numbers the
	 * client has before the EXPUNGEs, as the RFC allows. */
	if (!job->reporting) {
		imap_view_sync(s, false);
		imap_expunge_cursor_init(&job->report);
		job->reporting = true;
	}
	if (!imap_view_expunge_step(s, &job->report, EXPUNGE_REPORT_STEP))
		return conn_output_pending(s->conn) > IMAP_SLICE_OUTPUT ? IMAP_CONT_OUTPUT :
		    IMAP_CONT_YIELD;
	job->reporting = false;
	if (job->rc != STORE_OK)
		imap_tagged(s, job->cmd->tag, "NO", "[SERVERBUG] %s", store_errmsg(s->srv->store));
	else
		imap_tagged(s, job->cmd->tag, "OK", "EXPUNGE completed");
	return IMAP_CONT_DONE;
}

/* Runs the first step now, the others in later passes; takes job. */
static void expunge_start(struct imap_session *s, const struct imap_command *cmd,
    struct expunge_job *job)
{
	job->cmd = cmd;
	if (expunge_cont(s, job) == IMAP_CONT_DONE)
		expunge_job_free(job);
	else
		imap_pending_start(s, cmd, IMAP_CONT_YIELD, expunge_cont, expunge_job_free, job);
}

void imap_cmd_close(struct imap_session *s, const struct imap_command *cmd)
{
	struct expunge_job *job;

	/* CLOSE expunges silently; UNSELECT does not expunge (RFC 3691). */
	if (strcmp(cmd->verb, "CLOSE") != 0 || s->view->readonly ||
	    (job = calloc(1, sizeof(*job))) == NULL) {
		close_view(s, cmd);
		return;
	}
	imap_seqset_init(&job->uids);
	job->close = true;
	expunge_start(s, cmd, job);
}

void imap_cmd_expunge(struct imap_session *s, const struct imap_command *cmd)
{
	struct expunge_job *job;

	if (s->view->readonly) {
		imap_tagged(s, cmd->tag, "NO", "[READ-ONLY] Mailbox is read-only");
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	imap_seqset_init(&job->uids);
	job->only = cmd->uid;
	if (cmd->uid && (cmd->nargs != 1 || cmd->args[0].type != IMAP_ARG_ATOM ||
	    !imap_view_select(s, cmd->tag, cmd->args[0].str, true, &job->uids))) {
		/* imap_view_select answered for a set it refused. */
		if (cmd->nargs != 1 || cmd->args[0].type != IMAP_ARG_ATOM)
			imap_tagged(s, cmd->tag, "BAD", "Syntax: UID EXPUNGE sequence-set");
		expunge_job_free(job);
		return;
	}
	expunge_start(s, cmd, job);
}
