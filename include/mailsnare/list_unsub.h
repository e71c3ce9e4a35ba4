/*
 * The List-Unsubscribe header (RFC 2369), checked the way Mailpit's
 * message view checks it for one-click unsubscribing (RFC 8058): the
 * value is a comma-separated list of <URI>s, with (comments) ignored, of
 * at most one mailto: and one http(s):// link, without spaces inside.
 * What passes is a link; what does not is an error, in Mailpit's words,
 * all joined with ", " (the API's ListUnsubscribe.Errors).
 *
 * Pure: no I/O. The value given is unfolded already.
 */
#ifndef MAILSNARE_LIST_UNSUB_H
#define MAILSNARE_LIST_UNSUB_H

#include <stddef.h>

#define LIST_UNSUB_LINKS_MAX 2
#define LIST_UNSUB_ERRORS_MAX 2048

struct list_unsub {
	char *links[LIST_UNSUB_LINKS_MAX];      /* malloc'd */
	size_t nlinks;
	char errors[LIST_UNSUB_ERRORS_MAX];     /* "" when none; cut at the bound */
};

/* Parses value[0..len); 0, or -1 when out of memory (then nothing to free). */
int list_unsub_parse(const char *value, size_t len, struct list_unsub *out);
void list_unsub_free(struct list_unsub *u);

#endif
