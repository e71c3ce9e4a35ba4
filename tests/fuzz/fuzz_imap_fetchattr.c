/*
 * FETCH attributes: the input is FETCH's arguments after the sequence set
 * ("(FLAGS BODY.PEEK[1.HEADER.FIELDS (From)]<0.10>) (CHANGEDSINCE 5)"),
 * parsed by the generic parser first. On success each attribute's echo
 * name, parsed again as an attribute, gives the same item and section
 * (partials echo only their origin, so those are left out).
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/imap_fetchattr.h"
#include "fuzz_imap_args.h"

static bool same_section(const struct imap_section *a, const struct imap_section *b)
{
	if (a->nparts != b->nparts || a->text != b->text || a->nfields != b->nfields)
		return false;
	if (memcmp(a->part, b->part, a->nparts * sizeof(a->part[0])) != 0)
		return false;
	for (size_t i = 0; i < a->nfields; i++)
		if (strcmp(a->fields[i], b->fields[i]) != 0)
			return false;
	return true;
}

static void check_echo(const struct imap_fetch_att *att, bool uid)
{
	struct imap_command *cmd;
	struct imap_fetch f2;
	struct imap_error err;

	FUZZ_CHECK(att->echo != NULL && att->echo[0] != '\0');
	if (att->partial)
		return;
	cmd = fuzz_imap_command("FETCH", (const uint8_t *)att->echo, strlen(att->echo));
	FUZZ_CHECK(cmd != NULL);
	memset(&f2, 0, sizeof(f2));
	FUZZ_CHECK(imap_fetch_parse(cmd->args, cmd->nargs, uid, &f2, &err));
	FUZZ_CHECK(f2.count == 1);
	FUZZ_CHECK(f2.atts[0].item == att->item);
	FUZZ_CHECK(same_section(&f2.atts[0].section, &att->section));
	FUZZ_CHECK(strcmp(f2.atts[0].echo, att->echo) == 0);
	imap_fetch_free(&f2);
	imap_command_free(cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_command *cmd;
	struct imap_fetch f;
	struct imap_error err;
	bool uid;

	if (size < 1 || size > 4096)
		return 0;
	uid = data[0] & 1;
	cmd = fuzz_imap_command("FETCH", data + 1, size - 1);
	if (cmd == NULL)
		return 0;
	memset(&f, 0, sizeof(f));
	if (imap_fetch_parse(cmd->args, cmd->nargs, uid, &f, &err)) {
		FUZZ_CHECK(f.count > 0);
		for (size_t i = 0; i < f.count; i++) {
			FUZZ_CHECK(f.atts[i].section.nparts <= IMAP_SECTION_MAX_PARTS);
			check_echo(&f.atts[i], uid);
		}
		FUZZ_CHECK(imap_fetch_ensure(&f, IMAP_FETCH_UID));
		FUZZ_CHECK(imap_fetch_ensure(&f, IMAP_FETCH_UID));
		imap_fetch_free(&f);
	} else {
		FUZZ_CHECK(err.code != IMAP_ERR_NONE);
		FUZZ_CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
	}
	imap_command_free(cmd);
	return 0;
}
