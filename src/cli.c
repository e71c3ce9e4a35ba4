/*
 * The command line (DESIGN §2). Parsing is two passes: the first splits
 * argv into options and positional words (options may stand anywhere, so
 * the subcommand is not known yet); the second finds the subcommand in
 * commands[] and sorts the options into the subcommand's own (--password,
 * --inbox NAME, --all) and config flags, which go to config_load unchanged.
 *
 * Exit status: 0 success, 1 runtime failure (not found, store error),
 * 2 usage or configuration error.
 */
#include "mailsnare/cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "mailsnare/auth.h"
#include "mailsnare/config.h"
#include "mailsnare/log.h"
#include "mailsnare/mime_header.h"
#include "mailsnare/sendmail.h"
#include "mailsnare/serve.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/relay.h"
#include "mailsnare/store.h"
#include "mailsnare/version.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define CLI_MAX_OPTS 256
#define CLI_MAX_WORDS 8
#define CLI_OPT_NAME_MAX 64
/* A sink's own failure code, distinct from every STORE_* result. */
#define SINK_WRITE_ERROR 100

/* Options that belong to a subcommand rather than to the configuration. */
enum {
	OPT_PASSWORD = 1 << 0,
	OPT_INBOX = 1 << 1,
	OPT_ALL = 1 << 2,
	OPT_QUERY = 1 << 3,
	OPT_TO = 1 << 4,              /* repeatable */
};

/* What a command needs before it runs. */
enum need { NEED_NOTHING, NEED_CONFIG, NEED_STORE };

struct raw_opt {
	char name[CLI_OPT_NAME_MAX];  /* without dashes; "c" for -c */
	const char *value;            /* NULL: given bare */
	const char *arg;              /* as written, for messages */
	const char *next;             /* a bare bool: the word after it, if any */
};

struct cli;

struct command {
	const char *word, *sub;       /* "inbox", "add"; sub NULL: one word */
	size_t min_args, max_args;    /* positional arguments after the words */
	unsigned opts;                /* OPT_* it accepts */
	enum need need;
	/* Checks arguments before config and store are touched: EXIT_OK or an
	 * exit status (the message is printed). NULL: nothing to check. */
	int (*check)(struct cli *c);
	int (*run)(struct cli *c);
	const char *usage;
	const char *summary;          /* one line for help */
};

struct cli {
	char *const *envp;
	struct raw_opt opts[CLI_MAX_OPTS];
	size_t nopts;
	const char *words[CLI_MAX_WORDS];
	size_t nwords;
	bool help;

	const struct command *cmd;
	const char *const *args;      /* positional arguments after the words */
	size_t nargs;
	struct config_flag flags[CLI_MAX_OPTS];
	size_t nflags;
	const char *password, *inbox, *query;
	const char *to[RELAY_RCPTS_MAX];
	size_t nto;
	bool all;
	int64_t id;

	struct config cfg;
	struct store *st;
};

/* ---- messages ---- */

__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("mailsnare: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAIL;
}

static int usage(const struct command *cmd)
{
	fprintf(stderr, "usage: %s\n", cmd->usage);
	return EXIT_USAGE;
}

static int store_fail(struct cli *c)
{
	return fail("%s", store_errmsg(c->st));
}

/* ---- commands ---- */

static int check_inbox_add(struct cli *c);
static int check_message_get(struct cli *c);
static int check_message_del(struct cli *c);
static int check_message_release(struct cli *c);
static int run_serve(struct cli *c);
static int run_inbox_add(struct cli *c);
static int run_inbox_list(struct cli *c);
static int run_inbox_del(struct cli *c);
static int run_message_list(struct cli *c);
static int run_message_get(struct cli *c);
static int run_message_del(struct cli *c);
static int run_message_release(struct cli *c);
static int run_version(struct cli *c);
static int run_help(struct cli *c);
static int run_config_keys(struct cli *c);
static int run_sendmail(struct cli *c);

static const struct command commands[] = {
	{ "serve", NULL, 0, 0, 0, NEED_CONFIG, NULL, run_serve,
	  "mailsnare [serve] [options]", "run the server (the default command)" },
	{ "inbox", "add", 1, 1, OPT_PASSWORD, NEED_STORE, check_inbox_add, run_inbox_add,
	  "mailsnare inbox add NAME [--password P]", "create an inbox, print its credentials" },
	{ "inbox", "list", 0, 0, 0, NEED_STORE, NULL, run_inbox_list,
	  "mailsnare inbox list", "list inboxes, credentials, message counts" },
	{ "inbox", "del", 1, 1, 0, NEED_STORE, NULL, run_inbox_del,
	  "mailsnare inbox del NAME", "delete an inbox and all its mail" },
	{ "message", "list", 0, 0, OPT_INBOX | OPT_QUERY, NEED_STORE, NULL, run_message_list,
	  "mailsnare message list [--inbox NAME] [--query SEARCH]",
	  "one line per message (--query: a search, newest first)" },
	{ "message", "get", 1, 1, 0, NEED_STORE, check_message_get, run_message_get,
	  "mailsnare message get ID", "the stored message, byte for byte" },
	{ "message", "del", 0, 1, OPT_INBOX | OPT_ALL, NEED_STORE, check_message_del,
	  run_message_del, "mailsnare message del ID | --inbox NAME --all",
	  "delete one message, or all of an inbox's" },
	{ "message", "release", 1, 1, OPT_TO, NEED_STORE, check_message_release,
	  run_message_release, "mailsnare message release ID --to ADDRESS [--to ...]",
	  "send it on to relay-host" },
	{ "sendmail", NULL, 0, CLI_MAX_WORDS, 0, NEED_NOTHING, NULL, run_sendmail,
	  "mailsnare sendmail [-t] [-i] [-f FROM] [-F NAME] [RCPT...]",
	  "submit a message on standard input over SMTP, as sendmail does" },
	{ "config", "keys", 0, 0, 0, NEED_NOTHING, NULL, run_config_keys,
	  "mailsnare config keys", "each config key, its variable and default" },
	{ "version", NULL, 0, 0, 0, NEED_NOTHING, NULL, run_version,
	  "mailsnare version", "versions: its own and its libraries'" },
	{ "help", NULL, 0, 2, 0, NEED_NOTHING, NULL, run_help,
	  "mailsnare help [COMMAND] | COMMAND --help | --help | -h", "this text, or a command's" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* A format: %s is the installed config file. */
static const char help_footer[] =
    "\n"
    "Options may stand before or after a command's arguments: --key value,\n"
    "--key=value, -c FILE. Every config key is an option, e.g. --db PATH,\n"
    "--smtp HOST:PORT|off, --inbox NAME:PASSWORD, --log-level debug.\n"
    "Each key can also be set as MAILSNARE_<KEY> in the environment or as\n"
    "`key = value` in the config file: -c FILE, else $MAILSNARE_CONFIG, else\n"
    "conf/mailsnare.conf in the current directory, else\n"
    "%s: the first that exists.\n"
    "Precedence: option > environment > file > default.\n"
    "The keys: `mailsnare config keys` and mailsnare.conf(5); the commands:\n"
    "mailsnare(1).\n";

/* "  usage   summary"; under a long usage, the summary on a line of its own. */
static void print_command(const struct command *cmd)
{
	const int col = 40;

	if ((int)strlen(cmd->usage) <= col)
		printf("  %-*s %s\n", col, cmd->usage, cmd->summary);
	else
		printf("  %s\n  %-*s %s\n", cmd->usage, col, "", cmd->summary);
}

static int print_help(void)
{
	printf("mailsnare %s - a local mail trap: SMTP in, IMAP/POP3/HTTP out\n\nusage:\n",
	    PACKAGE_VERSION);
	for (size_t i = 0; i < N_COMMANDS; i++)
		print_command(&commands[i]);
	printf(help_footer, config_system_file());
	return EXIT_OK;
}

static bool is_command(const struct command *cmd, const char *word, const char *sub)
{
	return strcmp(cmd->word, word) == 0 && sub != NULL && cmd->sub != NULL &&
	    strcmp(cmd->sub, sub) == 0;
}

/* `mailsnare inbox add --help`, `help inbox`: that command, else its group.
 * Commands that read the configuration also get the options text. */
static int print_command_help(const char *word, const char *sub)
{
	bool exact = false, any = false, options = false;

	for (size_t i = 0; i < N_COMMANDS; i++)
		exact = exact || is_command(&commands[i], word, sub);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		const struct command *cmd = &commands[i];

		if (strcmp(cmd->word, word) != 0 || (exact && !is_command(cmd, word, sub)))
			continue;
		printf("usage: %s\n  %s\n", cmd->usage, cmd->summary);
		any = true;
		options = options || cmd->need != NEED_NOTHING;
	}
	if (!any) {
		fail("unknown command '%s' (see 'mailsnare help')", word);
		return EXIT_USAGE;
	}
	if (options)
		printf(help_footer, config_system_file());
	return EXIT_OK;
}

static int run_help(struct cli *c)
{
	if (c->nargs == 0)
		return print_help();
	return print_command_help(c->args[0], c->nargs > 1 ? c->args[1] : NULL);
}

/* Only reached with mailsnare's options before the word: cli_main hands
 * `mailsnare sendmail ...` to sendmail_main, whose options are its own. */
static int run_sendmail(struct cli *c)
{
	fail("sendmail: give its options after the word sendmail (mailsnare sendmail -C FILE ...)");
	return EXIT_USAGE;
}

static int run_version(struct cli *c)
{
	version_print(stdout);
	return EXIT_OK;
}

/* For scripts, shell completion and the test that keeps the documentation
 * true: "key<TAB>MAILSNARE_KEY<TAB>default" per key; the default is empty
 * when there is none or it is computed at start. */
static int run_config_keys(struct cli *c)
{
	const char *name;

	for (size_t i = 0; (name = config_key_name(i)) != NULL; i++) {
		char env[96];
		const char *def = config_key_default(i);

		config_key_env(name, env, sizeof(env));
		printf("%s\t%s\t%s\n", name, env, def != NULL ? def : "");
	}
	return EXIT_OK;
}

static int run_serve(struct cli *c)
{
	return serve_run(&c->cfg);
}

/* Sixteen characters of [a-z0-9]; rejection sampling keeps every character
 * equally likely (252 = 7 * 36). */
static int check_inbox_add(struct cli *c)
{
	const char *why = store_inbox_name_check(c->args[0], strlen(c->args[0]));

	if (why != NULL) {
		fail("invalid inbox name '%s': %s (want 1..%d bytes of UTF-8 without '/',"
		    " control characters or spaces at either end)", c->args[0], why,
		    STORE_NAME_MAX - 1);
		return EXIT_USAGE;
	}
	if (c->password != NULL && !auth_password_valid(c->password)) {
		fail("invalid password (1..%d characters, no control characters)",
		    STORE_PASS_MAX - 1);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int run_inbox_add(struct cli *c)
{
	const char *name = c->args[0];
	char generated[AUTH_PASSWORD_GENERATED_LEN + 1];
	struct store_inbox ib;
	const char *pw = c->password;
	int rc;

	if (pw == NULL) {
		if (auth_random_password(generated, sizeof(generated)) < 0)
			return fail("cannot generate a password: no randomness");
		pw = generated;
	}
	rc = store_inbox_add(c->st, name, pw, &ib);
	if (rc == STORE_EXISTS)
		return fail("inbox '%s' exists", name);
	if (rc != STORE_OK)
		return store_fail(c);
	printf("inbox: %s\nusername: %s\npassword: %s\n", name, name, pw);
	return EXIT_OK;
}

static int print_inbox(const struct store_inbox *ib, void *arg)
{
	printf("%s\t%s\t%" PRId64 "\n", ib->name, ib->password, ib->messages);
	return 0;
}

static int run_inbox_list(struct cli *c)
{
	printf("NAME\tPASSWORD\tMESSAGES\n");
	if (store_inbox_foreach(c->st, print_inbox, NULL) < 0)
		return store_fail(c);
	return EXIT_OK;
}

static int run_inbox_del(struct cli *c)
{
	int rc = store_inbox_del(c->st, c->args[0]);

	if (rc == STORE_NOTFOUND)
		return fail("no inbox '%s'", c->args[0]);
	if (rc != STORE_OK)
		return store_fail(c);
	return EXIT_OK;
}

/* A column value: tabs, newlines and other control characters would break
 * the one-row-per-message format, so they become spaces. */
/* Header values are shown RFC 2047-decoded (a list is for people). */
static void put_field(const char *value, bool last)
{
	size_t len = 0;
	char *dec = value ? mime_header_decode(value, strlen(value), &len) : NULL;
	const char *s = dec ? dec : value;

	for (; s != NULL && *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		putchar(ch < 0x20 || ch == 0x7f ? ' ' : ch);
	}
	putchar(last ? '\n' : '\t');
	free(dec);
}

static int print_message(const struct store_message_info *m, void *arg)
{
	char id[32], date[32] = "";
	time_t t = (time_t)m->internal_date;
	struct tm tm;

	snprintf(id, sizeof(id), "%" PRId64, m->id);
	if (gmtime_r(&t, &tm) != NULL)
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	put_field(id, false);
	put_field(m->inbox, false);
	put_field(date, false);
	put_field(m->hdr_from != NULL && m->hdr_from[0] != '\0' ? m->hdr_from : m->mail_from, false);
	put_field(m->hdr_to != NULL && m->hdr_to[0] != '\0' ? m->hdr_to : m->rcpts, false);
	put_field(m->hdr_subject, true);
	return 0;
}

/* --query: the messages a search finds (as the HTTP API's search),
 * newest first. */
static int list_search(struct cli *c, int64_t inbox_id)
{
	struct msg_search *s = NULL;
	struct store_query q = { .inbox_id = inbox_id };
	char err[256];
	int rc;

	if (msg_search_parse(c->query, "", &s, err, sizeof(err)) != 0)
		return fail("--query: %s", err);
	q.search = s;
	printf("ID\tINBOX\tDATE\tFROM\tTO\tSUBJECT\n");
	rc = store_message_query(c->st, &q, print_message, NULL, NULL);
	msg_search_free(s);
	return rc != STORE_OK ? store_fail(c) : EXIT_OK;
}

static int run_message_list(struct cli *c)
{
	struct store_inbox ib;
	int rc;

	/* Checked first so that an unknown inbox prints no header. */
	if (c->inbox != NULL) {
		rc = store_inbox_get(c->st, c->inbox, &ib);
		if (rc == STORE_NOTFOUND)
			return fail("no inbox '%s'", c->inbox);
		if (rc != STORE_OK)
			return store_fail(c);
	}
	if (c->query != NULL)
		return list_search(c, c->inbox != NULL ? ib.id : 0);
	printf("ID\tINBOX\tDATE\tFROM\tTO\tSUBJECT\n");
	rc = store_message_foreach(c->st, c->inbox, print_message, NULL);
	if (rc == STORE_NOTFOUND)
		return fail("no inbox '%s'", c->inbox);
	if (rc != STORE_OK)
		return store_fail(c);
	return EXIT_OK;
}

/* A message id: a positive decimal number. */
static int parse_id(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	*out = (int64_t)v;
	return 0;
}

static int check_id(struct cli *c)
{
	if (parse_id(c->args[0], &c->id) < 0) {
		fail("invalid message id '%s'", c->args[0]);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

static int check_message_get(struct cli *c)
{
	return check_id(c);
}

static int write_stdout(void *arg, const void *buf, size_t len)
{
	return fwrite(buf, 1, len, stdout) == len ? 0 : SINK_WRITE_ERROR;
}

static int run_message_get(struct cli *c)
{
	int rc = store_message_read(c->st, c->id, write_stdout, NULL);

	if (rc == STORE_NOTFOUND)
		return fail("no message %" PRId64, c->id);
	if (rc == SINK_WRITE_ERROR)
		return fail("write error: %s", strerror(errno));
	if (rc != STORE_OK)
		return store_fail(c);
	return EXIT_OK;
}

/* Either one ID, or --inbox NAME --all: never a mix, never a bare --inbox
 * (deleting a whole inbox's mail must be asked for). */
static int check_message_del(struct cli *c)
{
	if (c->nargs == 1 && c->inbox == NULL && !c->all)
		return check_id(c);
	if (c->nargs == 0 && c->inbox != NULL && c->all)
		return EXIT_OK;
	return usage(c->cmd);
}

static int run_message_del(struct cli *c)
{
	int64_t count = 0;
	int rc;

	if (c->nargs == 1) {
		rc = store_message_del(c->st, c->id);
		if (rc == STORE_NOTFOUND)
			return fail("no message %" PRId64, c->id);
		return rc == STORE_OK ? EXIT_OK : store_fail(c);
	}
	rc = store_message_del_inbox(c->st, c->inbox, &count);
	if (rc == STORE_NOTFOUND)
		return fail("no inbox '%s'", c->inbox);
	if (rc != STORE_OK)
		return store_fail(c);
	printf("deleted %" PRId64 " messages\n", count);
	return EXIT_OK;
}

static int check_message_release(struct cli *c)
{
	if (c->nto == 0)
		return usage(c->cmd);
	return check_id(c);
}

/* The same release as the HTTP API's, waited for: this process has no
 * loop to share. */
static int run_message_release(struct cli *c)
{
	char err[RELAY_ERR_MAX];
	struct relay *r = NULL;
	enum relay_status st;

	if (relay_new(&c->cfg, NULL, &r, err, sizeof(err)) < 0) {
		fail("%s", err);
		return EXIT_USAGE;
	}
	if (r == NULL) {
		fail("message relay is not enabled (set relay-host)");
		return EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		relay_free(r);
		return fail("cannot set up libcurl");
	}
	st = relay_send_sync(r, c->st, c->id, c->to, c->nto, err, sizeof(err));
	relay_free(r);
	curl_global_cleanup();
	if (st != RELAY_OK)
		return fail("%s", err);
	printf("released message %" PRId64 " to %zu recipient%s\n", c->id, c->nto,
	    c->nto == 1 ? "" : "s");
	return EXIT_OK;
}

/* ---- pass 1: options and words ---- */

/* Options that are not config keys, and whether they take a value. */
static const struct {
	const char *name;
	unsigned opt;
	bool takes_value;
} sub_options[] = {
	{ "password", OPT_PASSWORD, true },
	{ "inbox", OPT_INBOX, true },
	{ "all", OPT_ALL, false },
	{ "query", OPT_QUERY, true },
	{ "to", OPT_TO, true },
	{ "help", 0, false },
};

#define N_SUB_OPTIONS (sizeof(sub_options) / sizeof(sub_options[0]))

static int sub_option(const char *name)
{
	for (size_t i = 0; i < N_SUB_OPTIONS; i++)
		if (strcmp(sub_options[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int unknown_option(const char *arg)
{
	fail("unknown option '%s'", arg);
	return EXIT_USAGE;
}

/* Reads the option at argv[*i] ("--key", "--key=value", "-c", "-h"),
 * taking its value from the next argument where the option needs one. */
static int parse_option(struct cli *c, int argc, char **argv, int *i)
{
	const char *arg = argv[*i];
	const char *name = arg[1] == '-' ? arg + 2 : arg + 1;
	const char *eq = strchr(name, '=');
	size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
	struct raw_opt *o;
	int sub;

	if (strcmp(arg, "-h") == 0) {
		c->help = true;
		return EXIT_OK;
	}
	if ((arg[1] != '-' && strcmp(arg, "-c") != 0) || len == 0 || len >= CLI_OPT_NAME_MAX)
		return unknown_option(arg);
	if (c->nopts == CLI_MAX_OPTS) {
		fail("too many options (max %d)", CLI_MAX_OPTS);
		return EXIT_USAGE;
	}
	o = &c->opts[c->nopts];
	memcpy(o->name, name, len);
	o->name[len] = '\0';
	o->arg = arg;
	o->value = eq != NULL ? eq + 1 : NULL;
	sub = sub_option(o->name);
	if (sub < 0 && !config_key_known(o->name))
		return unknown_option(arg);
	if (sub >= 0 && strcmp(o->name, "help") == 0) {
		c->help = true;
		return EXIT_OK;
	}
	if (o->value == NULL && *i + 1 < argc) {
		bool b;

		/* A bool takes the next word only if it is a bool word; a bare
		 * "--smtp-require-auth" before a subcommand means yes. */
		if (config_key_is_bool(o->name) ? config_bool_parse(argv[*i + 1], &b) == 0
		    : sub < 0 || sub_options[sub].takes_value)
			o->value = argv[++*i];
		else
			o->next = argv[*i + 1];
	}
	if (o->value == NULL && !config_key_is_bool(o->name) &&
	    (sub < 0 || sub_options[sub].takes_value)) {
		fail("option '%s' needs a value", arg);
		return EXIT_USAGE;
	}
	c->nopts++;
	return EXIT_OK;
}

static int split_argv(struct cli *c, int argc, char **argv)
{
	bool options_end = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int rc;

		if (!options_end && strcmp(a, "--") == 0) {
			options_end = true;
		} else if (!options_end && a[0] == '-' && a[1] != '\0' &&
		    !isdigit((unsigned char)a[1])) {
			/* "-1" is a (bad) message id, not an option. */
			if ((rc = parse_option(c, argc, argv, &i)) != EXIT_OK)
				return rc;
		} else if (c->nwords < CLI_MAX_WORDS) {
			c->words[c->nwords++] = a;
		} else {
			fail("too many arguments");
			return EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

/* ---- pass 2: the command and its options ---- */

static void print_group_usage(const char *word)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].word, word) == 0)
			fprintf(stderr, "usage: %s\n", commands[i].usage);
}

static int find_command(struct cli *c)
{
	const char *word = c->nwords > 0 ? c->words[0] : "serve";
	bool group = false;

	for (size_t i = 0; i < N_COMMANDS; i++) {
		const struct command *cmd = &commands[i];
		size_t used = cmd->sub != NULL ? 2 : 1;

		if (strcmp(cmd->word, word) != 0)
			continue;
		group = true;
		if (cmd->sub != NULL && (c->nwords < 2 || strcmp(cmd->sub, c->words[1]) != 0))
			continue;
		c->cmd = cmd;
		c->args = c->words + (c->nwords < used ? c->nwords : used);
		c->nargs = c->nwords < used ? 0 : c->nwords - used;
		return EXIT_OK;
	}
	if (group) {
		print_group_usage(word);
		return EXIT_USAGE;
	}
	fail("unknown command '%s' (see 'mailsnare help')", word);
	return EXIT_USAGE;
}

/* Subcommand options to their fields, everything else to config flags. */
static int sort_options(struct cli *c)
{
	for (size_t i = 0; i < c->nopts; i++) {
		const struct raw_opt *o = &c->opts[i];
		int sub = sub_option(o->name);

		if (sub >= 0 && (c->cmd->opts & sub_options[sub].opt)) {
			if (sub_options[sub].opt == OPT_PASSWORD)
				c->password = o->value;
			else if (sub_options[sub].opt == OPT_INBOX)
				c->inbox = o->value;
			else if (sub_options[sub].opt == OPT_QUERY)
				c->query = o->value;
			else if (sub_options[sub].opt == OPT_TO) {
				if (c->nto == RELAY_RCPTS_MAX) {
					fail("too many --to (at most %d)", RELAY_RCPTS_MAX);
					return EXIT_USAGE;
				}
				c->to[c->nto++] = o->value;
			}
			else
				c->all = true;
			continue;
		}
		if (!config_key_known(o->name))
			return unknown_option(o->arg);
		c->flags[c->nflags++] = (struct config_flag){ o->name, o->value };
	}
	return EXIT_OK;
}

static int load_config(struct cli *c)
{
	struct config_error err;

	if (config_load(&c->cfg, c->flags, c->nflags, c->envp, &err) < 0) {
		fail("%s", err.msg);
		return EXIT_USAGE;
	}
	log_set_level(c->cfg.log_level);
	return EXIT_OK;
}

static int open_store(struct cli *c)
{
	char err[256] = "";

	c->st = store_open(&(struct store_options){ .path = c->cfg.db,
	    .durability = c->cfg.durability, .err = err, .errlen = sizeof(err),
	    .limits = { c->cfg.max_mailboxes, c->cfg.max_subscriptions, c->cfg.max_keywords } });
	if (c->st == NULL)
		return fail("%s: %s", c->cfg.db, err[0] != '\0' ? err : "cannot open");
	return EXIT_OK;
}

/* One word too many right after a bare yes/no option is most likely its
 * value mistyped ("--auth-accept-any maybe"): say so, naming the key,
 * rather than only showing the usage. */
static int extra_word(struct cli *c)
{
	const char *extra = c->args[c->cmd->max_args];

	for (size_t i = 0; i < c->nopts; i++) {
		if (c->opts[i].next == extra) {
			fail("%s: invalid boolean '%s' (want yes or no)", c->opts[i].arg, extra);
			return EXIT_USAGE;
		}
	}
	return usage(c->cmd);
}

static int prepare(struct cli *c)
{
	const struct command *cmd = c->cmd;
	int rc;

	if (c->nargs > cmd->max_args)
		return extra_word(c);
	if (c->nargs < cmd->min_args)
		return usage(cmd);
	if (cmd->check != NULL && (rc = cmd->check(c)) != EXIT_OK)
		return rc;
	if (cmd->need >= NEED_CONFIG && (rc = load_config(c)) != EXIT_OK)
		return rc;
	if (cmd->need >= NEED_STORE && (rc = open_store(c)) != EXIT_OK)
		return rc;
	return EXIT_OK;
}

/* Output to a closed pipe or a full disk is a failure, not a silent
 * truncation: `message get ID > file` must not exit 0 with half a message. */
static int finish_output(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (rc == EXIT_OK)
			rc = fail("write error: %s", strerror(errno));
	}
	return rc;
}

static int cli_run(struct cli *c, int argc, char **argv)
{
	int rc;

	if ((rc = split_argv(c, argc, argv)) != EXIT_OK)
		return rc;
	if (c->help)
		return c->nwords == 0 ? print_help()
		    : print_command_help(c->words[0], c->nwords > 1 ? c->words[1] : NULL);
	if ((rc = find_command(c)) != EXIT_OK)
		return rc;
	if ((rc = sort_options(c)) != EXIT_OK)
		return rc;
	if ((rc = prepare(c)) != EXIT_OK)
		return rc;
	return c->cmd->run(c);
}

/* sendmail has options of its own (-t, -oi, -f): `mailsnare sendmail`, or
 * the binary called as sendmail through a symlink. */
static bool sendmail_invoked(int argc, char **argv)
{
	const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;

	if (argc > 0 && strcmp(base ? base + 1 : argv[0], "sendmail") == 0)
		return true;
	return argc > 1 && strcmp(argv[1], "sendmail") == 0;
}

int cli_main(int argc, char **argv, char *const *envp)
{
	struct cli *c;
	int rc;

	if (sendmail_invoked(argc, argv))
		return sendmail_main(argc, argv, envp);
	/* Big (a few KB of options plus the config): not on the stack. */
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return fail("out of memory");
	c->envp = envp;
	rc = cli_run(c, argc, argv);
	if (c->st != NULL)
		store_close(c->st);
	config_free(&c->cfg);
	free(c);
	return finish_output(rc);
}
