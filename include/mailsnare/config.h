/*
 * Configuration: built-in defaults < config file < MAILSNARE_* environment
 * < command-line flags (DESIGN §2). The keys are listed once, in a table in
 * config.c; this header gives the parsed result.
 */
#ifndef MAILSNARE_CONFIG_H
#define MAILSNARE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailsnare/log.h"

enum listener_kind {
	LISTEN_SMTP, LISTEN_SMTPS, LISTEN_POP3, LISTEN_POP3S,
	LISTEN_IMAP, LISTEN_IMAPS, LISTEN_HTTP, LISTEN_HTTPS, LISTEN_COUNT
};

enum durability { DURABILITY_NORMAL, DURABILITY_FULL };

/* relay-tls: how the upstream of a release is reached. */
enum relay_tls { RELAY_TLS_STARTTLS, RELAY_TLS_TLS, RELAY_TLS_NONE };

#define CONFIG_ADDR_MAX 128
#define CONFIG_NAME_MAX 64
#define CONFIG_PASS_MAX 128
/* How relay-allowed-recipients and relay-blocked-recipients are compiled
 * (regcomp, <regex.h>): POSIX extended, case-insensitive as addresses
 * mostly are, unanchored (a search, as Mailpit's Go regexp). */
#define CONFIG_REGEX_FLAGS (REG_EXTENDED | REG_ICASE | REG_NOSUB)

struct config_inbox {
	char name[CONFIG_NAME_MAX];
	char password[CONFIG_PASS_MAX];
};

struct config {
	char config_path[PATH_MAX];          /* "" if no file was read */
	char db[PATH_MAX];
	/* "off" or "host:port" / "[v6]:port", validated by config_load. */
	char listen[LISTEN_COUNT][CONFIG_ADDR_MAX];
	char tls_cert[PATH_MAX];             /* "" = generated next to the db */
	char tls_key[PATH_MAX];
	bool smtp_require_auth;
	bool auth_accept_any;
	bool allow_plaintext_auth;
	uint64_t max_message_size;
	uint64_t max_messages;               /* 0 = unlimited */
	unsigned max_clients;
	unsigned smtp_timeout;               /* seconds idle before 421 */
	unsigned pop3_timeout;               /* seconds idle before a POP3 session ends */
	unsigned imap_timeout;               /* seconds idle before an IMAP autologout */
	unsigned login_timeout;              /* seconds before login, and for a TLS handshake */
	unsigned max_mailboxes;              /* per inbox */
	unsigned max_subscriptions;          /* per inbox */
	unsigned max_keywords;               /* distinct keywords per mailbox */
	unsigned search_threads;             /* the HTTP API's search pool; 0: none */
	unsigned search_split_min;           /* bodies from which a search is split */
	unsigned auth_fail_limit;            /* failed logins a minute per client address */
	enum durability durability;
	enum log_level log_level;
	char ready_file[PATH_MAX];           /* "" = none */
	bool http_require_auth;              /* anonymous HTTP requests get 401 */
	char http_admin[CONFIG_NAME_MAX + CONFIG_PASS_MAX]; /* "user:password" or "" */
	char http_cors[1024];                /* allowed origins, comma-separated, or "" */
	char hostname[256];                  /* name in greetings and Received */
	/* Release to a real server (relay.h); relay_host "" = off. */
	char relay_host[256];
	unsigned relay_port;
	enum relay_tls relay_tls;
	bool relay_tls_verify;
	char relay_username[256];
	char relay_password[256];
	char relay_allowed[1024];            /* POSIX ERE, "" = any recipient */
	char relay_blocked[1024];            /* POSIX ERE, "" = none */
	char relay_return_path[320];         /* MAIL FROM, "" = the envelope sender */
	char relay_auto[1024];               /* a search: released at delivery; "" = none */
	char webhook_url[2048];              /* "" = no webhook */
	unsigned webhook_limit;              /* requests a second, 0 = no limit */
	unsigned webhook_timeout;            /* seconds per request */
	bool metrics;                        /* GET /metrics */
	bool chaos;                          /* chaos can be set (chaos.h) */
	char chaos_triggers[1024];           /* Mailpit's Trigger:code:probability list */
	uint64_t chaos_seed;                 /* 0 = from the clock */
	uint64_t max_age;                    /* seconds; 0 = messages are kept */
	struct config_inbox *inboxes;        /* [inbox NAME] sections, --inbox */
	size_t n_inboxes;
};

/* A flag from the command line: key without the leading "--" ("c" is
 * accepted for "config"), value as given. */
struct config_flag {
	const char *key;
	const char *value;
};

struct config_error {
	char msg[512];   /* one line: where, key, what is wrong */
};

/*
 * Fills cfg: defaults, then the config file (flag "config", else
 * MAILSNARE_CONFIG, else conf/mailsnare.conf if it exists, else
 * $(sysconfdir)/mailsnare/mailsnare.conf if it exists), then the
 * environment (envp, NULL-terminated "KEY=value" strings), then flags.
 * Returns 0, or -1 with err->msg set, e.g.
 *   "conf/x.conf:12: unknown key 'smtp-port'"
 *   "MAILSNARE_SMTP: invalid address 'localhost' (want host:port or off)"
 *   "--max-clients: invalid number 'many'"
 * Call config_free() in both cases.
 */
int config_load(struct config *cfg, const struct config_flag *flags, size_t nflags,
    char *const *envp, struct config_error *err);
void config_free(struct config *cfg);

/* $(sysconfdir)/mailsnare/mailsnare.conf: read when no file is named and
 * there is no conf/mailsnare.conf in the current directory. */
const char *config_system_file(void);

/* true if `key` is a known serve key (also "c" and "inbox"). */
bool config_key_known(const char *key);
/* The i-th key of the table ("config", "db", ...), NULL past the last:
 * for tests that go over every key. */
const char *config_key_name(size_t i);
/* The i-th key's built-in default as text; NULL if it has none or it is
 * computed at load ($XDG_DATA_HOME, the host name). */
const char *config_key_default(size_t i);
/* The environment variable of a key: "max-clients" -> "MAILSNARE_MAX_CLIENTS". */
void config_key_env(const char *key, char *out, size_t len);
/* true if `key` takes a yes/no value (a bare flag then means yes). */
bool config_key_is_bool(const char *key);

/* yes/no/true/false/on/off/1/0 (any case); 0, or -1 if not a bool word.
 * The CLI uses it to tell "--flag no" from a bare "--flag" before a
 * positional argument. */
int config_bool_parse(const char *text, bool *out);

const char *config_listener_name(enum listener_kind kind);  /* "smtp", ... */

/* Splits "host:port", "[v6]:port" or ":port" into host and port strings.
 * Returns 0, or -1 if malformed. */
int config_split_hostport(const char *s, char *host, size_t hostlen,
    char *port, size_t portlen);

#endif
