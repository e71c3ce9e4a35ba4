/*
 * The input side shared by the line-based protocols (SMTP and POP3; IMAP
 * has literals and a reader of its own): take the next buffered line and
 * route it to the SASL exchange while one is on, else to the command
 * handler. A protocol supplies only its handlers and replies.
 */
#ifndef MAILSNARE_LINE_INPUT_H
#define MAILSNARE_LINE_INPUT_H
#include <stdbool.h>
#include <stddef.h>
#include "mailsnare/auth.h"

struct conn;

/* The longest line any protocol reads this way, CRLF excluded (SMTP's
 * AUTH lines); a protocol's own bound may be smaller. */
#define LINE_INPUT_MAX 12288

struct line_input_ops {
	size_t max;      /* longest line, CRLF excluded (<= LINE_INPUT_MAX) */
	void (*command)(void *session, const char *line, size_t len);
	/* The outcome of auth_step, or AUTH_TOOLONG for a response line
	 * beyond max (the exchange is over then). */
	void (*auth_reply)(void *session, enum auth_rc rc);
	/* A command line beyond max (the rest of it is discarded). */
	void (*too_long)(void *session);
};

/* Handles one line; false when no complete line is buffered yet. */
bool line_input(struct conn *c, struct auth_session *as, const struct line_input_ops *ops,
    void *session);
#endif
