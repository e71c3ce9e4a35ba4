/* IMAP date and date-time parsing and formatting. */
#include <criterion/criterion.h>
#include <string.h>

#include "mailsnare/imap_date.h"

static bool date(const char *s, struct imap_date *d)
{
	return imap_date_parse(s, strlen(s), d);
}

static bool dt(const char *s, int64_t *t, int *zone)
{
	return imap_datetime_parse(s, strlen(s), t, zone);
}

Test(imap_date, dates)
{
	struct imap_date d;

	cr_assert(date("1-Feb-1994", &d));
	cr_assert_eq(d.day, 1);
	cr_assert_eq(d.month, 2);
	cr_assert_eq(d.year, 1994);
	cr_assert(date("\"01-feb-1994\"", &d) && d.day == 1);
	cr_assert(date("31-DEC-1999", &d) && d.month == 12);
	cr_assert(date("29-Feb-2000", &d));
	cr_assert(date("29-Feb-2024", &d));
}

Test(imap_date, invalid_dates)
{
	static const char *const bad[] = {
		"", "1-Feb-94", "1-Feb-19944", "0-Feb-1994", "32-Jan-1994", "31-Apr-1994",
		"29-Feb-1900", "29-Feb-2023", "30-Feb-2000", "1-Foo-1994", "1-Fe-1994",
		"1 Feb 1994", "1-Feb-1994 ", " 1-Feb-1994", "001-Feb-1994", "1-Feb-", "-Feb-1994",
		"\"1-Feb-1994", "1-Febr-1994", "a-Feb-1994", "1-Feb-199a",
	};
	struct imap_date d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(date(bad[i], &d), "%s", bad[i]);
}

Test(imap_date, date_time)
{
	int64_t t;
	int zone;

	cr_assert(dt("17-Jul-1996 02:44:25 -0700", &t, &zone));
	cr_assert_eq(t, 837596665);   /* 1996-07-17 09:44:25 UTC */
	cr_assert_eq(zone, -420);
	cr_assert(dt("\" 7-Feb-1994 21:52:25 -0800\"", &t, &zone));
	cr_assert_eq(t, 760686745);   /* 1994-02-08 05:52:25 UTC */
	cr_assert(dt("01-Jan-1970 00:00:00 +0000", &t, &zone) && t == 0 && zone == 0);
	cr_assert(dt("1-Jan-1970 01:00:00 +0100", &t, &zone) && t == 0 && zone == 60);
	cr_assert(dt("31-Dec-1969 23:59:59 +0000", &t, &zone) && t == -1);
	cr_assert(dt("01-Jan-2038 00:00:00 +0530", &t, &zone) && zone == 330);
}

Test(imap_date, invalid_date_times)
{
	static const char *const bad[] = {
		"17-Jul-1996 02:44:25", "17-Jul-1996 24:00:00 +0000", "17-Jul-1996 02:60:00 +0000",
		"17-Jul-1996 02:44:61 +0000", "17-Jul-1996 02:44:25 0700", "17-Jul-1996 02:44:25 +07",
		"17-Jul-1996 02:44:25 +0760", "17-Jul-1996 02:44:25 +2400", "17-Jul-1996 2:44:25 +0000",
		"17-Jul-1996  02:44:25 +0000", "32-Jul-1996 02:44:25 +0000", "17-Jul-1996 02:44:25 +0000x",
		"17-Jul-1996T02:44:25 +0000", "17-Jul-1996 02:44:25 *0000", "",
	};
	int64_t t;
	int zone;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not(dt(bad[i], &t, &zone), "%s", bad[i]);
}

Test(imap_date, format_internaldate)
{
	char buf[IMAP_DATETIME_SIZE];
	struct imap_date d = { 1994, 2, 1 };

	cr_assert_eq(imap_datetime_format(837596665, -420, buf, sizeof(buf)), 26);
	cr_assert_str_eq(buf, "17-Jul-1996 02:44:25 -0700");
	imap_datetime_format(760686745, -480, buf, sizeof(buf));
	cr_assert_str_eq(buf, " 7-Feb-1994 21:52:25 -0800");
	imap_datetime_format(0, 0, buf, sizeof(buf));
	cr_assert_str_eq(buf, " 1-Jan-1970 00:00:00 +0000");
	imap_datetime_format(-1, 330, buf, sizeof(buf));
	cr_assert_str_eq(buf, " 1-Jan-1970 05:29:59 +0530");
	imap_date_format(&d, buf, sizeof(buf));
	cr_assert_str_eq(buf, "1-Feb-1994");
}

Test(imap_date, round_trip_and_days)
{
	char buf[IMAP_DATETIME_SIZE];
	struct imap_date d;
	int64_t t, t2;
	int zone;

	for (t = -86400LL * 800; t < 86400LL * 365 * 200; t += 86400LL * 37 + 3607) {
		for (zone = -720; zone <= 840; zone += 345) {
			imap_datetime_format(t, zone, buf, sizeof(buf));
			cr_assert(dt(buf, &t2, &zone), "%s", buf);
			cr_assert_eq(t2, t, "%s", buf);
		}
	}
	d = (struct imap_date){ 2000, 3, 1 };
	cr_assert_eq(imap_date_days(&d), 11017);
	imap_date_from_days(11016, &d);
	cr_assert(d.year == 2000 && d.month == 2 && d.day == 29);
	imap_date_of_time(837596665, -420, &d);
	cr_assert(d.day == 17 && d.month == 7);
	imap_date_of_time(837596665, 900, &d);
	cr_assert(d.day == 18);
	imap_date_of_time(-1, 0, &d);
	cr_assert(d.year == 1969 && d.month == 12 && d.day == 31);
}
