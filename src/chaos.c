/*
 * Chaos rules, their text form and the seeded rolls (chaos.h). The
 * generator is splitmix64: a 64-bit state, one multiply-xorshift per
 * roll, the same sequence for the same seed on every machine.
 */
#include "mailsnare/chaos.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mailsnare/metrics.h"

#define CHAOS_SPEC_MAX 1024

struct chaos_state {
	bool enabled;
	struct chaos_config cfg;
	uint64_t rng;
};

static struct chaos_state chaos_state;

static const char *const trigger_names[CHAOS_NTRIGGERS] = {
	[CHAOS_SENDER] = "Sender", [CHAOS_RECIPIENT] = "Recipient",
	[CHAOS_AUTH] = "Authentication", [CHAOS_CONNECT] = "Connect", [CHAOS_DATA] = "Data",
	[CHAOS_DISCONNECT] = "Disconnect", [CHAOS_DELAY] = "Delay",
};

/* Other spellings Mailpit's parser takes. */
static const struct {
	const char *name;
	enum chaos_trigger t;
} trigger_aliases[] = {
	{ "recipients", CHAOS_RECIPIENT },
	{ "auth", CHAOS_AUTH },
};

const char *chaos_trigger_name(enum chaos_trigger t)
{
	return (unsigned)t < CHAOS_NTRIGGERS ? trigger_names[t] : "?";
}

void chaos_config_default(struct chaos_config *c)
{
	static const int codes[CHAOS_NTRIGGERS] = {
		[CHAOS_SENDER] = 451, [CHAOS_RECIPIENT] = 451, [CHAOS_AUTH] = 535,
		[CHAOS_CONNECT] = 421, [CHAOS_DATA] = 554, [CHAOS_DISCONNECT] = 421,
		[CHAOS_DELAY] = 0,
	};

	for (int i = 0; i < CHAOS_NTRIGGERS; i++)
		c->rules[i] = (struct chaos_rule){ codes[i], 0 };
}

const char *chaos_rule_problem(enum chaos_trigger t, int code, int probability)
{
	if (probability < 0 || probability > 100)
		return "probability must be between 0 and 100";
	if (t == CHAOS_DELAY)
		return code < 0 || code > CHAOS_DELAY_MAX_MS ?
		    "delay must be between 0 and 60000 milliseconds" : NULL;
	if (code < 400 || code > 599)
		return "error code must be between 400 and 599";
	return NULL;
}

static int trigger_find(const char *name, size_t len)
{
	for (int i = 0; i < CHAOS_NTRIGGERS; i++)
		if (strlen(trigger_names[i]) == len && strncasecmp(trigger_names[i], name, len) == 0)
			return i;
	for (size_t i = 0; i < sizeof(trigger_aliases) / sizeof(trigger_aliases[0]); i++)
		if (strlen(trigger_aliases[i].name) == len &&
		    strncasecmp(trigger_aliases[i].name, name, len) == 0)
			return (int)trigger_aliases[i].t;
	return -1;
}

/* A decimal number of at most 5 digits, and where it ends. */
static int small_number(const char *s, const char **end, int *out)
{
	int v = 0, n = 0;

	for (; *s >= '0' && *s <= '9' && n < 6; s++, n++)
		v = v * 10 + (*s - '0');
	if (n == 0 || n > 5)
		return -1;
	*out = v;
	*end = s;
	return 0;
}

/* One "Trigger:code:probability" of length len. */
static int parse_one(const char *item, size_t len, struct chaos_config *c, char *err,
    size_t errlen)
{
	const char *colon = memchr(item, ':', len), *p, *why;
	int t, code, prob;

	if (colon == NULL || (t = trigger_find(item, (size_t)(colon - item))) < 0) {
		snprintf(err, errlen, "unknown trigger '%.*s' (want Sender, Recipient, "
		    "Authentication, Connect, Data, Disconnect or Delay)",
		    (int)(colon ? colon - item : (int)len), item);
		return -1;
	}
	if (small_number(colon + 1, &p, &code) < 0 || *p != ':' ||
	    small_number(p + 1, &p, &prob) < 0 || p != item + len) {
		snprintf(err, errlen, "'%.*s': want %s:CODE:PROBABILITY", (int)len, item,
		    trigger_names[t]);
		return -1;
	}
	if ((why = chaos_rule_problem((enum chaos_trigger)t, code, prob)) != NULL) {
		snprintf(err, errlen, "'%.*s': %s", (int)len, item, why);
		return -1;
	}
	c->rules[t] = (struct chaos_rule){ code, prob };
	return 0;
}

int chaos_parse(const char *spec, struct chaos_config *c, char *err, size_t errlen)
{
	struct chaos_config next = *c;
	const char *p = spec;

	if (strlen(spec) > CHAOS_SPEC_MAX) {
		snprintf(err, errlen, "longer than %d characters", CHAOS_SPEC_MAX);
		return -1;
	}
	while (*p != '\0') {
		size_t len = strcspn(p, ",");

		if (len == 0) {
			snprintf(err, errlen, "empty trigger (want Trigger:CODE:PROBABILITY,...)");
			return -1;
		}
		if (parse_one(p, len, &next, err, errlen) < 0)
			return -1;
		p += len;
		/* "a,": the comma promises one more. */
		if (*p == ',' && *++p == '\0') {
			snprintf(err, errlen, "empty trigger (want Trigger:CODE:PROBABILITY,...)");
			return -1;
		}
	}
	*c = next;
	return 0;
}

/* ---- the process's state ---- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void chaos_setup(bool enabled, const struct chaos_config *c, uint64_t seed)
{
	struct timespec ts;

	chaos_state.enabled = enabled;
	chaos_state.cfg = *c;
	if (seed == 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
	}
	chaos_state.rng = seed;
}

bool chaos_enabled(void)
{
	return chaos_state.enabled;
}

void chaos_get(struct chaos_config *c)
{
	*c = chaos_state.cfg;
}

void chaos_set(const struct chaos_config *c)
{
	chaos_state.cfg = *c;
}

int chaos_roll(enum chaos_trigger t)
{
	const struct chaos_rule *r;

	if (!chaos_state.enabled || (unsigned)t >= CHAOS_NTRIGGERS)
		return 0;
	r = &chaos_state.cfg.rules[t];
	if (r->probability == 0 || (t == CHAOS_DELAY && r->code == 0))
		return 0;
	/* 0..99 below the probability fires (100 always, 0 never). */
	if ((int)(splitmix64(&chaos_state.rng) % 100) >= r->probability)
		return 0;
	metrics.chaos_triggered++;
	return t == CHAOS_DISCONNECT && r->code == 0 ? 1 : r->code;
}
