/* LIST/LSUB mailbox patterns (RFC 3501 §6.3.8): '*' matches anything,
 * '%' anything but the hierarchy delimiter '/'. Pure functions. */
#ifndef MAILSNARE_IMAP_MATCH_H
#define MAILSNARE_IMAP_MATCH_H

#include <stdbool.h>
#include <stddef.h>

/* Patterns longer than this (after runs of wildcards are folded) match
 * nothing: no mailbox name is that long. */
#define IMAP_MATCH_PATTERN_MAX 1024

/* Does `name` match `pat`? "INBOX" (and "INBOX/...") is matched
 * case-insensitively up to the first wildcard, as RFC 3501 §5.1 wants.
 * Time is at most len(name) x len(pat), never exponential. */
bool imap_list_match(const char *pat, const char *name);

#endif
