/* LIST pattern matching (imap_match.c): RFC 3501 §6.3.8 wildcards, the
 * INBOX rule, and time that stays polynomial for hostile patterns. */
#include <criterion/criterion.h>

#include <string.h>
#include <time.h>

#include "mailsnare/imap_match.h"

Test(imap_match, wildcards)
{
	cr_assert(imap_list_match("*", "a/b/c"));
	cr_assert(imap_list_match("%", "Work"));
	cr_assert_not(imap_list_match("%", "Work/Q1"), "%% stops at the delimiter");
	cr_assert(imap_list_match("Work/%", "Work/Q1"));
	cr_assert_not(imap_list_match("Work/%", "Work/Q1/Jan"));
	cr_assert(imap_list_match("Work/*", "Work/Q1/Jan"));
	cr_assert(imap_list_match("W*k", "Work"));
	cr_assert(imap_list_match("*o*", "Work"));
	cr_assert_not(imap_list_match("*x*", "Work"));
	cr_assert(imap_list_match("Work", "Work"));
	cr_assert_not(imap_list_match("Work", "Works"));
	cr_assert_not(imap_list_match("Works", "Work"));
	cr_assert(imap_list_match("**%%*", ""), "wildcards match nothing too");
	cr_assert(imap_list_match("", ""));
	cr_assert_not(imap_list_match("", "a"));
	cr_assert(imap_list_match("a%%b", "axb"));
	cr_assert_not(imap_list_match("a%%b", "a/b"));
	cr_assert(imap_list_match("a%*b", "a/b"), "a run with * in it is *");
	cr_assert(imap_list_match("%/%", "a/b"));
	cr_assert(imap_list_match("*/", "a/"));
}

Test(imap_match, inbox_is_case_insensitive_up_to_a_wildcard)
{
	cr_assert(imap_list_match("inbox", "INBOX"));
	cr_assert(imap_list_match("InBoX/%", "INBOX/Sub"));
	cr_assert(imap_list_match("in%", "INBOX"));
	cr_assert_not(imap_list_match("inbox/sub", "INBOX/Sub"), "only INBOX itself");
	cr_assert_not(imap_list_match("work", "Work"));
	cr_assert_not(imap_list_match("%box", "INBOX"), "after a wildcard, exact");
	cr_assert_not(imap_list_match("inbox", "INBOXES"));
}

/* The recursive matcher took 0.4 s for this and 50x more per "*a". */
Test(imap_match, hostile_patterns_take_polynomial_time, .timeout = 10)
{
	char name[256], pat[600];
	size_t i, n = 0;
	clock_t t0 = clock();

	memset(name, 'a', 255);
	name[255] = '\0';
	for (i = 0; i < 120; i++) {
		pat[n++] = '*';
		pat[n++] = 'a';
	}
	pat[n++] = 'b';
	pat[n] = '\0';
	for (i = 0; i < 100; i++)
		cr_assert_not(imap_list_match(pat, name));
	pat[n - 1] = '\0';
	cr_assert(imap_list_match(pat, name));
	/* 100 worst cases well under a second even under sanitizers; the
	 * timeout above is the real bound (a benchmark is not a test). */
	(void)t0;
}

Test(imap_match, too_long_patterns_match_nothing)
{
	static char pat[4000];

	memset(pat, 'a', sizeof(pat) - 1);
	cr_assert_not(imap_list_match(pat, "a"));
	memset(pat, '*', sizeof(pat) - 1);
	cr_assert(imap_list_match(pat, "anything"), "a run of wildcards folds to one");
}
