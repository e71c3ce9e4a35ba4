/*
 * IMAP commands about the session itself, that touch no mailbox:
 * CAPABILITY, NOOP, LOGOUT and ID (RFC 2971) in any state, NAMESPACE
 * (RFC 2342) once logged in. ENABLE and IDLE have files of their own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_session.h"

void imap_cmd_capability(struct imap_session *s, const struct imap_command *cmd)
{
	imap_send_capability(s);
	imap_tagged(s, cmd->tag, "OK", "CAPABILITY completed");
}

void imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd)
{
	/* Also picks up changes made by other processes (the CLI). */
	imap_view_sync(s, true);
	imap_tagged(s, cmd->tag, "OK", "NOOP completed");
}

void imap_cmd_logout(struct imap_session *s, const struct imap_command *cmd)
{
	imap_printf(s, "* BYE mailsnare logging out\r\n");
	imap_tagged(s, cmd->tag, "OK", "LOGOUT completed");
	s->state = IMAP_LOGOUT;
	s->mode = IMAP_M_DONE;
	conn_close(s->conn);
}

/* RFC 2971: id_params_list ::= "(" #(string SPACE nstring) ")" / nil. */
static bool id_params_valid(const struct imap_arg *a)
{
	const struct imap_arg *items;
	const char *str;
	size_t n, i;

	if (imap_arg_is_nil(a))
		return true;
	if (!imap_arg_list(a, &items, &n) || n % 2 != 0)
		return false;
	for (i = 0; i < n; i += 2)
		if (!imap_arg_string(&items[i], &str, NULL) ||
		    !imap_arg_nstring(&items[i + 1], &str, NULL))
			return false;
	return true;
}

/* RFC 2971's bounds (30 pairs, 30-octet fields, 1,024-octet values) bind
 * the client; like Dovecot, a client that goes over them is answered all
 * the same: the line bound (64 KiB) is what protects the server. */
void imap_cmd_id(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs != 1 || !id_params_valid(&cmd->args[0])) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: ID (\"field\" \"value\" ...) or ID NIL");
		return;
	}
	imap_printf(s, "* ID (\"name\" \"mailsnare\" \"vendor\" \"mailsnare\")\r\n");
	imap_tagged(s, cmd->tag, "OK", "ID completed");
}

void imap_cmd_namespace(struct imap_session *s, const struct imap_command *cmd)
{
	imap_printf(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_tagged(s, cmd->tag, "OK", "NAMESPACE completed");
}
