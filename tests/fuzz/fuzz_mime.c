/*
 * The MIME scanner: the message scanned in one piece and split at points
 * taken from the input gives the same tree; the tree is consistent (parts
 * inside the message and their parent, child counts); it serialises to a
 * blob that parses back to the same tree and serialises to the same bytes;
 * section lookups do not crash. First 8 bytes: the split seed.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/mime.h"
#include "mime_cmp.h"

static void check_tree(const struct mime_part *p, const struct mime_part *parent, uint64_t len,
    unsigned depth)
{
	uint32_t n = 0;

	FUZZ_CHECK(depth <= 2 * MIME_MAX_DEPTH + 4);
	FUZZ_CHECK(p->type != NULL && p->subtype != NULL);
	FUZZ_CHECK(p->body_off == p->hdr_off + p->hdr_size);
	FUZZ_CHECK(p->body_off + p->body_size <= len);
	FUZZ_CHECK(p->parent == parent);
	if (parent != NULL)
		FUZZ_CHECK(p->hdr_off >= parent->body_off &&
		    p->body_off + p->body_size <= parent->body_off + parent->body_size);
	for (const struct mime_part *c = p->children; c != NULL; c = c->next, n++)
		check_tree(c, p, len, depth + 1);
	FUZZ_CHECK(n == p->nchildren);
	if (p->flags & MIME_PART_RFC822)
		FUZZ_CHECK(n == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_part *one, *split, *back;
	struct mime_scan *sc;
	unsigned char *blob, *blob2;
	size_t bloblen, bloblen2, off = 0;
	uint64_t seed = fuzz_seed(&data, &size);
	static const char *const sections[] = { "", "1", "2", "1.1", "1.2", "2.1", "1.1.1", "3" };

	one = mime_scan_buffer(data, size);
	FUZZ_CHECK(one != NULL);
	sc = mime_scan_new();
	FUZZ_CHECK(sc != NULL);
	while (off < size) {
		/* Larger chunks too, so a split lands inside long headers. */
		size_t len = (fuzz_rand(&seed) & 1) ? fuzz_chunk(&seed, size - off) :
		    (size_t)(fuzz_rand(&seed) % (size - off)) + 1;
		mime_scan_feed(sc, data + off, len);
		off += len;
	}
	split = mime_scan_finish(sc);
	FUZZ_CHECK(split != NULL);
	FUZZ_CHECK(mime_same(one, split));
	check_tree(one, NULL, size, 0);
	FUZZ_CHECK(mime_tree_serialize(one, &blob, &bloblen));
	back = mime_tree_parse(blob, bloblen);
	FUZZ_CHECK(back != NULL);
	FUZZ_CHECK(mime_same(one, back));
	FUZZ_CHECK(mime_tree_serialize(back, &blob2, &bloblen2));
	FUZZ_CHECK(bloblen == bloblen2 && memcmp(blob, blob2, bloblen) == 0);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		const struct mime_part *p = mime_part_find(back, sections[i], strlen(sections[i]));
		if (p != NULL)
			(void)mime_part_message(p);
		(void)mime_section_message(back, sections[i], strlen(sections[i]));
	}
	free(blob);
	free(blob2);
	mime_part_free(one);
	mime_part_free(split);
	mime_part_free(back);
	return 0;
}
