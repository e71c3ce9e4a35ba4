/*
 * IDLE (RFC 2177): the client waits for DONE while changes are reported
 * as they happen (imap_idle_notify and the sync timer in imap.c coalesce
 * them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_session.h"

void imap_cmd_idle(struct imap_session *s, const struct imap_command *cmd)
{
	snprintf(s->pending_tag, sizeof(s->pending_tag), "%s", cmd->tag);
	s->mode = IMAP_M_IDLE;
	imap_printf(s, "+ idling\r\n");
	imap_view_sync(s, true);
}

void imap_idle_line(struct imap_session *s, const char *line)
{
	s->mode = IMAP_M_COMMAND;
	if (strcasecmp(line, "DONE") != 0) {
		imap_tagged(s, s->pending_tag, "BAD", "Expected DONE");
		return;
	}
	imap_tagged(s, s->pending_tag, "OK", "IDLE terminated");
}
