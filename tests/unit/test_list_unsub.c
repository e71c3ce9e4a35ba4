/* List-Unsubscribe checked as Mailpit checks it: the links that pass,
 * and the error text of each rule a value breaks. */
#include <criterion/criterion.h>
#include <string.h>

#include "mailsnare/list_unsub.h"

struct vector {
	const char *value;
	const char *links[2];
	const char *errors;
};

static const struct vector vectors[] = {
	{ "<mailto:u@example.com?subject=unsub>, <https://example.com/u?id=1>",
	  { "mailto:u@example.com?subject=unsub", "https://example.com/u?id=1" }, "" },
	{ "  <HTTP://x.example/u> (click here)  ", { "HTTP://x.example/u" }, "" },
	{ "<https://a.example/1>,<mailto:b@example.com>",
	  { "https://a.example/1", "mailto:b@example.com" }, "" },
	{ "mailto:u@example.com", { NULL }, "\"mailto:u@example.com\" no valid unsubscribe links found" },
	{ "x <mailto:u@example.com>", { NULL }, "\"x <mailto:u@example.com>\" should be enclosed in <>" },
	{ "<mailto:a@x>, <https://x/>, <https://y/>", { NULL },
	  "\"<mailto:a@x>, <https://x/>, <https://y/>\" should include a maximum of one email and one HTTP link" },
	{ "<mailto:a@x> and <https://x/>", { NULL },
	  "\"<mailto:a@x> and <https://x/>\" <> should be split with a comma and optional spaces" },
	{ "<mailto:a@x>, <mailto:b@x>", { "mailto:a@x" },
	  "\"mailto:b@x\" should only contain one mailto:" },
	{ "<https://x/>, <http://y/>", { "https://x/" },
	  "\"http://y/\" should only contain one HTTP link" },
	{ "<ftp://x/>, <https://a b/>", { NULL },
	  "\"ftp://x/\" should start with either http(s):// or mailto:, "
	  "\"https://a b/\" should not contain spaces" },
	{ "<MAILTO:u@x>", { NULL }, "\"MAILTO:u@x\" should start with either http(s):// or mailto:" },
};

Test(list_unsub, vectors)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		struct list_unsub u;
		size_t n = 0;

		cr_assert_eq(list_unsub_parse(v->value, strlen(v->value), &u), 0);
		while (n < 2 && v->links[n] != NULL)
			n++;
		cr_assert_eq(u.nlinks, n, "vector %zu: %zu links", i, u.nlinks);
		for (size_t k = 0; k < n; k++)
			cr_assert_str_eq(u.links[k], v->links[k], "vector %zu", i);
		cr_assert_str_eq(u.errors, v->errors, "vector %zu", i);
		list_unsub_free(&u);
	}
}

/* The errors are bounded, however long the value. */
Test(list_unsub, long_value)
{
	static char v[8192];
	struct list_unsub u;

	memset(v, 'a', sizeof(v) - 1);
	v[0] = '<';
	v[sizeof(v) - 2] = '>';
	cr_assert_eq(list_unsub_parse(v, strlen(v), &u), 0);
	cr_assert_eq(u.nlinks, 0);
	cr_assert_lt(strlen(u.errors), sizeof(u.errors));
	cr_assert_eq(strncmp(u.errors, "\"aaa", 4), 0);
	list_unsub_free(&u);
}
