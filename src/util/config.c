/* Per-repository lfsfs.* settings from .lfsconfig and git config. */
#include "util/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "util/buf.h"

struct kv {
	char *key, *value;
};

struct lfsfs_config {
	struct kv *v;
	size_t n, cap;
};

struct lfsfs_config *lfsfs_config_new(void)
{
	return calloc(1, sizeof(struct lfsfs_config));
}

int lfsfs_config_set(struct lfsfs_config *c, const char *key, const char *value)
{
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 16;
		struct kv *nv = realloc(c->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = nc;
	}
	c->v[c->n].key = strdup(key);
	c->v[c->n].value = strdup(value ? value : "");
	if (!c->v[c->n].key || !c->v[c->n].value) {
		free(c->v[c->n].key);
		free(c->v[c->n].value);
		return -ENOMEM;
	}
	c->n++;
	return 0;
}

void lfsfs_config_free(struct lfsfs_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].key);
		free(c->v[i].value);
	}
	free(c->v);
	free(c);
}

const char *lfsfs_config_get(const struct lfsfs_config *c, const char *key)
{
	if (!c)
		return NULL;
	for (size_t i = c->n; i-- > 0;)
		if (!strcasecmp(c->v[i].key, key))
			return c->v[i].value;
	return NULL;
}

int lfsfs_config_get_bool(const struct lfsfs_config *c, const char *key, int def)
{
	const char *v = lfsfs_config_get(c, key);

	if (!v)
		return def;
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
	    !strcmp(v, "1") || !*v)
		return 1;
	if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
	    !strcmp(v, "0"))
		return 0;
	return def;
}

/* Run git with argv, parse `-z --get-regexp` output ("key\nvalue\0")*. */
static int run_git(struct lfsfs_config *c, char *const argv[])
{
	struct lfsfs_buf out = LFSFS_BUF_INIT(1 << 20);
	int pfd[2], st, rc = 0;
	pid_t pid;

	if (pipe(pfd))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		int null = open("/dev/null", 0);
		dup2(pfd[1], 1);
		if (null >= 0)
			dup2(null, 2);
		close(pfd[0]);
		close(pfd[1]);
		execvp("git", argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		char tmp[4096];
		ssize_t n = read(pfd[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (lfsfs_buf_append(&out, tmp, (size_t)n))
			break;
	}
	close(pfd[0]);
	waitpid(pid, &st, 0);
	/* exit 1 = no matching key: fine */
	for (size_t i = 0; out.data && i < out.len && !rc;) {
		char *rec = out.data + i;
		size_t len = strnlen(rec, out.len - i);
		char *nl = memchr(rec, '\n', len);
		if (nl) {
			*nl = '\0';
			rc = lfsfs_config_set(c, rec, nl + 1);
		} else {
			rc = lfsfs_config_set(c, rec, "true"); /* "key" alone = true */
		}
		i += len + 1;
	}
	lfsfs_buf_release(&out);
	return rc;
}

int lfsfs_config_load(const char *repo, struct lfsfs_config **out)
{
	struct lfsfs_config *c = lfsfs_config_new();
	char lfsconfig[4200];
	int rc = 0;

	if (!c)
		return -ENOMEM;
	if (repo) {
		snprintf(lfsconfig, sizeof(lfsconfig), "%s/.lfsconfig", repo);
		if (access(lfsconfig, R_OK) == 0) {
			char *a1[] = { "git", "config", "-z", "--file", lfsconfig, "--get-regexp",
				       "^lfsfs\\.", NULL };
			rc = run_git(c, a1);
		}
		if (!rc) {
			char *a2[] = { "git", "-C", (char *)repo, "config", "-z", "--get-regexp",
				       "^lfsfs\\.", NULL };
			rc = run_git(c, a2);
		}
	} else {
		char *a3[] = { "git", "config", "-z", "--get-regexp", "^lfsfs\\.", NULL };
		rc = run_git(c, a3);
	}
	if (rc) {
		lfsfs_config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}
