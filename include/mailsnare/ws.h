/*
 * RFC 6455 WebSocket framing, free of I/O: the opening handshake's accept
 * key, server frame headers (never masked, §5.1) and the parsing of client
 * frame headers (always masked). The HTTP layer does the upgrade and the
 * socket; this module only turns bytes into frames and back.
 */
#ifndef MAILSNARE_WS_H
#define MAILSNARE_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_OP_CONT   0x0
#define WS_OP_TEXT   0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE  0x8
#define WS_OP_PING   0x9
#define WS_OP_PONG   0xa

#define WS_ACCEPT_SIZE 29            /* base64 of a SHA-1, with the NUL */
#define WS_HEADER_MAX 14             /* 2 + 8 length + 4 mask */

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (§4.2.2).
 * 0, or -1 if the key is not the base64 of 16 bytes (§4.1). */
int ws_accept_key(const char *client_key, char out[WS_ACCEPT_SIZE]);

/* Writes the header of an unfragmented server frame; returns its length. */
size_t ws_frame_header(uint8_t opcode, uint64_t payload_len, uint8_t out[WS_HEADER_MAX]);

struct ws_frame {
	bool fin;
	uint8_t opcode;
	uint64_t len;                /* payload bytes after the header */
	uint8_t mask[4];
	size_t header_len;
};

enum ws_parse_rc {
	WS_PARSE_OK,                 /* *f is filled */
	WS_PARSE_MORE,               /* the header is not complete yet */
	WS_PARSE_ERROR,              /* protocol error: close with 1002 */
	WS_PARSE_TOOBIG,             /* payload over max_len: close with 1009 */
};
/* Parses the header of a client frame at buf. Client frames must be
 * masked, reserved bits clear, opcodes known; control frames are final
 * and at most 125 bytes (§5.5). */
enum ws_parse_rc ws_parse_header(const uint8_t *buf, size_t len, uint64_t max_len,
    struct ws_frame *f);

/* Unmasks len payload bytes that start `offset` bytes into the payload. */
void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

#endif
