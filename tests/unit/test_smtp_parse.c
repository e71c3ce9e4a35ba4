/* SMTP command-line parser: verbs, paths, parameters, BDAT. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "mailsnare/smtp_parse.h"

Test(smtp_parse, verbs_case_insensitive_with_args)
{
	const char *args;

	cr_assert_eq(smtp_parse_verb("ehlo client.example", &args), SMTP_CMD_EHLO);
	cr_assert_str_eq(args, "client.example");
	cr_assert_eq(smtp_parse_verb("MaIl FROM:<a@b>", &args), SMTP_CMD_MAIL);
	cr_assert_str_eq(args, "FROM:<a@b>");
	cr_assert_eq(smtp_parse_verb("QUIT", &args), SMTP_CMD_QUIT);
	cr_assert_str_eq(args, "");
	cr_assert_eq(smtp_parse_verb("STARTTLS", &args), SMTP_CMD_STARTTLS);
	cr_assert_eq(smtp_parse_verb("DATAX", &args), SMTP_CMD_UNKNOWN);
	cr_assert_eq(smtp_parse_verb("", &args), SMTP_CMD_UNKNOWN);
	cr_assert_eq(smtp_parse_verb("DAT", &args), SMTP_CMD_UNKNOWN);
	cr_assert_eq(smtp_parse_verb("bdat 10 LAST", &args), SMTP_CMD_BDAT);
	cr_assert_str_eq(args, "10 LAST");
}

Test(smtp_parse, mail_from_forms)
{
	struct smtp_path p;

	cr_assert_eq(smtp_parse_path("FROM:<alice@example.com>", "FROM", true, &p), SMTP_PATH_OK);
	cr_assert_str_eq(p.addr, "alice@example.com");
	cr_assert_str_eq(p.params, "");
	cr_assert_eq(smtp_parse_path("from: <alice@example.com>  SIZE=100 BODY=8BITMIME", "FROM",
	    true, &p), SMTP_PATH_OK);
	cr_assert_str_eq(p.addr, "alice@example.com");
	cr_assert_str_eq(p.params, "SIZE=100 BODY=8BITMIME");
	cr_assert_eq(smtp_parse_path("FROM:<>", "FROM", true, &p), SMTP_PATH_OK);
	cr_assert_str_eq(p.addr, "");
	cr_assert_eq(smtp_parse_path("FROM:alice@example.com", "FROM", true, &p), SMTP_PATH_OK);
	cr_assert_str_eq(p.addr, "alice@example.com");
	cr_assert_eq(smtp_parse_path("FROM:<@relay.example:bob@example.com>", "FROM", true, &p),
	    SMTP_PATH_OK);
	cr_assert_str_eq(p.addr, "bob@example.com");
	cr_assert_eq(smtp_parse_path("FROM:<\"john doe\"@example.com>", "FROM", true, &p),
	    SMTP_PATH_OK);
	cr_assert_str_eq(p.addr, "\"john doe\"@example.com");
	cr_assert_eq(smtp_parse_path("FROM:<a@[127.0.0.1]>", "FROM", true, &p), SMTP_PATH_OK);
}

Test(smtp_parse, path_errors)
{
	struct smtp_path p;

	cr_assert_eq(smtp_parse_path("FROM <a@b>", "FROM", true, &p), SMTP_PATH_SYNTAX);
	cr_assert_eq(smtp_parse_path("TO:<a@b>", "FROM", true, &p), SMTP_PATH_SYNTAX);
	cr_assert_eq(smtp_parse_path("FROM:<a@b", "FROM", true, &p), SMTP_PATH_BADADDR);
	cr_assert_eq(smtp_parse_path("FROM:<a@b>x", "FROM", true, &p), SMTP_PATH_SYNTAX);
	cr_assert_eq(smtp_parse_path("FROM:", "FROM", true, &p), SMTP_PATH_SYNTAX);
	cr_assert_eq(smtp_parse_path("TO:<>", "TO", false, &p), SMTP_PATH_BADADDR);
	cr_assert_eq(smtp_parse_path("FROM:<a b@c>", "FROM", true, &p), SMTP_PATH_BADADDR);
	cr_assert_eq(smtp_parse_path("FROM:<nodomain>", "FROM", true, &p), SMTP_PATH_BADADDR);
	cr_assert_eq(smtp_parse_path("FROM:<a..b@c>", "FROM", true, &p), SMTP_PATH_BADADDR);
	cr_assert_eq(smtp_parse_path("FROM:<a@b..c>", "FROM", true, &p), SMTP_PATH_BADADDR);
	cr_assert_eq(smtp_parse_path("FROM:<@>", "FROM", true, &p), SMTP_PATH_BADADDR);
	cr_assert_eq(smtp_parse_path("FROM:<a@>", "FROM", true, &p), SMTP_PATH_BADADDR);
}

Test(smtp_parse, rcpt_postmaster_and_lengths)
{
	struct smtp_path p;
	char line[600], local[70];

	cr_assert_eq(smtp_parse_path("TO:<Postmaster>", "TO", false, &p), SMTP_PATH_OK);
	cr_assert_eq(smtp_parse_path("FROM:<postmaster>", "FROM", true, &p), SMTP_PATH_BADADDR);
	memset(local, 'x', 65);
	local[65] = '\0';
	snprintf(line, sizeof(line), "TO:<%s@example.com>", local);
	cr_assert_eq(smtp_parse_path(line, "TO", false, &p), SMTP_PATH_BADADDR);
	memset(line, 0, sizeof(line));
	strcpy(line, "TO:<a@");
	memset(line + 6, 'd', 300);
	strcat(line, ">");
	cr_assert_eq(smtp_parse_path(line, "TO", false, &p), SMTP_PATH_TOOLONG);
}

Test(smtp_parse, utf8_addresses_flagged)
{
	struct smtp_path p;

	cr_assert_eq(smtp_parse_path("TO:<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", "TO", false, &p),
	    SMTP_PATH_OK);
	cr_assert(p.utf8);
	cr_assert_eq(smtp_parse_path("TO:<plain@example.com>", "TO", false, &p), SMTP_PATH_OK);
	cr_assert_not(p.utf8);
}

Test(smtp_parse, params)
{
	const char *p = "size=1000  BODY=8BITMIME SMTPUTF8 AUTH=<>";
	char key[32], value[64];

	cr_assert_eq(smtp_parse_param(&p, key, sizeof(key), value, sizeof(value)), 1);
	cr_assert_str_eq(key, "SIZE");
	cr_assert_str_eq(value, "1000");
	cr_assert_eq(smtp_parse_param(&p, key, sizeof(key), value, sizeof(value)), 1);
	cr_assert_str_eq(key, "BODY");
	cr_assert_str_eq(value, "8BITMIME");
	cr_assert_eq(smtp_parse_param(&p, key, sizeof(key), value, sizeof(value)), 1);
	cr_assert_str_eq(key, "SMTPUTF8");
	cr_assert_str_eq(value, "");
	cr_assert_eq(smtp_parse_param(&p, key, sizeof(key), value, sizeof(value)), 1);
	cr_assert_str_eq(key, "AUTH");
	cr_assert_str_eq(value, "<>");
	cr_assert_eq(smtp_parse_param(&p, key, sizeof(key), value, sizeof(value)), 0);

	p = "=x";
	cr_assert_eq(smtp_parse_param(&p, key, sizeof(key), value, sizeof(value)), -1);
	p = "KEY=\x01";
	cr_assert_eq(smtp_parse_param(&p, key, sizeof(key), value, sizeof(value)), -1);
	p = "AVERYLONGKEYTHATDOESNOTFITINTOTHEBUFFER=1";
	cr_assert_eq(smtp_parse_param(&p, key, 8, value, sizeof(value)), -1);
}

Test(smtp_parse, numbers_and_bdat)
{
	uint64_t v;
	bool last;

	cr_assert_eq(smtp_parse_u64("18446744073709551615", &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(smtp_parse_u64("18446744073709551616", &v), -1);
	cr_assert_eq(smtp_parse_u64("-1", &v), -1);
	cr_assert_eq(smtp_parse_u64("12a", &v), -1);
	cr_assert_eq(smtp_parse_u64("", &v), -1);
	cr_assert_eq(smtp_parse_bdat("100", &v, &last), 0);
	cr_assert(v == 100 && !last);
	cr_assert_eq(smtp_parse_bdat("0 last", &v, &last), 0);
	cr_assert(v == 0 && last);
	cr_assert_eq(smtp_parse_bdat("10 LAST extra", &v, &last), -1);
	cr_assert_eq(smtp_parse_bdat("", &v, &last), -1);
	cr_assert_eq(smtp_parse_bdat("x LAST", &v, &last), -1);
}
