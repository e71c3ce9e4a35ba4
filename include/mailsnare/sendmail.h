/*
 * `mailsnare sendmail` (also when the binary is called as `sendmail`): the
 * drop-in for programs that pipe a message to /usr/sbin/sendmail (PHP's
 * mail(), cron, git send-email). It reads the message on standard input
 * and submits it over SMTP to the running server (the `smtp` key); exit
 * statuses are sendmail's (sysexits.h).
 *
 * sendmail_msg.c turns the input into what goes after DATA (no I/O);
 * sendmail.c parses the options and is the (blocking) SMTP client: a
 * process of its own, never the server's loop.
 */
#ifndef MAILSNARE_SENDMAIL_H
#define MAILSNARE_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>

/* Recipients one message may have (as the server's SMTP_MAX_RCPTS). */
#define SENDMAIL_MAX_RCPTS 1000
#define SENDMAIL_ADDR_MAX 512

struct sendmail_opts {
	bool rcpts_from_headers;     /* -t: To, Cc and Bcc; Bcc is removed */
	const char *from;            /* the envelope sender, also a new From: */
	const char *full_name;       /* -F: the name in a From: added, or NULL */
	const char *hostname;        /* the right side of a Message-ID added */
};

struct sendmail_msg {
	char *data;                  /* CRLF lines, dot-stuffed, ".\r\n" at the end */
	size_t len;
	char *rcpts[SENDMAIL_MAX_RCPTS];   /* from the headers (-t), malloc'd */
	size_t nrcpts;
	bool eight_bit;              /* a byte above 127: BODY=8BITMIME */
	bool utf8_rcpts;             /* a non-ASCII address: SMTPUTF8 */
};

/* Why sendmail_msg_build failed. */
enum sendmail_msg_rc { SENDMAIL_MSG_OK, SENDMAIL_MSG_NOMEM, SENDMAIL_MSG_TOO_MANY };

/* The message in[0..len) as read (without the terminating dot line, if
 * any), ready to send: every line ends with CRLF (bare LF and CR become
 * CRLF), lines starting with "." get another (RFC 5321 §4.5.2), a missing
 * From:, Date: or Message-ID: is added, and with -t the recipients are
 * collected and Bcc: is dropped. Free with sendmail_msg_free. */
enum sendmail_msg_rc sendmail_msg_build(const char *in, size_t len,
    const struct sendmail_opts *o, struct sendmail_msg *out);
void sendmail_msg_free(struct sendmail_msg *m);

/* true if the line (with its LF or CRLF, or at the end of the input) is a
 * single dot: the end of input unless -i/-oi is given. */
bool sendmail_is_dot_line(const char *line, size_t len);

/* The whole command: argv as given (argv[0] "sendmail", or "mailsnare"
 * followed by "sendmail"). Returns a sysexits.h status. */
int sendmail_main(int argc, char **argv, char *const *envp);

#endif
