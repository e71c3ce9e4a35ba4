/* mailsnare: everything happens in cli_main (src/cli.c). */
#include <unistd.h>

#include "mailsnare/cli.h"

extern char **environ;

int main(int argc, char **argv)
{
	return cli_main(argc, argv, environ);
}
