/*
 * SMTP command-line parsing: verbs, reverse-/forward-paths, ESMTP
 * parameters and BDAT arguments. Pure functions, unit-tested with byte
 * strings.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "mailsnare/smtp_parse.h"

static const char *const verb_names[SMTP_CMD_COUNT] = {
	[SMTP_CMD_UNKNOWN] = "",
	[SMTP_CMD_HELO] = "HELO", [SMTP_CMD_EHLO] = "EHLO", [SMTP_CMD_MAIL] = "MAIL",
	[SMTP_CMD_RCPT] = "RCPT", [SMTP_CMD_DATA] = "DATA", [SMTP_CMD_BDAT] = "BDAT",
	[SMTP_CMD_RSET] = "RSET", [SMTP_CMD_NOOP] = "NOOP", [SMTP_CMD_QUIT] = "QUIT",
	[SMTP_CMD_VRFY] = "VRFY", [SMTP_CMD_EXPN] = "EXPN", [SMTP_CMD_HELP] = "HELP",
	[SMTP_CMD_STARTTLS] = "STARTTLS", [SMTP_CMD_AUTH] = "AUTH",
};

const char *smtp_verb_name(enum smtp_verb verb)
{
	return verb < SMTP_CMD_COUNT ? verb_names[verb] : "";
}

enum smtp_verb smtp_parse_verb(const char *line, const char **args)
{
	size_t n = 0;
	int v;

	while (line[n] != '\0' && line[n] != ' ')
		n++;
	*args = line + n;
	while (**args == ' ')
		(*args)++;
	for (v = SMTP_CMD_HELO; v < SMTP_CMD_COUNT; v++) {
		if (strlen(verb_names[v]) == n && strncasecmp(line, verb_names[v], n) == 0)
			return (enum smtp_verb)v;
	}
	return SMTP_CMD_UNKNOWN;
}

static bool is_atext(unsigned char ch)
{
	/* RFC 6531 extends atext with any UTF-8 octet. */
	return isalnum(ch) || ch >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~", ch) != NULL;
}

/* Dot-string: atoms separated by single dots. */
static bool dot_string_valid(const char *s, size_t len)
{
	bool prev_dot = true;
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '.') {
			if (prev_dot)
				return false;
			prev_dot = true;
		} else if (is_atext(ch)) {
			prev_dot = false;
		} else {
			return false;
		}
	}
	return !prev_dot;
}

/* Quoted-string: printable ASCII (and UTF-8), backslash pairs. */
static bool quoted_string_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return false;
	for (i = 1; i < len - 1; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\\') {
			if (++i >= len - 1 || (unsigned char)s[i] < 32 || s[i] == 127)
				return false;
		} else if (ch == '"' || ch < 32 || ch == 127) {
			return false;
		}
	}
	return true;
}

static bool domain_valid(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > 255)
		return false;
	if (s[0] == '[')
		return len > 2 && s[len - 1] == ']' &&
		    strspn(s + 1, "0123456789abcdefABCDEF.:IPvV-") >= len - 2;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum(ch) || ch == '-' || ch == '_' || ch >= 0x80) {
			/* '_' is not RFC 1035, but development host names have it. */
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

bool smtp_mailbox_valid(const char *addr)
{
	const char *at;
	size_t len = strlen(addr), local;

	if (len == 0)
		return false;
	if (addr[0] == '"') {
		/* The closing quote is the last one not escaped. */
		size_t i = 1;
		while (i < len && addr[i] != '"')
			i += addr[i] == '\\' ? 2 : 1;
		if (i >= len || i + 1 >= len || addr[i + 1] != '@')
			return false;
		at = addr + i + 1;
	} else {
		at = strrchr(addr, '@');
		if (at == NULL)
			return false;
	}
	local = (size_t)(at - addr);
	if (local > 64)
		return false;
	if (addr[0] == '"' ? !quoted_string_valid(addr, local) : !dot_string_valid(addr, local))
		return false;
	return domain_valid(at + 1, len - local - 1);
}

/* Finds the '>' closing a path that starts after '<', skipping quoted
 * parts of the local part. */
static const char *path_end(const char *p)
{
	bool quoted = false;

	for (; *p; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '>' && !quoted)
			return p;
	}
	return NULL;
}

static bool has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Copies the path text, dropping an obsolete source route "@a,@b:". */
static enum smtp_path_rc path_copy(const char *s, size_t len, struct smtp_path *out)
{
	if (len > 0 && s[0] == '@') {
		const char *colon = memchr(s, ':', len);
		if (colon == NULL)
			return SMTP_PATH_BADADDR;
		len -= (size_t)(colon + 1 - s);
		s = colon + 1;
	}
	if (len > SMTP_PATH_MAX)
		return SMTP_PATH_TOOLONG;
	memcpy(out->addr, s, len);
	out->addr[len] = '\0';
	return SMTP_PATH_OK;
}

static enum smtp_path_rc path_extract(const char *p, struct smtp_path *out, const char **rest)
{
	const char *end;

	if (*p == '<') {
		if ((end = path_end(p + 1)) == NULL)
			return SMTP_PATH_BADADDR;  /* as Postfix: 5.1.7 / 5.1.3 */
		*rest = end + 1;
		return path_copy(p + 1, (size_t)(end - p - 1), out);
	}
	/* No brackets: RFC 5321 requires them, but old clients omit them;
	 * take the address up to the first space. */
	end = p + strcspn(p, " ");
	if (end == p)
		return SMTP_PATH_SYNTAX;
	*rest = end;
	return path_copy(p, (size_t)(end - p), out);
}

enum smtp_path_rc smtp_parse_path(const char *args, const char *keyword, bool allow_null,
    struct smtp_path *out)
{
	size_t klen = strlen(keyword);
	const char *p = args, *rest = NULL;
	enum smtp_path_rc rc;

	memset(out, 0, sizeof(*out));
	if (strncasecmp(p, keyword, klen) != 0 || p[klen] != ':')
		return SMTP_PATH_SYNTAX;
	p += klen + 1;
	while (*p == ' ')
		p++;
	if ((rc = path_extract(p, out, &rest)) != SMTP_PATH_OK)
		return rc;
	if (*rest != '\0' && *rest != ' ')
		return SMTP_PATH_SYNTAX;
	while (*rest == ' ')
		rest++;
	out->params = rest;
	out->utf8 = has_8bit(out->addr);
	if (out->addr[0] == '\0')
		return allow_null ? SMTP_PATH_OK : SMTP_PATH_BADADDR;
	/* RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted. */
	if (!allow_null && strcasecmp(out->addr, "postmaster") == 0)
		return SMTP_PATH_OK;
	return smtp_mailbox_valid(out->addr) ? SMTP_PATH_OK : SMTP_PATH_BADADDR;
}

int smtp_parse_param(const char **p, char *key, size_t keysize, char *value, size_t valuesize)
{
	const char *s = *p;
	size_t klen = 0, vlen = 0;

	while (*s == ' ')
		s++;
	if (*s == '\0') {
		*p = s;
		return 0;
	}
	while (*s && *s != ' ' && *s != '=') {
		if (klen + 1 >= keysize || !(isalnum((unsigned char)*s) || *s == '-'))
			return -1;
		key[klen++] = (char)toupper((unsigned char)*s++);
	}
	key[klen] = '\0';
	if (klen == 0)
		return -1;
	if (*s == '=') {
		s++;
		while (*s && *s != ' ') {
			if (vlen + 1 >= valuesize || (unsigned char)*s < 33 || *s == 127)
				return -1;
			value[vlen++] = *s++;
		}
	}
	value[vlen] = '\0';
	*p = s;
	return 1;
}

int smtp_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (*s != '\0')
		return -1;
	*out = v;
	return 0;
}

int smtp_parse_bdat(const char *args, uint64_t *size, bool *last)
{
	char num[24];
	size_t n = strcspn(args, " ");
	const char *rest = args + n;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, args, n);
	num[n] = '\0';
	if (smtp_parse_u64(num, size) < 0)
		return -1;
	while (*rest == ' ')
		rest++;
	if (*rest == '\0') {
		*last = false;
		return 0;
	}
	if (strncasecmp(rest, "LAST", 4) != 0)
		return -1;
	rest += 4;
	while (*rest == ' ')
		rest++;
	*last = true;
	return *rest == '\0' ? 0 : -1;
}
