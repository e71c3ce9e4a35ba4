/* The command line: subcommands, options before or after their arguments,
 * and dispatch to serve or to the store-level commands (DESIGN §2). */
#ifndef MAILSNARE_CLI_H
#define MAILSNARE_CLI_H

/* Runs mailsnare with argv; returns the process exit status:
 * 0 success, 1 runtime failure (not found, store error), 2 usage or
 * configuration error. */
int cli_main(int argc, char **argv, char *const *envp);

#endif
