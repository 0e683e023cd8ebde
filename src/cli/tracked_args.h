/*
 * The repository and PATH arguments of the commands that walk every tracked
 * object (ls, verify): --repo DIR or the working tree around the current
 * directory, and each PATH turned into a repo-relative filter as git does.
 *
 *   struct cli_tracked_args ta = CLI_TRACKED_ARGS_INIT;
 *   if ((rc = cli_tracked_args(&ta, repo_arg, argc - optind, argv + optind)))
 *           ... rc is the exit status, the error was printed ...
 *   topts.paths = (const char *const *)ta.filters;  topts.n_paths = ta.n_filters;
 *   ... load the list, then cli_tracked_args_check(&ta, l) ...
 *   cli_tracked_args_release(&ta);
 *
 * Everything in the struct is owned by it until cli_tracked_args_release().
 */
#ifndef LFSFS_CLI_TRACKED_ARGS_H
#define LFSFS_CLI_TRACKED_ARGS_H

#include <stddef.h>

struct lfsfs_tracked_list;

struct cli_tracked_args {
	char *repo;           /* absolute path of the repository */
	char **filters;       /* n_filters repo-relative prefixes, one per PATH */
	size_t n_filters;
	char *const *paths;   /* the PATH arguments as given (borrowed from argv) */
};

#define CLI_TRACKED_ARGS_INIT { NULL, NULL, 0, NULL }

/* Find the repository (repo_arg, or the working tree containing the current
 * directory) and turn the n PATH arguments into filters.  0, or the exit
 * status (EXIT_FAIL, EXIT_USAGE for a PATH outside the repository) after
 * printing the error; release a with cli_tracked_args_release() either way. */
int cli_tracked_args(struct cli_tracked_args *a, const char *repo_arg, int n,
                     char *const *paths);

/* 0 if every filter matches an object of l; else EXIT_FAIL after printing
 * which PATH matches nothing. */
int cli_tracked_args_check(const struct cli_tracked_args *a,
                           const struct lfsfs_tracked_list *l);

void cli_tracked_args_release(struct cli_tracked_args *a);

#endif
