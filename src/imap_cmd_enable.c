/*
 * ENABLE (RFC 5161): IMAP4rev2 (RFC 9051), UTF8=ACCEPT (RFC 6855),
 * CONDSTORE and QRESYNC (RFC 7162) for the rest of the session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_session.h"

/* RFC 5161: the reply names what this command newly enabled. */
void imap_cmd_enable(struct imap_session *s, const struct imap_command *cmd)
{
	char enabled[160] = "";
	size_t i;

	if (cmd->nargs == 0) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: ENABLE capability...");
		return;
	}
	for (i = 0; i < cmd->nargs; i++) {
		bool qresync = imap_arg_equals(&cmd->args[i], "QRESYNC");
		if (imap_arg_equals(&cmd->args[i], "IMAP4rev2") && !s->rev2) {
			/* RFC 9051: no \Recent, ESEARCH for SEARCH, UTF-8 names. */
			s->rev2 = s->utf8 = true;
			strcat(enabled, " IMAP4rev2");
		} else if (imap_arg_equals(&cmd->args[i], "UTF8=ACCEPT") && !s->utf8) {
			/* RFC 6855: UTF-8 mailbox names and quoted strings from now on. */
			s->utf8 = true;
			strcat(enabled, " UTF8=ACCEPT");
		} else if (imap_arg_equals(&cmd->args[i], "CONDSTORE") && !s->condstore) {
			s->condstore = true;
			strcat(enabled, " CONDSTORE");
		} else if (qresync && !s->qresync) {
			/* QRESYNC implies CONDSTORE (RFC 7162 §3.2.3). */
			if (!s->condstore)
				strcat(enabled, " CONDSTORE");
			s->condstore = s->qresync = true;
			strcat(enabled, " QRESYNC");
		}
	}
	imap_printf(s, "* ENABLED%s\r\n", enabled);
	imap_tagged(s, cmd->tag, "OK", "ENABLE completed");
}
