/* Header section length and field lookup over raw bytes: CRLF and bare LF,
 * folding, odd spacing, prefixes of other field names, 8-bit values. */
#include <criterion/criterion.h>
#include <string.h>

#include "mailsnare/header.h"

#define LIT(s) s, (sizeof(s) - 1)

static const char crlf_msg[] =
    "Received: from x\r\n"
    "\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To-Foo: wrong\r\n"
    "To: bob@example.com\r\n"
    "Subject: Hello\r\n"
    " world\r\n"
    "\r\n"
    "Subject: not a header, body text\r\n";

Test(header, section_len_crlf)
{
	bool complete = false;
	size_t n = header_section_len(LIT(crlf_msg), &complete);
	cr_assert(complete);
	cr_assert_eq(n, (size_t)(strstr(crlf_msg, "\r\n\r\n") - crlf_msg) + 4);
}

Test(header, section_len_lf)
{
	static const char m[] = "A: 1\nB: 2\n\nbody\n";
	bool complete = false;
	cr_assert_eq(header_section_len(LIT(m), &complete), 11);
	cr_assert(complete);
}

Test(header, section_len_mixed_line_ends)
{
	static const char m[] = "A: 1\r\nB: 2\n\r\nbody";
	bool complete = false;
	cr_assert_eq(header_section_len(LIT(m), &complete), 13);
	cr_assert(complete);
}

Test(header, section_len_incomplete)
{
	static const char m[] = "A: 1\r\nB: 2\r\n";
	bool complete = true;
	cr_assert_eq(header_section_len(LIT(m), &complete), sizeof(m) - 1);
	cr_assert_not(complete);
	complete = true;
	cr_assert_eq(header_section_len("", 0, &complete), 0);
	cr_assert_not(complete);
	/* NULL is allowed for complete. */
	cr_assert_eq(header_section_len(LIT(m), NULL), sizeof(m) - 1);
}

Test(header, section_len_no_headers)
{
	bool complete = false;
	cr_assert_eq(header_section_len(LIT("\r\nbody"), &complete), 2);
	cr_assert(complete);
	cr_assert_eq(header_section_len(LIT("\nbody"), &complete), 1);
	cr_assert(complete);
}

Test(header, section_len_whitespace_line_is_not_the_end)
{
	/* A line of only spaces is a (folded) header line, not the separator. */
	static const char m[] = "A: 1\r\n \r\nB: 2\r\n\r\n";
	bool complete = false;
	cr_assert_eq(header_section_len(LIT(m), &complete), sizeof(m) - 1);
	cr_assert(complete);
}

Test(header, get_simple_and_case_insensitive)
{
	char v[128];
	cr_assert(header_get(LIT(crlf_msg), "From", v, sizeof(v)));
	cr_assert_str_eq(v, "Alice <alice@example.com>");
	cr_assert(header_get(LIT(crlf_msg), "fRoM", v, sizeof(v)));
	cr_assert_str_eq(v, "Alice <alice@example.com>");
}

Test(header, get_name_prefix_does_not_match)
{
	char v[128];
	cr_assert(header_get(LIT(crlf_msg), "To", v, sizeof(v)));
	cr_assert_str_eq(v, "bob@example.com");
	cr_assert(header_get(LIT(crlf_msg), "To-Foo", v, sizeof(v)));
	cr_assert_str_eq(v, "wrong");
	cr_assert_not(header_get(LIT(crlf_msg), "T", v, sizeof(v)));
	cr_assert_not(header_get(LIT(crlf_msg), "Fro", v, sizeof(v)));
}

Test(header, get_unfolds)
{
	char v[128];
	cr_assert(header_get(LIT(crlf_msg), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "Hello world");
	cr_assert(header_get(LIT(crlf_msg), "Received", v, sizeof(v)));
	cr_assert_str_eq(v, "from x\tby y; Mon, 1 Jan 2024 00:00:00 +0000");
}

Test(header, get_unfolds_bare_lf_and_value_on_next_line)
{
	static const char m[] = "Subject:\n  first\n\tsecond  \nX: y\n\nbody";
	char v[128];
	cr_assert(header_get(LIT(m), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "first\tsecond");
}

Test(header, get_does_not_read_body)
{
	static const char m[] = "From: a\r\n\r\nTo: body@example.com\r\n";
	char v[128];
	cr_assert_not(header_get(LIT(m), "To", v, sizeof(v)));
	cr_assert_not(header_get(LIT(crlf_msg), "Cc", v, sizeof(v)));
}

Test(header, get_no_space_after_colon_and_space_before)
{
	static const char m[] = "Subject:tight\r\nX-Odd : spaced \r\nEmpty:\r\nBlank:   \r\n\r\n";
	char v[128];
	cr_assert(header_get(LIT(m), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "tight");
	cr_assert(header_get(LIT(m), "X-Odd", v, sizeof(v)));
	cr_assert_str_eq(v, "spaced");
	cr_assert(header_get(LIT(m), "Empty", v, sizeof(v)));
	cr_assert_str_eq(v, "");
	cr_assert(header_get(LIT(m), "Blank", v, sizeof(v)));
	cr_assert_str_eq(v, "");
}

Test(header, get_without_body_or_final_newline)
{
	char v[128];
	cr_assert(header_get(LIT("From: a\r\nSubject: last"), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "last");
	cr_assert(header_get(LIT("Subject: last\r\n"), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "last");
	cr_assert(header_get(LIT("Subject: last\r"), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "last");
	/* Folded to the very end. */
	cr_assert(header_get(LIT("Subject: a\r\n b"), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "a b");
}

Test(header, get_first_of_duplicates)
{
	static const char m[] = "Received: one\r\nReceived: two\r\n\r\n";
	char v[128];
	cr_assert(header_get(LIT(m), "Received", v, sizeof(v)));
	cr_assert_str_eq(v, "one");
}

Test(header, get_8bit_value)
{
	static const char m[] = "Subject: Gr\xc3\xbc\xc3\x9f""e \xff\r\n\r\n";
	char v[128];
	cr_assert(header_get(LIT(m), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "Gr\xc3\xbc\xc3\x9f""e \xff");
}

Test(header, get_truncates)
{
	static const char m[] = "Subject: abcdefghij\r\n\r\n";
	char v[5];
	memset(v, 'x', sizeof(v));
	cr_assert(header_get(LIT(m), "Subject", v, sizeof(v)));
	cr_assert_str_eq(v, "abcd");
	char one[1] = { 'x' };
	cr_assert(header_get(LIT(m), "Subject", one, sizeof(one)));
	cr_assert_eq(one[0], '\0');
}

Test(header, get_ignores_continuation_and_garbage_lines)
{
	/* A line that starts with WSP is never a field, even if it looks like one. */
	static const char m[] = " To: fake\r\nnot a field\r\nX: a\r\n To: folded\r\nTo: real\r\n\r\n";
	char v[128];
	cr_assert(header_get(LIT(m), "To", v, sizeof(v)));
	cr_assert_str_eq(v, "real");
	cr_assert(header_get(LIT(m), "X", v, sizeof(v)));
	cr_assert_str_eq(v, "a To: folded");
	cr_assert_not(header_get(LIT(m), "", v, sizeof(v)));
}

Test(header, get_embedded_nul_is_bounded)
{
	static const char m[] = "A: x\0y\r\nB: z\r\n\r\n";
	char v[16];
	cr_assert(header_get(LIT(m), "B", v, sizeof(v)));
	cr_assert_str_eq(v, "z");
}
