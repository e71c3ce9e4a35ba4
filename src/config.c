/*
 * Configuration (DESIGN §2). Every key is one row of config_keys[]: its
 * name, its type, where its value lives in struct config (or a setter) and
 * its default. The file parser, the environment and the command-line flags
 * all go through set_key(), so a key behaves the same from every source and
 * a bad value gets the same message wherever it came from, prefixed with
 * where it came from ("file:line: key", "MAILSNARE_KEY" or "--key").
 *
 * Sources are applied from weakest to strongest: defaults, the file, the
 * environment, the flags; a later source simply overwrites. Inboxes are the
 * exception: they are merged, and a later source only replaces the password
 * of an inbox with the same name.
 */
#include "mailsnare/config.h"
#include "mailsnare/chaos.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/store.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CONFIG_FILE "conf/mailsnare.conf"
/* $(sysconfdir) from configure: where `make install` puts the sample. */
#ifndef MAILSNARE_SYSCONFDIR
#define MAILSNARE_SYSCONFDIR "/etc"
#endif
#define SYSTEM_CONFIG_FILE MAILSNARE_SYSCONFDIR "/mailsnare/mailsnare.conf"
#define CONFIG_LINE_MAX 4096
/* A config file is a few hundred lines; this bounds reading the wrong file
 * (a device, a log) before it is found to be no config file. */
#define CONFIG_FILE_MAX (4 * 1024 * 1024)
#define CONFIG_INBOXES_MAX 10000
#define ENV_PREFIX "MAILSNARE_"
/* Where a value came from, e.g. "conf/x.conf:12: smtp" or "--smtp". */
#define WHERE_MAX (PATH_MAX + 96)

enum key_type {
	KT_STRING,   /* a token: non-empty, no spaces or control characters */
	KT_TEXT,     /* any text without control characters (spaces allowed) */
	KT_PATH,     /* a file name; "~/" expands to $HOME */
	KT_ADDRESS,  /* "off", "host:port" or "[v6]:port" */
	KT_BOOL,     /* yes/no/true/false/on/off/1/0 */
	KT_SIZE,     /* bytes, with an optional K, M or G suffix */
	KT_UINT,     /* a plain decimal number */
	KT_ENUM,     /* one of a list of words */
	KT_INBOX,    /* "NAME:PASSWORD", repeatable, merged across sources */
	KT_DURATION, /* seconds: a number with s, m, h, d or w; "0" or "off" is 0 */
	KT_CONFIG    /* the config file itself: chosen before anything is read */
};

/* Key flags. */
enum {
	KF_EMPTY_OK = 1 << 0,   /* "" is a valid value (means "none"/"generated") */
};

struct enum_word {
	const char *word;
	int value;
};

/* The environment and $HOME for "~/" expansion travel with the load, never
 * through getenv(), so that tests and the CLI pass their own envp. */
struct load_ctx {
	struct config *cfg;
	char *const *envp;
	struct config_error *err;
};

struct key_def {
	const char *name;
	enum key_type type;
	size_t offset;                    /* field in struct config */
	size_t size;                      /* its size (buffer or integer width) */
	const char *def;                  /* default, NULL = computed or none */
	unsigned flags;
	uint64_t min, max;                /* KT_SIZE, KT_UINT range */
	const struct enum_word *words;    /* KT_ENUM, NULL-terminated */
	void (*set_enum)(struct config *cfg, int value);
	/* Computes the default when it depends on the machine. */
	int (*compute_default)(struct load_ctx *ctx, char *out, size_t len);
	/* KT_STRING, KT_TEXT: a further check of a non-empty value; NULL
	 * if fine, else what is wrong (in why). */
	const char *(*check)(const char *v, char *why, size_t len);
};

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define LISTENER(kind) offsetof(struct config, listen[kind]), CONFIG_ADDR_MAX

static const struct enum_word durability_words[] = {
	{ "normal", DURABILITY_NORMAL },
	{ "full", DURABILITY_FULL },
	{ NULL, 0 },
};

static const struct enum_word log_level_words[] = {
	{ "debug", LOGL_DEBUG },
	{ "info", LOGL_INFO },
	{ "warn", LOGL_WARN },
	{ "warning", LOGL_WARN },
	{ "error", LOGL_ERROR },
	{ NULL, 0 },
};

static const struct enum_word relay_tls_words[] = {
	{ "starttls", RELAY_TLS_STARTTLS },
	{ "tls", RELAY_TLS_TLS },
	{ "none", RELAY_TLS_NONE },
	{ NULL, 0 },
};

static void set_relay_tls(struct config *cfg, int value)
{
	cfg->relay_tls = (enum relay_tls)value;
}

static void set_durability(struct config *cfg, int value)
{
	cfg->durability = (enum durability)value;
}

static void set_log_level(struct config *cfg, int value)
{
	cfg->log_level = (enum log_level)value;
}

static int default_db(struct load_ctx *ctx, char *out, size_t len);
static int default_hostname(struct load_ctx *ctx, char *out, size_t len);
static const char *check_regex(const char *v, char *why, size_t len);
static const char *check_search(const char *v, char *why, size_t len);
static const char *check_url(const char *v, char *why, size_t len);
static const char *check_return_path(const char *v, char *why, size_t len);

/* chaos-triggers is Mailpit's Trigger:code:probability list (chaos.h). */
static const char *check_chaos_triggers(const char *v, char *why, size_t len)
{
	struct chaos_config c;

	chaos_config_default(&c);
	return chaos_parse(v, &c, why, len) < 0 ? why : NULL;
}

static const struct key_def config_keys[] = {
	{ .name = "config", .type = KT_CONFIG, FIELD(config_path), .flags = KF_EMPTY_OK },
	{ .name = "db", .type = KT_PATH, FIELD(db), .compute_default = default_db },
	{ .name = "smtp", .type = KT_ADDRESS, LISTENER(LISTEN_SMTP), .def = "127.0.0.1:1025" },
	{ .name = "smtps", .type = KT_ADDRESS, LISTENER(LISTEN_SMTPS), .def = "127.0.0.1:1465" },
	{ .name = "pop3", .type = KT_ADDRESS, LISTENER(LISTEN_POP3), .def = "127.0.0.1:1110" },
	{ .name = "pop3s", .type = KT_ADDRESS, LISTENER(LISTEN_POP3S), .def = "127.0.0.1:1995" },
	{ .name = "imap", .type = KT_ADDRESS, LISTENER(LISTEN_IMAP), .def = "127.0.0.1:1143" },
	{ .name = "imaps", .type = KT_ADDRESS, LISTENER(LISTEN_IMAPS), .def = "127.0.0.1:1993" },
	{ .name = "http", .type = KT_ADDRESS, LISTENER(LISTEN_HTTP), .def = "127.0.0.1:8025" },
	{ .name = "https", .type = KT_ADDRESS, LISTENER(LISTEN_HTTPS), .def = "off" },
	{ .name = "http-require-auth", .type = KT_BOOL, FIELD(http_require_auth), .def = "no" },
	{ .name = "http-admin", .type = KT_STRING, FIELD(http_admin), .def = "",
	  .flags = KF_EMPTY_OK },
	{ .name = "http-cors", .type = KT_STRING, FIELD(http_cors), .def = "", .flags = KF_EMPTY_OK },
	{ .name = "tls-cert", .type = KT_PATH, FIELD(tls_cert), .def = "", .flags = KF_EMPTY_OK },
	{ .name = "tls-key", .type = KT_PATH, FIELD(tls_key), .def = "", .flags = KF_EMPTY_OK },
	{ .name = "smtp-require-auth", .type = KT_BOOL, FIELD(smtp_require_auth), .def = "no" },
	{ .name = "auth-accept-any", .type = KT_BOOL, FIELD(auth_accept_any), .def = "no" },
	{ .name = "allow-plaintext-auth", .type = KT_BOOL, FIELD(allow_plaintext_auth),
	  .def = "yes" },
	/* SQLite's own blob limit is about 1 GB, so larger would only fail later. */
	{ .name = "max-message-size", .type = KT_SIZE, FIELD(max_message_size),
	  .def = "33554432", .min = 1, .max = 1024 * 1024 * 1024 },
	{ .name = "max-messages", .type = KT_UINT, FIELD(max_messages), .def = "0",
	  .min = 0, .max = UINT32_MAX },
	/* Each client is a file descriptor: beyond a million is a typo. */
	{ .name = "max-clients", .type = KT_UINT, FIELD(max_clients), .def = "1024",
	  .min = 1, .max = 1000000 },
	/* RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for a command. */
	{ .name = "smtp-timeout", .type = KT_UINT, FIELD(smtp_timeout), .def = "300",
	  .min = 1, .max = 86400 },
	/* RFC 1939 §3: an idle POP3 session is closed after at least 10 minutes;
	 * shorter values are allowed for tests. */
	{ .name = "pop3-timeout", .type = KT_UINT, FIELD(pop3_timeout), .def = "600",
	  .min = 1, .max = 86400 },
	/* RFC 3501 §5.4: an autologout timer of at least 30 minutes; shorter
	 * values are allowed for tests. */
	{ .name = "imap-timeout", .type = KT_UINT, FIELD(imap_timeout), .def = "1800",
	  .min = 1, .max = 86400 },
	/* Before a POP3 or IMAP client has logged in, and while any TLS
	 * handshake runs, a slot of max-clients is held for this long at most. */
	{ .name = "login-timeout", .type = KT_UINT, FIELD(login_timeout), .def = "60",
	  .min = 1, .max = 86400 },
	/* Bounds per inbox (passed to the store): every LIST, LSUB and FLAGS
	 * line costs in proportion. */
	{ .name = "max-mailboxes", .type = KT_UINT, FIELD(max_mailboxes), .def = "10000",
	  .min = 1, .max = 1000000 },
	{ .name = "max-subscriptions", .type = KT_UINT, FIELD(max_subscriptions),
	  .def = "10000", .min = 1, .max = 1000000 },
	{ .name = "max-keywords", .type = KT_UINT, FIELD(max_keywords), .def = "200",
	  .min = 1, .max = 100000 },
	/* The HTTP API's searches run on this many threads beside the loop
	 * (search_pool.h); 0: on the loop. Two: a search over 100,000
	 * messages held every client ~70 ms on the loop. */
	{ .name = "search-threads", .type = KT_UINT, FIELD(search_threads), .def = "2",
	  .min = 0, .max = 64 },
	/* Bodies from which a search is split into parts, one per thread:
	 * below, one part (the threads' start-up costs more than it saves);
	 * low values are for the tests and benchmarks. */
	{ .name = "search-split-min", .type = KT_UINT, FIELD(search_split_min),
	  .def = "10000", .min = 1, .max = 1000000000 },
	/* Failed logins a minute from one client address, over all its
	 * connections, before each further one waits its turn (auth.h). */
	{ .name = "auth-fail-limit", .type = KT_UINT, FIELD(auth_fail_limit), .def = "20",
	  .min = 1, .max = 1000000 },
	{ .name = "durability", .type = KT_ENUM, .def = "normal", .words = durability_words,
	  .set_enum = set_durability },
	{ .name = "log-level", .type = KT_ENUM, .def = "info", .words = log_level_words,
	  .set_enum = set_log_level },
	{ .name = "ready-file", .type = KT_PATH, FIELD(ready_file), .def = "", .flags = KF_EMPTY_OK },
	{ .name = "hostname", .type = KT_STRING, FIELD(hostname),
	  .compute_default = default_hostname },
	{ .name = "inbox", .type = KT_INBOX },
	{ .name = "relay-host", .type = KT_STRING, FIELD(relay_host), .def = "",
	  .flags = KF_EMPTY_OK },
	{ .name = "relay-port", .type = KT_UINT, FIELD(relay_port), .def = "25", .min = 1,
	  .max = 65535 },
	{ .name = "relay-tls", .type = KT_ENUM, .def = "starttls", .words = relay_tls_words,
	  .set_enum = set_relay_tls },
	{ .name = "relay-tls-verify", .type = KT_BOOL, FIELD(relay_tls_verify), .def = "yes" },
	{ .name = "relay-username", .type = KT_STRING, FIELD(relay_username), .def = "",
	  .flags = KF_EMPTY_OK },
	{ .name = "relay-password", .type = KT_TEXT, FIELD(relay_password), .def = "",
	  .flags = KF_EMPTY_OK },
	{ .name = "relay-allowed-recipients", .type = KT_TEXT, FIELD(relay_allowed), .def = "",
	  .flags = KF_EMPTY_OK, .check = check_regex },
	{ .name = "relay-blocked-recipients", .type = KT_TEXT, FIELD(relay_blocked), .def = "",
	  .flags = KF_EMPTY_OK, .check = check_regex },
	{ .name = "relay-return-path", .type = KT_STRING, FIELD(relay_return_path), .def = "",
	  .flags = KF_EMPTY_OK, .check = check_return_path },
	{ .name = "relay-auto", .type = KT_TEXT, FIELD(relay_auto), .def = "", .flags = KF_EMPTY_OK,
	  .check = check_search },
	{ .name = "webhook-url", .type = KT_STRING, FIELD(webhook_url), .def = "",
	  .flags = KF_EMPTY_OK, .check = check_url },
	{ .name = "webhook-limit", .type = KT_UINT, FIELD(webhook_limit), .def = "5", .min = 0,
	  .max = 100000 },
	{ .name = "webhook-timeout", .type = KT_UINT, FIELD(webhook_timeout), .def = "5", .min = 1,
	  .max = 300 },
	{ .name = "metrics", .type = KT_BOOL, FIELD(metrics), .def = "yes" },
	{ .name = "chaos", .type = KT_BOOL, FIELD(chaos), .def = "no" },
	{ .name = "chaos-triggers", .type = KT_STRING, FIELD(chaos_triggers), .def = "",
	  .flags = KF_EMPTY_OK, .check = check_chaos_triggers },
	{ .name = "chaos-seed", .type = KT_UINT, FIELD(chaos_seed), .def = "0",
	  .min = 0, .max = UINT64_MAX },
	/* Ten years is far beyond any trap's use: a larger value is a typo. */
	{ .name = "max-age", .type = KT_DURATION, FIELD(max_age), .def = "0",
	  .min = 0, .max = 10ULL * 366 * 86400 },
};

#define N_CONFIG_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

static const char *const listener_names[LISTEN_COUNT] = {
	[LISTEN_SMTP] = "smtp", [LISTEN_SMTPS] = "smtps",
	[LISTEN_POP3] = "pop3", [LISTEN_POP3S] = "pop3s",
	[LISTEN_IMAP] = "imap", [LISTEN_IMAPS] = "imaps",
	[LISTEN_HTTP] = "http", [LISTEN_HTTPS] = "https",
};

/* ---- lookup ---- */

static const struct key_def *key_find(const char *name)
{
	if (strcmp(name, "c") == 0)
		name = "config";
	for (size_t i = 0; i < N_CONFIG_KEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

bool config_key_known(const char *key)
{
	return key_find(key) != NULL;
}

const char *config_key_name(size_t i)
{
	return i < N_CONFIG_KEYS ? config_keys[i].name : NULL;
}

const char *config_system_file(void)
{
	return SYSTEM_CONFIG_FILE;
}

const char *config_key_default(size_t i)
{
	return i < N_CONFIG_KEYS ? config_keys[i].def : NULL;
}

bool config_key_is_bool(const char *key)
{
	const struct key_def *k = key_find(key);

	return k != NULL && k->type == KT_BOOL;
}

const char *config_listener_name(enum listener_kind kind)
{
	if ((unsigned)kind >= LISTEN_COUNT)
		return "?";
	return listener_names[kind];
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	if (envp == NULL)
		return NULL;
	for (; *envp != NULL; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* "max-clients" -> "MAILSNARE_MAX_CLIENTS". */
static void env_name(const char *key, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "%s", ENV_PREFIX);

	for (; *key != '\0' && n + 1 < len; key++)
		out[n++] = *key == '-' ? '_' : (char)toupper((unsigned char)*key);
	out[n] = '\0';
}

void config_key_env(const char *key, char *out, size_t len)
{
	env_name(key, out, len);
}

/* ---- errors ---- */

__attribute__((format(printf, 2, 3)))
static int fail(struct config_error *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* A value quoted in an error message: bounded, and without control
 * characters so the message stays one line. */
static const char *quoted(const char *v, char *buf, size_t len)
{
	const size_t keep = 80;
	size_t n = 0;

	for (; *v != '\0' && n + 4 < len; v++) {
		if (n == keep) {
			memcpy(buf + n, "...", 3);
			n += 3;
			break;
		}
		buf[n++] = iscntrl((unsigned char)*v) ? '?' : *v;
	}
	buf[n] = '\0';
	return buf;
}

/* ---- value parsers: 0 or -1, nothing printed ---- */

int config_bool_parse(const char *v, bool *out)
{
	static const struct enum_word words[] = {
		{ "yes", 1 }, { "true", 1 }, { "on", 1 }, { "1", 1 },
		{ "no", 0 }, { "false", 0 }, { "off", 0 }, { "0", 0 },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcasecmp(v, words[i].word) == 0) {
			*out = words[i].value != 0;
			return 0;
		}
	}
	return -1;
}

/* Digits only: strtoull alone would accept "-1", " 5" and "0x10". */
static int parse_digits(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return 0;
}

static int parse_uint(const char *v, uint64_t *out)
{
	if (parse_digits(&v, out) < 0 || *v != '\0')
		return -1;
	return 0;
}

static int parse_size(const char *v, uint64_t *out)
{
	static const struct { char suffix; unsigned shift; } units[] = {
		{ 'K', 10 }, { 'M', 20 }, { 'G', 30 },
	};
	uint64_t n;

	if (parse_digits(&v, &n) < 0)
		return -1;
	if (*v == '\0') {
		*out = n;
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (toupper((unsigned char)v[0]) != units[i].suffix || v[1] != '\0')
			continue;
		if (n > (UINT64_MAX >> units[i].shift))
			return -1;
		*out = n << units[i].shift;
		return 0;
	}
	return -1;
}

/* "90m", "36h", "7d"; "0" and "off" mean none. */
static int parse_duration(const char *v, uint64_t *out)
{
	static const struct { char suffix; uint64_t seconds; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 },
	};
	uint64_t n;

	if (strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (parse_digits(&v, &n) < 0 || v[0] == '\0' || v[1] != '\0')
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (tolower((unsigned char)v[0]) != units[i].suffix)
			continue;
		if (n > UINT64_MAX / units[i].seconds)
			return -1;
		*out = n * units[i].seconds;
		return 0;
	}
	return -1;
}

static bool port_valid(const char *p)
{
	uint64_t n;

	return strlen(p) <= 5 && parse_uint(p, &n) == 0 && n <= 65535;
}

static int copy_str(char *dst, size_t dstlen, const char *src, size_t n)
{
	if (n >= dstlen)
		return -1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

int config_split_hostport(const char *s, char *host, size_t hostlen,
    char *port, size_t portlen)
{
	const char *colon, *h = s;
	size_t hlen;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		/* A bracket holds an IPv6 literal and nothing else. */
		if (close == NULL || close[1] != ':' || close == s + 1)
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		if (memchr(h, '[', hlen) != NULL)
			return -1;
	} else {
		colon = strchr(s, ':');
		/* More than one colon is a bare IPv6 address: ambiguous. */
		if (colon == NULL || strchr(colon + 1, ':') != NULL)
			return -1;
		hlen = (size_t)(colon - s);
	}
	for (size_t i = 0; i < hlen; i++)
		if (isspace((unsigned char)h[i]) || iscntrl((unsigned char)h[i]))
			return -1;
	if (!port_valid(colon + 1))
		return -1;
	if (copy_str(host, hostlen, h, hlen) < 0 ||
	    copy_str(port, portlen, colon + 1, strlen(colon + 1)) < 0)
		return -1;
	return 0;
}

static bool address_valid(const char *v)
{
	char host[CONFIG_ADDR_MAX], port[8];

	if (strcmp(v, "off") == 0)
		return true;
	return strlen(v) < CONFIG_ADDR_MAX &&
	    config_split_hostport(v, host, sizeof(host), port, sizeof(port)) == 0 &&
	    host[0] != '\0';
}

/* relay-allowed-recipients, relay-blocked-recipients: what relay.c
 * compiles (CONFIG_REGEX_FLAGS), so a pattern taken here compiles there. */
static const char *check_regex(const char *v, char *why, size_t len)
{
	regex_t re;
	int rc = regcomp(&re, v, CONFIG_REGEX_FLAGS);

	if (rc == 0) {
		regfree(&re);
		return NULL;
	}
	regerror(rc, &re, why, len);
	return why;
}

static const char *check_search(const char *v, char *why, size_t len)
{
	struct msg_search *s = NULL;

	if (msg_search_parse(v, "", &s, why, len) < 0)
		return why;
	msg_search_free(s);
	return NULL;
}

static const char *check_url(const char *v, char *why, size_t len)
{
	if (strncasecmp(v, "http://", 7) == 0 || strncasecmp(v, "https://", 8) == 0)
		return NULL;
	snprintf(why, len, "want an http:// or https:// URL");
	return why;
}

/* MAIL FROM:<v>: an address, nothing that would end the brackets. */
static const char *check_return_path(const char *v, char *why, size_t len)
{
	if (strchr(v, '@') != NULL && strpbrk(v, "<>(),;") == NULL)
		return NULL;
	snprintf(why, len, "want an address such as bounces@example.com");
	return why;
}

static bool text_valid(const char *v)
{
	for (; *v != '\0'; v++)
		if (iscntrl((unsigned char)*v))
			return false;
	return true;
}

static bool token_valid(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v != '\0'; v++)
		if (isspace((unsigned char)*v) || iscntrl((unsigned char)*v))
			return false;
	return true;
}

/* Inbox names follow the store's one rule (store_inbox_name_check), so a
 * name the config accepts is one the store takes at start-up. */
static const char *inbox_name_problem(const char *name, size_t len)
{
	if (len >= CONFIG_NAME_MAX)
		return "longer than 63 bytes";
	return store_inbox_name_check(name, len);
}

static bool inbox_password_valid(const char *pw)
{
	size_t len = strlen(pw);

	if (len == 0 || len >= CONFIG_PASS_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (iscntrl((unsigned char)pw[i]))
			return false;
	return true;
}

/* ---- setting values ---- */

static void store_uint(void *field, size_t width, uint64_t v)
{
	if (width == sizeof(uint64_t)) {
		uint64_t u = v;
		memcpy(field, &u, sizeof(u));
	} else {
		unsigned u = (unsigned)v;
		memcpy(field, &u, sizeof(u));
	}
}

static int add_inbox(struct load_ctx *ctx, const char *where, const char *name,
    size_t namelen, const char *password)
{
	struct config *cfg = ctx->cfg;
	struct config_inbox *ib;
	char shown[96], q[128];
	const char *why;

	/* The name for messages: the pair "NAME:PASSWORD" must not leak the
	 * password into an error line. */
	snprintf(shown, sizeof(shown), "%.*s", (int)(namelen < 90 ? namelen : 90), name);
	quoted(shown, q, sizeof(q));
	if ((why = inbox_name_problem(name, namelen)) != NULL)
		return fail(ctx->err, "%s: invalid inbox name '%s' (%s)", where, q, why);
	if (!inbox_password_valid(password))
		return fail(ctx->err, "%s: invalid password for inbox '%s' (want 1..%d characters)",
		    where, q, CONFIG_PASS_MAX - 1);
	for (size_t i = 0; i < cfg->n_inboxes; i++) {
		ib = &cfg->inboxes[i];
		if (strlen(ib->name) == namelen && memcmp(ib->name, name, namelen) == 0) {
			snprintf(ib->password, sizeof(ib->password), "%s", password);
			return 0;
		}
	}
	if (cfg->n_inboxes >= CONFIG_INBOXES_MAX)
		return fail(ctx->err, "%s: too many inboxes (max %d)", where, CONFIG_INBOXES_MAX);
	ib = realloc(cfg->inboxes, (cfg->n_inboxes + 1) * sizeof(*ib));
	if (ib == NULL)
		return fail(ctx->err, "%s: out of memory", where);
	cfg->inboxes = ib;
	ib = &cfg->inboxes[cfg->n_inboxes++];
	memset(ib, 0, sizeof(*ib));
	memcpy(ib->name, name, namelen);
	snprintf(ib->password, sizeof(ib->password), "%s", password);
	return 0;
}

/* "NAME:PASSWORD"; the password may itself contain ':'. */
static int set_inbox_pair(struct load_ctx *ctx, const char *where, const char *v)
{
	const char *colon = strchr(v, ':');
	char q[128];

	if (colon == NULL)
		return fail(ctx->err, "%s: invalid inbox '%s' (want NAME:PASSWORD)", where,
		    quoted(v, q, sizeof(q)));
	return add_inbox(ctx, where, v, (size_t)(colon - v), colon + 1);
}

/* "~/x" -> "$HOME/x"; anything else is copied. */
static int expand_path(struct load_ctx *ctx, const char *v, char *out, size_t len)
{
	const char *home;
	int n;

	if (strncmp(v, "~/", 2) != 0)
		return snprintf(out, len, "%s", v) < (int)len ? 0 : -1;
	home = env_get(ctx->envp, "HOME");
	if (home == NULL || home[0] == '\0')
		return -1;
	n = snprintf(out, len, "%s%s", home, v + 1);
	return n >= 0 && (size_t)n < len ? 0 : -1;
}

static int set_enum(struct load_ctx *ctx, const struct key_def *k, const char *where,
    const char *v)
{
	char want[128] = "", q[128];
	size_t n = 0;

	for (const struct enum_word *w = k->words; w->word != NULL; w++) {
		if (strcasecmp(v, w->word) == 0) {
			k->set_enum(ctx->cfg, w->value);
			return 0;
		}
	}
	for (const struct enum_word *w = k->words; w->word != NULL && n < sizeof(want); w++)
		n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%s",
		    n == 0 ? "" : w[1].word == NULL ? " or " : ", ", w->word);
	return fail(ctx->err, "%s: invalid value '%s' (want %s)", where, quoted(v, q, sizeof(q)),
	    want);
}

static int set_number(struct load_ctx *ctx, const struct key_def *k, const char *where,
    const char *v, char *field)
{
	uint64_t n = 0;
	char q[128];

	if (k->type == KT_SIZE) {
		if (parse_size(v, &n) < 0)
			return fail(ctx->err, "%s: invalid size '%s' (want a number with optional K, M or G)",
			    where, quoted(v, q, sizeof(q)));
	} else if (k->type == KT_DURATION) {
		if (parse_duration(v, &n) < 0)
			return fail(ctx->err, "%s: invalid duration '%s' (want e.g. 90m, 36h, 7d, or 0)",
			    where, quoted(v, q, sizeof(q)));
	} else if (parse_uint(v, &n) < 0) {
		return fail(ctx->err, "%s: invalid number '%s'", where, quoted(v, q, sizeof(q)));
	}
	if (n < k->min || n > k->max)
		return fail(ctx->err, "%s: %s out of range (want %llu..%llu)", where,
		    quoted(v, q, sizeof(q)), (unsigned long long)k->min,
		    (unsigned long long)k->max);
	store_uint(field, k->size, n);
	return 0;
}

/* A string key's own check (check_regex, ...), then the value. */
static int set_checked(struct load_ctx *ctx, const struct key_def *k, const char *where,
    const char *v, char *field)
{
	char why[256], q[128];

	if (k->check != NULL && v[0] != '\0' && k->check(v, why, sizeof(why)) != NULL)
		return fail(ctx->err, "%s: invalid value '%s' (%s)", where, quoted(v, q, sizeof(q)),
		    why);
	memcpy(field, v, strlen(v) + 1);
	return 0;
}

/* Sets key k from text v. `where` names the source and the key. */
static int set_key(struct load_ctx *ctx, const struct key_def *k, const char *where,
    const char *v)
{
	char *field = (char *)ctx->cfg + k->offset;
	char q[128];
	bool b;

	if (v[0] == '\0' && !(k->flags & KF_EMPTY_OK))
		return fail(ctx->err, "%s: empty value", where);
	switch (k->type) {
	case KT_STRING:
		/* "" got here only for a KF_EMPTY_OK key. */
		if ((v[0] != '\0' && !token_valid(v)) || strlen(v) >= k->size)
			return fail(ctx->err, "%s: invalid value '%s' (want one word of at most %zu characters)",
			    where, quoted(v, q, sizeof(q)), k->size - 1);
		return set_checked(ctx, k, where, v, field);
	case KT_TEXT:
		if (!text_valid(v) || strlen(v) >= k->size)
			return fail(ctx->err, "%s: invalid value '%s' (want text of at most %zu "
			    "characters, without control characters)", where, quoted(v, q, sizeof(q)),
			    k->size - 1);
		return set_checked(ctx, k, where, v, field);
	case KT_CONFIG:
	case KT_PATH:
		if (expand_path(ctx, v, field, k->size) < 0)
			return fail(ctx->err, "%s: invalid path '%s' (too long, or ~ without $HOME)",
			    where, quoted(v, q, sizeof(q)));
		return 0;
	case KT_ADDRESS:
		if (!address_valid(v))
			return fail(ctx->err, "%s: invalid address '%s' (want host:port or off)",
			    where, quoted(v, q, sizeof(q)));
		memcpy(field, v, strlen(v) + 1);
		return 0;
	case KT_BOOL:
		if (config_bool_parse(v, &b) < 0)
			return fail(ctx->err, "%s: invalid boolean '%s' (want yes or no)",
			    where, quoted(v, q, sizeof(q)));
		memcpy(field, &b, sizeof(b));
		return 0;
	case KT_SIZE:
	case KT_UINT:
	case KT_DURATION:
		return set_number(ctx, k, where, v, field);
	case KT_ENUM:
		return set_enum(ctx, k, where, v);
	case KT_INBOX:
		return set_inbox_pair(ctx, where, v);
	}
	return fail(ctx->err, "%s: internal error: bad key type", where);
}

/* ---- defaults ---- */

static int default_db(struct load_ctx *ctx, char *out, size_t len)
{
	const char *base = env_get(ctx->envp, "XDG_DATA_HOME");
	const char *suffix = "/mailsnare/mailsnare.db";
	int n;

	/* The XDG spec says a relative $XDG_DATA_HOME is to be ignored. */
	if (base == NULL || base[0] != '/') {
		const struct passwd *pw;

		base = env_get(ctx->envp, "HOME");
		if ((base == NULL || base[0] == '\0') && (pw = getpwuid(getuid())) != NULL)
			base = pw->pw_dir;
		if (base == NULL || base[0] == '\0')
			base = ".";
		suffix = "/.local/share/mailsnare/mailsnare.db";
	}
	n = snprintf(out, len, "%s%s", base, suffix);
	if (n < 0 || (size_t)n >= len)
		return fail(ctx->err, "db: default path too long");
	return 0;
}

static int default_hostname(struct load_ctx *ctx, char *out, size_t len)
{
	char name[256];

	if (gethostname(name, sizeof(name)) == 0) {
		name[sizeof(name) - 1] = '\0';
		if (token_valid(name) && strlen(name) < len) {
			memcpy(out, name, strlen(name) + 1);
			return 0;
		}
	}
	snprintf(out, len, "localhost");
	return 0;
}

static int apply_defaults(struct load_ctx *ctx)
{
	for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
		const struct key_def *k = &config_keys[i];
		char where[64];

		if (k->compute_default != NULL) {
			if (k->compute_default(ctx, (char *)ctx->cfg + k->offset, k->size) < 0)
				return -1;
			continue;
		}
		if (k->def == NULL)
			continue;
		snprintf(where, sizeof(where), "default %s", k->name);
		if (set_key(ctx, k, where, k->def) < 0)
			return -1;
	}
	return 0;
}

/* ---- the config file ---- */

struct file_state {
	const char *path;
	unsigned line;
	/* Inside "[inbox NAME]": the section's name and whether it has its
	 * password yet; section_line is for the "no password" error. */
	bool in_section;
	char section[CONFIG_NAME_MAX];
	bool section_has_password;
	unsigned section_line;
};

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Optional matching quotes around a value: "a b" or 'a b'. */
static char *unquote(char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
		v[n - 1] = '\0';
		return v + 1;
	}
	return v;
}

static int end_section(struct load_ctx *ctx, struct file_state *fs)
{
	if (fs->in_section && !fs->section_has_password)
		return fail(ctx->err, "%s:%u: [inbox %s] has no password", fs->path,
		    fs->section_line, fs->section);
	fs->in_section = false;
	return 0;
}

/* "[inbox NAME]" */
static int file_section(struct load_ctx *ctx, struct file_state *fs, char *s)
{
	size_t n = strlen(s);
	char *name;
	const char *why;
	char q[128];

	if (end_section(ctx, fs) < 0)
		return -1;
	if (s[n - 1] != ']')
		return fail(ctx->err, "%s:%u: invalid section '%s' (want [inbox NAME])",
		    fs->path, fs->line, quoted(s, q, sizeof(q)));
	s[n - 1] = '\0';
	s = trim(s + 1);
	if (strncmp(s, "inbox", 5) != 0 || !isspace((unsigned char)s[5]))
		return fail(ctx->err, "%s:%u: unknown section '[%s]' (want [inbox NAME])",
		    fs->path, fs->line, quoted(s, q, sizeof(q)));
	name = unquote(trim(s + 5));
	if ((why = inbox_name_problem(name, strlen(name))) != NULL)
		return fail(ctx->err, "%s:%u: inbox: invalid inbox name '%s' (%s)", fs->path,
		    fs->line, quoted(name, q, sizeof(q)), why);
	memcpy(fs->section, name, strlen(name) + 1);
	fs->in_section = true;
	fs->section_has_password = false;
	fs->section_line = fs->line;
	return 0;
}

static int file_section_key(struct load_ctx *ctx, struct file_state *fs, const char *key,
    const char *value)
{
	char where[WHERE_MAX], q[128];

	if (strcmp(key, "password") != 0)
		return fail(ctx->err, "%s:%u: unknown key '%s' in [inbox %s] (only password)",
		    fs->path, fs->line, quoted(key, q, sizeof(q)), fs->section);
	snprintf(where, sizeof(where), "%s:%u: password", fs->path, fs->line);
	fs->section_has_password = true;
	return add_inbox(ctx, where, fs->section, strlen(fs->section), value);
}

static int file_key(struct load_ctx *ctx, struct file_state *fs, char *s)
{
	char *eq = strchr(s, '=');
	char *key, *value;
	const struct key_def *k;
	char where[WHERE_MAX], q[128];

	if (eq == NULL)
		return fail(ctx->err, "%s:%u: expected 'key = value', got '%s'", fs->path,
		    fs->line, quoted(s, q, sizeof(q)));
	*eq = '\0';
	key = trim(s);
	value = unquote(trim(eq + 1));
	if (fs->in_section)
		return file_section_key(ctx, fs, key, value);
	k = strcmp(key, "c") == 0 ? NULL : key_find(key);
	if (k == NULL)
		return fail(ctx->err, "%s:%u: unknown key '%s'", fs->path, fs->line,
		    quoted(key, q, sizeof(q)));
	if (k->type == KT_CONFIG)
		return fail(ctx->err, "%s:%u: key 'config' is not allowed in a config file",
		    fs->path, fs->line);
	snprintf(where, sizeof(where), "%s:%u: %s", fs->path, fs->line, k->name);
	return set_key(ctx, k, where, value);
}

static int file_line(struct load_ctx *ctx, struct file_state *fs, char *line)
{
	char *s = trim(line);

	if (s[0] == '\0' || s[0] == '#')
		return 0;
	if (s[0] == '[')
		return file_section(ctx, fs, s);
	return file_key(ctx, fs, s);
}

/* One line into buf (without its newline), at most CONFIG_LINE_MAX - 2
 * bytes of text. 1 for a line, 0 at the end, -1 with the error set: a
 * line too long, a NUL or another control character (not a text file:
 * -c /dev/zero must not spin), or more than CONFIG_FILE_MAX bytes in all. */
static int next_line(struct load_ctx *ctx, FILE *f, const char *path, unsigned line,
    size_t *total, char *buf)
{
	size_t n = 0;
	int c;

	while ((c = getc(f)) != EOF && c != '\n') {
		if (++*total > CONFIG_FILE_MAX)
			return fail(ctx->err, "%s: more than %d bytes: not a config file", path,
			    CONFIG_FILE_MAX);
		if (c == '\0' || (iscntrl(c) && c != '\t' && c != '\r'))
			return fail(ctx->err, "%s:%u: %s byte 0x%02x: not a text file", path, line,
			    c == '\0' ? "NUL" : "control", (unsigned)c);
		if (n == CONFIG_LINE_MAX - 2)
			return fail(ctx->err, "%s:%u: line too long (max %d bytes)", path, line,
			    CONFIG_LINE_MAX - 2);
		buf[n++] = (char)c;
	}
	buf[n] = '\0';
	if (c == '\n' && ++*total > CONFIG_FILE_MAX)
		return fail(ctx->err, "%s: more than %d bytes: not a config file", path,
		    CONFIG_FILE_MAX);
	if (c == EOF && ferror(f))
		return fail(ctx->err, "%s: read error: %s", path, strerror(errno));
	return c == EOF && n == 0 ? 0 : 1;
}

static int read_file(struct load_ctx *ctx, FILE *f, const char *path)
{
	struct file_state fs = { .path = path };
	char line[CONFIG_LINE_MAX];
	size_t total = 0;
	int r;

	while ((r = next_line(ctx, f, path, fs.line + 1, &total, line)) > 0) {
		fs.line++;
		if (file_line(ctx, &fs, line) < 0)
			return -1;
	}
	if (r < 0)
		return -1;
	return end_section(ctx, &fs);
}

/* The file named by `where` ("-c", "MAILSNARE_CONFIG") or the default. */
static int load_file(struct load_ctx *ctx, const char *path, const char *where)
{
	struct config *cfg = ctx->cfg;
	struct stat st;
	FILE *f;
	int r;

	if (path == NULL) {
		/* Only the implicit defaults may be absent: the build tree's
		 * (or a project's) conf/ first, then the installed one. */
		if (stat(DEFAULT_CONFIG_FILE, &st) == 0)
			path = DEFAULT_CONFIG_FILE;
		else if (stat(SYSTEM_CONFIG_FILE, &st) == 0)
			path = SYSTEM_CONFIG_FILE;
		else
			return 0;
		where = path;
	}
	if (path[0] == '\0')
		return 0;   /* an explicitly empty name means: no file */
	f = fopen(path, "r");
	if (f == NULL)
		return fail(ctx->err, "%s: cannot open '%s': %s", where, path, strerror(errno));
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(f);
		return fail(ctx->err, "%s: cannot read '%s': is a directory", where, path);
	}
	snprintf(cfg->config_path, sizeof(cfg->config_path), "%s", path);
	r = read_file(ctx, f, path);
	fclose(f);
	return r;
}

/* ---- environment and flags ---- */

static int env_inboxes(struct load_ctx *ctx, const char *where, const char *list)
{
	char buf[CONFIG_LINE_MAX];
	char *save = NULL;

	if (strlen(list) >= sizeof(buf))
		return fail(ctx->err, "%s: value too long", where);
	memcpy(buf, list, strlen(list) + 1);
	for (char *item = strtok_r(buf, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		item = trim(item);
		if (item[0] != '\0' && set_inbox_pair(ctx, where, item) < 0)
			return -1;
	}
	return 0;
}

static int apply_env(struct load_ctx *ctx)
{
	for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
		const struct key_def *k = &config_keys[i];
		char name[64];
		const char *v;

		if (k->type == KT_CONFIG)
			continue;   /* read before the file, by config_load */
		env_name(k->name, name, sizeof(name));
		v = env_get(ctx->envp, name);
		if (v == NULL)
			continue;
		if (k->type == KT_INBOX) {
			if (env_inboxes(ctx, name, v) < 0)
				return -1;
		} else if (set_key(ctx, k, name, v) < 0) {
			return -1;
		}
	}
	return 0;
}

static void flag_where(const struct config_flag *f, char *where, size_t len)
{
	snprintf(where, len, "%s%s", strlen(f->key) == 1 ? "-" : "--", f->key);
}

static int apply_flags(struct load_ctx *ctx, const struct config_flag *flags, size_t nflags)
{
	for (size_t i = 0; i < nflags; i++) {
		const struct key_def *k = key_find(flags[i].key);
		const char *v = flags[i].value;
		char where[96], q[128];

		flag_where(&flags[i], where, sizeof(where));
		if (k == NULL)
			return fail(ctx->err, "unknown option '%s'", quoted(where, q, sizeof(q)));
		if (v == NULL && k->type != KT_BOOL)
			return fail(ctx->err, "%s: missing value", where);
		if (k->type == KT_CONFIG)
			continue;   /* already used to find the file */
		if (set_key(ctx, k, where, v != NULL ? v : "yes") < 0)
			return -1;
	}
	return 0;
}

/* The config file named by the last config/c flag, else MAILSNARE_CONFIG;
 * NULL means "the default if it exists". */
static const char *config_file_name(struct load_ctx *ctx, const struct config_flag *flags,
    size_t nflags, char *where, size_t wlen)
{
	const char *path = NULL;

	for (size_t i = 0; i < nflags; i++) {
		const struct key_def *k = key_find(flags[i].key);

		if (k != NULL && k->type == KT_CONFIG && flags[i].value != NULL) {
			path = flags[i].value;
			flag_where(&flags[i], where, wlen);
		}
	}
	if (path == NULL && (path = env_get(ctx->envp, ENV_PREFIX "CONFIG")) != NULL)
		snprintf(where, wlen, "%s", ENV_PREFIX "CONFIG");
	return path;
}

/* Keys that only make sense together, once every source is applied. */
static int check_pairs(struct load_ctx *ctx)
{
	const struct config *cfg = ctx->cfg;

	if (cfg->tls_key[0] != '\0' && cfg->tls_cert[0] == '\0')
		return fail(ctx->err, "tls-cert: missing (tls-key is set: give both or neither)");
	if (cfg->tls_cert[0] != '\0' && cfg->tls_key[0] == '\0')
		return fail(ctx->err, "tls-key: missing (tls-cert is set: give both or neither)");
	if (cfg->relay_auto[0] != '\0' && cfg->relay_host[0] == '\0')
		return fail(ctx->err, "relay-auto: needs relay-host (where to release to)");
	return 0;
}

int config_load(struct config *cfg, const struct config_flag *flags, size_t nflags,
    char *const *envp, struct config_error *err)
{
	struct load_ctx ctx = { .cfg = cfg, .envp = envp, .err = err };
	char where[96] = "";
	char path[PATH_MAX];
	const char *name;

	memset(cfg, 0, sizeof(*cfg));
	err->msg[0] = '\0';
	if (apply_defaults(&ctx) < 0)
		return -1;
	name = config_file_name(&ctx, flags, nflags, where, sizeof(where));
	if (name != NULL) {
		if (expand_path(&ctx, name, path, sizeof(path)) < 0)
			return fail(err, "%s: invalid path '%s'", where, name);
		name = path;
	}
	if (load_file(&ctx, name, where) < 0)
		return -1;
	if (apply_env(&ctx) < 0)
		return -1;
	if (apply_flags(&ctx, flags, nflags) < 0)
		return -1;
	return check_pairs(&ctx);
}

void config_free(struct config *cfg)
{
	free(cfg->inboxes);
	cfg->inboxes = NULL;
	cfg->n_inboxes = 0;
}
