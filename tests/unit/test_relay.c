/* The release rules of relay.c, without a network: which strings are
 * addresses, what the allow and block patterns let through, the exact
 * refusals, and that a relay with no relay-host is off. The transfers
 * themselves are tests/integration/test_relay.py's. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "mailsnare/config.h"
#include "mailsnare/relay.h"

static struct config base_cfg(void)
{
	struct config cfg;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.relay_host, sizeof(cfg.relay_host), "smtp.example.test");
	cfg.relay_port = 587;
	snprintf(cfg.hostname, sizeof(cfg.hostname), "trap.example.test");
	return cfg;
}

Test(relay, off_without_host)
{
	struct config cfg = base_cfg();
	struct relay *r = (struct relay *)&cfg;
	char err[RELAY_ERR_MAX] = "";

	cfg.relay_host[0] = '\0';
	cr_assert_eq(relay_new(&cfg, NULL, &r, err, sizeof(err)), 0);
	cr_assert_null(r);
}

Test(relay, server_name)
{
	struct config cfg = base_cfg();
	struct relay *r = NULL;
	char err[RELAY_ERR_MAX];

	cr_assert_eq(relay_new(&cfg, NULL, &r, err, sizeof(err)), 0);
	cr_assert_str_eq(relay_server(r), "smtp.example.test:587");
	relay_free(r);
	snprintf(cfg.relay_host, sizeof(cfg.relay_host), "::1");
	cr_assert_eq(relay_new(&cfg, NULL, &r, err, sizeof(err)), 0);
	cr_assert_str_eq(relay_server(r), "[::1]:587");
	relay_free(r);
}

Test(relay, addresses)
{
	static const struct { const char *in, *out; } ok[] = {
		{ "a@b", "a@b" }, { "  a.b+c@example.test ", "a.b+c@example.test" },
		{ "Bob <bob@example.test>", "bob@example.test" },
		{ "\"Doe, J\" <j@example.test>", "j@example.test" },
	};
	static const char *const bad[] = {
		"", "a", "@b", "a@", "a b@c", "<a@b", "a@b>x<", "a@b, c@d", "a@b\r\nRCPT TO:<x@y>",
		"<>", "a;b@c", "Bob <bob@example.test> x",
	};
	char out[RELAY_ADDR_MAX];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(relay_address(ok[i].in, out), 0, "%s", ok[i].in);
		cr_assert_str_eq(out, ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(relay_address(bad[i], out), -1, "'%s' taken", bad[i]);
}

Test(relay, allow_and_block)
{
	struct config cfg = base_cfg();
	struct relay *r = NULL;
	char err[RELAY_ERR_MAX];

	snprintf(cfg.relay_allowed, sizeof(cfg.relay_allowed), "@(example|corp)\\.test$");
	snprintf(cfg.relay_blocked, sizeof(cfg.relay_blocked), "^(ceo|board)@");
	cr_assert_eq(relay_new(&cfg, NULL, &r, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(relay_check_rcpt(r, "qa@example.test", err, sizeof(err)), RELAY_OK);
	cr_assert_eq(relay_check_rcpt(r, "QA@EXAMPLE.TEST", err, sizeof(err)), RELAY_OK,
	    "case-insensitive");
	cr_assert_eq(relay_check_rcpt(r, "qa@example.test.evil", err, sizeof(err)), RELAY_REFUSED);
	cr_assert_str_eq(err, "Mail address does not match the allowlist "
	    "(relay-allowed-recipients): qa@example.test.evil");
	cr_assert_eq(relay_check_rcpt(r, "Board@corp.test", err, sizeof(err)), RELAY_REFUSED);
	cr_assert_str_eq(err, "Mail address is blocked (relay-blocked-recipients): Board@corp.test");
	relay_free(r);
}

Test(relay, no_rules_allow_anyone)
{
	struct config cfg = base_cfg();
	struct relay *r = NULL;
	char err[RELAY_ERR_MAX];

	cr_assert_eq(relay_new(&cfg, NULL, &r, err, sizeof(err)), 0);
	cr_assert_eq(relay_check_rcpt(r, "anyone@anywhere.test", err, sizeof(err)), RELAY_OK);
	relay_free(r);
}

Test(relay, bad_pattern)
{
	struct config cfg = base_cfg();
	struct relay *r = (struct relay *)&cfg;
	char err[RELAY_ERR_MAX];

	snprintf(cfg.relay_blocked, sizeof(cfg.relay_blocked), "a(b");
	cr_assert_eq(relay_new(&cfg, NULL, &r, err, sizeof(err)), -1);
	cr_assert_null(r);
	cr_assert_eq(strncmp(err, "relay-blocked-recipients: invalid regular expression 'a(b' (",
	    60), 0, "%s", err);
}
