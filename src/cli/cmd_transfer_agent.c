/* `lfsfs transfer-agent`: a Git LFS custom transfer agent that downloads through lfsfs. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli/cli.h"
#include "index/index.h"
#include "lfsfs/error.h"
#include "meta/lfsmeta.h"
#include "meta/lfsproto.h"
#include "net/net.h"
#include "resolve/resolve.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/log.h"
#include "util/path.h"

static const char agent_usage[] =
	"usage: lfsfs transfer-agent [--cache-dir DIR] [--repo DIR]\n"
	"                            [--log-level error|warn|info|debug] [--log-file FILE]\n"
	"\n"
	"A Git LFS custom transfer agent (git-lfs docs/custom-transfers.md): git-lfs\n"
	"starts it and talks to it in line-delimited JSON on stdin/stdout.  Objects\n"
	"are copied from the lfsfs cache when it holds them complete and verified,\n"
	"else fetched from the URL the LFS server gave or, in standalone mode (no\n"
	"LFS server), from where the repository registers them (.lfs-meta records,\n"
	".git/drs hints, other lfsfs.resolvers); every download is checked against\n"
	"its oid and size.  lfsfs never uploads: an upload succeeds only for an\n"
	"object that is registered and readable at its URL.\n"
	"\n"
	"  git config lfs.standalonetransferagent lfsfs\n"
	"  git config lfs.customtransfer.lfsfs.path lfsfs\n"
	"  git config lfs.customtransfer.lfsfs.args transfer-agent\n"
	"\n"
	"  --cache-dir DIR  the lfsfs cache to copy from (default: $LFSFS_CACHE_DIR,\n"
	"                   else the one 'lfsfs mount' uses); read-only, also while\n"
	"                   a mount uses it\n"
	"  --repo DIR       the repository (default: the one git-lfs runs in)\n"
	"  --log-level L    error, warn (default), info or debug\n"
	"  --log-file FILE  log there instead of stderr (stdout is the protocol)\n"
	"\n"
	"See docs/TRANSFER-AGENT.md.\n";

#define CHUNK ((uint64_t)16 << 20)      /* bytes per ranged GET of a registered URL */
#define COPY_BUF ((size_t)1 << 20)
#define PROGRESS_BYTES ((uint64_t)1 << 20)
#define PROGRESS_MS 100.0
#define EXPIRY_MARGIN 30                /* re-resolve a source this close to expiry (s) */

struct agent {
	/* command line */
	char *repo_arg;
	char *cache_dir;
	int proto_fd;                   /* the real stdout: replies only */
	/* set by init */
	int initialized;
	enum lfsproto_op op;
	char *repo, *gitdir, *tmpdir;
	struct lfsfs_meta *meta;
	char *meta_note;                /* why metadata.json was not used, or NULL */
	struct lfsfs_config *cfg;
	struct lfsfs_net *net;
	struct lfsfs_store st;
	int st_ready;
	struct lfsfs_resolve_ctx rctx;
	int rctx_ready;
	struct lfsfs_index *ix;         /* the cache index, read-only use */
	int ix_tried;
	mode_t file_mode;               /* for downloaded files: 0666 & ~umask */
	struct lfsfs_buf out;           /* reply being written */
};

/* One object being downloaded into a temp file. */
struct xfer {
	struct agent *a;
	const char *oid;
	uint64_t size;
	int fd;                         /* the temp file */
	EVP_MD_CTX *md;
	uint64_t hashed;                /* prefix of fd fed to md */
	uint64_t reported;              /* bytesSoFar of the last progress event */
	double last_ms;                 /* when it was sent */
	char *buf;                      /* COPY_BUF bytes */
	char sha256[65];                /* the digest, once finished */
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the protocol stream ---- */

/* Write the pending reply.  A broken stdout means git-lfs is gone: fatal. */
static void send_reply(struct agent *a)
{
	size_t off = 0;

	while (off < a->out.len) {
		ssize_t n = write(a->proto_fd, a->out.data + off, a->out.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("cannot write to git-lfs: %s; exiting",
				  n < 0 ? strerror(errno) : "short write");
			exit(EXIT_FAIL);
		}
		off += (size_t)n;
	}
	lfsfs_buf_reset(&a->out);
}

/* A reply builder failed (out of memory): nothing sensible can follow. */
static void reply_failed(int rc)
{
	log_error("cannot build a reply: %s; exiting", strerror(-rc));
	exit(EXIT_FAIL);
}

/* msg redacted (URLs lose userinfo and query strings) before git-lfs sees it. */
static void reply_object_error(struct agent *a, const char *oid, int rc, const char *msg)
{
	char red[2048];
	int r;

	lfsfs_redact(msg && *msg ? msg : lfsfs_code_name(rc), red, sizeof(red));
	log_warn("%s: %s", oid, red);
	if ((r = lfsproto_reply_complete_error(&a->out, oid, lfsproto_error_code(rc), red)))
		reply_failed(r);
	send_reply(a);
}

static void reply_line_error(struct agent *a, int rc, const char *msg)
{
	char red[2048];
	int r;

	lfsfs_redact(msg, red, sizeof(red));
	log_warn("%s", red);
	if ((r = lfsproto_reply_error(&a->out, lfsproto_error_code(rc), red)))
		reply_failed(r);
	send_reply(a);
}

/* A progress event when at least PROGRESS_BYTES more arrived and
 * PROGRESS_MS passed since the last one; `final` always sends (once). */
static void progress(struct xfer *x, uint64_t so_far, int final)
{
	double t = now_ms();
	int r;

	if (so_far > x->size)
		so_far = x->size;
	if (so_far < x->reported || (so_far == x->reported && (!final || x->last_ms > 0)))
		return;
	if (!final && (so_far - x->reported < PROGRESS_BYTES || t - x->last_ms < PROGRESS_MS))
		return;
	if ((r = lfsproto_reply_progress(&x->a->out, x->oid, so_far, so_far - x->reported)))
		reply_failed(r);
	send_reply(x->a);
	x->reported = so_far;
	x->last_ms = t;
}

/* ---- repository discovery ---- */

/* Run git (cwd = dir, or the current directory) and capture its stdout.
 * Returns its exit status, or -1 if it could not be run. */
static int git_capture(const char *dir, char *const args[], struct lfsfs_buf *out)
{
	char *argv[16];
	int pfd[2], st, n = 0;
	pid_t pid;

	argv[n++] = "git";
	if (dir) {
		argv[n++] = "-C";
		argv[n++] = (char *)dir;
	}
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	if (pipe(pfd))
		return -1;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		/* git must not read git-lfs's requests, nor write into the protocol */
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 2);
		}
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execvp("git", argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		char tmp[4096];
		ssize_t r = read(pfd[0], tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (lfsfs_buf_append(out, tmp, (size_t)r))
			break;
	}
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The next line of *p (NUL-terminated in place), or NULL. */
static char *next_line(char **p)
{
	char *s = *p, *nl;

	if (!s || !*s)
		return NULL;
	nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = s + strlen(s);
	}
	return s;
}

/*
 * Working tree, git dir and git-lfs's temp directory of the repository
 * git-lfs runs in: <lfs storage>/tmp, where the storage is lfs.storage
 * (relative to the common git dir) or <common git dir>/lfs.  git-lfs
 * renames the finished file into <storage>/objects, so it must be there.
 */
static int find_repo(struct agent *a)
{
	char *args1[] = { "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-dir",
			  "--git-common-dir", NULL };
	char *args2[] = { "config", "--get", "lfs.storage", NULL };
	struct lfsfs_buf out = LFSFS_BUF_INIT(1 << 16), cfg = LFSFS_BUF_INIT(1 << 16);
	char *p, *top, *gd, *common, *storage = NULL;
	int rc = 0;

	if (git_capture(a->repo_arg, args1, &out) != 0 || !out.data) {
		rc = lfsfs_error_set(-ENOENT, "'%s' is not a git working tree; run git lfs inside "
				     "the repository, or pass --repo DIR",
				     a->repo_arg ? a->repo_arg : ".");
		goto out;
	}
	p = out.data;
	top = next_line(&p);
	gd = next_line(&p);
	common = next_line(&p);
	if (!top || !gd || !common || *top != '/' || *gd != '/' || *common != '/') {
		rc = lfsfs_error_set(-ENOENT, "'%s' is not a git working tree (a bare repository "
				     "has no .lfs-meta to resolve objects with); pass --repo DIR",
				     a->repo_arg ? a->repo_arg : ".");
		goto out;
	}
	if (git_capture(top, args2, &cfg) == 0 && cfg.data) {
		char *q = cfg.data;
		char *v = next_line(&q);
		if (v && *v)
			storage = *v == '/' ? strdup(v) : lfsfs_path_join(common, v);
	}
	if (!storage)
		storage = lfsfs_path_join(common, "lfs");
	a->repo = strdup(top);
	a->gitdir = strdup(gd);
	a->tmpdir = storage ? lfsfs_path_join(storage, "tmp") : NULL;
	if (!a->repo || !a->gitdir || !a->tmpdir)
		rc = -ENOMEM;
out:
	free(storage);
	lfsfs_buf_release(&out);
	lfsfs_buf_release(&cfg);
	return rc;
}

/* mkdir -p with git's usual modes (0777 minus the umask), unlike
 * cli_mkdir_p's 0700: git-lfs creates its objects next to this directory
 * and a shared repository must stay shared.  0 or -1 (errno set). */
static int mkdir_shared(const char *dir)
{
	char tmp[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0777) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0777) && errno != EEXIST)
		return -1;
	return 0;
}

static void meta_refused(const char *path, const char *why, void *ctx)
{
	log_warn("ignoring .lfs-meta/metadata.json entry '%s': %s", path, why);
}

/* Everything init needs; 0 or a code with the message set. */
static int agent_setup(struct agent *a)
{
	int rc;

	if ((rc = find_repo(a)))
		return rc;
	if (mkdir_shared(a->tmpdir))
		return lfsfs_error_set(-errno, "cannot create '%s': %s", a->tmpdir,
				       strerror(errno));
	/* A broken metadata.json must not block objects registered elsewhere
	 * (sha256 records, hints): note it, and say so when one is missing. */
	if ((rc = lfsfs_meta_load(a->repo, &a->meta, meta_refused, NULL))) {
		char note[1024];
		snprintf(note, sizeof(note), ".lfs-meta/metadata.json was not used: %s",
			 lfsfs_error_message());
		log_warn("%s", note);
		a->meta_note = strdup(note);
		a->meta = NULL;
	}
	if ((rc = lfsfs_config_load(a->repo, &a->cfg)))
		return lfsfs_error_set(rc, "cannot read lfsfs settings of '%s': %s", a->repo,
				       strerror(-rc));
	if ((rc = lfsfs_net_new(&a->net)))
		return lfsfs_error_set(rc, "cannot start the network engine: %s",
				       lfsfs_error_message());
	lfsfs_store_init(&a->st, a->net, a->cfg);
	a->st_ready = 1;
	if ((rc = lfsfs_resolve_init(&a->rctx, a->repo, a->gitdir, a->meta)))
		return rc;
	a->rctx_ready = 1;
	if ((rc = lfsfs_resolve_configure(&a->rctx, a->cfg, a->net)))
		return rc;
	log_info("transfer agent for '%s' (%s), temp files in '%s', cache '%s'", a->repo,
		 a->op == LFSPROTO_OP_UPLOAD ? "upload" : "download", a->tmpdir, a->cache_dir);
	return 0;
}

static void agent_release(struct agent *a)
{
	if (a->ix)
		lfsfs_index_close(a->ix);
	if (a->rctx_ready)
		lfsfs_resolve_release(&a->rctx);
	/* the engine first: no completion may run after the store is gone */
	if (a->net)
		lfsfs_net_free(a->net);
	if (a->st_ready)
		lfsfs_store_release(&a->st);
	lfsfs_config_free(a->cfg);
	lfsfs_meta_free(a->meta);
	free(a->meta_note);
	free(a->repo);
	free(a->gitdir);
	free(a->tmpdir);
	free(a->repo_arg);
	free(a->cache_dir);
	lfsfs_buf_release(&a->out);
}

/* ---- the temp file and its digest ---- */

static int xfer_reset(struct xfer *x)
{
	if (ftruncate(x->fd, 0))
		return lfsfs_error_set(-errno, "cannot truncate the temp file: %s",
				       strerror(errno));
	if (!EVP_DigestInit_ex(x->md, EVP_sha256(), NULL))
		return lfsfs_error_set(-ENOMEM, "cannot start a sha256");
	x->hashed = 0;
	x->sha256[0] = '\0';
	return 0;
}

/* Feed bytes [x->hashed, end) of the temp file to the digest. */
static int hash_upto(struct xfer *x, uint64_t end)
{
	while (x->hashed < end) {
		size_t want = end - x->hashed < COPY_BUF ? (size_t)(end - x->hashed) : COPY_BUF;
		ssize_t n = pread(x->fd, x->buf, want, (off_t)x->hashed);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return lfsfs_error_set(-EIO, "cannot read back the temp file: %s",
					       n < 0 ? strerror(errno) : "unexpected end of file");
		EVP_DigestUpdate(x->md, x->buf, (size_t)n);
		x->hashed += (uint64_t)n;
	}
	return 0;
}

static void xfer_finish(struct xfer *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	EVP_DigestFinal_ex(x->md, md, &len);
	for (unsigned i = 0; i < len && i < 32; i++)
		snprintf(x->sha256 + 2 * i, 3, "%02x", md[i]);
}

/* ---- from the lfsfs cache ---- */

/* data/<2 hex>/<name> under the cache dir, as the cache names its files
 * (src/cache/cache.c data_path): sha256 keys by their oid, other keys by
 * "e" + sha256 of the key. */
static int cache_data_path(const char *dir, const char *key, char *out, size_t cap)
{
	char name[66];

	if (!strncmp(key, "sha256:", 7) && strlen(key) == 71) {
		snprintf(name, sizeof(name), "%s", key + 7);
	} else {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int len = 0;

		if (!EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL) || len != 32)
			return -EIO;
		name[0] = 'e';
		for (unsigned i = 0; i < 32; i++)
			snprintf(name + 1 + 2 * i, 3, "%02x", md[i]);
	}
	if ((size_t)snprintf(out, cap, "%s/data/%.2s/%s", dir, name[0] == 'e' ? name + 1 : name,
			     name) >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/* The cache index, opened read-only on first use; NULL if there is none.
 * The index is never created here: a directory without one is no cache. */
static struct lfsfs_index *cache_index(struct agent *a)
{
	char path[PATH_MAX];
	struct stat sb;

	if (a->ix_tried)
		return a->ix;
	a->ix_tried = 1;
	snprintf(path, sizeof(path), "%s/index/data.mdb", a->cache_dir);
	if (stat(path, &sb))
		return NULL;
	snprintf(path, sizeof(path), "%s/index", a->cache_dir);
	if (lfsfs_index_open(path, &a->ix)) {
		log_warn("not using the lfsfs cache in '%s': %s", a->cache_dir,
			 lfsfs_error_message());
		a->ix = NULL;
	}
	return a->ix;
}

/*
 * Copy the object from the cache when its record says complete and
 * verified.  0: copied and its sha256 matches; -ENOENT: not there (fetch
 * it); other codes: the cached copy could not be used (logged; fetch it).
 * No lock is taken: a mount may hold the directory, and may even evict
 * the object while it is copied; the sha256 check catches that.
 */
static int from_cache(struct xfer *x)
{
	struct lfsfs_index *ix = cache_index(x->a);
	struct lfsfs_index_txn *t = NULL;
	struct lfsfs_objrec rec;
	char key[LFSFS_KEY_MAX + 1], path[PATH_MAX];
	uint64_t off = 0;
	int fd, rc;

	if (!ix)
		return -ENOENT;
	snprintf(key, sizeof(key), "sha256:%s", x->oid);
	if ((rc = lfsfs_index_begin(ix, 0, &t)))
		return rc;
	rc = lfsfs_index_get_obj(t, key, &rec);
	if (rc == -ENOENT) {
		/* bytes first known by ETag, sha256 computed later: an alias */
		char target[LFSFS_KEY_MAX + 1];
		if (!lfsfs_index_get_alias(t, key, target, sizeof(target)) &&
		    !lfsfs_index_get_obj(t, target, &rec)) {
			snprintf(key, sizeof(key), "%s", target);
			rc = 0;
		}
	}
	lfsfs_index_abort(t);
	if (rc)
		return rc == -ENOENT ? rc : lfsfs_error_set(rc, "cannot read the cache index: %s",
							   lfsfs_error_message());
	if (!(rec.flags & LFSFS_OBJ_VERIFIED) || rec.size != x->size ||
	    rec.cached_bytes != rec.size || (rec.sha256[0] && strcmp(rec.sha256, x->oid))) {
		log_debug("%s: in the cache but not complete and verified (%" PRIu64 " of %"
			  PRIu64 " bytes)", x->oid, rec.cached_bytes, rec.size);
		return -ENOENT;
	}
	if ((rc = cache_data_path(x->a->cache_dir, key, path, sizeof(path))))
		return rc;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return lfsfs_error_set(-errno, "cannot open '%s': %s", path, strerror(errno));
	log_info("%s: copying %" PRIu64 " bytes from the lfsfs cache ('%s')", x->oid, x->size,
		 path);
	while (off < x->size) {
		size_t want = x->size - off < COPY_BUF ? (size_t)(x->size - off) : COPY_BUF;
		ssize_t n = pread(fd, x->buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = lfsfs_error_set(-EIO, "cannot read '%s': %s", path,
					     n < 0 ? strerror(errno) : "shorter than its record");
			goto out;
		}
		for (ssize_t w = 0; w < n;) {
			ssize_t k = pwrite(x->fd, x->buf + w, (size_t)(n - w),
					   (off_t)(off + (uint64_t)w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				rc = lfsfs_error_set(-errno, "cannot write the temp file: %s",
						     strerror(errno));
				goto out;
			}
			w += k;
		}
		EVP_DigestUpdate(x->md, x->buf, (size_t)n);
		off += (uint64_t)n;
		x->hashed = off;
		progress(x, off, 0);
	}
	xfer_finish(x);
	if (strcmp(x->sha256, x->oid))
		rc = lfsfs_error_set(-LFSFS_ECHECKSUM_MISMATCH, "the cached copy '%s' hashes to %s "
				     "(evicted or damaged while copied?)", path, x->sha256);
out:
	close(fd);
	return rc;
}

/* ---- from a URL ---- */

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* signalled by fetch_done */
	int done, rc;              /* protected by lock */
};

static void fetch_done(struct lfsfs_fetch *f, int rc)
{
	struct waiter *w = f->ctx;

	pthread_mutex_lock(&w->lock);
	w->rc = rc;
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Fetch [off, off+len) of src into the temp file, reporting progress
 * (from the file's growth) while waiting.  f is filled for the caller. */
static int fetch_range(struct xfer *x, const struct lfsfs_source *src, uint64_t off,
		       uint64_t len, const char *pin, struct lfsfs_fetch *f)
{
	struct waiter w;
	pthread_condattr_t ca;
	int rc;

	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	memset(f, 0, sizeof(*f));
	f->url = src->url;
	f->headers = (const char *const *)src->headers;
	f->n_headers = src->n_headers;
	f->off = off;
	f->len = len;
	f->size = x->size;
	snprintf(f->etag, sizeof(f->etag), "%s", pin ? pin : "");
	f->fd = x->fd;
	f->done = fetch_done;
	f->ctx = &w;
	lfsfs_store_fetch(&x->a->st, f);
	pthread_mutex_lock(&w.lock);
	while (!w.done) {
		struct timespec ts;
		struct stat sb;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(PROGRESS_MS * 1e6);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&w.cond, &w.lock, &ts) == ETIMEDOUT && !w.done) {
			/* bytes land in order at their offsets: the file's length
			 * is how far this range has come */
			pthread_mutex_unlock(&w.lock);
			if (!fstat(x->fd, &sb) && (uint64_t)sb.st_size > off)
				progress(x, (uint64_t)sb.st_size < off + len ?
					 (uint64_t)sb.st_size : off + len, 0);
			pthread_mutex_lock(&w.lock);
		}
	}
	rc = w.rc;
	pthread_mutex_unlock(&w.lock);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return rc;
}

/* ETags compare without quotes and weakness. */
static void strip_etag(const char *in, char *out, size_t cap)
{
	size_t l;

	if (!strncmp(in, "W/", 2))
		in += 2;
	snprintf(out, cap, "%s", in);
	l = strlen(out);
	if (l >= 2 && out[0] == '"' && out[l - 1] == '"') {
		memmove(out, out + 1, l - 2);
		out[l - 2] = '\0';
	}
}

static int same_etag(const char *a, const char *b)
{
	char x[160], y[160];

	strip_etag(a, x, sizeof(x));
	strip_etag(b, y, sizeof(y));
	return !strcmp(x, y);
}

/* Re-resolve q into *src (a signed URL about to lapse or refused). */
static int refresh_source(struct agent *a, const struct lfsfs_resolve_query *q,
			  struct lfsfs_source *src)
{
	struct lfsfs_source fresh;
	int rc = lfsfs_resolve_source(&a->rctx, q, &fresh);

	if (rc)
		return rc;
	lfsfs_source_release(src);
	*src = fresh;
	return 0;
}

/*
 * Download the whole object from src into the temp file and hash it.
 * q != NULL: src came from the resolver chain, so ranges are safe to ask
 * for (CHUNK at a time, retried alone) and src may be re-resolved when it
 * expires or is refused.  q == NULL: an LFS server's href, fetched in one
 * request (such servers need not support Range).
 */
static int fetch_source(struct xfer *x, struct lfsfs_source *src,
			const struct lfsfs_resolve_query *q)
{
	char pin[160], red[2048];
	int pin_from_record, refreshed = 0, rc = 0;
	uint64_t chunk = q ? CHUNK : x->size;

	snprintf(pin, sizeof(pin), "%s", src->etag ? src->etag : "");
	pin_from_record = pin[0] != '\0';
	lfsfs_redact(src->url, red, sizeof(red));
	log_info("%s: fetching %" PRIu64 " bytes from '%s'%s%s", x->oid, x->size, red,
		 src->resolver ? " via " : "", src->resolver ? src->resolver : "");
	for (uint64_t off = 0; off < x->size;) {
		uint64_t len = x->size - off < chunk ? x->size - off : chunk;
		struct lfsfs_fetch f;

		if (q && src->expires && src->expires - time(NULL) < EXPIRY_MARGIN &&
		    (rc = refresh_source(x->a, q, src)))
			return rc;
		rc = fetch_range(x, src, off, len, pin, &f);
		if (rc && q && !refreshed && (f.status == 401 || f.status == 403) &&
		    (src->n_headers || src->expires)) {
			/* a signed URL or token gone stale: once more with a fresh one */
			refreshed = 1;
			if ((rc = refresh_source(x->a, q, src)))
				return rc;
			continue;
		}
		if (rc) {
			int code = rc;
			if (code == -LFSFS_EIMMUTABILITY && !pin_from_record)
				code = -LFSFS_EUNSTABLE_SOURCE; /* changed between our requests */
			else if (code != -LFSFS_ESIZE_MISMATCH &&
				 code != -LFSFS_ECREDENTIALS_MISSING &&
				 code != -LFSFS_EIMMUTABILITY && code != -LFSFS_EUNSUPPORTED)
				code = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
			lfsfs_redact(src->url, red, sizeof(red));
			return lfsfs_error_set(code, "%s: cannot read bytes %" PRIu64 "-%" PRIu64
					       " of '%s': %s", lfsfs_code_name(code), off,
					       off + len - 1, red,
					       f.error[0] ? f.error : lfsfs_code_name(rc));
		}
		if (pin[0] && f.etag_seen[0] && !same_etag(pin, f.etag_seen)) {
			/* weak ETags are not sent as If-Match: compare here */
			int code = pin_from_record ? -LFSFS_EIMMUTABILITY : -LFSFS_EUNSTABLE_SOURCE;
			lfsfs_redact(src->url, red, sizeof(red));
			return lfsfs_error_set(code, "%s: '%s' %s (ETag %s, now %s)",
					       lfsfs_code_name(code), red, pin_from_record ?
					       "is not the registered version" :
					       "changed while it was read", pin, f.etag_seen);
		}
		if (!pin[0] && f.etag_seen[0])
			snprintf(pin, sizeof(pin), "%s", f.etag_seen);
		if ((rc = hash_upto(x, off + len)))
			return rc;
		off += len;
		progress(x, off, 0);
	}
	return 0;
}

/* ---- download ---- */

/* Create <tmpdir>/lfsfs-<oid>-XXXXXX for the object; path in out. */
static int make_temp(struct agent *a, const char *oid, char *out, size_t cap)
{
	int fd;

	if ((size_t)snprintf(out, cap, "%s/lfsfs-%s-XXXXXX", a->tmpdir, oid) >= cap)
		return lfsfs_error_set(-ENAMETOOLONG, "temp file name too long");
	if ((fd = mkostemp(out, O_CLOEXEC)) < 0 && errno == ENOENT && !mkdir_shared(a->tmpdir)) {
		snprintf(out, cap, "%s/lfsfs-%s-XXXXXX", a->tmpdir, oid);
		fd = mkostemp(out, O_CLOEXEC);
	}
	if (fd < 0)
		return lfsfs_error_set(-errno, "cannot create a temp file in '%s': %s", a->tmpdir,
				       strerror(errno));
	/* as if created by git-lfs: the file becomes the object as it is */
	if (fchmod(fd, a->file_mode))
		log_debug("cannot chmod '%s': %s", out, strerror(errno));
	return fd;
}

static int download_from_network(struct xfer *x, const struct lfsproto_msg *m)
{
	struct agent *a = x->a;
	struct lfsfs_source src;
	int rc;

	memset(&src, 0, sizeof(src));
	if (m->href) {
		/* the LFS server said where: its href and headers, as given */
		src.url = m->href;
		src.headers = m->headers;
		src.n_headers = m->n_headers;
		src.resolver = "the LFS server";
		rc = fetch_source(x, &src, NULL);
		return rc;
	}
	struct lfsfs_resolve_query q = { .oid = x->oid, .path = NULL, .size = x->size };

	if ((rc = lfsfs_resolve_source(&a->rctx, &q, &src))) {
		if (a->meta_note) {
			/* the message is the thread's buffer: copy before setting it */
			char msg[2048];
			snprintf(msg, sizeof(msg), "%s", lfsfs_error_message());
			return lfsfs_error_set(rc, "%s (%s)", msg, a->meta_note);
		}
		return rc;
	}
	rc = fetch_source(x, &src, &q);
	lfsfs_source_release(&src);
	return rc;
}

static void do_download(struct agent *a, const struct lfsproto_msg *m)
{
	struct xfer x;
	char path[PATH_MAX], msg[2048];
	double t0 = now_ms();
	const char *how = "copied from the lfsfs cache";
	int rc, r;

	memset(&x, 0, sizeof(x));
	x.a = a;
	x.oid = m->oid;
	x.size = m->size;
	x.fd = -1;
	x.md = EVP_MD_CTX_new();
	x.buf = malloc(COPY_BUF);
	path[0] = '\0';
	if (!x.md || !x.buf) {
		rc = lfsfs_error_set(-ENOMEM, "out of memory");
		goto fail;
	}
	if ((x.fd = make_temp(a, m->oid, path, sizeof(path))) < 0) {
		rc = x.fd;
		path[0] = '\0';
		goto fail;
	}
	if ((rc = xfer_reset(&x)))
		goto fail;
	if (!x.size) {
		/* nothing to fetch: the empty content either is the oid or not */
		how = "empty";
		xfer_finish(&x);
		if (strcmp(x.sha256, x.oid)) {
			rc = lfsfs_error_set(-LFSFS_ECHECKSUM_MISMATCH, "CHECKSUM_MISMATCH: an "
					     "empty object cannot have oid '%s'", x.oid);
			goto fail;
		}
		rc = 0;
	} else {
		rc = from_cache(&x);
		if (rc && rc != -ENOENT)
			log_warn("%s: not using the cached copy: %s", x.oid,
				 lfsfs_error_message());
	}
	if (rc) {
		how = m->href ? "from the LFS server's href" : "from the registered URL";
		if ((rc = xfer_reset(&x)) || (rc = download_from_network(&x, m)))
			goto fail;
		xfer_finish(&x);
		if (x.hashed != x.size) {
			rc = lfsfs_error_set(-LFSFS_ESIZE_MISMATCH, "SIZE_MISMATCH: got %" PRIu64
					     " bytes of '%s', expected %" PRIu64, x.hashed, x.oid,
					     x.size);
			goto fail;
		}
		if (strcmp(x.sha256, x.oid)) {
			rc = lfsfs_error_set(-LFSFS_ECHECKSUM_MISMATCH, "CHECKSUM_MISMATCH: the %"
					     PRIu64 " bytes served for '%s' hash to sha256 %s; "
					     "the origin's object is not the one registered: "
					     "restore it, or fix its record", x.size, x.oid,
					     x.sha256);
			goto fail;
		}
	}
	close(x.fd);
	x.fd = -1;
	progress(&x, x.size, 1);
	if ((r = lfsproto_reply_complete(&a->out, x.oid, path)))
		reply_failed(r);
	send_reply(a);
	log_info("%s: done (%" PRIu64 " bytes, %s, %.0f ms)", x.oid, x.size, how,
		 now_ms() - t0);
	goto out;
fail:
	snprintf(msg, sizeof(msg), "%s", lfsfs_error_message());
	if (x.fd >= 0)
		close(x.fd);
	x.fd = -1;
	if (path[0])
		unlink(path);
	reply_object_error(a, m->oid, rc, msg);
out:
	EVP_MD_CTX_free(x.md);
	free(x.buf);
}

/* ---- upload ---- */

/*
 * lfsfs never uploads.  An upload "succeeds" only when there is nothing
 * to upload: standalone mode (no LFS server) and the object is registered
 * at a URL that serves it at the right size.  An LFS server asking for
 * the bytes (an href) is always refused: it does not have them.
 */
static void do_upload(struct agent *a, const struct lfsproto_msg *m)
{
	struct lfsfs_resolve_query q = { .oid = m->oid, .path = NULL, .size = m->size };
	struct lfsfs_source src;
	char red[2048];
	int rc, r;

	memset(&src, 0, sizeof(src));
	if (m->href) {
		reply_object_error(a, m->oid, -EPERM, "lfsfs does not upload: the LFS server "
				   "wants the bytes of this object and lfsfs only reads objects "
				   "from where they are registered; push with git-lfs's own "
				   "transfer (set lfs.customtransfer.lfsfs.direction download)");
		return;
	}
	if ((rc = lfsfs_resolve_source(&a->rctx, &q, &src))) {
		char msg[2048];
		snprintf(msg, sizeof(msg), "lfsfs does not upload, and this object is not "
			 "registered: %s. Put its bytes at a URL lfsfs can read and record it in "
			 ".lfs-meta/sha256/%s.json, or push through an LFS server",
			 lfsfs_error_message(), m->oid);
		reply_object_error(a, m->oid, -EPERM, msg);
		return;
	}
	lfsfs_redact(src.url, red, sizeof(red));
	if (m->size) {
		/* one byte through the same path a download takes (headers,
		 * If-Match, total size checked against the pointer's) */
		struct xfer x;
		struct lfsfs_fetch f;

		memset(&x, 0, sizeof(x));
		x.a = a;
		x.oid = m->oid;
		x.size = m->size;
		x.fd = memfd_create("lfsfs-upload-check", MFD_CLOEXEC);
		x.reported = m->size; /* no progress events for a probe */
		if (x.fd < 0) {
			rc = lfsfs_error_set(-errno, "cannot check '%s': %s", red, strerror(errno));
		} else {
			rc = fetch_range(&x, &src, 0, 1, src.etag, &f);
			if (rc)
				lfsfs_error_set(rc, "%s: '%s' does not serve this object: %s",
						lfsfs_code_name(rc), red,
						f.error[0] ? f.error : lfsfs_code_name(rc));
			close(x.fd);
		}
	} else {
		struct lfsfs_objmeta om;
		rc = lfsfs_store_head(&a->st, src.url, &om);
		if (!rc && om.has_size && om.size)
			rc = lfsfs_error_set(-LFSFS_ESIZE_MISMATCH, "SIZE_MISMATCH: '%s' has %"
					     PRIu64 " bytes, the object is empty", red, om.size);
	}
	if (rc) {
		char msg[2048];
		snprintf(msg, sizeof(msg), "lfsfs does not upload, and the registered copy cannot "
			 "be read: %s", lfsfs_error_message());
		reply_object_error(a, m->oid, rc, msg);
	} else {
		log_info("%s: registered at '%s' (via %s); nothing to upload", m->oid, red,
			 src.resolver ? src.resolver : "?");
		if ((r = lfsproto_reply_complete(&a->out, m->oid, NULL)))
			reply_failed(r);
		send_reply(a);
	}
	lfsfs_source_release(&src);
}

/* ---- the loop ---- */

/* 1 to go on reading requests, 0 to exit. */
static int handle_line(struct agent *a, const char *line, size_t len)
{
	struct lfsproto_msg m;
	int rc = lfsproto_parse(line, len, &m), r;

	if (rc) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "%s", lfsfs_error_message());
		if ((m.event == LFSPROTO_DOWNLOAD || m.event == LFSPROTO_UPLOAD) && m.oid[0])
			reply_object_error(a, m.oid, rc, msg);
		else
			reply_line_error(a, rc, msg);
		goto out;
	}
	switch (m.event) {
	case LFSPROTO_INIT:
		if (a->initialized) {
			log_debug("a second 'init': already initialized");
		} else {
			a->op = m.operation;
			if ((rc = agent_setup(a))) {
				char msg[1024];
				snprintf(msg, sizeof(msg), "cannot start the lfsfs transfer "
					 "agent: %s", lfsfs_error_message());
				reply_line_error(a, rc, msg);
				goto out;
			}
			a->initialized = 1;
			log_debug("init: operation %s, remote '%s', concurrent %d, "
				  "concurrenttransfers %d", m.operation == LFSPROTO_OP_UPLOAD ?
				  "upload" : "download", m.remote ? m.remote : "",
				  m.concurrent, m.concurrenttransfers);
		}
		if ((r = lfsproto_reply_init_ok(&a->out)))
			reply_failed(r);
		send_reply(a);
		break;
	case LFSPROTO_DOWNLOAD:
	case LFSPROTO_UPLOAD:
		if (!a->initialized) {
			reply_object_error(a, m.oid, -LFSFS_EPARSE, "a transfer request before a "
					   "successful 'init'");
			break;
		}
		log_debug("%s %s (%" PRIu64 " bytes)%s", lfsproto_event_name(m.event), m.oid,
			  m.size, m.href ? " with an action" : "");
		if (m.event == LFSPROTO_DOWNLOAD)
			do_download(a, &m);
		else
			do_upload(a, &m);
		break;
	case LFSPROTO_TERMINATE:
		lfsproto_msg_release(&m);
		return 0;
	}
out:
	lfsproto_msg_release(&m);
	return 1;
}

int cmd_transfer_agent(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cache-dir", required_argument, NULL, 'c' },
		{ "repo", required_argument, NULL, 'r' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-file", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct agent a;
	const char *log_file = NULL, *env;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	mode_t um;
	int c, level = LFSFS_LOG_WARN;

	memset(&a, 0, sizeof(a));
	a.out = (struct lfsfs_buf)LFSFS_BUF_INIT(LFSPROTO_MAX_LINE);
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			free(a.cache_dir);
			a.cache_dir = strdup(optarg);
			break;
		case 'r':
			free(a.repo_arg);
			a.repo_arg = strdup(optarg);
			break;
		case 'L':
			if ((level = lfsfs_log_level_parse(optarg)) < 0) {
				cli_error("unknown log level '%s'; use error, warn, info or debug",
					  optarg);
				agent_release(&a);
				return EXIT_USAGE;
			}
			break;
		case 'F':
			log_file = optarg;
			break;
		case 'h':
			fputs(agent_usage, stdout);
			agent_release(&a);
			return EXIT_OK;
		default:
			fputs(agent_usage, stderr);
			agent_release(&a);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument '%s'", argv[optind]);
		fputs(agent_usage, stderr);
		agent_release(&a);
		return EXIT_USAGE;
	}
	lfsfs_log_set_level(level);
	if (log_file && lfsfs_log_open(log_file)) {
		cli_error("cannot open log file '%s': %s", log_file, strerror(errno));
		agent_release(&a);
		return EXIT_FAIL;
	}
	if (!a.cache_dir && (env = getenv("LFSFS_CACHE_DIR")) && *env)
		a.cache_dir = strdup(env);
	if (!a.cache_dir)
		a.cache_dir = cli_default_cache_dir();
	if (a.cache_dir) {
		char *abs = lfsfs_path_absolute(a.cache_dir);
		free(a.cache_dir);
		a.cache_dir = abs;
	}
	if (!a.cache_dir) {
		cli_error("out of memory");
		agent_release(&a);
		return EXIT_FAIL;
	}
	um = umask(0);
	umask(um);
	a.file_mode = 0666 & ~um;
	/* stdout is the protocol: keep it for replies only and point fd 1 at
	 * stderr, so nothing else (a library, a child) can corrupt it */
	fflush(stdout);
	if ((a.proto_fd = fcntl(1, F_DUPFD_CLOEXEC, 3)) < 0 || dup2(2, 1) < 0) {
		cli_error("cannot set up the protocol stream: %s", strerror(errno));
		agent_release(&a);
		return EXIT_FAIL;
	}
	signal(SIGPIPE, SIG_IGN);
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		size_t len = (size_t)n;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		if (!len)
			continue; /* blank lines carry nothing */
		if (!handle_line(&a, line, len))
			break;
	}
	free(line);
	close(a.proto_fd);
	agent_release(&a);
	return EXIT_OK;
}
