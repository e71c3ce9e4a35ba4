/*
 * IMAP dates (RFC 3501 §9 date, date-time; RFC 9051): parsing and
 * formatting without the C library's time-zone state (pure functions).
 */
#ifndef MAILSNARE_IMAP_DATE_H
#define MAILSNARE_IMAP_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "17-Jul-1996 02:44:25 -0700" and a NUL (quotes are the caller's). */
#define IMAP_DATETIME_SIZE 27
/* "17-Jul-1996" and a NUL. */
#define IMAP_DATE_SIZE 12

struct imap_date {
	int year;    /* 4 digits as sent */
	int month;   /* 1..12 */
	int day;     /* 1..31, valid for the month */
};

/* date = date-text / DQUOTE date-text DQUOTE; date-text = 1*2DIGIT "-"
 * month "-" 4DIGIT. Month names are case-insensitive. */
bool imap_date_parse(const char *s, size_t len, struct imap_date *out);

/* date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (day as " 7", "07" or "7"),
 * optionally in DQUOTEs. *t is UTC seconds since the epoch; *zone is the
 * offset in minutes east of UTC as sent. */
bool imap_datetime_parse(const char *s, size_t len, int64_t *t, int *zone);

/* Days since 1970-01-01 of a calendar date, and back. */
int64_t imap_date_days(const struct imap_date *d);
void imap_date_from_days(int64_t days, struct imap_date *out);

/* The calendar date of UTC time t seen in a zone (minutes east). */
void imap_date_of_time(int64_t t, int zone, struct imap_date *out);

/* "1-Feb-1994" (SEARCH-style date, no padding). */
size_t imap_date_format(const struct imap_date *d, char *buf, size_t size);
/* INTERNALDATE: " 7-Jul-1996 02:44:25 -0700" (date-day-fixed, SP-padded),
 * t in UTC shown in zone (minutes east). Returns the length (26). */
size_t imap_datetime_format(int64_t t, int zone, char *buf, size_t size);

bool imap_date_valid(int year, int month, int day);

#endif
