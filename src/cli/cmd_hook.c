/* `lfsfs hook pre-commit|pre-push`: the hint cache at commit, the authoritative check at push (seed 003). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lfsfs/error.h"
#include "lfsfs/pointer.h"
#include "meta/hintcache.h"
#include "net/net.h"
#include "resolve/resolve.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/log.h"

static const char hook_usage[] =
        "usage: lfsfs hook pre-commit [--full] [-v]\n"
        "       lfsfs hook pre-push [-v] [REMOTE [URL]] < ref-update-lines\n"
        "\n"
        "The git hooks 'lfsfs install' sets up (docs/HOOKS.md).\n"
        "\n"
        "pre-commit  records which Git LFS pointer is staged at which path in the\n"
        "            local hint cache .git/drs/pre-commit/v1/ (follows renames,\n"
        "            deletions and content changes; no network).  A file is in scope\n"
        "            only if its staged content is a Git LFS pointer.  Problems with\n"
        "            the cache are warnings: the commit goes on.\n"
        "  --full    reconcile with the whole index (done anyway when the cache is\n"
        "            new, or HEAD moved without the hook: checkout, --no-verify)\n"
        "\n"
        "pre-push    reads git's '<local ref> <local sha> <remote ref> <remote sha>'\n"
        "            lines, finds every pointer in the commits being pushed and asks\n"
        "            the DRS/Indexd server (resolvers drs,indexd: lfsfs.drs.url,\n"
        "            lfsfs.indexd.url) about each oid.  Refuses the push when an object\n"
        "            is not registered, when a cached hint URL disagrees with the\n"
        "            server, or when the server cannot be reached.  No server\n"
        "            configured: a warning, and the push goes on.\n"
        "\n"
        "  -v, --verbose  say what was done\n"
        "\n"
        "Environment: LFSFS_PRE_COMMIT=skip skips the pre-commit hook;\n"
        "LFSFS_PRE_PUSH=skip skips the push check, LFSFS_PRE_PUSH=warn reports\n"
        "without refusing.\n";

/* git's "no object" id: all zeros (40 or 64 digits) */
static int null_sha(const char *sha)
{
	return sha[0] && strspn(sha, "0") == strlen(sha);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	fputs("lfsfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void warn_cb(const char *msg, void *ctx)
{
	note("%s: warning: %s", (const char *)ctx, msg);
}

/* The last line of git's stderr, for messages. */
static const char *git_said(struct lfsfs_buf *err)
{
	char *p;

	if (!err->data || !err->len)
		return "no message";
	while (err->len && (err->data[err->len - 1] == '\n' || err->data[err->len - 1] == '\r'))
		err->data[--err->len] = '\0';
	p = strrchr(err->data, '\n');
	return p ? p + 1 : err->data;
}

/* Run git; 0 when it exited 0.  Otherwise a message naming the command. */
static int git(const char *const *argv, const void *in, size_t inlen, struct lfsfs_buf *out)
{
	struct lfsfs_buf err = LFSFS_BUF_INIT(1 << 16);
	int st, rc = lfsfs_git_run(NULL, argv, in, inlen, out, &err, &st);

	if (!rc && st)
		rc = lfsfs_error_set(-EIO, "'git %s' failed (exit %d): %s", argv[0], st,
		                     git_said(&err));
	lfsfs_buf_release(&err);
	return rc;
}

/* Trim one trailing newline and return a malloc'd copy of the first line. */
static char *first_line(const char *s, size_t skip_lines)
{
	while (s && skip_lines--) {
		s = strchr(s, '\n');
		s = s ? s + 1 : NULL;
	}
	if (!s)
		return NULL;
	return strndup(s, strcspn(s, "\n"));
}

struct repo {
	char *gitdir; /* absolute */
	char *top;    /* absolute working tree, NULL for a bare repository */
};

static void repo_release(struct repo *r)
{
	free(r->gitdir);
	free(r->top);
}

static int repo_find(struct repo *r)
{
	static const char *const both[] = { "rev-parse", "--absolute-git-dir", "--show-toplevel",
		                            NULL };
	static const char *const dir[] = { "rev-parse", "--absolute-git-dir", NULL };
	struct lfsfs_buf out = LFSFS_BUF_INIT(1 << 16);
	int rc = git(both, NULL, 0, &out);

	memset(r, 0, sizeof(*r));
	if (!rc) {
		r->gitdir = first_line(out.data, 0);
		r->top = first_line(out.data, 1);
	} else {
		lfsfs_buf_reset(&out);
		rc = git(dir, NULL, 0, &out); /* a bare repository */
		if (!rc)
			r->gitdir = first_line(out.data, 0);
	}
	if (!rc && (!r->gitdir || !*r->gitdir))
		rc = lfsfs_error_set(-EIO, "'git rev-parse' printed no git directory");
	if (r->top && !*r->top) {
		free(r->top);
		r->top = NULL;
	}
	lfsfs_buf_release(&out);
	if (rc)
		repo_release(r);
	return rc;
}

/* ------------------------------------------------------------ pointers in blobs */

struct blob {
	const char *sha;                 /* hex object id (borrowed) */
	const char *path;                /* where it was seen (borrowed) */
	char oid[LFSFS_OID_HEX_LEN + 1]; /* "" unless the blob is a pointer */
	uint64_t size;                   /* the pointer's object size */
};

static int hexlen(const char *s)
{
	int n = 0;

	while ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))
		n++;
	return n;
}

/*
 * Fill oid/size of every blob that is a Git LFS pointer: one `cat-file
 * --batch-check` for types and sizes, one `cat-file --batch` for the
 * contents of the blobs small enough to be pointers.  A staged or pushed
 * object git does not have is a broken repository: -EIO.
 */
static int read_pointers(struct blob *b, size_t n)
{
	static const char *const check[] = { "cat-file", "--batch-check", NULL };
	static const char *const batch[] = { "cat-file", "--batch", NULL };
	struct lfsfs_buf in = LFSFS_BUF_INIT(0), out = LFSFS_BUF_INIT(0);
	size_t *small = NULL, n_small = 0;
	const char *p, *end;
	int rc = 0;

	if (!n)
		return 0;
	small = calloc(n, sizeof(*small));
	if (!small)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++)
		rc = lfsfs_buf_printf(&in, "%s\n", b[i].sha);
	if (!rc)
		rc = git(check, in.data, in.len, &out);
	/* "<sha> <type> <size>" or "<sha> missing", in input order */
	p = out.data;
	end = out.data + out.len;
	for (size_t i = 0; i < n && !rc; i++) {
		const char *nl = p ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		char type[16];
		unsigned long long size;
		if (!nl) {
			rc = lfsfs_error_set(-EIO, "'git cat-file --batch-check' stopped early");
			break;
		}
		if (sscanf(p, "%*s %15s %llu", type, &size) == 2) {
			if (!strcmp(type, "blob") && size > 0 && size < LFSFS_POINTER_MAX_LEN)
				small[n_small++] = i;
		} else if (sscanf(p, "%*s %15s", type) == 1 && !strcmp(type, "missing")) {
			rc = lfsfs_error_set(-EIO,
			                     "object %s ('%s') is missing from the repository; "
			                     "run 'git fsck'",
			                     b[i].sha, b[i].path ? b[i].path : "");
		}
		p = nl + 1;
	}
	lfsfs_buf_reset(&in);
	lfsfs_buf_reset(&out);
	if (rc || !n_small)
		goto out;
	for (size_t k = 0; k < n_small && !rc; k++)
		rc = lfsfs_buf_printf(&in, "%s\n", b[small[k]].sha);
	if (!rc)
		rc = git(batch, in.data, in.len, &out);
	/* "<sha> blob <size>\n<content>\n" */
	p = out.data;
	end = out.data + out.len;
	for (size_t k = 0; k < n_small && !rc; k++) {
		struct blob *bl = &b[small[k]];
		struct lfsfs_pointer ptr;
		const char *nl = p ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		unsigned long long size;
		if (!nl || sscanf(p, "%*s %*s %llu", &size) != 1 ||
		    size > (unsigned long long)(end - nl - 1)) {
			rc = lfsfs_error_set(-EIO,
			                     "'git cat-file --batch' printed something unexpected");
			break;
		}
		if (!lfsfs_pointer_parse(nl + 1, (size_t)size, &ptr)) {
			memcpy(bl->oid, ptr.oid, sizeof(bl->oid));
			bl->size = ptr.size;
		}
		p = nl + 1 + size + 1;
		if (p > end)
			p = end;
	}
	lfsfs_error_clear();
out:
	free(small);
	lfsfs_buf_release(&in);
	lfsfs_buf_release(&out);
	return rc;
}

/* 1 if s is well-formed UTF-8 (the cache stores paths as JSON strings). */
static int utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		int n;
		unsigned c = *p;
		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		else
			return 0;
		for (int i = 1; i <= n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		p += n + 1;
	}
	return 1;
}

/* ------------------------------------------------------------ pre-commit */

/* One line of `git diff-index --raw -z`. */
struct dentry {
	char status;
	const char *old_mode, *new_mode;
	char old_sha[65], new_sha[65];
	const char *path;             /* new side (or the only path) */
	const char *old_path;         /* renames: the old side */
	ptrdiff_t old_blob, new_blob; /* index into the blob list, -1 none */
};

static int regular_mode(const char *mode)
{
	return !strncmp(mode, "100", 3);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct precommit {
	struct lfsfs_buf diff, ls;
	struct dentry *d;
	size_t nd;
	struct blob *blobs;
	size_t nb, ab;
	struct lfsfs_hint_change *ch;
	size_t nch, ach;
	size_t skipped_utf8;
};

static ptrdiff_t add_blob(struct precommit *pc, const char *sha, const char *path)
{
	if (pc->nb == pc->ab) {
		size_t na = pc->ab ? pc->ab * 2 : 256;
		struct blob *nb = realloc(pc->blobs, na * sizeof(*nb));
		if (!nb)
			return -2;
		pc->blobs = nb;
		pc->ab = na;
	}
	memset(&pc->blobs[pc->nb], 0, sizeof(pc->blobs[0]));
	pc->blobs[pc->nb].sha = sha;
	pc->blobs[pc->nb].path = path;
	return (ptrdiff_t)pc->nb++;
}

/* Parse `git diff-index --cached -M --raw -z` output in pc->diff. */
static int parse_diff(struct precommit *pc)
{
	char *p = pc->diff.data, *end = pc->diff.data + pc->diff.len;
	size_t cap = 0;

	while (p && p < end) {
		struct dentry e = { .old_blob = -1, .new_blob = -1 };
		char *f[5], *hdr = p;
		size_t hl = strnlen(p, (size_t)(end - p));
		int nf = 0;

		if (hl == (size_t)(end - p) || *hdr != ':')
			return lfsfs_error_set(-EIO,
			                       "'git diff-index' printed something unexpected");
		p += hl + 1;
		/* ":<old mode> <new mode> <old sha> <new sha> <status>" */
		for (char *q = hdr + 1; q && *q && nf < 5;) {
			f[nf++] = q;
			q = strchr(q, ' ');
			if (q)
				*q++ = '\0';
		}
		if (nf != 5 || hexlen(f[2]) < 40 || hexlen(f[3]) < 40)
			return lfsfs_error_set(-EIO,
			                       "'git diff-index' printed something unexpected");
		e.old_mode = f[0];
		e.new_mode = f[1];
		snprintf(e.old_sha, sizeof(e.old_sha), "%s", f[2]);
		snprintf(e.new_sha, sizeof(e.new_sha), "%s", f[3]);
		e.status = f[4][0];
		if (p >= end)
			return lfsfs_error_set(-EIO,
			                       "'git diff-index' printed something unexpected");
		e.path = p;
		p += strnlen(p, (size_t)(end - p)) + 1;
		if (e.status == 'R' || e.status == 'C') {
			if (p >= end)
				return lfsfs_error_set(
				        -EIO, "'git diff-index' printed something unexpected");
			e.old_path = e.path;
			e.path = p;
			p += strnlen(p, (size_t)(end - p)) + 1;
		}
		if (pc->nd == cap) {
			size_t nc = cap ? cap * 2 : 256;
			struct dentry *nd = realloc(pc->d, nc * sizeof(*nd));
			if (!nd)
				return -ENOMEM;
			pc->d = nd;
			cap = nc;
		}
		pc->d[pc->nd++] = e;
	}
	return 0;
}

static int add_change(struct precommit *pc, enum lfsfs_hint_op op, const char *path,
                      const char *old_path, const char *oid, const char *prev_oid)
{
	if (!utf8_valid(path) || (old_path && !utf8_valid(old_path))) {
		pc->skipped_utf8++;
		return 0;
	}
	if (pc->nch == pc->ach) {
		size_t nc = pc->ach ? pc->ach * 2 : 256;
		struct lfsfs_hint_change *n = realloc(pc->ch, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		pc->ch = n;
		pc->ach = nc;
	}
	pc->ch[pc->nch++] = (struct lfsfs_hint_change){
		.op = op,
		.path = path,
		.old_path = old_path,
		.oid = oid,
		.prev_oid = prev_oid ? prev_oid : "",
	};
	return 0;
}

static const char *blob_oid(struct precommit *pc, ptrdiff_t i)
{
	return i >= 0 && pc->blobs[i].oid[0] ? pc->blobs[i].oid : NULL;
}

/* Turn the diff (and in full mode the index) into hint cache changes. */
static int build_changes(struct precommit *pc, int full)
{
	int rc = 0;

	for (size_t i = 0; i < pc->nd && !rc; i++) {
		struct dentry *e = &pc->d[i];
		const char *o = blob_oid(pc, e->old_blob), *nw = blob_oid(pc, e->new_blob);
		switch (e->status) {
		case 'A':
		case 'M':
		case 'T':
			if (nw)
				rc = add_change(pc, LFSFS_HINT_UPSERT, e->path, NULL, nw, o);
			else if (e->status != 'A')
				/* no longer a pointer: the path leaves the scope */
				rc = add_change(pc, LFSFS_HINT_DELETE, e->path, NULL, NULL, o);
			break;
		case 'D':
			rc = add_change(pc, LFSFS_HINT_DELETE, e->path, NULL, NULL, o);
			break;
		case 'R':
			if (o && nw) {
				rc = add_change(pc, LFSFS_HINT_RENAME, e->path, e->old_path, nw, o);
			} else {
				rc = add_change(pc, LFSFS_HINT_DELETE, e->old_path, NULL, NULL, o);
				if (!rc && nw)
					rc = add_change(pc, LFSFS_HINT_UPSERT, e->path, NULL, nw,
					                NULL);
			}
			break;
		case 'C':
			if (nw)
				rc = add_change(pc, LFSFS_HINT_UPSERT, e->path, NULL, nw, NULL);
			break;
		default: /* U (unmerged), X: nothing staged to learn from */
			break;
		}
	}
	if (rc || !full)
		return rc;
	/* full: every staged pointer the diff did not mention (collect_index
	 * already left out the paths the diff names) */
	for (size_t i = 0; i < pc->nb && !rc; i++) {
		struct blob *b = &pc->blobs[i];
		if (b->oid[0] && b->path >= pc->ls.data && b->path < pc->ls.data + pc->ls.len)
			rc = add_change(pc, LFSFS_HINT_UPSERT, b->path, NULL, b->oid, NULL);
	}
	return rc;
}

/* The index's stage-0 regular files (`git ls-files -s -z`) as blobs, but
 * for the paths the diff already names (their blobs are read once). */
static int collect_index(struct precommit *pc)
{
	char *p = pc->ls.data, *end = pc->ls.data + pc->ls.len;
	const char **seen = malloc((pc->nd + 1) * sizeof(*seen));
	size_t nseen = 0;
	int rc = 0;

	if (!seen)
		return -ENOMEM;
	for (size_t i = 0; i < pc->nd; i++)
		seen[nseen++] = pc->d[i].path;
	qsort(seen, nseen, sizeof(*seen), cmp_str);

	while (p && p < end && !rc) {
		size_t len = strnlen(p, (size_t)(end - p));
		char *tab = memchr(p, '\t', len), *sp, *path;
		char *rec = p;

		p += len + 1;
		if (!tab) {
			rc = lfsfs_error_set(-EIO, "'git ls-files' printed something unexpected");
			break;
		}
		*tab = '\0';
		path = tab + 1;
		/* "<mode> <sha> <stage>" */
		sp = strchr(rec, ' ');
		if (!sp || !regular_mode(rec) || strcmp(tab - 2, " 0") ||
		    bsearch(&path, seen, nseen, sizeof(*seen), cmp_str))
			continue;
		tab[-2] = '\0';
		if (add_blob(pc, sp + 1, path) < -1)
			rc = -ENOMEM;
	}
	free(seen);
	return rc;
}

/* DELETE every cached path that is not a staged pointer (full runs). */
static int prune_changes(struct precommit *pc, char **cached, size_t n)
{
	const char **keep;
	size_t nk = 0;
	int rc = 0;

	if (!n)
		return 0;
	keep = malloc((pc->nb + 1) * sizeof(*keep));
	if (!keep)
		return -ENOMEM;
	for (size_t i = 0; i < pc->nb; i++)
		if (pc->blobs[i].oid[0] && pc->blobs[i].path && pc->blobs[i].path >= pc->ls.data &&
		    pc->blobs[i].path < pc->ls.data + pc->ls.len)
			keep[nk++] = pc->blobs[i].path;
	qsort(keep, nk, sizeof(*keep), cmp_str);
	for (size_t i = 0; i < n && !rc; i++) {
		const char *p = cached[i];
		if (!bsearch(&p, keep, nk, sizeof(*keep), cmp_str))
			rc = add_change(pc, LFSFS_HINT_DELETE, p, NULL, NULL, NULL);
	}
	free(keep);
	return rc;
}

/* Did the last run (which saw `last`, NULL = no commit yet) lead to HEAD
 * ("H P1 P2..." in parents, NULL = no commit yet)? */
static int head_follows(const char *last, const char *head, const char *parents)
{
	size_t ll = last ? strlen(last) : 0;

	if (!head)
		return !last;
	if (!last) /* the first commit: HEAD has no parents */
		return !strchr(parents, ' ');
	for (const char *p = parents; p && *p;) {
		size_t len = strcspn(p, " ");
		if (len == ll && !strncmp(p, last, ll))
			return 1;
		p += len;
		p += *p == ' ';
	}
	return 0;
}

static void precommit_release(struct precommit *pc)
{
	lfsfs_buf_release(&pc->diff);
	lfsfs_buf_release(&pc->ls);
	free(pc->d);
	free(pc->blobs);
	free(pc->ch);
}

static int hook_pre_commit(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "full", no_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const head_argv[] = { "rev-list", "--parents", "-n", "1",
		                                 "HEAD",     "--",        NULL };
	static const char *const empty_tree_argv[] = { "hash-object", "-t", "tree", "/dev/null",
		                                       NULL };
	static const char *const ls_argv[] = { "ls-files", "-s", "-z", NULL };
	struct precommit pc = { .diff = LFSFS_BUF_INIT(0), .ls = LFSFS_BUF_INIT(0) };
	struct lfsfs_buf tmp = LFSFS_BUF_INIT(1 << 16);
	struct lfsfs_hint_stats st;
	struct repo repo = { 0 };
	char now[LFSFS_HINT_TIME_LEN + 1], *head = NULL, *base = NULL, *parents = NULL;
	char *state_head = NULL, **cached = NULL;
	const char *why_full = NULL;
	size_t n_cached = 0;
	const char *skip = getenv("LFSFS_PRE_COMMIT");
	int c, full = 0, verbose = 0, rc, ret = EXIT_FAIL, st_git;
	double t0 = now_ms();

	optind = 1;
	while ((c = getopt_long(argc, argv, "+vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'F':
			full = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(hook_usage, stdout);
			return EXIT_OK;
		default:
			fputs(hook_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (skip && !strcmp(skip, "skip")) {
		if (verbose)
			note("pre-commit: LFSFS_PRE_COMMIT=skip: hint cache not updated");
		return EXIT_OK;
	}
	if ((rc = repo_find(&repo))) {
		cli_error("pre-commit: not in a usable git repository: %s", lfsfs_error_message());
		return EXIT_FAIL;
	}
	/* HEAD and its parents ("H P1 P2..."), or nothing before the first commit */
	if (!lfsfs_git_run(NULL, head_argv, NULL, 0, &tmp, NULL, &st_git) && !st_git &&
	    (parents = first_line(tmp.data, 0))) {
		head = strndup(parents, strcspn(parents, " "));
		if (!head) {
			rc = -ENOMEM;
			goto broken;
		}
	}
	lfsfs_buf_reset(&tmp);
	if (!head) {
		if ((rc = git(empty_tree_argv, NULL, 0, &tmp)))
			goto broken;
		base = first_line(tmp.data, 0);
	} else {
		base = strdup(head);
	}
	if (!base) {
		rc = -ENOMEM;
		goto broken;
	}
	{
		const char *const diff_argv[] = { "diff-index", "--cached",    "-M", "--raw",
			                          "-z",         "--no-abbrev", base, NULL };
		if ((rc = git(diff_argv, NULL, 0, &pc.diff)) || (rc = parse_diff(&pc)))
			goto broken;
	}
	/*
	 * Incremental (HEAD vs index) when the last run saw this HEAD or its
	 * parent (a commit made, or a commit attempt repeated).  A new or
	 * deleted cache, or a HEAD that moved some other way (checkout, reset,
	 * a commit made with --no-verify) is reconciled with the whole index.
	 */
	if (full) {
		why_full = "--full";
	} else if (lfsfs_hint_read_state(repo.gitdir, &state_head)) {
		full = 1;
		why_full = "new cache";
	} else if (!head_follows(state_head, head, parents)) {
		full = 1;
		why_full = "HEAD moved";
	}
	/* blobs to look at: both sides of each change, regular files only */
	for (size_t i = 0; i < pc.nd; i++) {
		struct dentry *e = &pc.d[i];
		if (regular_mode(e->old_mode) && !null_sha(e->old_sha))
			e->old_blob =
			        add_blob(&pc, e->old_sha, e->old_path ? e->old_path : e->path);
		if (regular_mode(e->new_mode) && !null_sha(e->new_sha) && e->status != 'D' &&
		    e->status != 'U')
			e->new_blob = add_blob(&pc, e->new_sha, e->path);
		if (e->old_blob < -1 || e->new_blob < -1) {
			rc = -ENOMEM;
			goto broken;
		}
	}
	if (full) {
		if ((rc = git(ls_argv, NULL, 0, &pc.ls)) || (rc = collect_index(&pc)))
			goto broken;
	}
	if ((rc = read_pointers(pc.blobs, pc.nb)))
		goto broken;
	if ((rc = build_changes(&pc, full))) {
		cli_error("pre-commit: %s", strerror(-rc));
		goto out;
	}
	/* a full run also forgets cached paths that are not staged pointers */
	if (full && !lfsfs_hint_list_paths(repo.gitdir, &cached, &n_cached) &&
	    (rc = prune_changes(&pc, cached, n_cached))) {
		cli_error("pre-commit: %s", strerror(-rc));
		goto out;
	}
	if (pc.skipped_utf8)
		note("pre-commit: warning: %zu path(s) are not UTF-8 and are left out of the hint "
		     "cache",
		     pc.skipped_utf8);
	lfsfs_hint_time((int64_t)time(NULL), now);
	rc = lfsfs_hint_apply(repo.gitdir, pc.ch, pc.nch, now, &st, warn_cb, "pre-commit");
	if (!rc)
		rc = lfsfs_hint_write_state(repo.gitdir, now, head, full ? "full" : "incremental",
		                            &st, now_ms() - t0);
	if (rc) {
		/* advisory cache: never the reason a commit fails */
		note("pre-commit: warning: hint cache %s/%s not updated: %s; the commit goes on "
		     "(delete the directory to have it rebuilt)",
		     repo.gitdir, LFSFS_HINT_DIR,
		     rc == -ENOMEM ? strerror(ENOMEM) : lfsfs_error_message());
		ret = EXIT_OK;
		goto out;
	}
	if (verbose)
		note("pre-commit: %s: %zu change(s): %zu path(s) written, %zu removed, %zu oid "
		     "record(s) written, %zu rename(s), %zu content change(s), %zu tombstone(s) "
		     "in %.1f ms",
		     full ? why_full : "incremental", pc.nch, st.paths_written, st.paths_removed,
		     st.oids_written, st.renames, st.content_changes, st.tombstones, now_ms() - t0);
	ret = EXIT_OK;
	goto out;
broken:
	cli_error("pre-commit: cannot read the staged changes: %s; fix the repository (see "
	          "'git status', 'git fsck') and commit again",
	          rc == -ENOMEM ? strerror(ENOMEM) : lfsfs_error_message());
	ret = EXIT_FAIL;
out:
	precommit_release(&pc);
	lfsfs_buf_release(&tmp);
	repo_release(&repo);
	lfsfs_hint_paths_free(cached, n_cached);
	free(head);
	free(parents);
	free(state_head);
	free(base);
	return ret;
}

/* ------------------------------------------------------------ pre-push */

enum verdict {
	V_UNKNOWN = 0,
	V_REGISTERED,
	V_UNREGISTERED,
	V_ERROR
};

struct pushobj {
	char oid[LFSFS_OID_HEX_LEN + 1];
	uint64_t size;
	const char *path;
	enum verdict v;
	const char *by; /* resolver that knows it */
	char **urls;    /* the server's URLs (owned) */
	size_t n_urls;
	char *hint;  /* hint cache URL that disagrees (owned), or NULL */
	char *error; /* why it could not be checked (owned) */
};

static int cmp_pushobj(const void *a, const void *b)
{
	return strcmp(((const struct pushobj *)a)->oid, ((const struct pushobj *)b)->oid);
}

static int cmp_blob_sha(const void *a, const void *b)
{
	return strcmp(((const struct blob *)a)->sha, ((const struct blob *)b)->sha);
}

static void take_urls(struct pushobj *o, struct lfsfs_record *rec, const char *by)
{
	o->v = V_REGISTERED;
	o->by = by;
	o->urls = rec->urls;
	o->n_urls = rec->n_urls;
	rec->urls = NULL;
	rec->n_urls = 0;
}

/* A server that cannot answer outweighs one that does not know the object:
 * the object may be registered there. */
static void set_error(struct pushobj *o, int rc)
{
	o->v = V_ERROR;
	if (!o->error)
		o->error = strdup(*lfsfs_error_message() ? lfsfs_error_message() :
		                                           lfsfs_code_name(rc));
}

/*
 * Ask one resolver about every object not known to be registered yet: its
 * bulk lookup first when it has one (a speed-up only: what it leaves empty
 * may still be registered), then one query per object left, which tells
 * "not registered" (-ENOENT) from "could not ask".
 */
static void ask(struct lfsfs_resolver *r, struct pushobj *o, size_t n)
{
	size_t pending = 0;

	for (size_t i = 0; i < n; i++)
		pending += o[i].v != V_REGISTERED;
	if (!pending)
		return;
	if (r->ops->resolve_batch) {
		struct lfsfs_resolve_query *q = calloc(pending, sizeof(*q));
		struct lfsfs_record *rec = calloc(pending, sizeof(*rec));
		size_t *idx = calloc(pending, sizeof(*idx)), k = 0;
		if (q && rec && idx) {
			for (size_t i = 0; i < n; i++) {
				if (o[i].v == V_REGISTERED)
					continue;
				q[k] = (struct lfsfs_resolve_query){ .oid = o[i].oid,
					                             .path = o[i].path,
					                             .size = o[i].size };
				idx[k++] = i;
			}
			r->ops->resolve_batch(r, q, pending, rec);
			for (k = 0; k < pending; k++) {
				if (rec[k].n_urls)
					take_urls(&o[idx[k]], &rec[k], r->ops->name);
				lfsfs_record_release(&rec[k]);
			}
		}
		free(q);
		free(rec);
		free(idx);
		lfsfs_error_clear();
	}
	for (size_t i = 0; i < n; i++) {
		struct lfsfs_resolve_query q = { .oid = o[i].oid,
			                         .path = o[i].path,
			                         .size = o[i].size };
		struct lfsfs_buf why = LFSFS_BUF_INIT(4096);
		struct lfsfs_record rec;
		int rc;

		if (o[i].v == V_REGISTERED)
			continue;
		memset(&rec, 0, sizeof(rec));
		lfsfs_error_clear();
		rc = r->ops->resolve(r, &q, &rec, &why);
		if (!rc) {
			take_urls(&o[i], &rec, r->ops->name);
		} else if (rc == -ENOENT) {
			if (o[i].v == V_UNKNOWN)
				o[i].v = V_UNREGISTERED;
		} else {
			set_error(&o[i], rc);
		}
		lfsfs_record_release(&rec);
		lfsfs_buf_release(&why);
	}
}

/* a and b name the same object location (query strings aside: signed URLs). */
static int same_url(const char *a, const char *b)
{
	size_t la = strcspn(a, "?#"), lb = strcspn(b, "?#");

	if (!strcmp(a, b))
		return 1;
	while (la && a[la - 1] == '/')
		la--;
	while (lb && b[lb - 1] == '/')
		lb--;
	return la == lb && !strncmp(a, b, la);
}

static const char *redact(const char *url, char *buf, size_t cap)
{
	return lfsfs_redact(url, buf, cap);
}

static void print_override(const char *remote)
{
	fprintf(stderr,
	        "  to push anyway: LFSFS_PRE_PUSH=skip git push %s ...   (git-lfs's own pre-push "
	        "still runs;\n"
	        "  'git push --no-verify' skips every pre-push hook, git-lfs's upload included)\n",
	        remote ? remote : "REMOTE");
}

/* The objects being pushed, from git's ref lines on stdin. */
static int push_blobs(const char *remote, char *lines, struct lfsfs_buf *objs, size_t *nref)
{
	int rc = 0;

	*nref = 0;
	for (char *line = lines, *next; line && *line && !rc; line = next) {
		char lref[1024], lsha[80], rref[1024], rsha[80];
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line)
			continue;
		if (sscanf(line, "%1023s %79s %1023s %79s", lref, lsha, rref, rsha) != 4 ||
		    hexlen(lsha) < 40 || hexlen(rsha) < 40)
			return lfsfs_error_set(
			        -EINVAL,
			        "cannot parse the ref line '%.200s' (git gives '<local "
			        "ref> <local sha> <remote ref> <remote sha>')",
			        line);
		if (null_sha(lsha))
			continue; /* a deletion pushes nothing */
		(*nref)++;
		{
			const char *kv[] = { "cat-file", "-e", rsha, NULL };
			char remotes[1100];
			const char *not_arg = rsha;
			int st;
			/* a new branch, or a remote tip this clone does not have:
			 * everything not on the remote's tracking refs */
			if (null_sha(rsha) || lfsfs_git_run(NULL, kv, NULL, 0, NULL, NULL, &st) ||
			    st) {
				if (remote && *remote)
					snprintf(remotes, sizeof(remotes), "--remotes=%s", remote);
				else
					snprintf(remotes, sizeof(remotes), "--remotes");
				not_arg = remotes;
			}
			const char *rl[] = {
				"rev-list", "--objects", lsha, "--not", not_arg, NULL
			};
			rc = git(rl, NULL, 0, objs);
		}
	}
	return rc;
}

static int read_stdin(struct lfsfs_buf *b)
{
	char tmp[65536];
	int rc = 0;

	for (;;) {
		ssize_t n = read(0, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if ((rc = lfsfs_buf_append(b, tmp, (size_t)n)))
			return rc;
	}
	return lfsfs_buf_append(b, "", 0);
}

static int hook_pre_push(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct lfsfs_buf in = LFSFS_BUF_INIT(16 << 20), objs = LFSFS_BUF_INIT(0);
	struct repo repo = { 0 };
	struct blob *b = NULL;
	struct pushobj *o = NULL;
	struct lfsfs_config *cfg = NULL;
	struct lfsfs_net *net = NULL;
	struct lfsfs_resolve_ctx ctx;
	const char *mode = getenv("LFSFS_PRE_PUSH"), *remote = NULL;
	size_t nb = 0, ab = 0, no = 0, nref = 0, n_unreg = 0, n_err = 0, n_hint = 0;
	int c, verbose = 0, rc, ret = EXIT_FAIL, warn_only, have_ctx = 0;
	char red[2048];

	optind = 1;
	while ((c = getopt_long(argc, argv, "+vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(hook_usage, stdout);
			return EXIT_OK;
		default:
			fputs(hook_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		remote = argv[optind];
	if (mode && !strcmp(mode, "skip")) {
		note("pre-push: LFSFS_PRE_PUSH=skip: LFS objects not checked against the DRS/Indexd "
		     "server");
		return EXIT_OK;
	}
	warn_only = mode && !strcmp(mode, "warn");
	if (mode && *mode && !warn_only && strcmp(mode, "check")) {
		cli_error("pre-push: LFSFS_PRE_PUSH='%s' is not one of check, warn, skip", mode);
		return EXIT_USAGE;
	}
	if ((rc = read_stdin(&in))) {
		cli_error("pre-push: cannot read the ref lines on stdin: %s", strerror(-rc));
		return EXIT_FAIL;
	}
	if ((rc = repo_find(&repo))) {
		cli_error("pre-push: not in a usable git repository: %s", lfsfs_error_message());
		return EXIT_FAIL;
	}
	if ((rc = push_blobs(remote, in.data, &objs, &nref))) {
		cli_error("pre-push: cannot list the objects being pushed: %s",
		          lfsfs_error_message());
		goto out;
	}
	/* "<sha> <path>" for trees and blobs ("<sha>" alone for commits) */
	for (char *p = objs.data, *next; p && *p; p = next) {
		char *sp;
		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		sp = strchr(p, ' ');
		if (!sp)
			continue;
		*sp = '\0';
		if (nb == ab) {
			size_t na = ab ? ab * 2 : 1024;
			struct blob *nbp = realloc(b, na * sizeof(*b));
			if (!nbp) {
				cli_error("pre-push: %s", strerror(ENOMEM));
				goto out;
			}
			b = nbp;
			ab = na;
		}
		b[nb++] = (struct blob){ .sha = p, .path = sp + 1 };
	}
	if (nb) {
		size_t k = 0;
		qsort(b, nb, sizeof(*b), cmp_blob_sha);
		for (size_t i = 0; i < nb; i++)
			if (!k || strcmp(b[k - 1].sha, b[i].sha))
				b[k++] = b[i];
		nb = k;
	}
	if ((rc = read_pointers(b, nb))) {
		cli_error("pre-push: cannot read the objects being pushed: %s",
		          lfsfs_error_message());
		goto out;
	}
	o = calloc(nb + 1, sizeof(*o));
	if (!o) {
		cli_error("pre-push: %s", strerror(ENOMEM));
		goto out;
	}
	for (size_t i = 0; i < nb; i++) {
		if (!b[i].oid[0])
			continue;
		memcpy(o[no].oid, b[i].oid, sizeof(o[no].oid));
		o[no].size = b[i].size;
		o[no].path = b[i].path;
		no++;
	}
	if (no) {
		size_t k = 0;
		qsort(o, no, sizeof(*o), cmp_pushobj);
		for (size_t i = 0; i < no; i++)
			if (!k || strcmp(o[k - 1].oid, o[i].oid))
				o[k++] = o[i];
		no = k;
	}
	if (!no) {
		if (verbose)
			note("pre-push: no Git LFS pointers in %zu ref update(s): nothing to check",
			     nref);
		ret = EXIT_OK;
		goto out;
	}
	/* only the authoritative resolvers: local records are hints, not truth */
	if ((rc = lfsfs_config_load(repo.top ? repo.top : repo.gitdir, &cfg))) {
		cli_error("pre-push: cannot read lfsfs settings: %s", strerror(-rc));
		goto out;
	}
	{
		const char *du = lfsfs_config_get(cfg, "lfsfs.drs.url");
		const char *iu = lfsfs_config_get(cfg, "lfsfs.indexd.url");
		int have_drs = du && *du, have_indexd = iu && *iu;
		if (!have_drs && !have_indexd) {
			note("pre-push: warning: no DRS or Indexd server is configured (set "
			     "lfsfs.drs.url or lfsfs.indexd.url): %zu Git LFS object(s) pushed "
			     "without checking their registration",
			     no);
			ret = EXIT_OK;
			goto out;
		}
		rc = lfsfs_config_set(cfg, "lfsfs.resolvers",
		                      have_drs && have_indexd ? "drs,indexd" :
		                      have_drs                ? "drs" :
		                                                "indexd");
		if (rc) {
			cli_error("pre-push: %s", strerror(-rc));
			goto out;
		}
	}
	if ((rc = lfsfs_net_new(&net))) {
		cli_error("pre-push: cannot start the network engine: %s", lfsfs_error_message());
		goto out;
	}
	if ((rc = lfsfs_resolve_init(&ctx, repo.top ? repo.top : repo.gitdir, repo.gitdir, NULL))) {
		cli_error("pre-push: %s", lfsfs_error_message());
		goto out;
	}
	have_ctx = 1;
	rc = lfsfs_resolve_configure(&ctx, cfg, net);
	if (rc) {
		cli_error(
		        "pre-push: cannot set up the DRS/Indexd resolvers: %s; fix the lfsfs.drs.* "
		        "/ lfsfs.indexd.* settings",
		        lfsfs_error_message());
		print_override(remote);
		goto out;
	}
	if (!ctx.n) {
		cli_error("pre-push: the DRS/Indexd resolvers are configured but did not start");
		print_override(remote);
		goto out;
	}
	for (size_t i = 0; i < ctx.n; i++)
		ask(&ctx.resolvers[i], o, no);
	for (size_t i = 0; i < no; i++) {
		char *hint = NULL;
		int hit = 0;
		if (o[i].v == V_UNKNOWN)
			o[i].v = V_UNREGISTERED;
		n_unreg += o[i].v == V_UNREGISTERED;
		n_err += o[i].v == V_ERROR;
		if (o[i].v != V_REGISTERED || lfsfs_hint_read_url(repo.gitdir, o[i].oid, &hint))
			continue;
		for (size_t k = 0; k < o[i].n_urls && !hit; k++)
			hit = same_url(hint, o[i].urls[k]);
		if (!hit) {
			o[i].hint = hint;
			n_hint++;
		} else {
			free(hint);
		}
	}
	lfsfs_error_clear();
	if (n_err) {
		const char *why = "unknown error";
		for (size_t i = 0; i < no; i++)
			if (o[i].v == V_ERROR && o[i].error) {
				why = o[i].error;
				break;
			}
		cli_error("pre-push: %s %zu of %zu Git LFS object(s): the DRS/Indexd server cannot "
		          "be reached or refused the request: %s",
		          warn_only ? "could not check" : "push refused: could not check", n_err,
		          no, lfsfs_redact(why, red, sizeof(red)));
		fprintf(stderr, "  check lfsfs.drs.url / lfsfs.indexd.url and the token settings "
		                "(docs/RESOLVERS.md), or try again when the server is back\n");
		print_override(remote);
	}
	if (n_unreg) {
		cli_error("pre-push: %s%zu of %zu Git LFS object(s) are not registered with the "
		          "DRS/Indexd server:",
		          warn_only ? "" : "push refused: ", n_unreg, no);
		fprintf(stderr, "  %-71s %14s  %s\n", "oid", "size", "path");
		for (size_t i = 0; i < no; i++)
			if (o[i].v == V_UNREGISTERED)
				fprintf(stderr, "  sha256:%s %14" PRIu64 "  %s\n", o[i].oid,
				        o[i].size, o[i].path);
		fprintf(stderr,
		        "  register each object (its sha256, size and URL) with the server, "
		        "then push again\n");
		print_override(remote);
	}
	if (n_hint) {
		cli_error("pre-push: %s%zu cached hint URL(s) disagree with the server:",
		          warn_only ? "" : "push refused: ", n_hint);
		fprintf(stderr, "  %-71s  %s\n", "oid", "path");
		for (size_t i = 0; i < no; i++) {
			char red2[2048];
			if (!o[i].hint)
				continue;
			fprintf(stderr, "  sha256:%s  %s\n", o[i].oid, o[i].path);
			fprintf(stderr, "      hint:   %s\n", redact(o[i].hint, red, sizeof(red)));
			fprintf(stderr, "      server: %s (%s)\n",
			        o[i].n_urls ? redact(o[i].urls[0], red2, sizeof(red2)) : "(no URL)",
			        o[i].by);
		}
		fprintf(stderr,
		        "  the server is authoritative: fix the hint (\"s3_url\" in "
		        "%s/%s/oids/<oid>.json)\n  or delete that file, then push again\n",
		        repo.gitdir, LFSFS_HINT_DIR);
		print_override(remote);
	}
	if (n_err || n_unreg || n_hint) {
		ret = warn_only ? EXIT_OK : EXIT_FAIL;
		if (warn_only)
			note("pre-push: LFSFS_PRE_PUSH=warn: pushing anyway");
		goto out;
	}
	note("pre-push: %zu Git LFS object(s) checked: all registered with the DRS/Indexd server",
	     no);
	ret = EXIT_OK;
out:
	for (size_t i = 0; o && i < no; i++) {
		for (size_t k = 0; k < o[i].n_urls; k++)
			free(o[i].urls[k]);
		free(o[i].urls);
		free(o[i].hint);
		free(o[i].error);
	}
	free(o);
	free(b);
	if (have_ctx)
		lfsfs_resolve_release(&ctx);
	if (net)
		lfsfs_net_free(net);
	lfsfs_config_free(cfg);
	lfsfs_buf_release(&in);
	lfsfs_buf_release(&objs);
	repo_release(&repo);
	return ret;
}

int cmd_hook(int argc, char **argv)
{
	if (argc < 2) {
		fputs(hook_usage, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(hook_usage, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "pre-commit"))
		return hook_pre_commit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "pre-push"))
		return hook_pre_push(argc - 1, argv + 1);
	cli_error("unknown hook '%s'; lfsfs has pre-commit and pre-push", argv[1]);
	return EXIT_USAGE;
}
