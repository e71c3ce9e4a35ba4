/*
 * The stored MIME blob read from untrusted bytes (a damaged or foreign
 * store): mime_tree_parse must reject or accept without crashing, and a
 * tree it accepts serialises to a blob that parses to the same tree.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/mime.h"
#include "mime_cmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_part *t, *t2;
	unsigned char *blob;
	size_t len;

	t = mime_tree_parse(data, size);
	if (t == NULL)
		return 0;
	FUZZ_CHECK(t->parent == NULL && t->next == NULL);
	FUZZ_CHECK(mime_tree_serialize(t, &blob, &len));
	t2 = mime_tree_parse(blob, len);
	FUZZ_CHECK(t2 != NULL);
	FUZZ_CHECK(mime_same(t, t2));
	(void)mime_part_find(t, "1.2", 3);
	(void)mime_section_message(t, "1", 1);
	free(blob);
	mime_part_free(t);
	mime_part_free(t2);
	return 0;
}
