#include "mailsnare/line_input.h"

#include "mailsnare/conn.h"

bool line_input(struct conn *c, struct auth_session *as, const struct line_input_ops *ops,
    void *session)
{
	char line[LINE_INPUT_MAX + 1];
	size_t len, size = ops->max < LINE_INPUT_MAX ? ops->max + 1 : sizeof(line);

	switch (conn_readline(c, line, size, &len)) {
	case CONN_LINE_NONE:
		return false;
	case CONN_LINE_TOOLONG:
		if (as->active) {
			auth_session_end(as);
			ops->auth_reply(session, AUTH_TOOLONG);
		} else {
			ops->too_long(session);
		}
		return true;
	default:
		if (as->active)
			ops->auth_reply(session, auth_step(as, line));
		else
			ops->command(session, line, len);
		return true;
	}
}
