/*
 * Versions for bug reports: a library upgraded under an installed binary
 * (a Debian security update of OpenSSL, say) shows here, since each line
 * asks the loaded library itself rather than its header.
 */
#include "mailsnare/version.h"

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <zlib.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

void version_print(FILE *out)
{
	fprintf(out, "mailsnare %s\n", PACKAGE_VERSION);
	fprintf(out, "libevent %s\n", event_get_version());
	/* OpenSSL_version already starts with "OpenSSL". */
	fprintf(out, "%s\n", OpenSSL_version(OPENSSL_VERSION));
	fprintf(out, "SQLite %s\n", sqlite3_libversion());
	fprintf(out, "jansson %s\n", jansson_version_str());
	fprintf(out, "zlib %s\n", zlibVersion());
}
