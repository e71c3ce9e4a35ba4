/* RFC 6455 framing: see include/mailsnare/ws.h. */
#include <string.h>

#include <openssl/sha.h>

#include "mailsnare/base64.h"
#include "mailsnare/ws.h"

/* §1.3: the GUID every server appends to the client's key. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_accept_key(const char *client_key, char out[WS_ACCEPT_SIZE])
{
	unsigned char nonce[18], digest[SHA_DIGEST_LENGTH];
	char buf[64 + sizeof(ws_guid)];
	size_t klen = strlen(client_key);

	if (klen != 24 || base64_decode(client_key, klen, nonce, sizeof(nonce)) != 16)
		return -1;
	memcpy(buf, client_key, klen);
	memcpy(buf + klen, ws_guid, sizeof(ws_guid) - 1);
	SHA1((const unsigned char *)buf, klen + sizeof(ws_guid) - 1, digest);
	return base64_encode(digest, sizeof(digest), out, WS_ACCEPT_SIZE) < 0 ? -1 : 0;
}

size_t ws_frame_header(uint8_t opcode, uint64_t payload_len, uint8_t out[WS_HEADER_MAX])
{
	size_t n = 2;

	out[0] = 0x80 | (opcode & 0x0f);
	if (payload_len < 126) {
		out[1] = (uint8_t)payload_len;
	} else if (payload_len <= 0xffff) {
		out[1] = 126;
		out[2] = (uint8_t)(payload_len >> 8);
		out[3] = (uint8_t)payload_len;
		n = 4;
	} else {
		out[1] = 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
		n = 10;
	}
	return n;
}

static bool ws_opcode_known(uint8_t op)
{
	return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

enum ws_parse_rc ws_parse_header(const uint8_t *buf, size_t len, uint64_t max_len,
    struct ws_frame *f)
{
	size_t need = 2;
	uint64_t plen;

	if (len < 2)
		return WS_PARSE_MORE;
	f->fin = (buf[0] & 0x80) != 0;
	f->opcode = buf[0] & 0x0f;
	/* No extension is negotiated, so RSV1-3 must be 0 (§5.2); a client
	 * frame must be masked (§5.3). */
	if ((buf[0] & 0x70) || !ws_opcode_known(f->opcode) || !(buf[1] & 0x80))
		return WS_PARSE_ERROR;
	plen = buf[1] & 0x7f;
	if (plen == 126)
		need += 2;
	else if (plen == 127)
		need += 8;
	need += 4;
	if (len < need)
		return WS_PARSE_MORE;
	if (plen == 126) {
		plen = (uint64_t)buf[2] << 8 | buf[3];
		if (plen < 126)
			return WS_PARSE_ERROR;        /* §5.2: the minimal length form */
	} else if (plen == 127) {
		plen = 0;
		for (int i = 0; i < 8; i++)
			plen = plen << 8 | buf[2 + i];
		if (plen <= 0xffff || plen >> 63)
			return WS_PARSE_ERROR;
	}
	if (f->opcode >= WS_OP_CLOSE && (!f->fin || plen > 125))
		return WS_PARSE_ERROR;
	if (plen > max_len)
		return WS_PARSE_TOOBIG;
	f->len = plen;
	memcpy(f->mask, buf + need - 4, 4);
	f->header_len = need;
	return WS_PARSE_OK;
}

void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		data[i] ^= mask[(offset + i) & 3];
}
