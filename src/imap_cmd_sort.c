/*
 * SORT, UID SORT, THREAD and UID THREAD (RFC 5256, RFC 5957 DISPLAYFROM
 * and DISPLAYTO): the search criteria evaluated by imap_search_run, the
 * keys read from the stored MIME structure's envelope fields (References
 * from the header itself), and the ordering and threading of imap_sort.c.
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

/* ---- SORT --------------------------------------------------------------- */

static bool sort_keys(struct imap_session *s, size_t i, const struct imap_sort_crit *crit,
    size_t ncrit, bool uid, struct imap_sort_msg *out)
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
	if (need_tree)
		tree = imap_msg_tree(s, m);
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

static void sort_msgs_free(struct imap_sort_msg *msgs, size_t n)
{
	for (size_t i = 0; msgs && i < n; i++)
		for (size_t k = 0; k <= IMAP_SORT_DISPLAYTO; k++)
			free((char *)msgs[i].keys[k]);
	free(msgs);
}

void imap_cmd_sort(struct imap_session *s, const struct imap_command *cmd)
{
	struct imap_sort_crit crit[SORT_MAX_CRIT];
	struct imap_sort_msg *msgs = NULL;
	struct imap_search q = { 0 };
	struct imap_error err = { 0 };
	size_t ncrit, *idx = NULL, n = 0, i;
	bool ok;

	if (cmd->nargs < 3 || cmd->args[0].type != IMAP_ARG_LIST) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: SORT (criteria) charset search-keys");
		return;
	}
	if (!imap_sort_parse(&cmd->args[0], crit, SORT_MAX_CRIT, &ncrit, &err)) {
		imap_search_reply_error(s, cmd->tag, &err, "Bad sort criteria");
		return;
	}
	if (!imap_search_parse(cmd->args + 1, cmd->nargs - 1, &sort_limits, &q, &err)) {
		imap_search_reply_error(s, cmd->tag, &err, "Invalid search");
		return;
	}
	ok = imap_search_run(s, &q, &idx, &n);
	imap_search_free(&q);
	if (ok && n > 0)
		ok = (msgs = calloc(n, sizeof(*msgs))) != NULL;
	for (i = 0; ok && i < n; i++)
		ok = sort_keys(s, idx[i], crit, ncrit, cmd->uid, &msgs[i]);
	free(idx);
	if (!ok) {
		sort_msgs_free(msgs, n);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Sort failed");
		return;
	}
	imap_sort_msgs(msgs, n, crit, ncrit);
	imap_printf(s, "* SORT");
	for (i = 0; i < n; i++)
		imap_printf(s, " %u", msgs[i].id);
	imap_printf(s, "\r\n");
	sort_msgs_free(msgs, n);
	imap_tagged(s, cmd->tag, "OK", "SORT completed");
}

/* ---- THREAD ------------------------------------------------------------- */

static bool thread_msg(struct imap_session *s, size_t i, enum imap_thread_alg alg, bool uid,
    struct imap_thread_msg *out)
{
	const struct imap_msg *m = &s->view->msgs[i];
	struct mime_part *tree = imap_msg_tree(s, m);
	const char *subject = tree ? mime_part_env(tree, MIME_ENV_SUBJECT) : NULL;

	memset(out, 0, sizeof(*out));
	out->id = uid ? m->uid : (uint32_t)(i + 1);
	out->date = sent_date(tree, m);
	out->subject = imap_sort_base_subject(subject, &out->reply);
	if (alg == IMAP_THREAD_REFERENCES) {
		out->message_id = env_dup(tree, MIME_ENV_MESSAGE_ID);
		out->in_reply_to = env_dup(tree, MIME_ENV_IN_REPLY_TO);
		out->references = references(s, m, tree);
	}
	mime_part_free(tree);
	return out->subject != NULL;
}

static void thread_msgs_free(struct imap_thread_msg *msgs, size_t n)
{
	for (size_t i = 0; msgs && i < n; i++) {
		free((char *)msgs[i].subject);
		free((char *)msgs[i].message_id);
		free((char *)msgs[i].in_reply_to);
		free((char *)msgs[i].references);
	}
	free(msgs);
}

void imap_cmd_thread(struct imap_session *s, const struct imap_command *cmd)
{
	enum imap_thread_alg alg;
	struct imap_thread_msg *msgs = NULL;
	struct imap_thread t = { 0 };
	struct imap_search q = { 0 };
	struct imap_error err = { 0 };
	size_t *idx = NULL, n = 0, i;
	char *text = NULL;
	bool ok;

	if (cmd->nargs < 3) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: THREAD algorithm charset search-keys");
		return;
	}
	if (!imap_thread_parse(&cmd->args[0], &alg, &err)) {
		imap_search_reply_error(s, cmd->tag, &err, "Unknown threading algorithm");
		return;
	}
	if (!imap_search_parse(cmd->args + 1, cmd->nargs - 1, &sort_limits, &q, &err)) {
		imap_search_reply_error(s, cmd->tag, &err, "Invalid search");
		return;
	}
	ok = imap_search_run(s, &q, &idx, &n);
	imap_search_free(&q);
	if (ok)
		ok = (msgs = calloc(n ? n : 1, sizeof(*msgs))) != NULL;
	for (i = 0; ok && i < n; i++)
		ok = thread_msg(s, idx[i], alg, cmd->uid, &msgs[i]);
	free(idx);
	if (ok)
		ok = imap_thread_build(msgs, n, alg, &t);
	if (ok)
		ok = (text = imap_thread_format(&t, msgs)) != NULL;
	imap_thread_free(&t);
	thread_msgs_free(msgs, n);
	if (!ok) {
		free(text);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Thread failed");
		return;
	}
	imap_printf(s, "* THREAD%s%s\r\n", text[0] ? " " : "", text);
	free(text);
	imap_tagged(s, cmd->tag, "OK", "THREAD completed");
}
