/*
 * RFC 5322 header-section helpers over raw bytes: where the header ends and
 * the unfolded value of a field. Pure; used at delivery to extract what the
 * message list shows.
 */
#ifndef MAILSNARE_HEADER_H
#define MAILSNARE_HEADER_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the header section including the empty line that ends it
 * (CRLF CRLF or LF LF). If no empty line is found within len, returns len
 * and sets *complete=false (when complete is not NULL). */
size_t header_section_len(const char *buf, size_t len, bool *complete);

/*
 * Finds the first field `name` (case-insensitive) in the header section
 * buf[0..len) and copies its value, unfolded (CRLF+WSP -> the WSP),
 * with leading and trailing white space removed, NUL-terminated and
 * truncated to outsize-1 bytes. Returns true if found.
 */
bool header_get(const char *buf, size_t len, const char *name, char *out, size_t outsize);

#endif
