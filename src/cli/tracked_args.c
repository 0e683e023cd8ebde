/* Repository and PATH filter arguments shared by lfsfs ls and lfsfs verify. */
#include "cli/tracked_args.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lfsfs/error.h"
#include "meta/tracked.h"

int cli_tracked_args(struct cli_tracked_args *a, const char *repo_arg, int n,
                     char *const *paths)
{
	char cwd[PATH_MAX];

	a->paths = paths;
	if (!getcwd(cwd, sizeof(cwd))) {
		cli_error("cannot get the current directory: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (repo_arg)
		a->repo = realpath(repo_arg, NULL);
	else if (lfsfs_tracked_find_repo(cwd, &a->repo))
		a->repo = NULL;
	if (!a->repo) {
		if (repo_arg)
			cli_error("cannot open repository '%s': %s", repo_arg, strerror(errno));
		else
			cli_error("%s", lfsfs_error_message());
		return EXIT_FAIL;
	}
	if (n > 0 && !(a->filters = calloc((size_t)n, sizeof(*a->filters)))) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	for (int i = 0; i < n; i++) {
		if (lfsfs_tracked_relpath(a->repo, cwd, paths[i], &a->filters[a->n_filters])) {
			cli_error("%s", lfsfs_error_message());
			return EXIT_USAGE;
		}
		a->n_filters++;
	}
	return 0;
}

int cli_tracked_args_check(const struct cli_tracked_args *a,
                           const struct lfsfs_tracked_list *l)
{
	for (size_t i = 0; i < a->n_filters; i++) {
		size_t k = 0;
		while (k < l->n && !lfsfs_tracked_match(l->items[k].path, a->filters[i]))
			k++;
		if (k == l->n) {
			cli_error("'%s' matches no tracked object", a->paths[i]);
			return EXIT_FAIL;
		}
	}
	return 0;
}

void cli_tracked_args_release(struct cli_tracked_args *a)
{
	for (size_t i = 0; i < a->n_filters; i++)
		free(a->filters[i]);
	free(a->filters);
	free(a->repo);
	a->repo = NULL;
	a->filters = NULL;
	a->n_filters = 0;
}
