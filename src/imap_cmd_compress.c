/*
 * COMPRESS (RFC 4978): the connection layer stacks raw deflate over the
 * socket or TLS right after the tagged OK; the session itself does not
 * change. DEFLATE is the only algorithm.
 */
#include "mailsnare/log.h"
#include "imap_session.h"

void imap_cmd_compress(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs != 1 || cmd->args[0].type != IMAP_ARG_ATOM) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: COMPRESS DEFLATE");
		return;
	}
	if (!imap_arg_equals(&cmd->args[0], "DEFLATE")) {
		imap_tagged(s, cmd->tag, "BAD", "Unknown compression algorithm %s",
		    cmd->args[0].str);
		return;
	}
	if (conn_is_compressed(s->conn)) {
		imap_tagged(s, cmd->tag, "NO", "[COMPRESSIONACTIVE] DEFLATE is active already");
		return;
	}
	imap_tagged(s, cmd->tag, "OK", "DEFLATE active");
	/* The client compresses from here on: a failure cannot be answered
	 * in a form it would read. */
	if (conn_compress(s->conn) < 0) {
		log_warn("imap: %s: COMPRESS failed; closing", conn_peer(s->conn));
		s->mode = IMAP_M_DONE;
		conn_close(s->conn);
		return;
	}
	log_debug("imap: %s: DEFLATE on", conn_peer(s->conn));
}
