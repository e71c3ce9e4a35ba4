/*
 * Time zones for before:/after: (msg_search_tz_utc in
 * include/mailsnare/msg_search.h), through the C library's zone database:
 * TZ is set for one mktime and put back. The server is one thread, so
 * nothing else sees the zone change; tzset reads the zone's file only
 * when the name changes.
 */
#include "mailsnare/msg_search.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ZONEINFO "/usr/share/zoneinfo/"
#define TZ_NAME_MAX 64

/* An IANA name ("Europe/Berlin"), never a path out of the database nor
 * a POSIX TZ string, and a zone file that exists. */
static bool tz_known(const char *tz)
{
	char path[sizeof(ZONEINFO) + TZ_NAME_MAX];
	size_t i, n = strlen(tz);

	if (n == 0 || n >= TZ_NAME_MAX || tz[0] == '/' || strstr(tz, "..") != NULL)
		return false;
	for (i = 0; i < n; i++) {
		char c = tz[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '/' || c == '_' || c == '-' || c == '+'))
			return false;
	}
	memcpy(path, ZONEINFO, sizeof(ZONEINFO) - 1);
	memcpy(path + sizeof(ZONEINFO) - 1, tz, n + 1);
	return access(path, R_OK) == 0;
}

int msg_search_tz_utc(const char *tz, int64_t local, int64_t *utc)
{
	char saved[256], *old;
	struct tm tm;
	time_t t = (time_t)local;
	bool had;

	if (tz[0] == '\0' || strcmp(tz, "UTC") == 0) {
		*utc = local;
		return 0;
	}
	if (!tz_known(tz) || gmtime_r(&t, &tm) == NULL)
		return -1;
	old = getenv("TZ");
	had = old != NULL && strlen(old) < sizeof(saved);
	if (had)
		memcpy(saved, old, strlen(old) + 1);
	if (setenv("TZ", tz, 1) != 0)
		return -1;
	tzset();
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (had)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	if (t == (time_t)-1 && local != -1)
		return -1;
	*utc = (int64_t)t;
	return 0;
}
