/* Normalization of untrusted repository-relative paths, joining, absolute paths, gitdirs. */
#include "util/path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lfsfs/error.h"

/* How much of a refused path an error message quotes. */
#define QUOTE_MAX 200

/* Length of the component starting at s (up to '/' or NUL). */
static size_t comp_len(const char *s)
{
	const char *e = strchr(s, '/');

	return e ? (size_t)(e - s) : strlen(s);
}

const char *lfsfs_relpath_refusal(const char *in)
{
	const char *s;
	size_t kept = 0;

	if (!in || !*in)
		return "path is empty";
	if (in[0] == '/')
		return "absolute paths are not allowed";
	if (strlen(in) >= PATH_MAX)
		return "path is longer than PATH_MAX";
	for (s = in; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\\')
			return "backslashes are not allowed";
		if (c < 0x20 || c == 0x7f)
			return "control characters are not allowed";
	}
	for (s = in; *s;) {
		size_t n = comp_len(s);

		if (n == 2 && !memcmp(s, "..", 2))
			return "'..' component leaves the repository";
		if (n == 4 && !strncasecmp(s, ".git", 4))
			return "'.git' component is the repository's own data";
		if (n > NAME_MAX)
			return "component is longer than NAME_MAX";
		if (n && !(n == 1 && s[0] == '.'))
			kept++;
		s += n;
		while (*s == '/')
			s++;
	}
	if (!kept)
		return "path names no file";
	return NULL;
}

int lfsfs_relpath_normalize(const char *in, char **out)
{
	const char *why = lfsfs_relpath_refusal(in);
	const char *s;
	char *res = NULL;
	size_t o = 0;
	int rc;

	*out = NULL;
	if (why) {
		/* Quote a bounded prefix so the reason always fits the message. */
		rc = lfsfs_error_set(-EINVAL, "refusing path '%.*s%s': %s", QUOTE_MAX, in ? in : "",
		                     in && strlen(in) > QUOTE_MAX ? "..." : "", why);
		goto out;
	}
	/* The result is never longer than the input. */
	res = malloc(strlen(in) + 1);
	if (!res) {
		rc = -ENOMEM;
		goto out;
	}
	for (s = in; *s;) {
		size_t n = comp_len(s);

		if (n && !(n == 1 && s[0] == '.')) {
			if (o)
				res[o++] = '/';
			memcpy(res + o, s, n);
			o += n;
		}
		s += n;
		while (*s == '/')
			s++;
	}
	res[o] = '\0';
	*out = res;
	res = NULL;
	rc = 0;
out:
	free(res);
	return rc;
}

char *lfsfs_path_join(const char *dir, const char *rel)
{
	size_t dl = strlen(dir), rl = strlen(rel);
	int sep;
	char *s;

	/* "dir/" + "/x" must not give "dir//x". */
	while (rl && *rel == '/' && dl) {
		rel++;
		rl--;
	}
	sep = dl && rl && dir[dl - 1] != '/';
	s = malloc(dl + (size_t)sep + rl + 1);
	if (!s)
		return NULL;
	memcpy(s, dir, dl);
	if (sep)
		s[dl] = '/';
	memcpy(s + dl + sep, rel, rl);
	s[dl + sep + rl] = '\0';
	return s;
}

char *lfsfs_path_absolute(const char *path)
{
	char cwd[4096], *joined, *out, *w;
	const char *p;

	if (path[0] == '/') {
		joined = strdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return NULL;
		joined = lfsfs_path_join(cwd, path);
	}
	if (!joined)
		return NULL;
	out = malloc(strlen(joined) + 2);
	if (!out) {
		free(joined);
		return NULL;
	}
	/* collapse "//", "/./" and "/x/../" */
	w = out;
	for (p = joined; *p;) {
		const char *seg;
		size_t len;
		while (*p == '/')
			p++;
		seg = p;
		while (*p && *p != '/')
			p++;
		len = (size_t)(p - seg);
		if (len == 0 || (len == 1 && seg[0] == '.'))
			continue;
		if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			while (w > out && *--w != '/')
				;
			continue;
		}
		*w++ = '/';
		memcpy(w, seg, len);
		w += len;
	}
	if (w == out)
		*w++ = '/';
	*w = '\0';
	free(joined);
	return out;
}

int lfsfs_find_gitdir(const char *repo, char **out)
{
	char *p = lfsfs_path_join(repo, ".git");
	struct stat sb;
	char buf[4096];
	int fd;
	ssize_t n;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	if (stat(p, &sb)) {
		free(p);
		return lfsfs_error_set(-ENOENT, "'%s' is not a git repository (no .git); pass the "
		                       "top of a git working tree", repo);
	}
	if (S_ISDIR(sb.st_mode)) {
		*out = p;
		return 0;
	}
	/* a worktree or submodule: ".git" is a file "gitdir: PATH" */
	fd = open(p, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	free(p);
	if (n <= 8 || strncmp(buf, "gitdir: ", 8))
		return lfsfs_error_set(-EINVAL, "'%s/.git' is neither a directory nor a gitdir "
		                       "file", repo);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[8] == '/')
		*out = strdup(buf + 8);
	else
		*out = lfsfs_path_join(repo, buf + 8);
	return *out ? 0 : -ENOMEM;
}
