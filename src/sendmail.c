/*
 * `mailsnare sendmail [-t] [-i] [-oi] [-f FROM] [-F NAME] [RCPT...]`, and
 * the binary called as `sendmail`: reads a message on standard input and
 * submits it over SMTP to the server's `smtp` listener (the same config,
 * -C FILE or --config, MAILSNARE_* and --key value as every subcommand).
 *
 * This is a process of its own, so the client blocks (with a timeout on
 * every socket operation). Exit statuses are sendmail's (sysexits.h):
 * EX_USAGE for options, EX_CONFIG for the config, EX_NOHOST when the
 * listener's name does not resolve, EX_UNAVAILABLE when nothing listens
 * or the server refuses for good, EX_TEMPFAIL for a 4xx or a connection
 * that breaks, EX_NOUSER for a refused recipient, EX_DATAERR for a
 * message refused at its end or too big, EX_PROTOCOL for a reply that is
 * no SMTP. Nothing is queued: a message that was not accepted is not sent.
 */
#include "mailsnare/sendmail.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <unistd.h>

#include "mailsnare/config.h"

#define SENDMAIL_TIMEOUT_S 60
#define SENDMAIL_FLAGS_MAX 64
/* RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; some slack. */
#define SENDMAIL_LINE_MAX 1024

struct sendmail {
	bool rcpts_from_headers, dot_ends;
	const char *from, *full_name;
	const char *rcpts[SENDMAIL_MAX_RCPTS];     /* from argv */
	size_t nrcpts;
	struct config_flag flags[SENDMAIL_FLAGS_MAX];
	char keys[SENDMAIL_FLAGS_MAX][CONFIG_NAME_MAX];   /* the flags' names */
	size_t nflags;
	struct config cfg;
	char sender[SENDMAIL_ADDR_MAX];            /* the envelope's */
	char header_from[SENDMAIL_ADDR_MAX];       /* a From: added */
};

struct client {
	int fd;
	char in[SENDMAIL_LINE_MAX * 4];
	size_t len;
	bool ehlo, ext_8bit, ext_utf8;
};

static const char usage_text[] =
    "usage: mailsnare sendmail [-t] [-i] [-oi] [-f FROM] [-F NAME] [-C FILE]\n"
    "                          [--key value ...] [RCPT ...]\n"
    "       (also as `sendmail`, through a symlink to the binary)\n"
    "Reads a message on standard input and submits it to the running\n"
    "mailsnare over SMTP (the `smtp` key).\n";

__attribute__((format(printf, 2, 3)))
static int fail(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("mailsnare sendmail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

/* ---- options ---- */

static int add_flag(struct sendmail *sm, const char *key, const char *value)
{
	if (sm->nflags == SENDMAIL_FLAGS_MAX)
		return fail(EX_USAGE, "too many options");
	sm->flags[sm->nflags++] = (struct config_flag){ key, value };
	return EX_OK;
}

static int add_rcpt(struct sendmail *sm, const char *addr)
{
	if (sm->nrcpts == SENDMAIL_MAX_RCPTS)
		return fail(EX_USAGE, "too many recipients (max %d)", SENDMAIL_MAX_RCPTS);
	sm->rcpts[sm->nrcpts++] = addr;
	return EX_OK;
}

/* "--key=value" or "--key value": a mailsnare config key. */
static int long_option(struct sendmail *sm, int argc, char **argv, int *i)
{
	char *key = sm->keys[sm->nflags < SENDMAIL_FLAGS_MAX ? sm->nflags : 0];
	const char *name = argv[*i] + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const char *value = eq ? eq + 1 : NULL;
	bool b;

	if (len == 4 && strncmp(name, "help", 4) == 0) {
		fputs(usage_text, stdout);
		return -1;
	}
	if (len >= CONFIG_NAME_MAX || sm->nflags == SENDMAIL_FLAGS_MAX)
		return fail(EX_USAGE, "unknown option '%s'", argv[*i]);
	memcpy(key, name, len);
	key[len] = '\0';
	if (!config_key_known(key) || strcmp(key, "c") == 0)
		return fail(EX_USAGE, "unknown option '%s'", argv[*i]);
	if (value == NULL && *i + 1 < argc && (!config_key_is_bool(key) ||
	    config_bool_parse(argv[*i + 1], &b) == 0))
		value = argv[++*i];
	return add_flag(sm, key, value);
}

/* The value of a short option: the rest of the word, else the next one. */
static const char *short_value(const char *p, int argc, char **argv, int *i)
{
	if (p[1] != '\0')
		return p + 1;
	return *i + 1 < argc ? argv[++*i] : NULL;
}

/* A cluster of sendmail's one-letter options ("-ti", "-fme@x", "-oi").
 * Those that change nothing for a trap are accepted and ignored. */
static int short_options(struct sendmail *sm, int argc, char **argv, int *i)
{
	for (const char *p = argv[*i] + 1; *p != '\0'; p++) {
		const char *v;

		switch (*p) {
		case 't':
			sm->rcpts_from_headers = true;
			continue;
		case 'i':
			sm->dot_ends = false;
			continue;
		case 'v': case 'U': case 'G': case 'n': case 'm':
			continue;
		case 'o':           /* -oi; other -oX are sendmail.cf options */
			if (strcmp(p + 1, "i") == 0)
				sm->dot_ends = false;
			return EX_OK;
		case 'b':           /* -bm is the default mode; no other is served */
			if (p[1] != '\0' && strcmp(p + 1, "m") != 0)
				return fail(EX_USAGE, "-b%s: only -bm (deliver a message) is supported",
				    p + 1);
			return EX_OK;
		case 'f': case 'r': case 'F': case 'C': case 'N': case 'R': case 'V': case 'B':
		case 'L': case 'h': case 'X': case 'O':
			if ((v = short_value(p, argc, argv, i)) == NULL)
				return fail(EX_USAGE, "option -%c needs a value", *p);
			if (*p == 'f' || *p == 'r')
				sm->from = v;
			else if (*p == 'F')
				sm->full_name = v;
			else if (*p == 'C')
				return add_flag(sm, "config", v);
			return EX_OK;
		default:
			return fail(EX_USAGE, "unknown option -%c", *p);
		}
	}
	return EX_OK;
}

/* argv[0] "sendmail" (a symlink), or "mailsnare sendmail". -1: --help. */
static int parse_args(struct sendmail *sm, int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	int i = strcmp(base ? base + 1 : argv[0], "sendmail") == 0 ? 1 : 2;
	int rc = EX_OK;

	sm->dot_ends = true;
	for (; i < argc && rc == EX_OK; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			while (++i < argc && rc == EX_OK)
				rc = add_rcpt(sm, argv[i]);
			break;
		}
		if (a[0] == '-' && a[1] == '-')
			rc = long_option(sm, argc, argv, &i);
		else if (a[0] == '-' && a[1] != '\0')
			rc = short_options(sm, argc, argv, &i);
		else
			rc = add_rcpt(sm, a);
	}
	return rc;
}

/* ---- the envelope sender and the message ---- */

/* -f "<addr>" and "<>" (the null sender) are taken with their brackets. */
static void set_sender(struct sendmail *sm)
{
	const struct passwd *pw = getpwuid(getuid());
	const char *user = pw != NULL ? pw->pw_name : "nobody";
	const char *f = sm->from;
	size_t n;

	snprintf(sm->header_from, sizeof(sm->header_from), "%s@%s", user, sm->cfg.hostname);
	if (f == NULL) {
		snprintf(sm->sender, sizeof(sm->sender), "%s", sm->header_from);
		return;
	}
	n = strlen(f);
	if (n >= 2 && f[0] == '<' && f[n - 1] == '>')
		snprintf(sm->sender, sizeof(sm->sender), "%.*s", (int)(n - 2), f + 1);
	else
		snprintf(sm->sender, sizeof(sm->sender), "%s", f);
	if (sm->sender[0] != '\0')
		snprintf(sm->header_from, sizeof(sm->header_from), "%s", sm->sender);
}

/* Standard input up to EOF or (without -i) a line that is a single dot;
 * more than max-message-size is refused before anything is sent. */
static int read_input(struct sendmail *sm, char **buf, size_t *len)
{
	char piece[4096];
	size_t cap = 0;
	bool at_start = true;
	int c;

	*buf = NULL;
	*len = 0;
	for (;;) {
		size_t n = 0;

		while (n < sizeof(piece) && (c = getchar()) != EOF)
			if ((piece[n++] = (char)c) == '\n')
				break;
		if (n == 0)
			break;
		if (sm->dot_ends && at_start && sendmail_is_dot_line(piece, n))
			break;
		at_start = piece[n - 1] == '\n';
		if (*len + n > sm->cfg.max_message_size)
			return fail(EX_DATAERR, "message larger than max-message-size (%llu bytes)",
			    (unsigned long long)sm->cfg.max_message_size);
		if (*len + n > cap) {
			char *p = realloc(*buf, cap = (*len + n) * 2);
			if (p == NULL)
				return fail(EX_OSERR, "out of memory");
			*buf = p;
		}
		memcpy(*buf + *len, piece, n);
		*len += n;
	}
	if (ferror(stdin))
		return fail(EX_IOERR, "reading standard input: %s", strerror(errno));
	return EX_OK;
}

/* ---- the SMTP client ---- */

static int status_of_errno(int e)
{
	return e == EAGAIN || e == ETIMEDOUT || e == EINPROGRESS ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

static int connect_addr(const struct addrinfo *ai)
{
	struct timeval tv = { SENDMAIL_TIMEOUT_S, 0 };
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

	if (fd < 0)
		return -1;
	/* On Linux SO_SNDTIMEO also bounds connect(). */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* The `smtp` key's address; a wildcard is reached on loopback. */
static int client_connect(struct client *c, const char *addr)
{
	char host[CONFIG_ADDR_MAX], port[8];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res, *ai;
	int r, e = ECONNREFUSED;

	if (strcmp(addr, "off") == 0)
		return fail(EX_UNAVAILABLE, "the smtp listener is off (set smtp = HOST:PORT)");
	if (config_split_hostport(addr, host, sizeof(host), port, sizeof(port)) < 0)
		return fail(EX_CONFIG, "smtp: invalid address '%s'", addr);
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (strcmp(host, "::") == 0)
		snprintf(host, sizeof(host), "::1");
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0)
		return fail(EX_NOHOST, "%s: %s", host, gai_strerror(r));
	c->fd = -1;
	for (ai = res; ai != NULL && c->fd < 0; ai = ai->ai_next)
		if ((c->fd = connect_addr(ai)) < 0)
			e = errno;
	freeaddrinfo(res);
	if (c->fd < 0)
		return fail(status_of_errno(e), "cannot connect to %s: %s", addr, strerror(e));
	return EX_OK;
}

static int client_send(struct client *c, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(EX_TEMPFAIL, "sending to the server: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
	return EX_OK;
}

/* The next reply line into line (without CRLF). */
static int client_line(struct client *c, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr(c->in, '\n', c->len);
		ssize_t n;

		if (nl != NULL) {
			size_t l = (size_t)(nl - c->in);
			if (l >= size)
				return fail(EX_PROTOCOL, "reply line too long");
			memcpy(line, c->in, l);
			line[l > 0 && line[l - 1] == '\r' ? l - 1 : l] = '\0';
			c->len -= l + 1;
			memmove(c->in, nl + 1, c->len);
			return EX_OK;
		}
		if (c->len == sizeof(c->in))
			return fail(EX_PROTOCOL, "reply line too long");
		n = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return fail(EX_TEMPFAIL, "the server closed the connection");
		if (n < 0)
			return fail(EX_TEMPFAIL, "reading from the server: %s", strerror(errno));
		c->len += (size_t)n;
	}
}

/* One reply, all its lines: the code and the last line. EHLO's keywords
 * are noted on the way. */
static int client_reply(struct client *c, int *code, char *last, size_t size)
{
	int rc;

	for (;;) {
		if ((rc = client_line(c, last, size)) != EX_OK)
			return rc;
		if (strlen(last) < 3 || !isdigit((unsigned char)last[0]) ||
		    !isdigit((unsigned char)last[1]) || !isdigit((unsigned char)last[2]) ||
		    (last[3] != '\0' && last[3] != ' ' && last[3] != '-'))
			return fail(EX_PROTOCOL, "not an SMTP reply: '%.80s'", last);
		*code = atoi(last);
		if (c->ehlo && *code == 250 && last[3] != '\0') {
			c->ext_8bit |= strcasecmp(last + 4, "8BITMIME") == 0;
			c->ext_utf8 |= strcasecmp(last + 4, "SMTPUTF8") == 0;
		}
		if (last[3] != '-')
			return EX_OK;
	}
}

/* Sends a command (NULL: none, the greeting or after the data) and wants
 * a reply of class want (2 or 3); a 4xx is EX_TEMPFAIL, a 5xx perm. */
static int client_step(struct client *c, const char *cmd, int want, int perm, int *code)
{
	char last[SENDMAIL_LINE_MAX];
	int rc, dummy;

	if (code == NULL)
		code = &dummy;
	if (cmd != NULL && (rc = client_send(c, cmd, strlen(cmd))) != EX_OK)
		return rc;
	if ((rc = client_reply(c, code, last, sizeof(last))) != EX_OK)
		return rc;
	if (*code / 100 == want)
		return EX_OK;
	return fail(*code / 100 == 4 ? EX_TEMPFAIL : perm, "%s%.*s: the server said: %s",
	    cmd ? "" : "greeting", cmd ? (int)strcspn(cmd, "\r") : 0, cmd ? cmd : "", last);
}

static int client_hello(struct client *c, const char *hostname)
{
	char cmd[300];
	int rc, code = 0;

	if ((rc = client_step(c, NULL, 2, EX_UNAVAILABLE, NULL)) != EX_OK)
		return rc;
	snprintf(cmd, sizeof(cmd), "EHLO %s\r\n", hostname);
	c->ehlo = true;
	rc = client_step(c, cmd, 2, EX_UNAVAILABLE, &code);
	c->ehlo = false;
	if (rc != EX_OK && code / 100 == 5) {
		snprintf(cmd, sizeof(cmd), "HELO %s\r\n", hostname);
		rc = client_step(c, cmd, 2, EX_UNAVAILABLE, NULL);
	}
	return rc;
}

static bool has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s > 127)
			return true;
	return false;
}

/* MAIL, every RCPT (argv's, then -t's), DATA and the message. */
static int client_transaction(struct client *c, const struct sendmail *sm,
    const struct sendmail_msg *m)
{
	char cmd[SENDMAIL_ADDR_MAX + 64];
	bool utf8 = m->utf8_rcpts || has_8bit(sm->sender);
	int rc;

	for (size_t i = 0; i < sm->nrcpts; i++)
		utf8 |= has_8bit(sm->rcpts[i]);
	if (utf8 && !c->ext_utf8)
		return fail(EX_DATAERR, "a non-ASCII address, and the server has no SMTPUTF8");
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>%s%s\r\n", sm->sender,
	    m->eight_bit && c->ext_8bit ? " BODY=8BITMIME" : "", utf8 ? " SMTPUTF8" : "");
	if ((rc = client_step(c, cmd, 2, EX_UNAVAILABLE, NULL)) != EX_OK)
		return rc;
	for (size_t i = 0; i < sm->nrcpts + m->nrcpts; i++) {
		const char *r = i < sm->nrcpts ? sm->rcpts[i] : m->rcpts[i - sm->nrcpts];
		if (snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", r) >= (int)sizeof(cmd))
			return fail(EX_DATAERR, "recipient too long: %.80s...", r);
		if ((rc = client_step(c, cmd, 2, EX_NOUSER, NULL)) != EX_OK)
			return rc;
	}
	if ((rc = client_step(c, "DATA\r\n", 3, EX_UNAVAILABLE, NULL)) != EX_OK)
		return rc;
	if ((rc = client_send(c, m->data, m->len)) != EX_OK)
		return rc;
	return client_step(c, NULL, 2, EX_DATAERR, NULL);
}

static int submit(struct sendmail *sm, const struct sendmail_msg *m)
{
	struct client c = { .fd = -1 };
	int rc;

	if ((rc = client_connect(&c, sm->cfg.listen[LISTEN_SMTP])) != EX_OK)
		return rc;
	rc = client_hello(&c, sm->cfg.hostname);
	if (rc == EX_OK)
		rc = client_transaction(&c, sm, m);
	/* Best effort: the outcome is known either way. */
	(void)send(c.fd, "QUIT\r\n", 6, MSG_NOSIGNAL);
	close(c.fd);
	return rc;
}

/* ---- the command ---- */

static int prepare_and_submit(struct sendmail *sm)
{
	struct sendmail_opts o = { .rcpts_from_headers = sm->rcpts_from_headers,
	    .full_name = sm->full_name, .hostname = sm->cfg.hostname };
	struct sendmail_msg m;
	char *in = NULL;
	size_t len = 0;
	int rc;

	set_sender(sm);
	o.from = sm->header_from;
	if (!sm->rcpts_from_headers && sm->nrcpts == 0)
		return fail(EX_USAGE, "no recipients (give them as arguments, or -t)");
	if ((rc = read_input(sm, &in, &len)) != EX_OK) {
		free(in);
		return rc;
	}
	switch (sendmail_msg_build(in ? in : "", len, &o, &m)) {
	case SENDMAIL_MSG_OK:
		break;
	case SENDMAIL_MSG_TOO_MANY:
		free(in);
		return fail(EX_DATAERR, "too many recipients (max %d)", SENDMAIL_MAX_RCPTS);
	default:
		free(in);
		return fail(EX_OSERR, "out of memory");
	}
	free(in);
	if (sm->nrcpts + m.nrcpts == 0)
		rc = fail(EX_USAGE, "no recipients in To:, Cc: or Bcc: (-t)");
	else if (sm->nrcpts + m.nrcpts > SENDMAIL_MAX_RCPTS)
		rc = fail(EX_DATAERR, "too many recipients (max %d)", SENDMAIL_MAX_RCPTS);
	else
		rc = submit(sm, &m);
	sendmail_msg_free(&m);
	return rc;
}

int sendmail_main(int argc, char **argv, char *const *envp)
{
	struct sendmail *sm = calloc(1, sizeof(*sm));
	struct config_error err;
	int rc;

	if (sm == NULL)
		return fail(EX_OSERR, "out of memory");
	if ((rc = parse_args(sm, argc, argv)) != EX_OK) {
		free(sm);
		return rc < 0 ? EX_OK : rc;
	}
	if (config_load(&sm->cfg, sm->flags, sm->nflags, envp, &err) < 0)
		rc = fail(EX_CONFIG, "%s", err.msg);
	else
		rc = prepare_and_submit(sm);
	config_free(&sm->cfg);
	free(sm);
	return rc;
}
