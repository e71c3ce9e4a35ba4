/*
 * Leveled logging to stderr. Each event is one line, written with a single
 * write so that lines from a busy server never interleave, and control
 * characters in the message are masked so that text quoted from a client
 * cannot forge extra log lines.
 */
#include "mailsnare/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

struct level_name {
	const char *name;
	enum log_level level;
};

/* The first entry for a level is the name printed; the others are accepted
 * spellings. */
static const struct level_name level_names[] = {
	{ "debug", LOGL_DEBUG },
	{ "info", LOGL_INFO },
	{ "warn", LOGL_WARN },
	{ "warning", LOGL_WARN },
	{ "error", LOGL_ERROR },
};

#define N_LEVEL_NAMES (sizeof(level_names) / sizeof(level_names[0]))

static enum log_level current_level = LOGL_INFO;

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < N_LEVEL_NAMES; i++) {
		if (strcasecmp(name, level_names[i].name) == 0) {
			*out = level_names[i].level;
			return 0;
		}
	}
	return -1;
}

static const char *level_label(enum log_level level)
{
	for (size_t i = 0; i < N_LEVEL_NAMES; i++)
		if (level_names[i].level == level)
			return level_names[i].name;
	return "?";
}

/* "2026-11-25T07:42:43.123Z" into buf; returns its length. */
static size_t format_timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
	return n < len ? n : len - 1;
}

/* Replaces control characters (CR, LF, ESC, ...) so the line stays one. */
static void mask_controls(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			s[i] = '?';
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	size_t n, start;
	va_list ap;
	int r;

	if (level < current_level)
		return;
	n = format_timestamp(line, sizeof(line));
	n += (size_t)snprintf(line + n, sizeof(line) - n, " %s: ", level_label(level));
	start = n;
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	/* A message longer than the buffer is cut; the line stays bounded. */
	n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	mask_controls(line + start, n - start);
	line[n++] = '\n';
	/* One write(2): stderr is unbuffered anyway, and a partial line from a
	 * full pipe is not worth retrying in a logger. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
