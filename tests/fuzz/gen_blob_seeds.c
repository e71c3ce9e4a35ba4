/* Writes the stored MIME blob of each message given (LF turned into CRLF,
 * as tests/data/mime wants) into DIR: the seeds of fuzz_mime_blob. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/mime.h"

int main(int argc, char **argv)
{
	for (int i = 2; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		char *buf = NULL, path[4096];
		size_t len = 0, cap = 0, bloblen;
		unsigned char *blob;
		struct mime_part *root;
		int c, prev = 0;

		if (f == NULL)
			return 1;
		while ((c = getc(f)) != EOF) {
			if (len + 2 >= cap && (buf = realloc(buf, cap = 2 * cap + 4096)) == NULL)
				return 1;
			if (c == '\n' && prev != '\r')
				buf[len++] = '\r';
			buf[len++] = (char)c;
			prev = c;
		}
		fclose(f);
		root = mime_scan_buffer(buf, len);
		if (root == NULL || !mime_tree_serialize(root, &blob, &bloblen))
			return 1;
		snprintf(path, sizeof(path), "%s/blob%02d", argv[1], i - 1);
		if ((f = fopen(path, "wb")) == NULL || fwrite(blob, 1, bloblen, f) != bloblen)
			return 1;
		fclose(f);
		free(blob);
		free(buf);
		mime_part_free(root);
	}
	return 0;
}
