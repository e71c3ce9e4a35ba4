/*
 * SEARCH programs (and SORT/THREAD criteria): the input is the arguments
 * of the command, parsed by the generic parser first; the first byte picks
 * the limits and flags. On success the tree must have the shape the AST
 * promises: OR two children, NOT one, AND any, depth within the limit,
 * sets within their range bound, strings where keys take them.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/imap_search.h"
#include "fuzz_imap_args.h"

static void check_node(const struct imap_search_node *n, const struct imap_search_limits *lim,
    unsigned depth)
{
	FUZZ_CHECK(depth <= lim->max_depth + 2);
	switch (n->key) {
	case IMAP_SK_OR:
		FUZZ_CHECK(n->nchildren == 2);
		break;
	case IMAP_SK_NOT:
		FUZZ_CHECK(n->nchildren == 1);
		break;
	case IMAP_SK_AND:
		break;
	case IMAP_SK_SEQSET:
	case IMAP_SK_UID:
		FUZZ_CHECK(n->nchildren == 0);
		FUZZ_CHECK(n->set.saved || n->set.count > 0);
		FUZZ_CHECK(n->set.count <= lim->max_ranges);
		break;
	case IMAP_SK_BEFORE: case IMAP_SK_ON: case IMAP_SK_SINCE:
	case IMAP_SK_SENTBEFORE: case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE:
		FUZZ_CHECK(imap_date_valid(n->date.year, n->date.month, n->date.day));
		break;
	case IMAP_SK_BCC: case IMAP_SK_BODY: case IMAP_SK_CC: case IMAP_SK_FROM:
	case IMAP_SK_SUBJECT: case IMAP_SK_TEXT: case IMAP_SK_TO: case IMAP_SK_KEYWORD:
	case IMAP_SK_UNKEYWORD:
		FUZZ_CHECK(n->str != NULL);
		break;
	case IMAP_SK_HEADER:
		FUZZ_CHECK(n->str != NULL && n->field != NULL);
		break;
	default:
		FUZZ_CHECK(n->nchildren == 0);
	}
	for (size_t i = 0; i < n->nchildren; i++)
		check_node(&n->children[i], lim, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_search_limits lim = { .max_depth = 16, .max_ranges = 100 };
	struct imap_command *cmd;
	struct imap_search s;
	struct imap_error err;
	unsigned mode;

	if (size < 1 || size > 4096)
		return 0;
	mode = data[0];
	if (mode & 1)
		lim.flags |= IMAP_SEARCH_CHARSET_REQUIRED;
	if (mode & 2)
		lim.flags |= IMAP_SEARCH_NO_RETURN;
	if (mode & 4) {
		lim.max_depth = 3;
		lim.max_ranges = 4;
	}
	cmd = fuzz_imap_command("SEARCH", data + 1, size - 1);
	if (cmd == NULL)
		return 0;
	memset(&s, 0, sizeof(s));
	if (imap_search_parse(cmd->args, cmd->nargs, &lim, &s, &err)) {
		FUZZ_CHECK(s.root.key == IMAP_SK_AND && s.root.nchildren > 0);
		check_node(&s.root, &lim, 0);
		if (!s.esearch)
			FUZZ_CHECK(s.ret == 0 || (s.ret & IMAP_SEARCH_RET_SAVE));
		imap_search_free(&s);
	} else {
		FUZZ_CHECK(err.code == IMAP_ERR_SYNTAX || err.code == IMAP_ERR_BADCHARSET ||
		    err.code == IMAP_ERR_TOO_DEEP || err.code == IMAP_ERR_NOMEM);
	}
	/* SORT criteria and THREAD algorithm from the first argument. */
	if (cmd->nargs > 0) {
		struct imap_sort_crit crit[8];
		enum imap_thread_alg alg;
		unsigned ret;
		size_t n;
		if (imap_sort_parse(&cmd->args[0], crit, 8, &n, &err))
			FUZZ_CHECK(n >= 1 && n <= 8);
		(void)imap_thread_parse(&cmd->args[0], &alg, &err);
		if (cmd->args[0].type == IMAP_ARG_LIST)
			(void)imap_search_parse_return(&cmd->args[0], &ret, &err);
	}
	imap_command_free(cmd);
	return 0;
}
