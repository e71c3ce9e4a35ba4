/*
 * Streaming Content-Transfer-Encoding decoders (base64, quoted-printable)
 * and a streaming case-insensitive substring matcher, for IMAP SEARCH
 * BODY/TEXT over bodies read from the store in chunks of any size.
 *
 * Pure and allocation-free except mime_search_new. Chunk boundaries may
 * fall anywhere (inside "=3D", a soft line break, a base64 quantum, a
 * UTF-8 sequence).
 */
#ifndef MAILSNARE_MIME_DECODE_H
#define MAILSNARE_MIME_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mime_encoding {
	MIME_ENC_IDENTITY, /* 7bit, 8bit, binary, absent or unknown */
	MIME_ENC_BASE64,
	MIME_ENC_QP,
};

/* From a Content-Transfer-Encoding value (case-insensitive; NULL ok). */
enum mime_encoding mime_encoding_from_name(const char *name);

#define MIME_QP_WS_MAX 64

struct mime_decoder {
	enum mime_encoding enc;
	uint32_t acc;      /* base64: pending bits */
	unsigned bits;     /* base64: how many */
	int state;         /* quoted-printable state */
	char hex;          /* quoted-printable: first hex digit after '=' */
	char ws[MIME_QP_WS_MAX]; /* quoted-printable: held trailing white space */
	unsigned nws;
};

/* Bytes mime_decoder_feed may write for len input bytes. */
#define MIME_DECODE_OUT_MAX(len) ((len) + MIME_QP_WS_MAX + 8)

void mime_decoder_init(struct mime_decoder *d, enum mime_encoding enc);

/* Decodes in[0..len) into out (room for MIME_DECODE_OUT_MAX(len) bytes);
 * returns the bytes written. Malformed input is decoded leniently: base64
 * skips characters outside its alphabet, quoted-printable keeps a '='
 * that starts no valid escape, and drops white space at line ends. */
size_t mime_decoder_feed(struct mime_decoder *d, const char *in, size_t len, char *out);

/* Flushes what the decoder still holds at the end of input (out: room for
 * MIME_DECODE_OUT_MAX(0) bytes); returns the bytes written. */
size_t mime_decoder_finish(struct mime_decoder *d, char *out);

/*
 * Case-insensitive matching: ASCII letters, and the simple one-to-one
 * UTF-8 case pairs that keep their byte length (Latin-1 supplement, Latin
 * Extended-A, Greek, Cyrillic). mime_fold_utf8 folds in place-size
 * (out may equal in); a 2-byte sequence cut at the end is copied as is.
 */
void mime_fold_utf8(const char *in, size_t len, char *out);

/* One-shot: does needle occur in hay (both folded as above)? An empty
 * needle always matches. */
bool mime_search_match(const char *hay, size_t hlen, const char *needle, size_t nlen);

/* Streaming matcher: feed the (decoded) text in chunks; true once the
 * needle has been seen, across chunk boundaries too. */
struct mime_search;
#define MIME_SEARCH_NEEDLE_MAX (64 * 1024)
/* NULL if needle is longer than MIME_SEARCH_NEEDLE_MAX or out of memory. */
struct mime_search *mime_search_new(const char *needle, size_t len);
bool mime_search_feed(struct mime_search *s, const char *buf, size_t len);
bool mime_search_found(const struct mime_search *s);
void mime_search_reset(struct mime_search *s);
void mime_search_free(struct mime_search *s);

/*
 * Streaming charset conversion to UTF-8 for SEARCH: the input cut
 * anywhere, in pieces of any size, gives the output mime_charset_to_utf8
 * (mime_header.h) gives for the whole text: UTF-8, US-ASCII, "" and
 * unknown charsets as they are, ISO-8859-1 by byte, others through one
 * iconv descriptor kept from piece to piece (its shift state, e.g.
 * ISO-2022-JP's or a UTF-16 BOM's, with it), a sequence cut at a piece's
 * end held for the next; bytes iconv cannot convert become U+FFFD, and an
 * incomplete sequence at the very end is dropped (one exception: after
 * malformed UTF-7 base64, glibc's decoder itself answers by how the input
 * is cut, so pieces may differ there). Output goes to sink in
 * whole UTF-8 characters (for iconv; as is otherwise), a few KiB at a
 * time. mime_conv_new allocates (NULL: no memory); mime_conv_free closes.
 */
struct mime_conv;
typedef void (*mime_conv_sink)(void *arg, const char *utf8, size_t len);
struct mime_conv *mime_conv_new(const char *charset);
void mime_conv_feed(struct mime_conv *c, const char *in, size_t len, mime_conv_sink sink,
    void *arg);
/* Does it go through iconv (several times the cost of the others)? */
bool mime_conv_uses_iconv(const struct mime_conv *c);
void mime_conv_free(struct mime_conv *c);

#endif
