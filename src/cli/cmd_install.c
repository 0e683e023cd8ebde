/* `lfsfs install` / `lfsfs uninstall`: the git hooks (chained to existing ones) and the transfer agent. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lfsfs/error.h"
#include "meta/hintcache.h"
#include "util/buf.h"
#include "util/path.h"

static const char install_usage[] =
        "usage: lfsfs install [--repo DIR] [--standalone] [--concurrent]\n"
        "       lfsfs uninstall [--repo DIR]\n"
        "\n"
        "install: puts lfsfs's pre-commit and pre-push hooks into the repository's hooks\n"
        "directory (git rev-parse --git-path hooks, so core.hooksPath is honoured).  A hook\n"
        "that is already there (git-lfs's pre-push for instance) is kept as\n"
        "<hook>.lfsfs-orig and still runs: lfsfs's hook calls it with the same\n"
        "arguments and input.  Configures the Git LFS custom transfer agent 'lfsfs'\n"
        "(lfs.customtransfer.lfsfs.*) in the repository's config.  Running it again\n"
        "changes nothing.\n"
        "\n"
        "uninstall: removes exactly that: lfsfs's hooks (putting the kept ones back\n"
        "byte for byte) and the transfer agent settings.\n"
        "\n"
        "  --repo DIR     the repository (default: the current directory)\n"
        "  --standalone   also set lfs.standalonetransferagent=lfsfs: git lfs then uses\n"
        "                 lfsfs for every transfer without asking the LFS server\n"
        "  --concurrent   lfs.customtransfer.lfsfs.concurrent=true (default false)\n";

#define HOOK_MARK "# lfsfs-hook v1"
#define ORIG_SUFFIX ".lfsfs-orig"
#define AGENT "lfs.customtransfer.lfsfs"

static const char *const hook_names[] = { "pre-commit", "pre-push" };

/* ------------------------------------------------------------ git helpers */

static int git_in(const char *repo, const char *const *argv, struct lfsfs_buf *out, int *status)
{
	struct lfsfs_buf err = LFSFS_BUF_INIT(1 << 16);
	int st = 0, rc = lfsfs_git_run(repo, argv, NULL, 0, out, &err, &st);

	if (!rc && st && !status) {
		while (err.len && err.data[err.len - 1] == '\n')
			err.data[--err.len] = '\0';
		rc = lfsfs_error_set(-EIO, "'git %s %s' failed: %s", argv[0],
		                     argv[1] ? argv[1] : "", err.len ? err.data : "no message");
	}
	if (status)
		*status = st;
	lfsfs_buf_release(&err);
	return rc;
}

static int config_set(const char *repo, const char *key, const char *value)
{
	const char *argv[] = { "config", "--local", key, value, NULL };

	return git_in(repo, argv, NULL, NULL);
}

/* The value of a local config key (malloc'd), or NULL when unset. */
static char *config_get(const char *repo, const char *key)
{
	const char *argv[] = { "config", "--local", "--get", key, NULL };
	struct lfsfs_buf out = LFSFS_BUF_INIT(1 << 16);
	char *v = NULL;
	int st;

	if (!git_in(repo, argv, &out, &st) && !st && out.data) {
		out.data[strcspn(out.data, "\n")] = '\0';
		v = strdup(out.data);
	}
	lfsfs_buf_release(&out);
	return v;
}

static void config_unset(const char *repo, const char *key)
{
	const char *argv[] = { "config", "--local", "--unset-all", key, NULL };
	int st;

	git_in(repo, argv, NULL, &st); /* exit 5: was not set */
}

/* The absolute hooks directory of repo (malloc'd). */
static int hooks_dir(const char *repo, char **out)
{
	static const char *const argv[] = { "rev-parse", "--git-path", "hooks", NULL };
	struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 16);
	int rc = git_in(repo, argv, &b, NULL);

	*out = NULL;
	if (rc) {
		lfsfs_buf_release(&b);
		return rc;
	}
	b.data[strcspn(b.data, "\n")] = '\0';
	if (!*b.data) {
		lfsfs_buf_release(&b);
		return lfsfs_error_set(-EIO, "'git rev-parse --git-path hooks' printed nothing");
	}
	/* relative to where git ran: the repository */
	*out = b.data[0] == '/' ? strdup(b.data) : lfsfs_path_join(repo, b.data);
	lfsfs_buf_release(&b);
	return *out ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ hook files */

/* Append s single-quoted for sh. */
static int sh_quote(struct lfsfs_buf *b, const char *s)
{
	int rc = lfsfs_buf_appends(b, "'");

	for (; !rc && *s; s++)
		rc = *s == '\'' ? lfsfs_buf_appends(b, "'\\''") : lfsfs_buf_append(b, s, 1);
	if (!rc)
		rc = lfsfs_buf_appends(b, "'");
	return rc;
}

/*
 * The hook script.  pre-commit runs the kept hook first (if it refuses, the
 * commit is off and the cache need not change), then lfsfs, and never
 * fails the commit when lfsfs itself is gone.  pre-push keeps git's ref
 * lines in a temporary file so both hooks read the same input, and checks
 * first: a refused push should not upload anything.
 */
static int hook_script(const char *name, const char *exe, struct lfsfs_buf *b)
{
	int rc = lfsfs_buf_printf(b,
	                          "#!/bin/sh\n" HOOK_MARK
	                          ": %s, written by 'lfsfs install'; 'lfsfs uninstall' removes it\n"
	                          "# and puts back %s" ORIG_SUFFIX
	                          " (the hook that was here before), which this\n"
	                          "# script runs as well.  docs/HOOKS.md\n"
	                          "lfsfs=",
	                          name, name);

	if (!rc)
		rc = sh_quote(b, exe);
	if (rc)
		return rc;
	if (!strcmp(name, "pre-commit"))
		return lfsfs_buf_appends(
		        b, "\n"
		           "orig=\"$(dirname -- \"$0\")/pre-commit" ORIG_SUFFIX "\"\n"
		           "if [ -x \"$orig\" ]; then\n"
		           "\t\"$orig\" \"$@\" || exit $?\n"
		           "fi\n"
		           "if [ ! -x \"$lfsfs\" ]; then\n"
		           "\techo \"lfsfs: warning: $lfsfs not found: hint cache not updated "
		           "(lfsfs uninstall removes this hook)\" >&2\n"
		           "\texit 0\n"
		           "fi\n"
		           "exec \"$lfsfs\" hook pre-commit\n");
	return lfsfs_buf_appends(
	        b, "\n"
	           "orig=\"$(dirname -- \"$0\")/pre-push" ORIG_SUFFIX "\"\n"
	           "input=$(mktemp \"${TMPDIR:-/tmp}/lfsfs-pre-push.XXXXXX\") || exit 1\n"
	           "trap 'rm -f \"$input\"' EXIT\n"
	           "trap 'exit 129' HUP\n"
	           "trap 'exit 130' INT\n"
	           "trap 'exit 143' TERM\n"
	           "cat >\"$input\" || exit 1\n"
	           "if [ ! -x \"$lfsfs\" ]; then\n"
	           "\techo \"lfsfs: error: $lfsfs not found: cannot check the push; reinstall with "
	           "'lfsfs install' or remove the hook with 'lfsfs uninstall'\" >&2\n"
	           "\texit 1\n"
	           "fi\n"
	           "\"$lfsfs\" hook pre-push \"$@\" <\"$input\" || exit $?\n"
	           "if [ -x \"$orig\" ]; then\n"
	           "\t\"$orig\" \"$@\" <\"$input\" || exit $?\n"
	           "fi\n"
	           "exit 0\n");
}

/* 1 if file is a hook lfsfs wrote, 0 if not (or absent: *exists = 0). */
static int is_ours(const char *file, int *exists)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 20);
	struct stat st;
	int ours = 0;

	*exists = lstat(file, &st) == 0;
	if (*exists && S_ISREG(st.st_mode) && !lfsfs_buf_read_file(&b, file) && b.data)
		ours = strstr(b.data, HOOK_MARK) != NULL;
	lfsfs_buf_release(&b);
	return ours;
}

static int write_hook(const char *file, const char *data, size_t len)
{
	int rc = lfsfs_hint_write_file(file, data, len);

	if (!rc && chmod(file, 0755))
		rc = lfsfs_error_set(-errno, "cannot make '%s' executable: %s", file,
		                     strerror(errno));
	return rc;
}

static int install_hook(const char *dir, const char *name, const char *exe, int *kept)
{
	struct lfsfs_buf file = LFSFS_BUF_INIT(0), orig = LFSFS_BUF_INIT(0),
	                 script = LFSFS_BUF_INIT(0), cur = LFSFS_BUF_INIT(1 << 20);
	int rc, exists, orig_exists;
	struct stat st;

	*kept = 0;
	if ((rc = lfsfs_buf_printf(&file, "%s/%s", dir, name)) ||
	    (rc = lfsfs_buf_printf(&orig, "%s/%s" ORIG_SUFFIX, dir, name)) ||
	    (rc = hook_script(name, exe, &script)))
		goto out;
	orig_exists = lstat(orig.data, &st) == 0;
	if (is_ours(file.data, &exists)) {
		/* reinstall: same script unless the binary moved */
		if (!lfsfs_buf_read_file(&cur, file.data) && cur.len == script.len &&
		    !memcmp(cur.data, script.data, cur.len))
			goto kept;
	} else if (exists) {
		if (orig_exists) {
			rc = lfsfs_error_set(
			        -EEXIST,
			        "cannot install '%s': '%s' exists and so does '%s' from "
			        "an earlier install; move one of them away",
			        name, file.data, orig.data);
			goto out;
		}
		/* keep the existing hook byte for byte: a rename, not a copy */
		if (rename(file.data, orig.data)) {
			rc = lfsfs_error_set(-errno, "cannot move '%s' to '%s': %s", file.data,
			                     orig.data, strerror(errno));
			goto out;
		}
		orig_exists = 1;
	}
	rc = write_hook(file.data, script.data, script.len);
	if (rc)
		goto out;
kept:
	*kept = orig_exists;
out:
	lfsfs_buf_release(&file);
	lfsfs_buf_release(&orig);
	lfsfs_buf_release(&script);
	lfsfs_buf_release(&cur);
	return rc;
}

/* 1 removed (and *restored if a kept hook was put back), 0 nothing of ours. */
static int uninstall_hook(const char *dir, const char *name, int *restored)
{
	struct lfsfs_buf file = LFSFS_BUF_INIT(0), orig = LFSFS_BUF_INIT(0);
	int rc, exists, removed = 0;
	struct stat st;

	*restored = 0;
	if ((rc = lfsfs_buf_printf(&file, "%s/%s", dir, name)) ||
	    (rc = lfsfs_buf_printf(&orig, "%s/%s" ORIG_SUFFIX, dir, name)))
		goto out;
	if (is_ours(file.data, &exists)) {
		if (unlink(file.data)) {
			rc = lfsfs_error_set(-errno, "cannot remove '%s': %s", file.data,
			                     strerror(errno));
			goto out;
		}
		removed = 1;
		exists = 0;
	}
	if (lstat(orig.data, &st) == 0) {
		if (exists) {
			fprintf(stderr,
			        "lfsfs: warning: '%s' is not lfsfs's hook; '%s' left where it is\n",
			        file.data, orig.data);
		} else if (rename(orig.data, file.data)) {
			rc = lfsfs_error_set(-errno, "cannot move '%s' back to '%s': %s", orig.data,
			                     file.data, strerror(errno));
			goto out;
		} else {
			*restored = 1;
		}
	}
	rc = removed || *restored;
out:
	lfsfs_buf_release(&file);
	lfsfs_buf_release(&orig);
	return rc;
}

/* ------------------------------------------------------------ commands */

static int parse_args(int argc, char **argv, const char **repo, int *standalone, int *concurrent)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "standalone", no_argument, NULL, 's' },
		{ "concurrent", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			*repo = optarg;
			break;
		case 's':
			if (!standalone)
				goto usage;
			*standalone = 1;
			break;
		case 'c':
			if (!concurrent)
				goto usage;
			*concurrent = 1;
			break;
		case 'h':
			fputs(install_usage, stdout);
			return EXIT_OK + 100;
		default:
			goto usage;
		}
	}
	if (optind == argc)
		return -1;
usage:
	fputs(install_usage, stderr);
	return EXIT_USAGE;
}

static int locate(const char *repo_opt, char **repo, char **hooks)
{
	static const char *const argv[] = { "rev-parse", "--git-dir", NULL };
	int rc;

	*hooks = NULL;
	*repo = lfsfs_path_absolute(repo_opt ? repo_opt : ".");
	if (!*repo)
		return -ENOMEM;
	if ((rc = git_in(*repo, argv, NULL, NULL))) {
		cli_error("'%s' is not a git repository: %s", *repo, lfsfs_error_message());
		return rc;
	}
	if ((rc = hooks_dir(*repo, hooks))) {
		cli_error("cannot find the hooks directory of '%s': %s", *repo,
		          rc == -ENOMEM ? strerror(ENOMEM) : lfsfs_error_message());
		return rc;
	}
	return 0;
}

int cmd_install(int argc, char **argv)
{
	const char *repo_opt = NULL;
	char *repo = NULL, *hooks = NULL, exe[PATH_MAX];
	int standalone = 0, concurrent = 0, rc, ret = EXIT_FAIL;
	ssize_t n;

	if ((rc = parse_args(argc, argv, &repo_opt, &standalone, &concurrent)) >= 0)
		return rc >= 100 ? EXIT_OK : rc;
	if (locate(repo_opt, &repo, &hooks))
		goto out;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		cli_error("cannot find the lfsfs binary (/proc/self/exe): %s", strerror(errno));
		goto out;
	}
	exe[n] = '\0';
	if (cli_mkdir_p(hooks)) {
		cli_error("cannot create '%s': %s", hooks, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < sizeof(hook_names) / sizeof(hook_names[0]); i++) {
		int kept;
		if ((rc = install_hook(hooks, hook_names[i], exe, &kept))) {
			cli_error("%s", lfsfs_error_message());
			goto out;
		}
		printf("hook %s: %s/%s", hook_names[i], hooks, hook_names[i]);
		if (kept)
			printf(" (also runs the earlier hook, kept as %s" ORIG_SUFFIX ")",
			       hook_names[i]);
		putchar('\n');
	}
	if ((rc = config_set(repo, AGENT ".path", exe)) ||
	    (rc = config_set(repo, AGENT ".args", "transfer-agent")) ||
	    (rc = config_set(repo, AGENT ".concurrent", concurrent ? "true" : "false")) ||
	    (standalone && (rc = config_set(repo, "lfs.standalonetransferagent", "lfsfs")))) {
		cli_error("cannot configure the transfer agent: %s", lfsfs_error_message());
		goto out;
	}
	printf("transfer agent: " AGENT ".path=%s, args=transfer-agent, concurrent=%s%s\n", exe,
	       concurrent ? "true" : "false",
	       standalone ? "; lfs.standalonetransferagent=lfsfs" : "");
	ret = EXIT_OK;
out:
	free(repo);
	free(hooks);
	return ret;
}

int cmd_uninstall(int argc, char **argv)
{
	const char *repo_opt = NULL;
	char *repo = NULL, *hooks = NULL, *v;
	int rc, ret = EXIT_FAIL, any = 0;

	if ((rc = parse_args(argc, argv, &repo_opt, NULL, NULL)) >= 0)
		return rc >= 100 ? EXIT_OK : rc;
	if (locate(repo_opt, &repo, &hooks))
		goto out;
	for (size_t i = 0; i < sizeof(hook_names) / sizeof(hook_names[0]); i++) {
		int restored;
		rc = uninstall_hook(hooks, hook_names[i], &restored);
		if (rc < 0) {
			cli_error("%s", lfsfs_error_message());
			goto out;
		}
		if (rc) {
			any = 1;
			printf("hook %s: removed%s\n", hook_names[i],
			       restored ? "; the earlier hook is back" : "");
		}
	}
	/* the transfer agent: only the keys install sets */
	v = config_get(repo, AGENT ".path");
	if (v || (v = config_get(repo, AGENT ".args"))) {
		const char *argv2[] = { "config", "--local", "--get-regexp",
			                "^lfs\\.customtransfer\\.lfsfs\\.", NULL };
		struct lfsfs_buf left = LFSFS_BUF_INIT(1 << 16);
		int st;
		config_unset(repo, AGENT ".path");
		config_unset(repo, AGENT ".args");
		config_unset(repo, AGENT ".concurrent");
		/* drop the then empty section header git leaves behind */
		if (!git_in(repo, argv2, &left, &st) && st == 1) {
			const char *rs[] = { "config", "--local", "--remove-section", AGENT, NULL };
			git_in(repo, rs, NULL, &st);
		}
		lfsfs_buf_release(&left);
		printf("transfer agent: " AGENT ".* removed\n");
		any = 1;
	}
	free(v);
	v = config_get(repo, "lfs.standalonetransferagent");
	if (v && !strcmp(v, "lfsfs")) {
		config_unset(repo, "lfs.standalonetransferagent");
		printf("lfs.standalonetransferagent removed\n");
		any = 1;
	}
	free(v);
	if (!any)
		printf("nothing of lfsfs's was installed in %s\n", repo);
	ret = EXIT_OK;
out:
	free(repo);
	free(hooks);
	return ret;
}
