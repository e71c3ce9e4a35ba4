/*
 * IMAP dates: whatever parses formats and parses back to the same value;
 * calendar dates survive days-since-epoch and back.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/imap_date.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct imap_date d, d2;
	char buf[64];
	int64_t t, t2;
	int zone, zone2;
	size_t n;

	if (size > 256)
		return 0;
	if (imap_date_parse(s, size, &d)) {
		FUZZ_CHECK(imap_date_valid(d.year, d.month, d.day));
		n = imap_date_format(&d, buf, sizeof(buf));
		FUZZ_CHECK(n > 0 && n < IMAP_DATE_SIZE && strlen(buf) == n);
		FUZZ_CHECK(imap_date_parse(buf, n, &d2));
		FUZZ_CHECK(d.year == d2.year && d.month == d2.month && d.day == d2.day);
		imap_date_from_days(imap_date_days(&d), &d2);
		FUZZ_CHECK(d.year == d2.year && d.month == d2.month && d.day == d2.day);
	}
	if (imap_datetime_parse(s, size, &t, &zone)) {
		n = imap_datetime_format(t, zone, buf, sizeof(buf));
		FUZZ_CHECK(n == IMAP_DATETIME_SIZE - 1 && strlen(buf) == n);
		FUZZ_CHECK(imap_datetime_parse(buf, n, &t2, &zone2));
		FUZZ_CHECK(t == t2 && zone == zone2);
		imap_date_of_time(t, zone, &d);
		FUZZ_CHECK(imap_date_valid(d.year, d.month, d.day));
	}
	return 0;
}
