/* `lfsfs verify`: HEAD (or re-hash) every tracked object and report drift from its record. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli/cli.h"
#include "cli/tracked_args.h"
#include "lfsfs/error.h"
#include "meta/tracked.h"
#include "net/net.h"
#include "store/store.h"
#include "util/config.h"
#include "util/log.h"

static const char verify_usage[] =
	"usage: lfsfs verify [--deep] [--json] [--repo DIR] [-j N] [-v] [PATH...]\n"
	"\n"
	"Check that every tracked object (or those at or under PATH) is still what\n"
	"the repository recorded: one HEAD per object, in parallel, compared with\n"
	"the recorded size and ETag.  With --deep, also stream each object (nothing\n"
	"is stored) and compare its sha256 with the pointer's oid or the recorded\n"
	"sha256.  Problems are reported with their code, the object and the fix:\n"
	"  SIZE_MISMATCH           the origin's object has another size\n"
	"  IMMUTABILITY_VIOLATION  the origin's object has another ETag (replaced)\n"
	"  CHECKSUM_MISMATCH       the bytes do not hash to the recorded sha256\n"
	"  UNSTABLE_OBJECT_SOURCE  the object changed while --deep read it\n"
	"  SOURCE_NOT_ACCESSIBLE   no URL is known, or the URL cannot be read\n"
	"  CREDENTIALS_MISSING     no credentials for the object's store\n"
	"Exit status: 0 all ok, 3 an integrity problem, 4 only source problems.\n"
	"\n"
	"  --deep           re-hash every object (reads all of its bytes)\n"
	"  --json           one JSON document: {\"objects\": [...], \"summary\": {...}}\n"
	"  --repo DIR       the repository (default: the working tree containing\n"
	"                   the current directory)\n"
	"  -j, --jobs N     objects checked at once (default 8)\n"
	"  -v, --verbose    also list the objects that are fine\n";

#define CHUNK ((uint64_t)8 << 20) /* bytes per ranged GET in --deep */
#define READ_BUF ((size_t)1 << 20)

struct vobj {
	const struct lfsfs_tracked *t;
	int code;                   /* 0 or a negative LFSFS_E* code */
	char detail[1024];          /* redacted */
	struct lfsfs_objmeta m;
	int have_head;
	char sha256[65];            /* computed by --deep, "" otherwise */
};

struct verify {
	struct lfsfs_store *st;
	struct vobj *objs;
	size_t n;
	int deep;
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* signalled when an object is finished */
	size_t next;                /* protected by lock: next object to take */
	size_t done;                /* protected by lock */
	uint64_t hashed;            /* protected by lock: bytes hashed so far */
	uint64_t to_hash;           /* total bytes --deep will read */
};

/* "SOURCE_NOT_ACCESSIBLE: cannot read ..." -> "cannot read ..." (the code is said
 * separately), redacted. */
static void set_detail(struct vobj *o, const char *msg)
{
	const char *p = msg ? msg : "";
	size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");

	if (n > 3 && p[n] == ':' && p[n + 1] == ' ')
		p += n + 2;
	lfsfs_redact(*p ? p : "no detail", o->detail, sizeof(o->detail));
}

static void set_problem(struct vobj *o, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_problem(struct vobj *o, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o->code = code;
	set_detail(o, msg);
}

/* ETags compare without quotes and weakness; a recorded MD5 or version
 * (GCS generation) names the same version too. */
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

static int etag_matches(const char *recorded, const struct lfsfs_objmeta *m)
{
	char r[160], e[160], v[160];

	strip_etag(recorded, r, sizeof(r));
	strip_etag(m->etag, e, sizeof(e));
	strip_etag(m->version, v, sizeof(v));
	return !strcmp(r, e) || (m->md5[0] && !strcasecmp(r, m->md5)) || (v[0] && !strcmp(r, v));
}

static const char *fix_for(const struct vobj *o)
{
	switch (-o->code) {
	case LFSFS_ESIZE_MISMATCH:
		return "restore the original object at the URL, or re-register it with its new "
		       "size and sha256 if the change is intended";
	case LFSFS_EIMMUTABILITY:
		return "the object was replaced at the origin; restore the original, or "
		       "re-register it (new etag, size and sha256) if the change is intended";
	case LFSFS_ECHECKSUM_MISMATCH:
		return "the bytes at the URL are not the ones recorded; restore the original "
		       "object, or fix the pointer or record";
	case LFSFS_EUNSTABLE_SOURCE:
		return "the object changed while it was read; verify again once the origin is "
		       "stable, then re-register it if it was replaced";
	case LFSFS_ECREDENTIALS_MISSING:
		return "set credentials for this store ('lfsfs doctor URL' lists the sources "
		       "it tries)";
	default:
		if (!o->t->url)
			return "register a URL for it in .lfs-meta (sha256/<oid>.json or "
			       "metadata.json), or a .git/drs hint";
		return "check that the object exists at the URL and is readable ('lfsfs doctor "
		       "URL' shows how it is read)";
	}
}

static int severity(int code)
{
	switch (cli_exit_for(code)) {
	case EXIT_OK:
		return 0;
	case EXIT_SOURCE:
		return 1;
	case EXIT_INTEGRITY:
		return 3;
	default:
		return 2;
	}
}

/* ---- --deep: stream the object through the store, hash, keep nothing ---- */

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done, rc;
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

/* Fetch [off, off+len) of url into fd at the same offsets; the done()
 * code.  f is left with etag_seen and error.  A backend that refreshed
 * its credentials (LFSFS_ERETRY_AUTH) gets one resend, as in the cache. */
static int fetch_sync(struct lfsfs_store *st, struct lfsfs_fetch *f, const char *url,
		      uint64_t off, uint64_t len, uint64_t size, const char *pin, int fd)
{
	struct waiter w;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	for (int attempt = 0; attempt < 2; attempt++) {
		memset(f, 0, sizeof(*f));
		f->url = url;
		f->off = off;
		f->len = len;
		f->size = size;
		snprintf(f->etag, sizeof(f->etag), "%s", pin ? pin : "");
		f->fd = fd;
		f->done = fetch_done;
		f->ctx = &w;
		w.done = 0;
		w.rc = 0;
		lfsfs_store_fetch(st, f);
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		if (w.rc != -LFSFS_ERETRY_AUTH)
			break;
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return w.rc == -LFSFS_ERETRY_AUTH ? -LFSFS_ESOURCE_NOT_ACCESSIBLE : w.rc;
}

static void add_hashed(struct verify *v, uint64_t n)
{
	pthread_mutex_lock(&v->lock);
	v->hashed += n;
	pthread_mutex_unlock(&v->lock);
}

/* Hash o's object into o->sha256; 0, or a code with o->detail set. */
static int deep_hash(struct verify *v, struct vobj *o)
{
	const struct lfsfs_tracked *t = o->t;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char pin[160], *buf = malloc(READ_BUF);
	uint64_t off;
	int fd = memfd_create("lfsfs-verify", MFD_CLOEXEC);
	int rc = 0;

	/* the version the HEAD saw; each later GET must serve the same one */
	snprintf(pin, sizeof(pin), "%s", o->m.etag);
	if (!ctx || !buf || fd < 0 || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		set_problem(o, -LFSFS_ESOURCE_NOT_ACCESSIBLE, "cannot hash: %s",
			    fd < 0 ? strerror(errno) : "out of memory");
		rc = o->code;
		goto out;
	}
	for (off = 0; off < t->size;) {
		uint64_t len = t->size - off < CHUNK ? t->size - off : CHUNK;
		struct lfsfs_fetch f;
		int frc;

		/* the memfd holds one chunk at a time, at its object offset */
		if (ftruncate(fd, 0)) {
			set_problem(o, -LFSFS_ESOURCE_NOT_ACCESSIBLE, "cannot hash: %s",
				    strerror(errno));
			rc = o->code;
			goto out;
		}
		frc = fetch_sync(v->st, &f, t->url, off, len, t->size, pin, fd);
		if (frc) {
			int code = frc;
			if (code == -LFSFS_EIMMUTABILITY)
				code = -LFSFS_EUNSTABLE_SOURCE; /* it matched at HEAD time */
			else if (code != -LFSFS_ESIZE_MISMATCH && code != -LFSFS_ECREDENTIALS_MISSING)
				code = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
			set_problem(o, code, "reading bytes %" PRIu64 "-%" PRIu64 " of '%s': %s",
				    off, off + len - 1, t->url,
				    f.error[0] ? f.error : lfsfs_code_name(frc));
			rc = code;
			goto out;
		}
		if (!pin[0] && f.etag_seen[0]) {
			snprintf(pin, sizeof(pin), "%s", f.etag_seen);
		} else if (pin[0] && f.etag_seen[0] && strcmp(pin, f.etag_seen)) {
			/* weak ETags are not sent as If-Match: compare here */
			set_problem(o, -LFSFS_EUNSTABLE_SOURCE, "'%s' changed while it was read "
				    "(ETag %s, then %s)", t->url, pin, f.etag_seen);
			rc = o->code;
			goto out;
		}
		for (uint64_t got = 0; got < len;) {
			size_t want = len - got < READ_BUF ? (size_t)(len - got) : READ_BUF;
			ssize_t n = pread(fd, buf, want, (off_t)(off + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				set_problem(o, -LFSFS_ESOURCE_NOT_ACCESSIBLE,
					    "cannot hash: short read of the fetched bytes");
				rc = o->code;
				goto out;
			}
			EVP_DigestUpdate(ctx, buf, (size_t)n);
			got += (uint64_t)n;
		}
		off += len;
		add_hashed(v, len);
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(o->sha256 + 2 * i, 3, "%02x", md[i]);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* ---- one object ---- */

/*
 * A presigned or signed URL (query string) is often valid for GET only: its
 * HEAD is refused (401/403, or 405 from some servers).  A network failure or
 * a 404 is not worth a second try.
 */
static int head_refused_signed(const char *url, long status)
{
	if ((strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) ||
	    !strchr(url, '?'))
		return 0;
	return status == 401 || status == 403 || status == 405;
}

/*
 * What a HEAD would have said, from a one-byte ranged GET: the total size
 * (checked against the recorded one by the engine) and the ETag.  0, or
 * the fetch's code with its detail in err.
 */
static int probe_get(struct verify *v, struct vobj *o, char *err, size_t cap)
{
	struct lfsfs_fetch f;
	int fd = memfd_create("lfsfs-verify", MFD_CLOEXEC);
	int rc;

	if (fd < 0) {
		snprintf(err, cap, "%s", strerror(errno));
		return -errno;
	}
	rc = fetch_sync(v->st, &f, o->t->url, 0, 1, o->t->size, NULL, fd);
	close(fd);
	if (rc) {
		snprintf(err, cap, "%s", f.error[0] ? f.error : lfsfs_code_name(rc));
		return rc;
	}
	memset(&o->m, 0, sizeof(o->m));
	o->m.size = o->t->size; /* the engine checked the Content-Range total */
	o->m.has_size = 1;
	snprintf(o->m.etag, sizeof(o->m.etag), "%s", f.etag_seen);
	return 0;
}

static void verify_one(struct verify *v, struct vobj *o)
{
	const struct lfsfs_tracked *t = o->t;
	const char *rec_etag = t->etag ? t->etag : t->pinned_etag;
	char notes[512] = "";
	int rc, probed = 0;

	if (!t->url) {
		set_problem(o, -LFSFS_ESOURCE_NOT_ACCESSIBLE, "%s",
			    t->resolve_error ? t->resolve_error : "no URL is known");
		return;
	}
	rc = lfsfs_store_head(v->st, t->url, &o->m);
	if (rc == -LFSFS_ESOURCE_NOT_ACCESSIBLE && t->size &&
	    head_refused_signed(t->url, o->m.status)) {
		char head_err[768], get_err[768];
		int prc;

		snprintf(head_err, sizeof(head_err), "%s", lfsfs_error_message());
		prc = probe_get(v, o, get_err, sizeof(get_err));
		if (prc == -LFSFS_ESIZE_MISMATCH) {
			set_problem(o, prc, "HEAD refused; a one-byte GET says: %s", get_err);
			return;
		}
		if (prc) {
			set_problem(o, -LFSFS_ESOURCE_NOT_ACCESSIBLE, "%s; a one-byte GET failed "
				    "too: %s", head_err, get_err);
			return;
		}
		rc = 0;
		probed = 1;
	}
	if (rc) {
		set_problem(o, rc == -LFSFS_ECREDENTIALS_MISSING ? rc : -LFSFS_ESOURCE_NOT_ACCESSIBLE,
			    "%s", lfsfs_error_message());
		return;
	}
	o->have_head = 1;
	if (o->m.has_size && o->m.size != t->size) {
		set_problem(o, -LFSFS_ESIZE_MISMATCH, "recorded %" PRIu64 " bytes, the origin "
			    "has %" PRIu64, t->size, o->m.size);
		return;
	}
	if (rec_etag && *rec_etag && o->m.etag[0] && !etag_matches(rec_etag, &o->m)) {
		set_problem(o, -LFSFS_EIMMUTABILITY, "recorded ETag %s, the origin now serves %s",
			    rec_etag, o->m.etag);
		return;
	}
	if (t->oid[0] && o->m.sha256[0] && strcasecmp(o->m.sha256, t->oid)) {
		set_problem(o, -LFSFS_ECHECKSUM_MISMATCH, "recorded sha256 %s, the store reports "
			    "%s", t->oid, o->m.sha256);
		return;
	}
	snprintf(notes, sizeof(notes), "%s%s", probed ? "HEAD refused, checked with a one-byte "
		 "GET; " : "", o->m.has_size ? "size matches" : "the origin reports no size");
	if (!rec_etag || !*rec_etag)
		snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
			 "; no recorded ETag");
	else if (!o->m.etag[0])
		snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes),
			 "; the origin sends no ETag");
	else
		snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes), "; ETag matches");
	if (v->deep) {
		if (deep_hash(v, o))
			return;
		if (t->oid[0] && strcmp(o->sha256, t->oid)) {
			set_problem(o, -LFSFS_ECHECKSUM_MISMATCH, "the bytes hash to sha256 %s, "
				    "recorded %s", o->sha256, t->oid);
			return;
		}
		snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes), "; %s",
			 t->oid[0] ? "sha256 matches" : "sha256 computed (none recorded)");
	}
	set_detail(o, notes);
}

static void *worker(void *arg)
{
	struct verify *v = arg;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&v->lock);
		i = v->next < v->n ? v->next++ : v->n;
		pthread_mutex_unlock(&v->lock);
		if (i == v->n)
			break;
		verify_one(v, &v->objs[i]);
		pthread_mutex_lock(&v->lock);
		v->done++;
		pthread_cond_signal(&v->cond);
		pthread_mutex_unlock(&v->lock);
	}
	return NULL;
}

static void human(uint64_t b, char *out, size_t cap)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)b;
	int i = 0;

	while (d >= 1024 && i < 5) {
		d /= 1024;
		i++;
	}
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", d, u[i]);
}

/* One line on stderr, redrawn in place (terminals only). */
static void progress(struct verify *v, size_t done, uint64_t hashed)
{
	char bar[31], h1[32], h2[32];
	double frac = v->deep && v->to_hash ? (double)hashed / (double)v->to_hash :
		      v->n ? (double)done / (double)v->n : 1;
	int fill = (int)(frac * 30);

	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = '\0';
	if (v->deep) {
		human(hashed, h1, sizeof(h1));
		human(v->to_hash, h2, sizeof(h2));
		fprintf(stderr, "\r\033[Kverify [%s] %zu/%zu objects, %s/%s hashed", bar, done, v->n,
			h1, h2);
	} else {
		fprintf(stderr, "\r\033[Kverify [%s] %zu/%zu objects", bar, done, v->n);
	}
	fflush(stderr);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void refused(const char *path, const char *why, void *ctx)
{
	fprintf(stderr, "lfsfs: warning: metadata.json entry '%s' skipped: %s\n", path, why);
}

static void print_json(struct verify *v, const struct lfsfs_tracked_list *l, double secs,
		       int exit_code)
{
	cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "objects");
	cJSON *sum, *counts;
	size_t ok = 0;
	uint64_t bytes = 0;
	char red[4096], *txt;

	for (size_t i = 0; i < v->n; i++) {
		const struct vobj *o = &v->objs[i];
		const struct lfsfs_tracked *t = o->t;
		const char *rec_etag = t->etag ? t->etag : t->pinned_etag;
		cJSON *j = cJSON_CreateObject();

		cJSON_AddStringToObject(j, "path", t->path);
		if (t->url)
			cJSON_AddStringToObject(j, "url", lfsfs_redact(t->url, red, sizeof(red)));
		else
			cJSON_AddNullToObject(j, "url");
		cJSON_AddStringToObject(j, "status", o->code ? lfsfs_code_name(o->code) : "ok");
		cJSON_AddStringToObject(j, "detail", o->detail);
		if (o->code)
			cJSON_AddStringToObject(j, "fix", fix_for(o));
		cJSON_AddNumberToObject(j, "size", (double)t->size);
		if (rec_etag)
			cJSON_AddStringToObject(j, "etag", rec_etag);
		else
			cJSON_AddNullToObject(j, "etag");
		if (t->oid[0])
			cJSON_AddStringToObject(j, "oid", t->oid);
		if (o->have_head) {
			if (o->m.has_size)
				cJSON_AddNumberToObject(j, "remote_size", (double)o->m.size);
			if (o->m.etag[0])
				cJSON_AddStringToObject(j, "remote_etag", o->m.etag);
		}
		if (o->sha256[0])
			cJSON_AddStringToObject(j, "sha256", o->sha256);
		cJSON_AddItemToArray(arr, j);
		ok += !o->code;
		bytes += t->size;
	}
	sum = cJSON_AddObjectToObject(doc, "summary");
	cJSON_AddNumberToObject(sum, "objects", (double)v->n);
	cJSON_AddNumberToObject(sum, "ok", (double)ok);
	cJSON_AddNumberToObject(sum, "problems", (double)(v->n - ok));
	counts = cJSON_AddObjectToObject(sum, "by_status");
	for (size_t i = 0; i < v->n; i++) {
		const char *name = v->objs[i].code ? lfsfs_code_name(v->objs[i].code) : "ok";
		cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, name);
		if (c)
			cJSON_SetNumberValue(c, c->valuedouble + 1);
		else
			cJSON_AddNumberToObject(counts, name, 1);
	}
	cJSON_AddNumberToObject(sum, "bytes", (double)bytes);
	cJSON_AddBoolToObject(sum, "deep", v->deep);
	cJSON_AddNumberToObject(sum, "hashed_bytes", (double)v->hashed);
	cJSON_AddNumberToObject(sum, "metadata_refused", (double)l->refused);
	cJSON_AddNumberToObject(sum, "seconds", (double)(long)(secs * 1000 + 0.5) / 1000);
	cJSON_AddNumberToObject(sum, "exit_code", exit_code);
	txt = cJSON_Print(doc);
	puts(txt ? txt : "{}");
	free(txt);
	cJSON_Delete(doc);
}

static void print_human(struct verify *v, double secs, int verbose)
{
	size_t ok = 0, per[LFSFS_ELAST - LFSFS_EBASE] = { 0 };
	uint64_t bytes = 0;
	char red[4096], hb[32], hh[32];

	for (size_t i = 0; i < v->n; i++) {
		const struct vobj *o = &v->objs[i];
		const char *url = o->t->url ? lfsfs_redact(o->t->url, red, sizeof(red)) : "no URL";

		bytes += o->t->size;
		if (!o->code) {
			ok++;
			if (verbose)
				printf("ok '%s' (%s): %s\n", o->t->path, url, o->detail);
			continue;
		}
		if (-o->code > LFSFS_EBASE && -o->code < LFSFS_ELAST)
			per[-o->code - LFSFS_EBASE]++;
		printf("%s '%s' (%s): %s; fix: %s\n", lfsfs_code_name(o->code), o->t->path, url,
		       o->detail, fix_for(o));
	}
	human(bytes, hb, sizeof(hb));
	printf("%s %zu object%s (%s) in %.1f s: %zu ok", v->deep ? "hashed" : "checked", v->n,
	       v->n == 1 ? "" : "s", hb, secs, ok);
	for (int c = LFSFS_EBASE + 1; c < LFSFS_ELAST; c++)
		if (per[c - LFSFS_EBASE])
			printf(", %zu %s", per[c - LFSFS_EBASE], lfsfs_code_name(-c));
	if (v->deep) {
		human(v->hashed, hh, sizeof(hh));
		printf("; %s read", hh);
	}
	printf("\n");
}

int cmd_verify(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "deep", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'J' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo_arg = NULL;
	struct cli_tracked_args ta = CLI_TRACKED_ARGS_INIT;
	const char *repo = NULL;
	char *end;
	struct lfsfs_tracked_opts topts = { .resolve = 1, .refused = refused };
	struct lfsfs_tracked_list *l = NULL;
	struct lfsfs_config *cfg = NULL;
	struct lfsfs_net *net = NULL;
	struct lfsfs_store st;
	struct verify v;
	pthread_t *th = NULL;
	size_t nth = 0;
	long jobs = 8;
	int c, json = 0, verbose = 0, worst = 0, rc, ret = EXIT_FAIL, store_up = 0;
	double t0;

	memset(&v, 0, sizeof(v));
	optind = 1;
	while ((c = getopt_long(argc, argv, "+hj:v", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo_arg = optarg;
			break;
		case 'd':
			v.deep = 1;
			break;
		case 'J':
			json = 1;
			break;
		case 'j':
			errno = 0;
			jobs = strtol(optarg, &end, 10);
			if (errno || *end || jobs < 1 || jobs > 256) {
				cli_error("bad --jobs '%s'; want a number from 1 to 256", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(verify_usage, stdout);
			return EXIT_OK;
		default:
			fputs(verify_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if ((rc = cli_tracked_args(&ta, repo_arg, argc - optind, argv + optind))) {
		ret = rc;
		goto out;
	}
	repo = ta.repo;
	topts.paths = (const char *const *)ta.filters;
	topts.n_paths = ta.n_filters;
	/* settings and the network first: the resolver chain may need them */
	if (lfsfs_config_load(repo, &cfg)) {
		cli_error("cannot read the lfsfs settings of '%s'", repo);
		goto out;
	}
	if (lfsfs_net_new(&net)) {
		cli_error("cannot start the network engine: %s", lfsfs_error_message());
		goto out;
	}
	topts.cfg = cfg;
	topts.net = net;
	if (lfsfs_tracked_load(repo, &topts, &l)) {
		cli_error("cannot list the objects of '%s': %s", repo, lfsfs_error_message());
		goto out;
	}
	if (cli_tracked_args_check(&ta, l))
		goto out;

	lfsfs_store_init(&st, net, cfg);
	store_up = 1;
	v.st = &st;
	v.n = l->n;
	if (v.n && !(v.objs = calloc(v.n, sizeof(*v.objs)))) {
		cli_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < v.n; i++) {
		v.objs[i].t = &l->items[i];
		v.to_hash += l->items[i].url ? l->items[i].size : 0;
	}
	pthread_mutex_init(&v.lock, NULL);
	pthread_cond_init(&v.cond, NULL);
	t0 = now_s();
	nth = (size_t)jobs < v.n ? (size_t)jobs : v.n;
	if (nth && !(th = calloc(nth, sizeof(*th)))) {
		cli_error("out of memory");
		goto out_threads;
	}
	for (size_t i = 0; i < nth; i++) {
		if (pthread_create(&th[i], NULL, worker, &v)) {
			nth = i;
			break;
		}
	}
	if (!nth && v.n) {
		cli_error("cannot start worker threads");
		goto out_threads;
	}
	{
		int tty = isatty(2);
		pthread_mutex_lock(&v.lock);
		while (v.done < v.n) {
			struct timespec ts;
			size_t done = v.done;
			uint64_t hashed = v.hashed;
			if (tty) {
				pthread_mutex_unlock(&v.lock);
				progress(&v, done, hashed);
				pthread_mutex_lock(&v.lock);
			}
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			if (v.done < v.n)
				pthread_cond_timedwait(&v.cond, &v.lock, &ts);
		}
		pthread_mutex_unlock(&v.lock);
		if (tty && v.n) {
			fputs("\r\033[K", stderr);
			fflush(stderr);
		}
	}
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);

	for (size_t i = 0; i < v.n; i++)
		if (severity(v.objs[i].code) > severity(worst))
			worst = v.objs[i].code;
	ret = cli_exit_for(worst);
	if (json)
		print_json(&v, l, now_s() - t0, ret);
	else if (v.n)
		print_human(&v, now_s() - t0, verbose);
	else
		fprintf(stderr, "no tracked objects in '%s'\n", l->repo);
out_threads:
	pthread_cond_destroy(&v.cond);
	pthread_mutex_destroy(&v.lock);
out:
	free(th);
	if (net)
		lfsfs_net_free(net);
	if (store_up)
		lfsfs_store_release(&st);
	lfsfs_config_free(cfg);
	free(v.objs);
	lfsfs_tracked_free(l);
	cli_tracked_args_release(&ta);
	return ret;
}
