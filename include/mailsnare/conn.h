/*
 * The connection API every protocol session is written against: `struct
 * conn` owns the transport (a bufferevent, plain, or with an OpenSSL
 * filter, and a deflate filter on top for compression), the idle timeout
 * and the bounded line reader, and drives one protocol session through
 * struct proto. Sessions only see lines, raw input and output; the
 * connection is freed in exactly one place (conn.c's free path), never
 * from inside a session callback.
 *
 * conn.c implements it over libevent; tests/unit/conn_double.c implements
 * the same functions over memory buffers, so sessions can be unit-tested
 * with byte strings. Nothing here names libevent types for that reason.
 */
#ifndef MAILSNARE_CONN_H
#define MAILSNARE_CONN_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct server;

/* What every protocol module provides to the connection layer. */
struct proto {
	const char *name;                 /* "smtp" */
	/* Reply sent and connection closed when max-clients is reached. */
	const char *busy_reply;
	/* Creates the session and queues the greeting; NULL closes. */
	void *(*open)(struct conn *c);
	/* Input arrived, or the connection was resumed: consume what can be. */
	void (*input)(void *sess);
	/* The client was idle for the protocol's timeout: queue a goodbye.
	 * The connection is closed after it is flushed. */
	void (*timeout)(void *sess);
	/* The server is stopping: finish or reject what is in flight, queue a
	 * goodbye and call conn_close(). */
	void (*shutdown)(void *sess);
	/* The connection is gone: free everything, cancel what is pending. */
	void (*free)(void *sess);
	/* Output asked for with conn_wait_drain() fell below the low-water
	 * mark: queue more (streamed message bodies). May be NULL. */
	void (*drained)(void *sess);
};

struct server *conn_server(struct conn *c);
const char *conn_peer(struct conn *c);       /* client IP as text */
bool conn_is_tls(struct conn *c);
void conn_set_timeout(struct conn *c, unsigned seconds);

/* Output. */
#define CONN_WRITE_LOWWATER (64 * 1024)
void conn_write(struct conn *c, const void *buf, size_t len);
/* Bytes queued and not yet handed to the kernel (or to TLS). */
size_t conn_output_pending(struct conn *c);
/* Sends queued output now. Output queued while handling input is sent
 * when the handler returns; output made from a timer or a store
 * notification needs this. */
void conn_flush(struct conn *c);
/* True while more than CONN_OUTPUT_MAX is queued: the session must stop
 * taking commands (conn_readline returns CONN_LINE_NONE then by itself);
 * proto->input is called again once the output is down to
 * CONN_WRITE_LOWWATER. Bounds what a client that never reads costs. */
#define CONN_OUTPUT_MAX (256 * 1024)
bool conn_output_full(struct conn *c);
/* Calls proto->drained once the output is down to CONN_WRITE_LOWWATER:
 * a session streaming a large body queues a bounded amount, then waits. */
void conn_wait_drain(struct conn *c);
void conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Input. conn_readline copies the next line (without its CRLF or LF) into
 * buf, NUL-terminated. A line longer than bufsize-1 yields CONN_LINE_TOOLONG
 * once, and the rest of it is discarded as it arrives. */
enum conn_line { CONN_LINE_OK, CONN_LINE_NONE, CONN_LINE_TOOLONG };
enum conn_line conn_readline(struct conn *c, char *buf, size_t bufsize, size_t *len);
/* Raw input, for message data and the IMAP reader: conn_peek points at
 * the first contiguous run of buffered input and returns its length (0:
 * nothing buffered); conn_consume removes n bytes (at most what is
 * buffered) from the front. conn_input_length is all that is buffered. */
size_t conn_peek(struct conn *c, const char **data);
void conn_consume(struct conn *c, size_t n);
size_t conn_input_length(struct conn *c);

/* Pausing stops calls to input until resume, which
 * calls input again from the event loop to consume what is buffered. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);
/* The session leaves buffered input for later (its share of this loop
 * pass is spent): input is called again on a later pass. */
void conn_input_later(struct conn *c);

/* Starts a TLS handshake on a plain connection after the protocol's
 * "go ahead" reply was queued. Input buffered before it is discarded
 * (no command injection across STARTTLS). 0, or -1 if unavailable. */
int conn_starttls(struct conn *c);
bool conn_tls_available(struct conn *c);

/* Stacks raw deflate (RFC 1951, as IMAP COMPRESS=DEFLATE, RFC 4978 asks)
 * over the connection, plain or TLS, after the protocol's "go ahead"
 * reply was queued: that reply is sent as it is, everything after it
 * compressed, and every flush ends with Z_SYNC_FLUSH. Buffered input is
 * kept (it is compressed already). 0, or -1 (already on, or out of
 * memory). A corrupt stream from the client closes the connection
 * (conn_zlib.c). */
int conn_compress(struct conn *c);
bool conn_is_compressed(struct conn *c);

/* Closes after the queued output is flushed. Safe to call from anywhere,
 * more than once. */
void conn_close(struct conn *c);

#endif
