/* `mailsnare version`: the program's version and those of the libraries
 * it runs with, as loaded at run time (not as compiled against). */
#ifndef MAILSNARE_VERSION_H
#define MAILSNARE_VERSION_H

#include <stdio.h>

/* Writes "mailsnare X.Y.Z" and then one "library version" line per
 * library to out. */
void version_print(FILE *out);

#endif
