/* Configuration: defaults, the file format, the environment, flags, their
 * precedence, and the exact one-line error of every way a value can be
 * wrong. Every test passes its own envp and config file, so neither the
 * test process's environment nor its working directory matters. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mailsnare/config.h"

#define NFLAGS(a) (sizeof(a) / sizeof((a)[0]))

/* A config file with the given text; the path is in `path`. */
static void write_conf(char *path, size_t len, const char *text)
{
	int fd;

	snprintf(path, len, "/tmp/test_config_XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* Loads with a file of `text` (none if NULL), envp and flags; the file is
 * removed again. Returns config_load's result; err->msg has the error. */
static int load(struct config *cfg, const char *text, char *const *envp,
    const struct config_flag *flags, size_t nflags, struct config_error *err)
{
	char path[64];
	struct config_flag all[16];
	size_t n = 0;
	int r;

	cr_assert_lt(nflags, NFLAGS(all) - 1);
	if (text != NULL) {
		write_conf(path, sizeof(path), text);
		all[n++] = (struct config_flag){ "config", path };
	} else {
		/* An empty name: no file at all, not even conf/mailsnare.conf. */
		all[n++] = (struct config_flag){ "config", "" };
	}
	for (size_t i = 0; i < nflags; i++)
		all[n++] = flags[i];
	r = config_load(cfg, all, n, envp, err);
	if (text != NULL)
		unlink(path);
	return r;
}

/* The error message with the temp file's name replaced by "F". */
static const char *msg_without_path(const char *msg, char *out, size_t len)
{
	const char *p = strstr(msg, "/tmp/test_config_");

	if (p == NULL)
		snprintf(out, len, "%s", msg);
	else
		snprintf(out, len, "%.*sF%s", (int)(p - msg), msg, p + strlen("/tmp/test_config_XXXXXX"));
	return out;
}

static void expect_error(const char *text, char *const *envp, const struct config_flag *flags,
    size_t nflags, const char *want)
{
	struct config cfg;
	struct config_error err;
	char got[sizeof(err.msg)];

	cr_assert_eq(load(&cfg, text, envp, flags, nflags, &err), -1, "expected error: %s", want);
	cr_expect_str_eq(msg_without_path(err.msg, got, sizeof(got)), want);
	cr_expect_null(strchr(err.msg, '\n'), "one line");
	config_free(&cfg);
}

static char *const home_env[] = { "HOME=/home/u", NULL };

/* ---- defaults ---- */

Test(config, defaults)
{
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, NULL, home_env, NULL, 0, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.config_path, "");
	cr_expect_str_eq(cfg.db, "/home/u/.local/share/mailsnare/mailsnare.db");
	cr_expect_str_eq(cfg.listen[LISTEN_SMTP], "127.0.0.1:1025");
	cr_expect_str_eq(cfg.listen[LISTEN_SMTPS], "127.0.0.1:1465");
	cr_expect_str_eq(cfg.listen[LISTEN_POP3], "127.0.0.1:1110");
	cr_expect_str_eq(cfg.listen[LISTEN_POP3S], "127.0.0.1:1995");
	cr_expect_str_eq(cfg.listen[LISTEN_IMAP], "127.0.0.1:1143");
	cr_expect_str_eq(cfg.listen[LISTEN_IMAPS], "127.0.0.1:1993");
	cr_expect_str_eq(cfg.listen[LISTEN_HTTP], "127.0.0.1:8025");
	cr_expect_str_eq(cfg.tls_cert, "");
	cr_expect_str_eq(cfg.tls_key, "");
	cr_expect_not(cfg.smtp_require_auth);
	cr_expect_not(cfg.auth_accept_any);
	cr_expect(cfg.allow_plaintext_auth);
	cr_expect_eq(cfg.max_message_size, 33554432);
	cr_expect_eq(cfg.max_messages, 0);
	cr_expect_eq(cfg.max_clients, 1024);
	cr_expect_eq(cfg.smtp_timeout, 300);
	cr_expect_eq(cfg.pop3_timeout, 600);
	cr_expect_eq(cfg.max_mailboxes, 10000);
	cr_expect_eq(cfg.max_subscriptions, 10000);
	cr_expect_eq(cfg.max_keywords, 200);
	cr_expect_eq(cfg.auth_fail_limit, 20);
	cr_expect_eq(cfg.durability, DURABILITY_NORMAL);
	cr_expect_eq(cfg.log_level, LOGL_INFO);
	cr_expect_str_eq(cfg.ready_file, "");
	cr_expect_neq(cfg.hostname[0], '\0');
	cr_expect_eq(cfg.n_inboxes, 0);
	config_free(&cfg);
}

Test(config, default_db_follows_xdg_data_home)
{
	char *const env[] = { "HOME=/home/u", "XDG_DATA_HOME=/data", NULL };
	char *const relative[] = { "HOME=/home/u", "XDG_DATA_HOME=rel", NULL };
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, NULL, env, NULL, 0, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.db, "/data/mailsnare/mailsnare.db");
	config_free(&cfg);
	/* XDG: a relative XDG_DATA_HOME is ignored. */
	cr_assert_eq(load(&cfg, NULL, relative, NULL, 0, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.db, "/home/u/.local/share/mailsnare/mailsnare.db");
	config_free(&cfg);
}

Test(config, hostname_default_is_gethostname)
{
	struct config cfg;
	struct config_error err;
	char name[256];

	cr_assert_eq(load(&cfg, NULL, home_env, NULL, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(gethostname(name, sizeof(name)), 0);
	name[sizeof(name) - 1] = '\0';
	cr_expect_str_eq(cfg.hostname, name[0] != '\0' ? name : "localhost");
	config_free(&cfg);
}

Test(config, null_envp_is_allowed)
{
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, NULL, NULL, NULL, 0, &err), 0, "%s", err.msg);
	cr_expect_neq(cfg.db[0], '\0');
	config_free(&cfg);
}

/* ---- the file ---- */

Test(config, file_keys_comments_quotes_and_sections)
{
	const char *text =
	    "# a comment\n"
	    "\n"
	    "   # an indented comment\n"
	    "db = /var/lib/m.db\n"
	    "smtp=127.0.0.1:2525\n"
	    "  imap   =   \"[::1]:1143\"  \n"
	    "pop3 = off\n"
	    "hostname = 'mail.test'\n"
	    "smtp-require-auth = yes\n"
	    "allow-plaintext-auth = off\n"
	    "max-message-size = 10M\n"
	    "max-messages = 50\n"
	    "max-clients = 7\n"
	    "smtp-timeout = 60\n"
	    "pop3-timeout = 900\n"
	    "durability = full\n"
	    "log-level = debug\n"
	    "ready-file = /tmp/ready\n"
	    "tls-cert = \"/etc/c.pem\"\n"
	    "tls-key = /etc/k.pem\n"
	    "inbox = top:secret\n"
	    "\n"
	    "[inbox ci]\n"
	    "# comment inside\n"
	    "password = \"p w#1\"\n"
	    "[ inbox  qa ]\n"
	    "password = a:b\n";
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, text, home_env, NULL, 0, &err), 0, "%s", err.msg);
	cr_expect_eq(strncmp(cfg.config_path, "/tmp/test_config_", 17), 0);
	cr_expect_str_eq(cfg.db, "/var/lib/m.db");
	cr_expect_str_eq(cfg.listen[LISTEN_SMTP], "127.0.0.1:2525");
	cr_expect_str_eq(cfg.listen[LISTEN_IMAP], "[::1]:1143");
	cr_expect_str_eq(cfg.listen[LISTEN_POP3], "off");
	cr_expect_str_eq(cfg.hostname, "mail.test");
	cr_expect(cfg.smtp_require_auth);
	cr_expect_not(cfg.allow_plaintext_auth);
	cr_expect_eq(cfg.max_message_size, 10 * 1024 * 1024);
	cr_expect_eq(cfg.max_messages, 50);
	cr_expect_eq(cfg.max_clients, 7);
	cr_expect_eq(cfg.smtp_timeout, 60);
	cr_expect_eq(cfg.pop3_timeout, 900);
	cr_expect_eq(cfg.durability, DURABILITY_FULL);
	cr_expect_eq(cfg.log_level, LOGL_DEBUG);
	cr_expect_str_eq(cfg.ready_file, "/tmp/ready");
	cr_expect_str_eq(cfg.tls_cert, "/etc/c.pem");
	cr_expect_str_eq(cfg.tls_key, "/etc/k.pem");
	cr_assert_eq(cfg.n_inboxes, 3);
	cr_expect_str_eq(cfg.inboxes[0].name, "top");
	cr_expect_str_eq(cfg.inboxes[0].password, "secret");
	cr_expect_str_eq(cfg.inboxes[1].name, "ci");
	cr_expect_str_eq(cfg.inboxes[1].password, "p w#1");
	cr_expect_str_eq(cfg.inboxes[2].name, "qa");
	cr_expect_str_eq(cfg.inboxes[2].password, "a:b");
	config_free(&cfg);
}

Test(config, file_without_final_newline_and_crlf)
{
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, "smtp = off\r\nimap = off", home_env, NULL, 0, &err), 0,
	    "%s", err.msg);
	cr_expect_str_eq(cfg.listen[LISTEN_SMTP], "off");
	cr_expect_str_eq(cfg.listen[LISTEN_IMAP], "off");
	config_free(&cfg);
}

Test(config, tilde_expands_to_home)
{
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, "db = ~/m.db\n", home_env, NULL, 0, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.db, "/home/u/m.db");
	config_free(&cfg);
}

Test(config, file_errors_name_file_line_and_key)
{
	expect_error("smtp = off\n\n# x\nsmtp-port = 25\n", home_env, NULL, 0,
	    "F:4: unknown key 'smtp-port'");
	expect_error("smtp = nonsense\n", home_env, NULL, 0,
	    "F:1: smtp: invalid address 'nonsense' (want host:port or off)");
	expect_error("\nsmtp-require-auth = maybe\n", home_env, NULL, 0,
	    "F:2: smtp-require-auth: invalid boolean 'maybe' (want yes or no)");
	expect_error("max-message-size = 10X\n", home_env, NULL, 0,
	    "F:1: max-message-size: invalid size '10X' (want a number with optional K, M or G)");
	expect_error("durability = sometimes\n", home_env, NULL, 0,
	    "F:1: durability: invalid value 'sometimes' (want normal or full)");
	expect_error("max-clients = many\n", home_env, NULL, 0,
	    "F:1: max-clients: invalid number 'many'");
	expect_error("just words\n", home_env, NULL, 0,
	    "F:1: expected 'key = value', got 'just words'");
	expect_error("db =\n", home_env, NULL, 0, "F:1: db: empty value");
	expect_error("config = /x\n", home_env, NULL, 0,
	    "F:1: key 'config' is not allowed in a config file");
}

Test(config, file_section_errors)
{
	expect_error("[inbox ci]\npassword = x\nsmtp = off\n", home_env, NULL, 0,
	    "F:3: unknown key 'smtp' in [inbox ci] (only password)");
	expect_error("[server]\n", home_env, NULL, 0,
	    "F:1: unknown section '[server]' (want [inbox NAME])");
	expect_error("[inbox ci\n", home_env, NULL, 0,
	    "F:1: invalid section '[inbox ci' (want [inbox NAME])");
	expect_error("[inbox a/b]\npassword = x\n", home_env, NULL, 0,
	    "F:1: inbox: invalid inbox name 'a/b' (a '/')");
	expect_error("\n[inbox ci]\n# no password\n[inbox qa]\npassword = x\n", home_env, NULL, 0,
	    "F:2: [inbox ci] has no password");
	expect_error("[inbox ci]\n", home_env, NULL, 0, "F:1: [inbox ci] has no password");
}

Test(config, file_line_too_long)
{
	char text[5000];

	memset(text, 'x', sizeof(text) - 2);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	memcpy(text, "db = ", 5);
	expect_error(text, home_env, NULL, 0, "F:1: line too long (max 4094 bytes)");
}

Test(config, named_file_missing_is_an_error)
{
	struct config_flag f[] = { { "c", "/nonexistent/m.conf" } };
	char *const env[] = { "MAILSNARE_CONFIG=/nonexistent/e.conf", NULL };
	struct config cfg;
	struct config_error err;

	cr_assert_eq(config_load(&cfg, f, 1, home_env, &err), -1);
	cr_expect_str_eq(err.msg, "-c: cannot open '/nonexistent/m.conf': No such file or directory");
	config_free(&cfg);
	cr_assert_eq(config_load(&cfg, NULL, 0, env, &err), -1);
	cr_expect_str_eq(err.msg,
	    "MAILSNARE_CONFIG: cannot open '/nonexistent/e.conf': No such file or directory");
	config_free(&cfg);
}

Test(config, file_from_env_and_flag_beats_env)
{
	char a[64], b[64], envvar[128];
	struct config cfg;
	struct config_error err;

	write_conf(a, sizeof(a), "smtp = 127.0.0.1:1\n");
	write_conf(b, sizeof(b), "smtp = 127.0.0.1:2\n");
	snprintf(envvar, sizeof(envvar), "MAILSNARE_CONFIG=%s", a);
	char *const env[] = { envvar, NULL };
	struct config_flag f[] = { { "config", b } };

	cr_assert_eq(config_load(&cfg, NULL, 0, env, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.listen[LISTEN_SMTP], "127.0.0.1:1");
	cr_expect_str_eq(cfg.config_path, a);
	config_free(&cfg);
	cr_assert_eq(config_load(&cfg, f, 1, env, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.listen[LISTEN_SMTP], "127.0.0.1:2");
	cr_expect_str_eq(cfg.config_path, b);
	config_free(&cfg);
	unlink(a);
	unlink(b);
}

Test(config, default_file_in_current_directory)
{
	char dir[] = "/tmp/test_config_dir_XXXXXX";
	char old[PATH_MAX];
	struct config cfg;
	struct config_error err;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_not_null(getcwd(old, sizeof(old)));
	cr_assert_eq(chdir(dir), 0);
	/* No conf/mailsnare.conf here: fine, nothing read. */
	cr_assert_eq(config_load(&cfg, NULL, 0, home_env, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.config_path, "");
	config_free(&cfg);
	cr_assert_eq(mkdir("conf", 0700), 0);
	f = fopen("conf/mailsnare.conf", "w");
	cr_assert_not_null(f);
	fputs("max-clients = 5\n", f);
	fclose(f);
	cr_assert_eq(config_load(&cfg, NULL, 0, home_env, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.config_path, "conf/mailsnare.conf");
	cr_expect_eq(cfg.max_clients, 5);
	config_free(&cfg);
	unlink("conf/mailsnare.conf");
	rmdir("conf");
	cr_assert_eq(chdir(old), 0);
	rmdir(dir);
}

/* ---- environment ---- */

Test(config, environment)
{
	char *const env[] = {
		"HOME=/home/u", "MAILSNARE_SMTP=off", "MAILSNARE_MAX_CLIENTS=9",
		"MAILSNARE_AUTH_ACCEPT_ANY=true", "MAILSNARE_LOG_LEVEL=warning",
		"MAILSNARE_DB=/e.db", "MAILSNARE_INBOX=a:pw, b:pw2,,c:x:y",
		/* Not config keys: the test harness sets these; ignored. */
		"MAILSNARE_BIN=/x/mailsnare", "MAILSNARE_SRCDIR=/x", NULL
	};
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, NULL, env, NULL, 0, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.listen[LISTEN_SMTP], "off");
	cr_expect_eq(cfg.max_clients, 9);
	cr_expect(cfg.auth_accept_any);
	cr_expect_eq(cfg.log_level, LOGL_WARN);
	cr_expect_str_eq(cfg.db, "/e.db");
	cr_assert_eq(cfg.n_inboxes, 3);
	cr_expect_str_eq(cfg.inboxes[0].name, "a");
	cr_expect_str_eq(cfg.inboxes[1].name, "b");
	cr_expect_str_eq(cfg.inboxes[1].password, "pw2");
	cr_expect_str_eq(cfg.inboxes[2].name, "c");
	cr_expect_str_eq(cfg.inboxes[2].password, "x:y");
	config_free(&cfg);
}

Test(config, environment_errors)
{
	char *const smtp[] = { "MAILSNARE_SMTP=nonsense", NULL };
	char *const bool_[] = { "MAILSNARE_SMTP_REQUIRE_AUTH=perhaps", NULL };
	char *const size[] = { "MAILSNARE_MAX_MESSAGE_SIZE=-1", NULL };
	char *const en[] = { "MAILSNARE_DURABILITY=paranoid", NULL };
	char *const ll[] = { "MAILSNARE_LOG_LEVEL=loud", NULL };
	char *const inbox[] = { "MAILSNARE_INBOX=a:pw,nocolon", NULL };

	expect_error(NULL, smtp, NULL, 0,
	    "MAILSNARE_SMTP: invalid address 'nonsense' (want host:port or off)");
	expect_error(NULL, bool_, NULL, 0,
	    "MAILSNARE_SMTP_REQUIRE_AUTH: invalid boolean 'perhaps' (want yes or no)");
	expect_error(NULL, size, NULL, 0,
	    "MAILSNARE_MAX_MESSAGE_SIZE: invalid size '-1' (want a number with optional K, M or G)");
	expect_error(NULL, en, NULL, 0,
	    "MAILSNARE_DURABILITY: invalid value 'paranoid' (want normal or full)");
	expect_error(NULL, ll, NULL, 0,
	    "MAILSNARE_LOG_LEVEL: invalid value 'loud' (want debug, info, warn, warning or error)");
	expect_error(NULL, inbox, NULL, 0,
	    "MAILSNARE_INBOX: invalid inbox 'nocolon' (want NAME:PASSWORD)");
}

/* ---- flags and precedence ---- */

Test(config, flags)
{
	struct config_flag f[] = {
		{ "smtp", "[::1]:0" }, { "smtp-require-auth", NULL }, { "max-clients", "3" },
		{ "inbox", "ci:pw" }, { "inbox", "qa:pw2" }, { "durability", "FULL" },
	};
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, NULL, home_env, f, NFLAGS(f), &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.listen[LISTEN_SMTP], "[::1]:0");
	cr_expect(cfg.smtp_require_auth, "a bare bool flag means yes");
	cr_expect_eq(cfg.max_clients, 3);
	cr_expect_eq(cfg.durability, DURABILITY_FULL);
	cr_assert_eq(cfg.n_inboxes, 2);
	cr_expect_str_eq(cfg.inboxes[1].name, "qa");
	config_free(&cfg);
}

Test(config, flag_errors)
{
	struct config_flag clients[] = { { "max-clients", "many" } };
	struct config_flag zero[] = { { "max-clients", "0" } };
	struct config_flag addr[] = { { "http", "127.0.0.1:65536" } };
	struct config_flag unknown[] = { { "smtp-port", "25" } };
	struct config_flag missing[] = { { "db", NULL } };
	struct config_flag inbox[] = { { "inbox", ":pw" } };
	struct config_flag nopw[] = { { "inbox", "ci:" } };
	struct config_flag host[] = { { "hostname", "two words" } };

	expect_error(NULL, home_env, clients, 1, "--max-clients: invalid number 'many'");
	expect_error(NULL, home_env, zero, 1, "--max-clients: 0 out of range (want 1..1000000)");
	expect_error(NULL, home_env, addr, 1,
	    "--http: invalid address '127.0.0.1:65536' (want host:port or off)");
	expect_error(NULL, home_env, unknown, 1, "unknown option '--smtp-port'");
	expect_error(NULL, home_env, missing, 1, "--db: missing value");
	expect_error(NULL, home_env, inbox, 1, "--inbox: invalid inbox name '' (empty)");
	expect_error(NULL, home_env, nopw, 1,
	    "--inbox: invalid password for inbox 'ci' (want 1..127 characters)");
	expect_error(NULL, home_env, host, 1,
	    "--hostname: invalid value 'two words' (want one word of at most 255 characters)");
}

Test(config, precedence_flag_env_file_default)
{
	const char *text =
	    "smtp = 127.0.0.1:1\n"
	    "imap = 127.0.0.1:1\n"
	    "pop3 = 127.0.0.1:1\n"
	    "max-clients = 11\n"
	    "log-level = error\n"
	    "[inbox a]\npassword = file\n"
	    "[inbox b]\npassword = file\n";
	char *const env[] = {
		"HOME=/home/u", "MAILSNARE_IMAP=127.0.0.1:2", "MAILSNARE_SMTP=127.0.0.1:2",
		"MAILSNARE_MAX_CLIENTS=22", "MAILSNARE_INBOX=b:env,c:env", NULL
	};
	struct config_flag f[] = {
		{ "smtp", "127.0.0.1:3" }, { "max-clients", "33" }, { "inbox", "c:flag" },
	};
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, text, env, f, NFLAGS(f), &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.listen[LISTEN_SMTP], "127.0.0.1:3", "flag > env > file");
	cr_expect_str_eq(cfg.listen[LISTEN_IMAP], "127.0.0.1:2", "env > file");
	cr_expect_str_eq(cfg.listen[LISTEN_POP3], "127.0.0.1:1", "file > default");
	cr_expect_str_eq(cfg.listen[LISTEN_HTTP], "127.0.0.1:8025", "default");
	cr_expect_eq(cfg.max_clients, 33);
	cr_expect_eq(cfg.log_level, LOGL_ERROR);
	/* Inboxes merge; a later source replaces the password of the same name. */
	cr_assert_eq(cfg.n_inboxes, 3);
	cr_expect_str_eq(cfg.inboxes[0].name, "a");
	cr_expect_str_eq(cfg.inboxes[0].password, "file");
	cr_expect_str_eq(cfg.inboxes[1].name, "b");
	cr_expect_str_eq(cfg.inboxes[1].password, "env");
	cr_expect_str_eq(cfg.inboxes[2].name, "c");
	cr_expect_str_eq(cfg.inboxes[2].password, "flag");
	config_free(&cfg);
}

Test(config, error_values_are_one_bounded_line)
{
	struct config_flag f[] = { { "smtp", "a\nb" } };
	char long_value[600];

	expect_error(NULL, home_env, f, 1, "--smtp: invalid address 'a?b' (want host:port or off)");
	memset(long_value, 'z', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = '\0';
	struct config_flag g[] = { { "max-clients", long_value } };
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, NULL, home_env, g, 1, &err), -1);
	cr_expect_lt(strlen(err.msg), 200);
	cr_expect_not_null(strstr(err.msg, "zzz...'"));
	config_free(&cfg);
}

/* ---- value syntax ---- */

Test(config, booleans)
{
	static const struct { const char *word; bool value; } words[] = {
		{ "yes", true }, { "no", false }, { "true", true }, { "false", false },
		{ "on", true }, { "off", false }, { "1", true }, { "0", false },
		{ "YES", true }, { "Off", false },
	};

	for (size_t i = 0; i < NFLAGS(words); i++) {
		struct config_flag f[] = { { "auth-accept-any", words[i].word } };
		struct config cfg;
		struct config_error err;

		cr_assert_eq(load(&cfg, NULL, home_env, f, 1, &err), 0, "%s", err.msg);
		cr_expect_eq(cfg.auth_accept_any, words[i].value, "%s", words[i].word);
		config_free(&cfg);
	}
}

Test(config, size_suffixes)
{
	static const struct { const char *text; uint64_t value; } sizes[] = {
		{ "1", 1 }, { "1000", 1000 }, { "4K", 4096 }, { "4k", 4096 },
		{ "3M", 3 * 1024 * 1024 }, { "1G", 1024 * 1024 * 1024 }, { "1g", 1024 * 1024 * 1024 },
	};
	static const char *const bad[] = { "", "K", "1.5M", "1MB", "1 M", " 1", "0x10", "+1", "1T" };

	for (size_t i = 0; i < NFLAGS(sizes); i++) {
		struct config_flag f[] = { { "max-message-size", sizes[i].text } };
		struct config cfg;
		struct config_error err;

		cr_assert_eq(load(&cfg, NULL, home_env, f, 1, &err), 0, "%s", err.msg);
		cr_expect_eq(cfg.max_message_size, sizes[i].value, "%s", sizes[i].text);
		config_free(&cfg);
	}
	for (size_t i = 0; i < NFLAGS(bad); i++) {
		struct config_flag f[] = { { "max-message-size", bad[i] } };
		struct config cfg;
		struct config_error err;

		cr_expect_eq(load(&cfg, NULL, home_env, f, 1, &err), -1, "'%s' accepted", bad[i]);
		config_free(&cfg);
	}
	struct config_flag big[] = { { "max-message-size", "2G" } };
	expect_error(NULL, home_env, big, 1,
	    "--max-message-size: 2G out of range (want 1..1073741824)");
	struct config_flag huge[] = { { "max-message-size", "99999999999999999999" } };
	expect_error(NULL, home_env, huge, 1,
	    "--max-message-size: invalid size '99999999999999999999' "
	    "(want a number with optional K, M or G)");
}

Test(config, split_hostport)
{
	char host[64], port[8];

	cr_assert_eq(config_split_hostport("127.0.0.1:1025", host, sizeof(host), port, sizeof(port)), 0);
	cr_expect_str_eq(host, "127.0.0.1");
	cr_expect_str_eq(port, "1025");
	cr_assert_eq(config_split_hostport("[::1]:0", host, sizeof(host), port, sizeof(port)), 0);
	cr_expect_str_eq(host, "::1");
	cr_expect_str_eq(port, "0");
	cr_assert_eq(config_split_hostport("[fe80::1%lo]:65535", host, sizeof(host), port,
	    sizeof(port)), 0);
	cr_expect_str_eq(host, "fe80::1%lo");
	cr_expect_str_eq(port, "65535");
	cr_assert_eq(config_split_hostport("localhost:25", host, sizeof(host), port, sizeof(port)), 0);
	cr_expect_str_eq(host, "localhost");
	cr_assert_eq(config_split_hostport(":25", host, sizeof(host), port, sizeof(port)), 0);
	cr_expect_str_eq(host, "");
	cr_expect_str_eq(port, "25");
}

Test(config, split_hostport_rejects_bad_forms)
{
	static const char *const bad[] = {
		"", "localhost", "127.0.0.1", "127.0.0.1:", "::1:25", "[::1]", "[::1]25",
		"[::1:25", "[]:25", "host:65536", "host:-1", "host:1x", "host:+1", "a b:25",
		"host:000025", "[[::1]]:25",
	};
	char host[64], port[8];

	for (size_t i = 0; i < NFLAGS(bad); i++)
		cr_expect_eq(config_split_hostport(bad[i], host, sizeof(host), port, sizeof(port)), -1,
		    "'%s' accepted", bad[i]);
	/* Output buffers too small: an error, never a truncated host. */
	cr_expect_eq(config_split_hostport("example.org:25", host, 5, port, sizeof(port)), -1);
}

Test(config, address_needs_a_host)
{
	struct config_flag f[] = { { "smtp", ":25" } };

	expect_error(NULL, home_env, f, 1, "--smtp: invalid address ':25' (want host:port or off)");
}

Test(config, key_queries)
{
	cr_expect(config_key_known("smtp"));
	cr_expect(config_key_known("c"));
	cr_expect(config_key_known("config"));
	cr_expect(config_key_known("inbox"));
	cr_expect(config_key_known("smtp-timeout"));
	cr_expect(config_key_known("pop3-timeout"));
	cr_expect_not(config_key_known("password"));
	cr_expect_not(config_key_known("smtp-port"));
	cr_expect(config_key_is_bool("auth-accept-any"));
	cr_expect_not(config_key_is_bool("smtp"));
	cr_expect_not(config_key_is_bool("nonsense"));
	cr_expect_str_eq(config_listener_name(LISTEN_SMTP), "smtp");
	cr_expect_str_eq(config_listener_name(LISTEN_IMAPS), "imaps");
	cr_expect_str_eq(config_listener_name(LISTEN_HTTP), "http");
}

/* ---- every key's bad value names the key, from every source ---- */

/* A value each key refuses. A key added to config.c's table without a row
 * here is still checked, with a value far too long for any key (flags and
 * environment; a file line that long is refused as such). */
static const struct { const char *key, *bad; } bad_values[] = {
	{ "config", "~/x" },   /* no $HOME in this test's environment */
	{ "db", "~/x" },
	{ "smtp", "localhost" }, { "smtps", "1.2.3.4:99999" }, { "pop3", "[::1]" },
	{ "pop3s", "a:b" }, { "imap", ":143" }, { "imaps", "x y:1" }, { "http", "on" },
	{ "https", "8443" }, { "http-require-auth", "sometimes" }, { "http-admin", "a b" },
	{ "http-cors", "x y" },
	{ "tls-cert", "~/c.pem" }, { "tls-key", "~/k.pem" },
	{ "smtp-require-auth", "perhaps" }, { "auth-accept-any", "2" },
	{ "allow-plaintext-auth", "yes please" },
	{ "max-message-size", "2G" }, { "max-messages", "-1" }, { "max-clients", "0" },
	{ "smtp-timeout", "5m" }, { "pop3-timeout", "0" }, { "imap-timeout", "86401" },
	{ "login-timeout", "0x10" }, { "max-mailboxes", "0" }, { "max-subscriptions", "lots" },
	{ "max-keywords", "100001" }, { "auth-fail-limit", "0" },
	{ "durability", "paranoid" }, { "log-level", "loud" }, { "ready-file", "~/r" },
	{ "hostname", "two words" }, { "inbox", "a/b:pw" },
	{ "relay-host", "a b" }, { "relay-port", "0" }, { "relay-tls", "ssl" },
	{ "relay-tls-verify", "maybe" }, { "relay-username", "a b" }, { "relay-password", "a\tb" },
	{ "relay-allowed-recipients", "a(b" }, { "relay-blocked-recipients", "[z-a]" },
	{ "relay-return-path", "<a@b>" }, { "relay-auto", "before:never" },
	{ "webhook-url", "ftp://x/" }, { "webhook-limit", "-1" }, { "webhook-timeout", "0" },
	{ "metrics", "sometimes" }, { "chaos", "maybe" }, { "chaos-triggers", "Sender:99:1" },
	{ "chaos-seed", "-5" }, { "max-age", "7 days" },
};

static const char *bad_value_of(const char *key, char *longv, size_t len)
{
	for (size_t i = 0; i < NFLAGS(bad_values); i++)
		if (strcmp(bad_values[i].key, key) == 0)
			return bad_values[i].bad;
	memset(longv, '9', len - 1);
	longv[len - 1] = '\0';
	return longv;
}

/* "max-clients" -> "MAILSNARE_MAX_CLIENTS=value" */
static void env_pair(const char *key, const char *value, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "MAILSNARE_");

	for (; *key != '\0' && n + 1 < len; key++)
		out[n++] = *key == '-' ? '_' : (char)(*key >= 'a' && *key <= 'z' ? *key - 32 : *key);
	snprintf(out + n, len - n, "=%s", value);
}

static void expect_names(const char *msg, const char *name, const char *key, const char *src)
{
	cr_expect_not_null(strstr(msg, name), "%s of %s: '%s' does not name %s", src, key, msg,
	    name);
	cr_expect_null(strchr(msg, '\n'), "one line");
}

Test(config, every_bad_value_names_its_key)
{
	static char longv[5000];
	char *const no_home[] = { NULL };
	struct config cfg;
	struct config_error err;
	const char *key;

	for (size_t i = 0; (key = config_key_name(i)) != NULL; i++) {
		const char *bad = bad_value_of(key, longv, sizeof(longv));
		struct config_flag f[] = { { key, bad } };
		char name[96], env[5200], line[5100];
		char *const envp[] = { env, NULL };

		/* The flag: "--KEY: ..." */
		cr_assert_eq(config_load(&cfg, f, 1, no_home, &err), -1, "--%s %s accepted", key, bad);
		snprintf(name, sizeof(name), "--%s", key);
		expect_names(err.msg, name, key, "flag");
		config_free(&cfg);
		if (strcmp(key, "config") == 0)
			continue;   /* neither in the file nor as MAILSNARE_CONFIG's value check */
		/* The environment: "MAILSNARE_KEY: ..." */
		env_pair(key, bad, env, sizeof(env));
		cr_assert_eq(load(&cfg, NULL, envp, NULL, 0, &err), -1, "%s accepted", env);
		*strchr(env, '=') = '\0';
		expect_names(err.msg, env, key, "environment");
		config_free(&cfg);
		/* The file: "F:1: KEY ..." */
		if (bad == longv)
			continue;
		snprintf(line, sizeof(line), "%s = %s\n", key, bad);
		cr_assert_eq(load(&cfg, line, no_home, NULL, 0, &err), -1, "file %s accepted", line);
		snprintf(name, sizeof(name), ":1: %s", key);
		expect_names(err.msg, name, key, "file");
		config_free(&cfg);
	}
}

Test(config, limits_keys)
{
	struct config_flag f[] = { { "max-mailboxes", "50" }, { "max-subscriptions", "60" },
		{ "max-keywords", "3" }, { "auth-fail-limit", "5" } };
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, NULL, home_env, f, NFLAGS(f), &err), 0, "%s", err.msg);
	cr_expect_eq(cfg.max_mailboxes, 50);
	cr_expect_eq(cfg.max_subscriptions, 60);
	cr_expect_eq(cfg.max_keywords, 3);
	cr_expect_eq(cfg.auth_fail_limit, 5);
	config_free(&cfg);
	expect_error("max-keywords = 0\n", home_env, NULL, 0,
	    "F:1: max-keywords: 0 out of range (want 1..100000)");
}

Test(config, retention_chaos_and_metrics_keys)
{
	static const struct { const char *v; uint64_t seconds; } ages[] = {
		{ "0", 0 }, { "off", 0 }, { "2s", 2 }, { "90m", 5400 }, { "36h", 129600 },
		{ "7d", 604800 }, { "2W", 1209600 },
	};
	struct config_flag f[] = { { "metrics", "off" }, { "chaos", "yes" },
		{ "chaos-triggers", "Sender:451:50,recipients:550:5,Delay:250:100" },
		{ "chaos-seed", "42" } };
	struct config cfg;
	struct config_error err;

	cr_assert_eq(load(&cfg, NULL, home_env, NULL, 0, &err), 0, "%s", err.msg);
	cr_expect_eq(cfg.metrics, true);
	cr_expect_eq(cfg.chaos, false);
	cr_expect_eq(cfg.max_age, 0);
	config_free(&cfg);
	cr_assert_eq(load(&cfg, NULL, home_env, f, NFLAGS(f), &err), 0, "%s", err.msg);
	cr_expect_eq(cfg.metrics, false);
	cr_expect_eq(cfg.chaos, true);
	cr_expect_str_eq(cfg.chaos_triggers, "Sender:451:50,recipients:550:5,Delay:250:100");
	cr_expect_eq(cfg.chaos_seed, 42);
	config_free(&cfg);
	for (size_t i = 0; i < NFLAGS(ages); i++) {
		struct config_flag a[] = { { "max-age", ages[i].v } };
		cr_assert_eq(load(&cfg, NULL, home_env, a, 1, &err), 0, "%s", err.msg);
		cr_expect_eq(cfg.max_age, ages[i].seconds, "max-age %s", ages[i].v);
		config_free(&cfg);
	}
	expect_error("max-age = 7\n", home_env, NULL, 0,
	    "F:1: max-age: invalid duration '7' (want e.g. 90m, 36h, 7d, or 0)");
	expect_error("max-age = 4000d\n", home_env, NULL, 0,
	    "F:1: max-age: 4000d out of range (want 0..316224000)");
	expect_error("chaos-triggers = Sender:451:101\n", home_env, NULL, 0,
	    "F:1: chaos-triggers: invalid value 'Sender:451:101' ('Sender:451:101': probability"
	    " must be between 0 and 100)");
	expect_error("chaos-triggers = Sender:399:1\n", home_env, NULL, 0,
	    "F:1: chaos-triggers: invalid value 'Sender:399:1' ('Sender:399:1': error code must"
	    " be between 400 and 599)");
	expect_error("chaos-triggers = Jim:451:1\n", home_env, NULL, 0,
	    "F:1: chaos-triggers: invalid value 'Jim:451:1' (unknown trigger 'Jim' (want Sender,"
	    " Recipient, Authentication, Connect, Data, Disconnect or Delay))");
	expect_error("chaos-triggers = Sender:451\n", home_env, NULL, 0,
	    "F:1: chaos-triggers: invalid value 'Sender:451' ('Sender:451': want"
	    " Sender:CODE:PROBABILITY)");
	expect_error("chaos-triggers = Sender:451:1,,Data:554:1\n", home_env, NULL, 0,
	    "F:1: chaos-triggers: invalid value 'Sender:451:1,,Data:554:1' (empty trigger (want"
	    " Trigger:CODE:PROBABILITY,...))");
}

Test(config, tls_cert_and_key_come_together)
{
	struct config_flag key[] = { { "tls-key", "/k.pem" } };
	struct config_flag cert[] = { { "tls-cert", "/c.pem" } };
	struct config_flag both[] = { { "tls-cert", "/c.pem" }, { "tls-key", "/k.pem" } };
	struct config cfg;
	struct config_error err;

	expect_error(NULL, home_env, key, 1,
	    "tls-cert: missing (tls-key is set: give both or neither)");
	expect_error(NULL, home_env, cert, 1,
	    "tls-key: missing (tls-cert is set: give both or neither)");
	expect_error("tls-cert = /c.pem\n", home_env, NULL, 0,
	    "tls-key: missing (tls-cert is set: give both or neither)");
	/* One from the file, one from a flag: a pair. */
	cr_assert_eq(load(&cfg, "tls-cert = /c.pem\n", home_env, key, 1, &err), 0, "%s", err.msg);
	config_free(&cfg);
	cr_assert_eq(load(&cfg, NULL, home_env, both, 2, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.tls_key, "/k.pem");
	config_free(&cfg);
}

/* A file to write bytes (with NULs) to; removed by the caller. */
static void write_bytes(char *path, size_t len, const void *data, size_t n)
{
	int fd;

	snprintf(path, len, "/tmp/test_config_XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static void expect_file_error(const void *data, size_t n, const char *want)
{
	char path[64], got[512];
	struct config_flag f[1] = { { "config", path } };
	struct config cfg;
	struct config_error err;

	write_bytes(path, sizeof(path), data, n);
	cr_expect_eq(config_load(&cfg, f, 1, home_env, &err), -1, "accepted: %s", want);
	cr_expect_str_eq(msg_without_path(err.msg, got, sizeof(got)), want);
	config_free(&cfg);
	unlink(path);
}

Test(config, not_a_text_file)
{
	static const char nul[] = "smtp = off\nhostname = a\0b\n";
	static const char ctl[] = "# \x1b[31m\n";
	struct config_flag zero[] = { { "config", "/dev/zero" } };
	struct config cfg;
	struct config_error err;

	expect_file_error(nul, sizeof(nul) - 1, "F:2: NUL byte 0x00: not a text file");
	expect_file_error(ctl, sizeof(ctl) - 1, "F:1: control byte 0x1b: not a text file");
	/* Read until the first NUL, not forever. */
	cr_assert_eq(config_load(&cfg, zero, 1, home_env, &err), -1);
	cr_expect_str_eq(err.msg, "/dev/zero:1: NUL byte 0x00: not a text file");
	config_free(&cfg);
}

Test(config, file_size_is_bounded)
{
	/* Empty lines only: no line is long, the whole is. */
	size_t n = 4 * 1024 * 1024 + 2;
	char *data = malloc(n);

	cr_assert_not_null(data);
	memset(data, '\n', n);
	expect_file_error(data, n, "F: more than 4194304 bytes: not a config file");
	free(data);
}

Test(config, inbox_names_follow_the_store_rule)
{
	static const struct { const char *flag, *want; } cases[] = {
		{ " ci:pw", "--inbox: invalid inbox name ' ci' (leading or trailing space)" },
		{ "ci :pw", "--inbox: invalid inbox name 'ci ' (leading or trailing space)" },
		{ "\xff\xfe:pw", "--inbox: invalid inbox name '\xff\xfe' (not valid UTF-8)" },
		{ "\xc0\xaf:pw", "--inbox: invalid inbox name '\xc0\xaf' (not valid UTF-8)" },
		{ "a\xc2\x85" "b:pw", "--inbox: invalid inbox name 'a\xc2\x85" "b' (a control character)" },
		{ "a\tb:pw", "--inbox: invalid inbox name 'a?b' (a control character)" },
		{ ".hidden:pw", "--inbox: invalid inbox name '.hidden' (leading '.')" },
		{ "0123456789012345678901234567890123456789012345678901234567890123:pw",
		  "--inbox: invalid inbox name '0123456789012345678901234567890123456789"
		  "012345678901234567890123' (longer than 63 bytes)" },
	};
	struct config cfg;
	struct config_error err;
	struct config_flag ok[] = { { "inbox", "caf\xc3\xa9 qa:pw" } };

	for (size_t i = 0; i < NFLAGS(cases); i++) {
		struct config_flag f[] = { { "inbox", cases[i].flag } };
		expect_error(NULL, home_env, f, 1, cases[i].want);
	}
	expect_error("[inbox \" ci\"]\npassword = x\n", home_env, NULL, 0,
	    "F:1: inbox: invalid inbox name ' ci' (leading or trailing space)");
	cr_assert_eq(load(&cfg, NULL, home_env, ok, 1, &err), 0, "%s", err.msg);
	cr_expect_str_eq(cfg.inboxes[0].name, "caf\xc3\xa9 qa");
	config_free(&cfg);
}
