/*
 * Chaos: faults the SMTP server injects on purpose, so that the
 * application under test meets them (Mailpit's chaos, and more). Each
 * trigger has an error code and a probability in percent:
 *   Sender, Recipient, Authentication  Mailpit's: MAIL, RCPT, AUTH fail
 *   Connect      the greeting is the error (421 by default), then close
 *   Data         the message is refused after its data
 *   Disconnect   the connection is cut in the middle of DATA or BDAT
 *   Delay        every command's reply waits Milliseconds (on a timer)
 * A failing command is answered "<code> Chaos <trigger> error" (Mailpit's
 * text). The randomness is a seeded generator (chaos-seed), so a run can
 * be repeated; one roll per trigger met, in the order the sessions meet
 * them.
 *
 * The state is the process's (one server, one loop), set at start from
 * the config and at run time by PUT /api/v1/chaos.
 */
#ifndef MAILSNARE_CHAOS_H
#define MAILSNARE_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum chaos_trigger {
	CHAOS_SENDER, CHAOS_RECIPIENT, CHAOS_AUTH,
	CHAOS_CONNECT, CHAOS_DATA, CHAOS_DISCONNECT, CHAOS_DELAY,
	CHAOS_NTRIGGERS
};

#define CHAOS_DELAY_MAX_MS 60000

struct chaos_rule {
	int code;            /* 400..599; for Delay the milliseconds */
	int probability;     /* 0..100 */
};

struct chaos_config {
	struct chaos_rule rules[CHAOS_NTRIGGERS];
};

/* "Sender", "Recipient", ... as Mailpit and the JSON spell them. */
const char *chaos_trigger_name(enum chaos_trigger t);
/* The defaults: probability 0; Sender and Recipient 451,
 * Authentication 535, Connect 421, Data 554, Delay 0 ms. */
void chaos_config_default(struct chaos_config *c);
/* Checks one rule's values; NULL if fine, else why not. */
const char *chaos_rule_problem(enum chaos_trigger t, int code, int probability);
/* Mailpit's syntax: `Trigger:code:probability` pairs joined by commas,
 * e.g. "Sender:451:50,Recipients:451:50" (names in any case; "auth",
 * "recipients" as Mailpit takes them; Delay:MS:PROBABILITY). Applied on
 * top of *c. 0, or -1 with the reason in err. */
int chaos_parse(const char *spec, struct chaos_config *c, char *err, size_t errlen);

/* The process's chaos: enabled or not (chaos = yes, or chaos-triggers
 * given), its rules and its generator (seed 0: from the clock). */
void chaos_setup(bool enabled, const struct chaos_config *c, uint64_t seed);
bool chaos_enabled(void);
void chaos_get(struct chaos_config *c);
void chaos_set(const struct chaos_config *c);
/* Rolls trigger t: its code when it fires, else 0 (always 0 when chaos
 * is off). For Delay the milliseconds to wait. */
int chaos_roll(enum chaos_trigger t);

#endif
