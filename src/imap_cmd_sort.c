/*
 * SORT, UID SORT, THREAD and UID THREAD (RFC 5256, RFC 5957 DISPLAYFROM
 * and DISPLAYTO): the search criteria evaluated by imap_search_step, the
 * keys read from the stored MIME structure's envelope fields (References
 * from the header itself), and the ordering and threading of imap_sort.c.
 *
 * Both work in slices across loop passes (struct imap_pending): the
 * search, then the keys of the messages found (each costs a MIME
 * structure, THREAD's References a header read), as SEARCH does by bytes
 * read; then the sort or the threading, in memory, IMAP_SLICE_STEPS work
 * units a pass (imap_sort_order_step, imap_thread_step); then the
 * response, in pieces that wait for the client to read; then the keys are
 * freed, a pass's worth at a time, before the tagged reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/imap_search.h"
#include "mailsnare/imap_sort.h"
#include "mailsnare/mime.h"
#include "imap_session.h"

#define SORT_MAX_CRIT 16
#define REFERENCES_MAX MIME_MAX_HEADER

static const struct imap_search_limits sort_limits = {
	32, 10000, IMAP_SEARCH_CHARSET_REQUIRED | IMAP_SEARCH_NO_RETURN
};

/* The sent date: Date:, else INTERNALDATE (RFC 5256 §2.2). */
static int64_t sent_date(const struct mime_part *tree, const struct imap_msg *m)
{
	int64_t t;

	if (tree && imap_sort_parse_date(mime_part_env(tree, MIME_ENV_DATE), &t))
		return t;
	return m->internal_date;
}

/* The first References field of the top-level header, unfolded. */
static char *references(struct imap_session *s, const struct imap_msg *m,
    const struct mime_part *tree)
{
	struct mime_field f;
	size_t pos = 0;
	char *hdr, *val = NULL;

	if (tree == NULL || (hdr = imap_msg_read(s, m, tree->hdr_off, tree->hdr_size)) == NULL)
		return NULL;
	while (val == NULL && mime_header_next(hdr, (size_t)tree->hdr_size, &pos, &f))
		if (f.name_len == 10 && strncasecmp(f.name, "References", 10) == 0)
			val = mime_header_unfold(f.value, f.value_len, REFERENCES_MAX);
	free(hdr);
	return val;
}

static char *env_dup(const struct mime_part *tree, enum mime_env_field f)
{
	const char *v = tree ? mime_part_env(tree, f) : NULL;

	return v ? strdup(v) : NULL;
}

/* ---- keys --------------------------------------------------------------- */

static bool sort_keys(struct imap_session *s, size_t i, const struct imap_sort_crit *crit,
    size_t ncrit, bool uid, struct imap_sort_msg *out, uint64_t *cost)
{
	const struct imap_msg *m = &s->view->msgs[i];
	struct mime_part *tree = NULL;
	bool need_tree = false, ok = true;

	memset(out, 0, sizeof(*out));
	out->seq = (uint32_t)(i + 1);
	out->id = uid ? m->uid : out->seq;
	out->arrival = m->internal_date;
	out->date = m->internal_date;
	out->size = m->size;
	for (size_t c = 0; c < ncrit; c++)
		need_tree |= crit[c].key != IMAP_SORT_ARRIVAL && crit[c].key != IMAP_SORT_SIZE;
	if (need_tree) {
		tree = imap_msg_tree(s, m);
		*cost += IMAP_SLICE_TREE_COST;
	}
	for (size_t c = 0; ok && c < ncrit; c++) {
		enum imap_sort_key k = crit[c].key;
		const char *v;

		if (out->keys[k] != NULL)
			continue;
		switch (k) {
		case IMAP_SORT_DATE:
			out->date = sent_date(tree, m);
			continue;
		case IMAP_SORT_SUBJECT:
			v = tree ? mime_part_env(tree, MIME_ENV_SUBJECT) : NULL;
			out->keys[k] = imap_sort_base_subject(v, NULL);
			break;
		case IMAP_SORT_FROM: case IMAP_SORT_DISPLAYFROM:
			v = tree ? mime_part_env(tree, MIME_ENV_FROM) : NULL;
			out->keys[k] = imap_sort_address_key(v, k == IMAP_SORT_DISPLAYFROM);
			break;
		case IMAP_SORT_TO: case IMAP_SORT_DISPLAYTO:
			v = tree ? mime_part_env(tree, MIME_ENV_TO) : NULL;
			out->keys[k] = imap_sort_address_key(v, k == IMAP_SORT_DISPLAYTO);
			break;
		case IMAP_SORT_CC:
			v = tree ? mime_part_env(tree, MIME_ENV_CC) : NULL;
			out->keys[k] = imap_sort_address_key(v, false);
			break;
		default:
			continue;
		}
		ok = out->keys[k] != NULL;
	}
	mime_part_free(tree);
	return ok;
}

static bool thread_msg(struct imap_session *s, size_t i, enum imap_thread_alg alg, bool uid,
    struct imap_thread_msg *out, uint64_t *cost)
{
	const struct imap_msg *m = &s->view->msgs[i];
	struct mime_part *tree = imap_msg_tree(s, m);
	const char *subject = tree ? mime_part_env(tree, MIME_ENV_SUBJECT) : NULL;

	*cost += IMAP_SLICE_TREE_COST;
	memset(out, 0, sizeof(*out));
	out->id = uid ? m->uid : (uint32_t)(i + 1);
	out->date = sent_date(tree, m);
	out->subject = imap_sort_base_subject(subject, &out->reply);
	if (alg == IMAP_THREAD_REFERENCES) {
		out->message_id = env_dup(tree, MIME_ENV_MESSAGE_ID);
		out->in_reply_to = env_dup(tree, MIME_ENV_IN_REPLY_TO);
		out->references = references(s, m, tree);
		*cost += tree ? tree->hdr_size : 0;
	}
	mime_part_free(tree);
	return out->subject != NULL;
}

/* ---- a SORT or THREAD in slices ---------------------------------------- */

enum sort_phase { PHASE_SEARCH, PHASE_KEYS, PHASE_ORDER, PHASE_OUTPUT, PHASE_FREE };

struct sort_job {
	const struct imap_command *cmd;
	bool thread;
	struct imap_sort_crit crit[SORT_MAX_CRIT];
	size_t ncrit;
	enum imap_thread_alg alg;
	struct imap_search q;
	struct imap_search_iter it;     /* the messages found: it.idx[0..it.n) */
	enum sort_phase phase;
	size_t next;                    /* keys, free: of it.idx; output: of ids or text */
	struct imap_sort_msg *smsgs;    /* SORT */
	struct imap_thread_msg *tmsgs;  /* THREAD */
	struct imap_sort_order *order;  /* SORT: the ordering in progress */
	const size_t *sorted;           /* SORT: its result, indexes of smsgs */
	struct imap_thread_job *tjob;   /* THREAD: the threading in progress */
	char *text;                     /* THREAD: the response data */
	size_t text_len;
	bool started;                   /* the response line is begun */
};

/* Frees the keys of the messages from job->next on: at most `budget`
 * messages' worth (unbounded with SIZE_MAX). true when all are. */
static bool keys_free(struct sort_job *job, size_t budget)
{
	size_t n = job->smsgs || job->tmsgs ? job->it.n : 0;

	for (; job->next < n && budget > 0; job->next++, budget--) {
		if (job->smsgs) {
			for (size_t k = 0; k <= IMAP_SORT_DISPLAYTO; k++)
				free((char *)job->smsgs[job->next].keys[k]);
		} else {
			struct imap_thread_msg *m = &job->tmsgs[job->next];
			free((char *)m->subject);
			free((char *)m->message_id);
			free((char *)m->in_reply_to);
			free((char *)m->references);
		}
	}
	return job->next >= n;
}

static void sort_job_free(void *arg)
{
	struct sort_job *job = arg;

	/* keys_free counts from job->next: before PHASE_FREE nothing is */
	if (job->phase != PHASE_FREE)
		job->next = 0;
	(void)keys_free(job, SIZE_MAX);
	free(job->smsgs);
	free(job->tmsgs);
	imap_sort_order_end(job->order);
	imap_thread_end(job->tjob);
	free(job->text);
	imap_search_iter_free(&job->it);
	imap_search_free(&job->q);
	free(job);
}

/* The keys of the messages found, from job->next on, within the budget
 * (*cost, what they cost); true when all are in. *ok false on no memory. */
static bool keys_step(struct imap_session *s, struct sort_job *job, bool *ok, uint64_t *cost_out)
{
	uint64_t cost = 0;

	while (*ok && job->next < job->it.n && cost < IMAP_SLICE_BYTES) {
		size_t i = job->next, at = job->it.idx[i];

		cost += IMAP_SLICE_MSG_COST;
		if (job->thread)
			*ok = thread_msg(s, at, job->alg, job->cmd->uid, &job->tmsgs[i], &cost);
		else
			*ok = sort_keys(s, at, job->crit, job->ncrit, job->cmd->uid, &job->smsgs[i],
			    &cost);
		job->next++;
	}
	*cost_out = cost;
	return job->next >= job->it.n;
}

/* What is left of a pass's IMAP_SLICE_STEPS after `cost` of key reading
 * (IMAP_SLICE_BYTES being all of it). */
static uint64_t steps_left(uint64_t cost)
{
	if (cost >= IMAP_SLICE_BYTES)
		return 0;
	return (uint64_t)IMAP_SLICE_STEPS * (IMAP_SLICE_BYTES - cost) / IMAP_SLICE_BYTES;
}

/* Sets up the ordering (or threading) of what the keys give. */
static bool order_begin(struct sort_job *job)
{
	job->next = 0;
	if (job->thread)
		return (job->tjob = imap_thread_begin(job->tmsgs, job->it.n, job->alg)) != NULL;
	return (job->order = imap_sort_order_begin(job->smsgs, job->it.n, job->crit,
	    job->ncrit)) != NULL;
}

/* Orders (or threads) for a budget; 1 done, 0 to go on, -1 no memory. */
static int order_step(struct sort_job *job, uint64_t *budget)
{
	int r;

	if (!job->thread)
		return (job->sorted = imap_sort_order_step(job->order, budget)) != NULL;
	if ((r = imap_thread_step(job->tjob, budget)) == 1)
		job->text = imap_thread_take_text(job->tjob, &job->text_len);
	return r;
}

/* "* SORT 3 1 2" or "* THREAD (1)(2 3)", a piece at a time while the
 * client reads; true once the line is complete. */
static bool output_step(struct imap_session *s, struct sort_job *job)
{
	char buf[4096];
	size_t len = 0, n = job->thread ? job->text_len : job->it.n;

	if (!job->started) {
		job->started = true;
		imap_printf(s, "* %s", job->thread ? (n > 0 ? "THREAD " : "THREAD") : "SORT");
	}
	while (job->next < n) {
		if (conn_output_pending(s->conn) >= IMAP_SLICE_OUTPUT)
			return false;
		if (job->thread) {
			len = n - job->next < sizeof(buf) ? n - job->next : sizeof(buf);
			conn_write(s->conn, job->text + job->next, len);
			job->next += len;
			continue;
		}
		for (len = 0; job->next < n && len + 16 < sizeof(buf); job->next++)
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %u",
			    job->smsgs[job->sorted[job->next]].id);
		conn_write(s->conn, buf, len);
	}
	imap_printf(s, "\r\n");
	return true;
}

static enum imap_cont sort_cont(struct imap_session *s, void *arg)
{
	struct sort_job *job = arg;
	const char *what = job->thread ? "THREAD" : "SORT";
	uint64_t cost = 0, budget = IMAP_SLICE_STEPS;
	bool ok = true;
	int rc;

	switch (job->phase) {
	case PHASE_SEARCH:
		if ((rc = imap_search_step(s, &job->q, &job->it, IMAP_SLICE_BYTES)) == 0)
			return IMAP_CONT_YIELD;
		if (rc < 0)
			break;
		job->phase = PHASE_KEYS;
		job->next = 0;
		if (job->thread)
			ok = (job->tmsgs = calloc(job->it.n ? job->it.n : 1,
			    sizeof(*job->tmsgs))) != NULL;
		else
			ok = (job->smsgs = calloc(job->it.n ? job->it.n : 1,
			    sizeof(*job->smsgs))) != NULL;
		if (!ok)
			break;
		/* fall through */
	case PHASE_KEYS:
		if (!keys_step(s, job, &ok, &cost) && ok)
			return IMAP_CONT_YIELD;
		if (!ok || !order_begin(job))
			break;
		job->phase = PHASE_ORDER;
		/* the ordering takes what the keys left of this pass */
		if ((budget = steps_left(cost)) == 0)
			return IMAP_CONT_YIELD;
		/* fall through */
	case PHASE_ORDER:
		if ((rc = order_step(job, &budget)) == 0)
			return IMAP_CONT_YIELD;
		if (rc < 0)
			break;
		job->phase = PHASE_OUTPUT;
		job->next = 0;
		if (budget == 0)
			return IMAP_CONT_YIELD;   /* the pass's work is done */
		/* fall through */
	case PHASE_OUTPUT:
		if (!output_step(s, job))
			return IMAP_CONT_OUTPUT;
		job->phase = PHASE_FREE;
		job->next = 0;
		/* fall through */
	case PHASE_FREE:
		/* a message's keys are up to four allocations, four units */
		if (!keys_free(job, IMAP_SLICE_STEPS / 4))
			return IMAP_CONT_YIELD;
		imap_tagged(s, job->cmd->tag, "OK", "%s completed", what);
		return IMAP_CONT_DONE;
	}
	imap_tagged(s, job->cmd->tag, "NO", "[SERVERBUG] %s failed",
	    job->thread ? "Thread" : "Sort");
	return IMAP_CONT_DONE;
}

/* Parses the search program, resolves it, and runs the first slice; the
 * rest in later passes. The job is freed here unless it goes on. */
static void sort_start(struct imap_session *s, const struct imap_command *cmd,
    struct sort_job *job)
{
	struct imap_error err = { 0 };

	job->cmd = cmd;
	if (!imap_search_parse(cmd->args + 1, cmd->nargs - 1, &sort_limits, &job->q, &err)) {
		imap_search_reply_error(s, cmd->tag, &err, "Invalid search");
		free(job);
		return;
	}
	if (!imap_search_resolve(s, &job->q)) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] %s failed",
		    job->thread ? "Thread" : "Sort");
		sort_job_free(job);
		return;
	}
	switch (sort_cont(s, job)) {
	case IMAP_CONT_DONE:
		sort_job_free(job);
		break;
	case IMAP_CONT_YIELD:
		imap_pending_start(s, cmd, IMAP_CONT_YIELD, sort_cont, sort_job_free, job);
		break;
	default:   /* IMAP_CONT_OUTPUT (sort never waits for anything else) */
		imap_pending_start(s, cmd, IMAP_CONT_OUTPUT, sort_cont, sort_job_free, job);
		break;
	}
}

void imap_cmd_sort(struct imap_session *s, const struct imap_command *cmd)
{
	struct imap_error err = { 0 };
	struct sort_job *job;

	if (cmd->nargs < 3 || cmd->args[0].type != IMAP_ARG_LIST) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: SORT (criteria) charset search-keys");
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	if (!imap_sort_parse(&cmd->args[0], job->crit, SORT_MAX_CRIT, &job->ncrit, &err)) {
		imap_search_reply_error(s, cmd->tag, &err, "Bad sort criteria");
		free(job);
		return;
	}
	sort_start(s, cmd, job);
}

void imap_cmd_thread(struct imap_session *s, const struct imap_command *cmd)
{
	struct imap_error err = { 0 };
	struct sort_job *job;

	if (cmd->nargs < 3) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: THREAD algorithm charset search-keys");
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	job->thread = true;
	if (!imap_thread_parse(&cmd->args[0], &job->alg, &err)) {
		imap_search_reply_error(s, cmd->tag, &err, "Unknown threading algorithm");
		free(job);
		return;
	}
	sort_start(s, cmd, job);
}
