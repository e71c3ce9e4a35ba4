/*
 * Tags named by a message itself: the X-Tags header, read at SMTP
 * delivery (the send API sets its Tags as given) the way Mailpit reads
 * it. The value is a comma-separated list; in each tag every character
 * but ASCII letters, digits, '-', '_' and space becomes a space, runs of
 * white space become one and the ends are trimmed; empty tags are
 * dropped. Tags are IMAP
 * keywords here, and a keyword cannot hold a space: the spaces left
 * inside a tag become '_' ("Order Confirmation" is Order_Confirmation).
 * A tag named twice (in any case) counts once.
 *
 * Pure: no I/O.
 */
#ifndef MAILSNARE_MSG_TAGS_H
#define MAILSNARE_MSG_TAGS_H

#include <stddef.h>

#define MSG_TAGS_MAX 32              /* tags taken from one header */
#define MSG_TAG_LEN_MAX 128          /* bytes of a tag; a longer one is cut */

/* The tags of value[0..len) as space-separated keywords (malloc'd), or
 * NULL when there are none (or memory ran out). */
char *msg_tags_parse(const char *value, size_t len);

#endif
