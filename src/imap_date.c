/* IMAP date and date-time parsing and formatting: see imap_date.h. */
#include "mailsnare/imap_date.h"

#include <stdio.h>
#include <strings.h>

static const char months[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool imap_date_valid(int year, int month, int day)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (month < 1 || month > 12 || day < 1)
		return false;
	return day <= mdays[month - 1] + (month == 2 && is_leap(year));
}

/* Reads exactly n digits (min..n when min < n) into *v. */
static bool digits(const char **p, const char *end, int min, int n, int *v)
{
	int i = 0;

	*v = 0;
	while (i < n && *p < end && **p >= '0' && **p <= '9') {
		*v = *v * 10 + (**p - '0');
		(*p)++;
		i++;
	}
	return i >= min;
}

static bool expect(const char **p, const char *end, char c)
{
	if (*p >= end || **p != c)
		return false;
	(*p)++;
	return true;
}

static bool month_name(const char **p, const char *end, int *month)
{
	if (end - *p < 3)
		return false;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(*p, months[i], 3) == 0) {
			*month = i + 1;
			*p += 3;
			return true;
		}
	}
	return false;
}

static void unquote(const char **s, size_t *len)
{
	if (*len >= 2 && (*s)[0] == '"' && (*s)[*len - 1] == '"') {
		(*s)++;
		*len -= 2;
	}
}

/* day "-" month "-" year at *p */
static bool date_text(const char **p, const char *end, struct imap_date *d)
{
	return digits(p, end, 1, 2, &d->day) && expect(p, end, '-') &&
	    month_name(p, end, &d->month) && expect(p, end, '-') &&
	    digits(p, end, 4, 4, &d->year) &&
	    imap_date_valid(d->year, d->month, d->day);
}

bool imap_date_parse(const char *s, size_t len, struct imap_date *out)
{
	const char *end;

	unquote(&s, &len);
	end = s + len;
	return date_text(&s, end, out) && s == end;
}

int64_t imap_date_days(const struct imap_date *d)
{
	int64_t y = d->year - (d->month <= 2);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t mp = (d->month + 9) % 12;
	int64_t doy = (153 * mp + 2) / 5 + d->day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

void imap_date_from_days(int64_t days, struct imap_date *out)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	out->day = (int)(doy - (153 * mp + 2) / 5 + 1);
	out->month = (int)(mp < 10 ? mp + 3 : mp - 9);
	out->year = (int)(yoe + era * 400 + (out->month <= 2));
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void imap_date_of_time(int64_t t, int zone, struct imap_date *out)
{
	imap_date_from_days(floor_div(t + (int64_t)zone * 60, 86400), out);
}

/* SP hh ":" mm ":" ss SP ("+" / "-") 4DIGIT */
static bool time_zone(const char **p, const char *end, int *secs, int *zone)
{
	int hh, mm, ss, z;
	char sign;

	if (!expect(p, end, ' ') || !digits(p, end, 2, 2, &hh) || !expect(p, end, ':') ||
	    !digits(p, end, 2, 2, &mm) || !expect(p, end, ':') || !digits(p, end, 2, 2, &ss) ||
	    !expect(p, end, ' ') || *p >= end)
		return false;
	sign = **p;
	(*p)++;
	if ((sign != '+' && sign != '-') || !digits(p, end, 4, 4, &z))
		return false;
	if (hh > 23 || mm > 59 || ss > 60 || z / 100 > 23 || z % 100 > 59)
		return false;
	*secs = hh * 3600 + mm * 60 + (ss == 60 ? 59 : ss);
	*zone = (z / 100 * 60 + z % 100) * (sign == '-' ? -1 : 1);
	return true;
}

bool imap_datetime_parse(const char *s, size_t len, int64_t *t, int *zone)
{
	struct imap_date d;
	const char *end;
	int secs;

	unquote(&s, &len);
	end = s + len;
	if (len > 0 && *s == ' ')
		s++;
	if (!date_text(&s, end, &d) || !time_zone(&s, end, &secs, zone) || s != end)
		return false;
	*t = imap_date_days(&d) * 86400 + secs - (int64_t)*zone * 60;
	return true;
}

size_t imap_date_format(const struct imap_date *d, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%d-%s-%04d", d->day, months[(d->month - 1) % 12],
	    d->year % 10000);

	return n < 0 ? 0 : (size_t)n;
}

size_t imap_datetime_format(int64_t t, int zone, char *buf, size_t size)
{
	struct imap_date d;
	int64_t local = t + (int64_t)zone * 60;
	int64_t sod = local - floor_div(local, 86400) * 86400;
	int az = zone < 0 ? -zone : zone;
	int n;

	imap_date_from_days(floor_div(local, 86400), &d);
	n = snprintf(buf, size, "%2d-%s-%04d %02d:%02d:%02d %c%02d%02d", d.day,
	    months[d.month - 1], d.year % 10000, (int)(sod / 3600), (int)(sod / 60 % 60),
	    (int)(sod % 60), zone < 0 ? '-' : '+', az / 60 % 100, az % 60);
	return n < 0 ? 0 : (size_t)n;
}
