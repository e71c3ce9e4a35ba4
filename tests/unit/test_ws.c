#include <criterion/criterion.h>
#include <string.h>

#include "mailsnare/ws.h"

/* RFC 6455 §1.3's own example. */
Test(ws, accept_key_rfc_example)
{
	char out[WS_ACCEPT_SIZE];

	cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws, accept_key_refuses_keys_that_are_not_16_bytes)
{
	char out[WS_ACCEPT_SIZE];

	cr_assert_eq(ws_accept_key("", out), -1);
	cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25j", out), -1);
	cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=!", out), -1);
	cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==AAAA", out), -1);
}

Test(ws, frame_header_length_forms)
{
	uint8_t h[WS_HEADER_MAX];

	cr_assert_eq(ws_frame_header(WS_OP_TEXT, 5, h), 2);
	cr_assert_eq(h[0], 0x81);
	cr_assert_eq(h[1], 5);
	cr_assert_eq(ws_frame_header(WS_OP_BINARY, 256, h), 4);
	cr_assert(h[0] == 0x82 && h[1] == 126 && h[2] == 1 && h[3] == 0);
	cr_assert_eq(ws_frame_header(WS_OP_TEXT, 65536, h), 10);
	cr_assert(h[1] == 127 && h[7] == 1 && h[8] == 0 && h[9] == 0);
	cr_assert_eq(ws_frame_header(WS_OP_CLOSE, 125, h), 2);
	cr_assert_eq(h[1], 125);
}

/* §5.7: a masked "Hello" from a client. */
Test(ws, parse_masked_hello)
{
	uint8_t buf[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	struct ws_frame f;

	for (size_t n = 0; n < 6; n++)
		cr_assert_eq(ws_parse_header(buf, n, 1024, &f), WS_PARSE_MORE, "at %zu", n);
	cr_assert_eq(ws_parse_header(buf, sizeof(buf), 1024, &f), WS_PARSE_OK);
	cr_assert(f.fin);
	cr_assert_eq(f.opcode, WS_OP_TEXT);
	cr_assert_eq(f.len, 5);
	cr_assert_eq(f.header_len, 6);
	ws_unmask(buf + 6, 2, f.mask, 0);
	ws_unmask(buf + 8, 3, f.mask, 2);
	cr_assert_eq(memcmp(buf + 6, "Hello", 5), 0);
}

Test(ws, parse_extended_lengths)
{
	uint8_t b16[] = { 0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4 };
	uint8_t b64[] = { 0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4 };
	struct ws_frame f;

	cr_assert_eq(ws_parse_header(b16, sizeof(b16), 1 << 20, &f), WS_PARSE_OK);
	cr_assert_eq(f.len, 256);
	cr_assert_eq(f.header_len, 8);
	cr_assert_eq(ws_parse_header(b64, sizeof(b64), 1 << 20, &f), WS_PARSE_OK);
	cr_assert_eq(f.len, 65536);
	cr_assert_eq(f.header_len, 14);
	cr_assert_eq(ws_parse_header(b64, sizeof(b64), 65535, &f), WS_PARSE_TOOBIG);
}

Test(ws, parse_refuses_protocol_errors)
{
	struct ws_frame f;
	const uint8_t unmasked[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o' };
	const uint8_t rsv[] = { 0xc1, 0x80, 0, 0, 0, 0 };
	const uint8_t opcode[] = { 0x83, 0x80, 0, 0, 0, 0 };
	const uint8_t long_ping[] = { 0x89, 0xfe, 0x00, 0x7e, 0, 0, 0, 0 };
	const uint8_t fragmented_close[] = { 0x08, 0x80, 0, 0, 0, 0 };
	const uint8_t not_minimal[] = { 0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0 };
	const uint8_t top_bit[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

	cr_assert_eq(ws_parse_header(unmasked, sizeof(unmasked), 1024, &f), WS_PARSE_ERROR);
	cr_assert_eq(ws_parse_header(rsv, sizeof(rsv), 1024, &f), WS_PARSE_ERROR);
	cr_assert_eq(ws_parse_header(opcode, sizeof(opcode), 1024, &f), WS_PARSE_ERROR);
	cr_assert_eq(ws_parse_header(long_ping, sizeof(long_ping), 1024, &f), WS_PARSE_ERROR);
	cr_assert_eq(ws_parse_header(fragmented_close, sizeof(fragmented_close), 1024, &f),
	    WS_PARSE_ERROR);
	cr_assert_eq(ws_parse_header(not_minimal, sizeof(not_minimal), 1024, &f), WS_PARSE_ERROR);
	cr_assert_eq(ws_parse_header(top_bit, sizeof(top_bit), ~0ULL, &f), WS_PARSE_ERROR);
}
