/*
 * Chaos: Mailpit's trigger syntax (and ours), the rules' bounds, and the
 * seeded rolls: never when off or at 0 %, always at 100 %, the same
 * sequence for the same seed.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "mailsnare/chaos.h"

Test(chaos, parse_mailpit_syntax_and_ours)
{
	struct chaos_config c;
	char err[256];

	chaos_config_default(&c);
	cr_assert_eq(chaos_parse("Sender:450:50,Recipients:550:5,auth:535:100,Connect:421:1,"
	    "Data:552:2,Disconnect:421:3,Delay:250:100", &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.rules[CHAOS_SENDER].code, 450);
	cr_assert_eq(c.rules[CHAOS_SENDER].probability, 50);
	cr_assert_eq(c.rules[CHAOS_RECIPIENT].code, 550);
	cr_assert_eq(c.rules[CHAOS_AUTH].probability, 100);
	cr_assert_eq(c.rules[CHAOS_CONNECT].probability, 1);
	cr_assert_eq(c.rules[CHAOS_DATA].code, 552);
	cr_assert_eq(c.rules[CHAOS_DISCONNECT].probability, 3);
	cr_assert_eq(c.rules[CHAOS_DELAY].code, 250);
	cr_assert_eq(chaos_parse("", &c, err, sizeof(err)), 0);
	cr_assert_eq(c.rules[CHAOS_SENDER].code, 450, "an empty list changes nothing");
}

Test(chaos, parse_refuses_and_changes_nothing)
{
	static const struct { const char *spec, *why; } bad[] = {
		{ "Sender:451", "'Sender:451': want Sender:CODE:PROBABILITY" },
		{ "Sender:451:5x", "'Sender:451:5x': want Sender:CODE:PROBABILITY" },
		{ "Sender:600:1", "'Sender:600:1': error code must be between 400 and 599" },
		{ "Sender:451:101", "'Sender:451:101': probability must be between 0 and 100" },
		{ "Delay:60001:1", "'Delay:60001:1': delay must be between 0 and 60000 milliseconds" },
		{ "Sender:4510000:1", "'Sender:4510000:1': want Sender:CODE:PROBABILITY" },
		{ "Jim:451:1", "unknown trigger 'Jim' (want Sender, Recipient, Authentication, "
		  "Connect, Data, Disconnect or Delay)" },
		{ "Data:554:1,", "empty trigger (want Trigger:CODE:PROBABILITY,...)" },
	};
	struct chaos_config c, d;
	char err[256];

	chaos_config_default(&d);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = d;
		cr_assert_eq(chaos_parse(bad[i].spec, &c, err, sizeof(err)), -1, "%s", bad[i].spec);
		cr_assert_str_eq(err, bad[i].why);
		cr_assert_eq(c.rules[CHAOS_DATA].probability, 0, "%s applied in part", bad[i].spec);
	}
}

static void run(uint64_t seed, int *out, int n)
{
	struct chaos_config c;
	char err[64];

	chaos_config_default(&c);
	cr_assert_eq(chaos_parse("Recipient:452:50", &c, err, sizeof(err)), 0);
	chaos_setup(true, &c, seed);
	for (int i = 0; i < n; i++)
		out[i] = chaos_roll(CHAOS_RECIPIENT);
}

Test(chaos, rolls_are_seeded)
{
	int a[200], b[200], other[200], fired = 0;

	run(42, a, 200);
	run(42, b, 200);
	run(43, other, 200);
	cr_assert_arr_eq(a, b, sizeof(a));
	cr_assert_neq(memcmp(a, other, sizeof(a)), 0);
	for (int i = 0; i < 200; i++) {
		cr_assert(a[i] == 0 || a[i] == 452);
		fired += a[i] != 0;
	}
	cr_assert(fired > 60 && fired < 140, "%d of 200 at 50 %%", fired);
}

Test(chaos, off_zero_and_hundred)
{
	struct chaos_config c;
	char err[64];

	chaos_config_default(&c);
	cr_assert_eq(chaos_parse("Sender:550:100,Data:554:0", &c, err, sizeof(err)), 0);
	chaos_setup(false, &c, 1);
	cr_assert(!chaos_enabled());
	cr_assert_eq(chaos_roll(CHAOS_SENDER), 0);
	chaos_setup(true, &c, 1);
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(chaos_roll(CHAOS_SENDER), 550);
		cr_assert_eq(chaos_roll(CHAOS_DATA), 0);
		cr_assert_eq(chaos_roll(CHAOS_DELAY), 0);
	}
	cr_assert_eq(chaos_roll(CHAOS_NTRIGGERS), 0);
	cr_assert_str_eq(chaos_trigger_name(CHAOS_AUTH), "Authentication");
}
