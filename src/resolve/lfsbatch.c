/* The `lfs` resolver: download actions from the repository's Git LFS Batch API server. */
#include "resolve/lfsbatch.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lfsfs/error.h"
#include "lfsfs/pointer.h"
#include "net/net.h"
#include "util/config.h"
#include "util/log.h"
#include "util/timefmt.h"

extern char **environ;

#define LFS_MEDIA_TYPE "application/vnd.git-lfs+json"
#define BODY_CAP (32u << 20) /* 100 objects need ~100 KiB; be generous */
#define ENTRY_MAX 8192       /* cached actions per mount */
#define LAPSE_MARGIN 30      /* s: the cache re-resolves this close to expiry */
#define REHAND_GAP \
	10           /* s: an action handed out this recently may have
				    * been refused (401/403): ask the server again */
#define ERROR_TTL 30 /* s: how long a per-object error is believed */
#define FILL_TIMEOUT_MS 30000
#define REPORT_TIMEOUT_MS 10000
#define CONFIG_TIMEOUT_MS 10000

/* ------------------------------------------------------------- helpers */

static int ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && !strcmp(s + ls - lx, suffix);
}

static void strip_trailing_slashes(char *s)
{
	size_t n = strlen(s);

	while (n > 1 && s[n - 1] == '/')
		s[--n] = '\0';
}

static char *redacted(const char *url, char *out, size_t cap)
{
	return lfsfs_redact(url ? url : "", out, cap);
}

/* "scheme" of "scheme://...", lowercased into out; 0 if there is none. */
static int url_scheme(const char *u, char *out, size_t cap)
{
	const char *sep = strstr(u, "://");
	size_t n;

	if (!sep || sep == u)
		return 0;
	n = (size_t)(sep - u);
	if (n >= cap)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)u[i]) && u[i] != '+' && u[i] != '-' && u[i] != '.')
			return 0;
		out[i] = (char)tolower((unsigned char)u[i]);
	}
	out[n] = '\0';
	return 1;
}

static int is_http_url(const char *u)
{
	char sch[16];

	return url_scheme(u, sch, sizeof(sch)) && (!strcmp(sch, "http") || !strcmp(sch, "https"));
}

/* Drop "user@" and ":port" (IPv6 brackets kept) from an authority, in place. */
static void authority_host(char *a)
{
	char *at = strrchr(a, '@'), *colon;

	if (at)
		memmove(a, at + 1, strlen(at + 1) + 1);
	if (a[0] == '[') {
		char *rb = strchr(a, ']');
		if (rb)
			rb[1] = '\0';
		return;
	}
	if ((colon = strchr(a, ':')))
		*colon = '\0';
}

static int local_remote(const char *remote, const char *what)
{
	char shown[1024];

	return lfsfs_error_set(-LFSFS_EUNSUPPORTED,
	                       "'%s' is %s, which has no Git LFS batch API (git-lfs reads such "
	                       "remotes with its standalone file transfer, which lfsfs does not "
	                       "implement); set lfs.url to the http(s) LFS server",
	                       redacted(remote, shown, sizeof(shown)), what);
}

/* ------------------------------------------------------- endpoint discovery */

int lfsfs_lfs_endpoint_from_remote(const char *remote, char **out)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(16384);
	char sch[16], *s = NULL, *host = NULL;
	const char *path = NULL, *colon, *slash, *dc;
	int rc = 0;

	*out = NULL;
	if (!remote || !*remote)
		return lfsfs_error_set(-EINVAL, "empty remote URL");
	if (!(s = strdup(remote)))
		return -ENOMEM;
	strip_trailing_slashes(s);
	dc = strstr(s, "::");
	if (s[0] != '[' && dc && (!strstr(s, "://") || dc < strstr(s, "://"))) {
		char shown[1024];
		rc = lfsfs_error_set(
		        -LFSFS_EUNSUPPORTED,
		        "'%s' goes through a git remote helper; lfsfs cannot guess its "
		        "LFS server: set lfs.url",
		        redacted(s, shown, sizeof(shown)));
		goto out;
	}
	if (url_scheme(s, sch, sizeof(sch))) {
		char *auth = strstr(s, "://") + 3;
		size_t alen = strcspn(auth, "/");

		if (!strcmp(sch, "http") || !strcmp(sch, "https")) {
			rc = lfsfs_buf_appends(&b, s);
		} else if (!strcmp(sch, "ssh") || !strcmp(sch, "git+ssh") ||
		           !strcmp(sch, "ssh+git") || !strcmp(sch, "git")) {
			/* git-lfs' HTTPS fallback for ssh remotes (no git-lfs-authenticate) */
			if (!(host = strndup(auth, alen))) {
				rc = -ENOMEM;
				goto out;
			}
			authority_host(host);
			path = auth + alen;
			while (*path == '/')
				path++;
			if (!*host || !*path) {
				rc = lfsfs_error_set(-EINVAL, "cannot parse remote URL '%s'", s);
				goto out;
			}
			rc = lfsfs_buf_printf(&b, "https://%s/%s", host, path);
		} else if (!strcmp(sch, "file")) {
			rc = local_remote(s, "a file:// remote");
			goto out;
		} else {
			rc = lfsfs_error_set(-LFSFS_EUNSUPPORTED,
			                     "remote URL scheme '%s' has no known Git LFS server: "
			                     "set lfs.url",
			                     sch);
			goto out;
		}
	} else if (s[0] == '/' || s[0] == '.' || s[0] == '~') {
		rc = local_remote(s, "a local path");
		goto out;
	} else if (s[0] == '[' && strstr(s, "]:")) {
		/* [user@host:port]:path */
		char *rb = strstr(s, "]:");
		if (!(host = strndup(s + 1, (size_t)(rb - s - 1)))) {
			rc = -ENOMEM;
			goto out;
		}
		authority_host(host);
		path = rb + 2;
		while (*path == '/')
			path++;
		rc = lfsfs_buf_printf(&b, "https://%s/%s", host, path);
	} else if ((colon = strchr(s, ':')) && (!(slash = strchr(s, '/')) || colon < slash) &&
	           colon > s + 1) {
		/* scp-like [user@]host:path (a one-letter "host" is a drive letter) */
		if (!(host = strndup(s, (size_t)(colon - s)))) {
			rc = -ENOMEM;
			goto out;
		}
		authority_host(host);
		path = colon + 1;
		while (*path == '/')
			path++;
		if (!*host || !*path) {
			rc = lfsfs_error_set(-EINVAL, "cannot parse remote URL '%s'", s);
			goto out;
		}
		rc = lfsfs_buf_printf(&b, "https://%s/%s", host, path);
	} else {
		rc = local_remote(s, "a local path");
		goto out;
	}
	if (!rc)
		rc = lfsfs_buf_appends(&b,
		                       ends_with(b.data, ".git") ? "/info/lfs" : ".git/info/lfs");
	if (!rc)
		*out = lfsfs_buf_detach(&b);
out:
	lfsfs_buf_release(&b);
	free(host);
	free(s);
	return rc;
}

/* key is SEC[.SUB].VAR: section and variable case-insensitive, subsection exact. */
static int key_is(const char *key, const char *sec, const char *sub, const char *var)
{
	size_t ls = strlen(sec), lv = strlen(var), lk = strlen(key), lsub;

	if (lk <= ls || strncasecmp(key, sec, ls) || key[ls] != '.')
		return 0;
	key += ls + 1;
	lk -= ls + 1;
	if (!sub)
		return !strcasecmp(key, var);
	lsub = strlen(sub);
	return lk == lsub + 1 + lv && !strncmp(key, sub, lsub) && key[lsub] == '.' &&
	       !strcasecmp(key + lsub + 1, var);
}

static const char *kv_get(const char *const *kv, size_t n, const char *sec, const char *sub,
                          const char *var)
{
	const char *v = NULL;

	for (size_t i = 0; i < n; i++)
		if (key_is(kv[2 * i], sec, sub, var))
			v = kv[2 * i + 1];
	return v;
}

/* The subsection of SEC.<sub>.VAR keys, or NULL: "remote.a.b.url" -> "a.b". */
static int key_sub(const char *key, const char *sec, const char *var, const char **sub, size_t *len)
{
	size_t ls = strlen(sec), lv = strlen(var), lk = strlen(key);

	if (lk < ls + lv + 3 || strncasecmp(key, sec, ls) || key[ls] != '.' ||
	    key[lk - lv - 1] != '.' || strcasecmp(key + lk - lv, var))
		return 0;
	*sub = key + ls + 1;
	*len = lk - lv - 1 - (ls + 1);
	return *len > 0;
}

/* Apply the longest matching url.<base>.insteadOf to u (malloc'd result). */
static char *apply_insteadof(const char *const *kv, size_t n, const char *u)
{
	const char *best_base = NULL, *best_pfx = NULL;
	size_t best_len = 0, best_base_len = 0;
	char *r;

	for (size_t i = 0; i < n; i++) {
		const char *sub, *pfx = kv[2 * i + 1];
		size_t sl, pl = strlen(pfx);

		if (!key_sub(kv[2 * i], "url", "insteadof", &sub, &sl))
			continue;
		if (pl && pl > best_len && !strncmp(u, pfx, pl)) {
			best_base = sub;
			best_base_len = sl;
			best_pfx = pfx;
			best_len = pl;
		}
	}
	if (!best_pfx)
		return strdup(u);
	if (!(r = malloc(best_base_len + strlen(u + best_len) + 1)))
		return NULL;
	memcpy(r, best_base, best_base_len);
	strcpy(r + best_base_len, u + best_len); /* sized above */
	return r;
}

int lfsfs_lfs_discover(const char *const *kv, size_t n, const char *branch, char **endpoint,
                       char **how)
{
	const char *remote = NULL, *explicit = NULL, *url;
	char *u = NULL, howbuf[600], shown[1024], only_name[256];
	int rc = 0;

	*endpoint = *how = NULL;
	remote = kv_get(kv, n, "lfsfs", NULL, "lfs.remote");
	if (!remote && branch) {
		remote = kv_get(kv, n, "branch", branch, "remote");
		if (remote && !strcmp(remote, "."))
			remote = NULL;
	}
	if (!remote)
		remote = kv_get(kv, n, "remote", NULL, "lfsdefault");
	if (!remote) {
		/* the only remote, else "origin" (git-lfs' guess) */
		const char *only = NULL, *sub;
		size_t only_len = 0, sl, count = 0;

		for (size_t i = 0; i < n; i++) {
			if (!key_sub(kv[2 * i], "remote", "url", &sub, &sl))
				continue;
			if (!only || sl != only_len || strncmp(only, sub, sl))
				count++;
			only = sub;
			only_len = sl;
		}
		if (count == 1 && only_len < sizeof(only_name)) {
			memcpy(only_name, only, only_len);
			only_name[only_len] = '\0';
			remote = only_name;
		} else {
			remote = "origin";
		}
	}
	if ((explicit = kv_get(kv, n, "lfsfs", NULL, "lfs.url")))
		snprintf(howbuf, sizeof(howbuf), "lfsfs.lfs.url");
	else if ((explicit = kv_get(kv, n, "lfs", NULL, "url")))
		snprintf(howbuf, sizeof(howbuf), "lfs.url");
	else if ((explicit = kv_get(kv, n, "remote", remote, "lfsurl")))
		snprintf(howbuf, sizeof(howbuf), "remote.%s.lfsurl", remote);
	if (explicit) {
		if (!(u = apply_insteadof(kv, n, explicit)))
			return -ENOMEM;
		if (!is_http_url(u)) {
			rc = lfsfs_error_set(
			        -LFSFS_EUNSUPPORTED,
			        "%s '%s' is not an http(s) URL; lfsfs speaks the Git LFS "
			        "batch API over http(s) only",
			        howbuf, redacted(u, shown, sizeof(shown)));
			free(u);
			return rc;
		}
		strip_trailing_slashes(u);
		*endpoint = u;
		*how = strdup(howbuf);
		if (!*how) {
			free(u);
			*endpoint = NULL;
			return -ENOMEM;
		}
		return 0;
	}
	if (!(url = kv_get(kv, n, "remote", remote, "url")))
		return -ENOENT;
	snprintf(howbuf, sizeof(howbuf), "remote.%s.url", remote);
	if (!(u = apply_insteadof(kv, n, url)))
		return -ENOMEM;
	rc = lfsfs_lfs_endpoint_from_remote(u, endpoint);
	free(u);
	if (rc == -LFSFS_EUNSUPPORTED || rc == -EINVAL) {
		char msg[1400];
		snprintf(msg, sizeof(msg), "%s", lfsfs_error_message());
		return lfsfs_error_set(rc, "remote '%s': %s", remote, msg);
	}
	if (rc)
		return rc;
	if (!(*how = strdup(howbuf))) {
		free(*endpoint);
		*endpoint = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------- time */

int lfsfs_lfs_parse_time(const char *s, time_t *out)
{
	time_t t;

	*out = 0;
	if (lfsfs_time_rfc3339(s, &t))
		return -EINVAL;
	/* before 1970 is Go's zero time, which git-lfs servers send for "does
	 * not expire" */
	*out = t < 0 ? 0 : t;
	return 0;
}

/* ------------------------------------------------------------- JSON */

static int header_name_ok(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return 0;
	return 1;
}

static int header_value_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return 0;
	return 1;
}

static void object_release(struct lfsfs_lfs_object *o)
{
	free(o->href);
	for (size_t i = 0; i < o->n_headers; i++) {
		if (o->headers[i])
			OPENSSL_cleanse(o->headers[i], strlen(o->headers[i]));
		free(o->headers[i]);
	}
	free(o->headers);
	free(o->message);
	memset(o, 0, sizeof(*o));
}

void lfsfs_lfs_objects_free(struct lfsfs_lfs_object *o, size_t n)
{
	for (size_t i = 0; o && i < n; i++)
		object_release(&o[i]);
	free(o);
}

static int unusable(struct lfsfs_lfs_object *o, const char *why)
{
	o->error = -1;
	free(o->href);
	o->href = NULL;
	return (o->message = strdup(why)) ? 0 : -ENOMEM;
}

/* Fill o from one element of "objects"; 0, or -ENOMEM. */
static int parse_object(const cJSON *j, time_t now, struct lfsfs_lfs_object *o)
{
	const cJSON *v, *err, *act, *dl, *hdr, *h;
	size_t nh = 0;

	if ((v = cJSON_GetObjectItemCaseSensitive(j, "size")) && cJSON_IsNumber(v) &&
	    v->valuedouble >= 0)
		o->size = (uint64_t)v->valuedouble;
	o->authenticated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "authenticated"));
	if ((err = cJSON_GetObjectItemCaseSensitive(j, "error")) && cJSON_IsObject(err)) {
		v = cJSON_GetObjectItemCaseSensitive(err, "code");
		o->error = cJSON_IsNumber(v) && v->valueint > 0 ? v->valueint : 500;
		v = cJSON_GetObjectItemCaseSensitive(err, "message");
		o->message = strdup(cJSON_IsString(v) ? v->valuestring : "no message");
		return o->message ? 0 : -ENOMEM;
	}
	act = cJSON_GetObjectItemCaseSensitive(j, "actions");
	dl = act ? cJSON_GetObjectItemCaseSensitive(act, "download") : NULL;
	if (!dl || !cJSON_IsObject(dl))
		return 0; /* neither action nor error: the caller says so */
	v = cJSON_GetObjectItemCaseSensitive(dl, "href");
	if (!cJSON_IsString(v) || !*v->valuestring)
		return unusable(o, "download action without an href");
	if (!(o->href = strdup(v->valuestring)))
		return -ENOMEM;
	if ((hdr = cJSON_GetObjectItemCaseSensitive(dl, "header")) && cJSON_IsObject(hdr)) {
		cJSON_ArrayForEach(h, hdr) nh++;
		if (nh && !(o->headers = calloc(nh, sizeof(char *))))
			return -ENOMEM;
		cJSON_ArrayForEach(h, hdr)
		{
			size_t len;

			if (!cJSON_IsString(h) || !header_name_ok(h->string) ||
			    !header_value_ok(h->valuestring))
				return unusable(o, "download action with an invalid header");
			len = strlen(h->string) + strlen(h->valuestring) + 3;
			if (!(o->headers[o->n_headers] = malloc(len)))
				return -ENOMEM;
			snprintf(o->headers[o->n_headers++], len, "%s: %s", h->string,
			         h->valuestring);
		}
	}
	/* expires_in wins over expires_at; 0 means "not given" (as in git-lfs) */
	v = cJSON_GetObjectItemCaseSensitive(dl, "expires_in");
	if (cJSON_IsNumber(v) && (long long)v->valuedouble != 0) {
		double d = v->valuedouble;
		if (d > 2147483647.0)
			d = 2147483647.0;
		if (d < -2147483647.0)
			d = -2147483647.0;
		o->expires = now + (time_t)d;
		if (o->expires == 0)
			o->expires = 1; /* "already expired", not "never" */
	} else if ((v = cJSON_GetObjectItemCaseSensitive(dl, "expires_at")) && cJSON_IsString(v)) {
		if (lfsfs_lfs_parse_time(v->valuestring, &o->expires))
			log_debug("lfs: ignoring unparseable expires_at '%s'", v->valuestring);
	}
	return 0;
}

int lfsfs_lfs_parse_response(const char *json, size_t len, time_t now,
                             struct lfsfs_lfs_object **out, size_t *n)
{
	cJSON *root = cJSON_ParseWithLength(json ? json : "", json ? len : 0);
	const cJSON *objs, *v, *j;
	struct lfsfs_lfs_object *o = NULL;
	size_t cnt = 0, k = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!root || !cJSON_IsObject(root)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "batch response is not a JSON object");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "transfer");
	if (v && cJSON_IsString(v) && strcmp(v->valuestring, "basic")) {
		rc = lfsfs_error_set(-LFSFS_EUNSUPPORTED,
		                     "the server chose transfer adapter '%s'; lfsfs asked for and "
		                     "speaks only 'basic'",
		                     v->valuestring);
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "hash_algo");
	if (v && cJSON_IsString(v) && strcmp(v->valuestring, "sha256")) {
		rc = lfsfs_error_set(
		        -LFSFS_EUNSUPPORTED,
		        "the server names objects by '%s'; lfsfs knows sha256 oids only",
		        v->valuestring);
		goto out;
	}
	objs = cJSON_GetObjectItemCaseSensitive(root, "objects");
	if (!cJSON_IsArray(objs)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "batch response has no \"objects\" array");
		goto out;
	}
	cnt = (size_t)cJSON_GetArraySize(objs);
	if (cnt && !(o = calloc(cnt, sizeof(*o)))) {
		rc = -ENOMEM;
		goto out;
	}
	cJSON_ArrayForEach(j, objs)
	{
		v = cJSON_GetObjectItemCaseSensitive(j, "oid");
		if (!cJSON_IsObject(j) || !cJSON_IsString(v) || !lfsfs_oid_valid(v->valuestring))
			continue; /* not an object we could have asked about */
		snprintf(o[k].oid, sizeof(o[k].oid), "%s", v->valuestring);
		if ((rc = parse_object(j, now, &o[k++])))
			goto out;
	}
	*out = o;
	*n = k;
	o = NULL;
out:
	lfsfs_lfs_objects_free(o, k);
	cJSON_Delete(root);
	return rc;
}

static int json_string(struct lfsfs_buf *b, const char *s)
{
	int rc = lfsfs_buf_appends(b, "\"");

	for (; !rc && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			rc = lfsfs_buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			rc = lfsfs_buf_printf(b, "\\u%04x", c);
		else
			rc = lfsfs_buf_append(b, s, 1);
	}
	return rc ? rc : lfsfs_buf_appends(b, "\"");
}

int lfsfs_lfs_request_body(const struct lfsfs_resolve_query *q, size_t n, const char *ref,
                           struct lfsfs_buf *out)
{
	int rc = lfsfs_buf_appends(out, "{\"operation\":\"download\",\"transfers\":[\"basic\"],");
	int first = 1;

	if (!rc && ref) {
		rc = lfsfs_buf_appends(out, "\"ref\":{\"name\":");
		if (!rc)
			rc = json_string(out, ref);
		if (!rc)
			rc = lfsfs_buf_appends(out, "},");
	}
	if (!rc)
		rc = lfsfs_buf_appends(out, "\"objects\":[");
	for (size_t i = 0; !rc && i < n; i++) {
		int dup = 0;

		if (!q[i].oid || !lfsfs_oid_valid(q[i].oid))
			return lfsfs_error_set(-EINVAL, "not a sha256 oid: '%s'",
			                       q[i].oid ? q[i].oid : "(none)");
		for (size_t k = 0; k < i && !dup; k++)
			dup = !strcmp(q[k].oid, q[i].oid);
		if (dup)
			continue;
		rc = lfsfs_buf_printf(out, "%s{\"oid\":\"%s\",\"size\":%llu}", first ? "" : ",",
		                      q[i].oid, (unsigned long long)q[i].size);
		first = 0;
	}
	if (!rc)
		rc = lfsfs_buf_appends(out, "],\"hash_algo\":\"sha256\"}");
	return rc;
}

/* ------------------------------------------------------ running git */

/* The environment for git children: never prompt on a terminal or a GUI. */
static char **child_env(void)
{
	size_t n = 0, k = 0;
	char **env;

	for (char **e = environ; e && *e; e++)
		n++;
	if (!(env = calloc(n + 4, sizeof(char *))))
		return NULL;
	for (char **e = environ; e && *e; e++)
		if (strncmp(*e, "GIT_TERMINAL_PROMPT=", 20) && strncmp(*e, "GIT_ASKPASS=", 12) &&
		    strncmp(*e, "GCM_INTERACTIVE=", 16))
			env[k++] = *e;
	env[k++] = "GIT_TERMINAL_PROMPT=0";
	env[k++] = "GIT_ASKPASS="; /* set but empty: no askpass program either */
	env[k++] = "GCM_INTERACTIVE=never";
	env[k] = NULL;
	return env;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * Run `git -C repo ARGS...` with `in` on its stdin; stdout into out
 * (capped), the first 4 KiB of stderr into err.  Returns 0 with *wstatus,
 * -ETIMEDOUT (the child is killed), or another negative errno.
 */
static int run_git(const char *repo, const char *const *args, const char *in, size_t inlen,
                   int timeout_ms, struct lfsfs_buf *out, struct lfsfs_buf *err, int *wstatus)
{
	int ip[2] = { -1, -1 }, op[2] = { -1, -1 }, ep[2] = { -1, -1 };
	int rc = 0, timed_out = 0, pipe_was_pending;
	const char *argv[24];
	size_t na = 0, in_off = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def, pipeset, oldmask, pend;
	struct timespec t0;
	char **env = NULL;
	pid_t pid;

	*wstatus = 0;
	argv[na++] = "git";
	if (repo) {
		argv[na++] = "-C";
		argv[na++] = repo;
	}
	for (size_t i = 0; args[i] && na < 23; i++)
		argv[na++] = args[i];
	argv[na] = NULL;
	if (!(env = child_env()))
		return -ENOMEM;
	if (pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC) || (in && pipe2(ip, O_CLOEXEC))) {
		rc = -errno;
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	if (in)
		posix_spawn_file_actions_adddup2(&fa, ip[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setpgroup(&at, 0); /* own group: a timeout kills helpers too */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	                                      POSIX_SPAWN_SETPGROUP);
	rc = -posix_spawnp(&pid, "git", &fa, &at, (char *const *)argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(op[1]);
	close(ep[1]);
	op[1] = ep[1] = -1;
	if (in) {
		close(ip[0]);
		ip[0] = -1;
	}
	if (rc)
		goto out;
	if (in)
		fcntl(ip[1], F_SETFL, fcntl(ip[1], F_GETFL) | O_NONBLOCK);

	/* a helper that exits without reading its input must not kill us */
	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask);
	sigpending(&pend);
	pipe_was_pending = sigismember(&pend, SIGPIPE);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (op[0] >= 0 || ep[0] >= 0) {
		struct pollfd pf[3] = { { op[0], POLLIN, 0 },
			                { ep[0], POLLIN, 0 },
			                { ip[1], POLLOUT, 0 } };
		long left = timeout_ms - ms_since(&t0);
		char buf[4096];

		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (poll(pf, 3, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			timed_out = 1;
			break;
		}
		if (ip[1] >= 0 && (pf[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(ip[1], in + in_off, inlen - in_off);
			if (w > 0)
				in_off += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == inlen) {
				close(ip[1]);
				ip[1] = -1;
			}
		}
		for (int i = 0; i < 2; i++) {
			ssize_t r;

			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(pf[i].fd, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(pf[i].fd);
				if (i)
					ep[0] = -1;
				else
					op[0] = -1;
				continue;
			}
			if (i == 0 && out && lfsfs_buf_append(out, buf, (size_t)r) == -E2BIG)
				rc = -E2BIG;
			else if (i == 1 && err && err->len < 4096)
				lfsfs_buf_append(err, buf,
				                 (size_t)r < 4096 - err->len ? (size_t)r :
				                                               4096 - err->len);
		}
	}
	for (;;) {
		struct timespec nap = { 0, 5 * 1000 * 1000 };
		pid_t w = waitpid(pid, wstatus, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) { /* SIGCHLD ignored by the host process: status unknown */
			*wstatus = 0;
			break;
		}
		if (timed_out || ms_since(&t0) >= timeout_ms) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			while (waitpid(pid, wstatus, 0) < 0 && errno == EINTR)
				;
			break;
		}
		nanosleep(&nap, NULL);
	}
	sigpending(&pend);
	if (!pipe_was_pending && sigismember(&pend, SIGPIPE)) {
		struct timespec zero = { 0, 0 };
		sigtimedwait(&pipeset, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	if (timed_out)
		rc = -ETIMEDOUT;
out:
	for (int i = 0; i < 2; i++) {
		if (ip[i] >= 0)
			close(ip[i]);
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	free(env);
	return rc;
}

/* ------------------------------------------------------ resolver state */

struct entry {
	char oid[65];
	uint64_t size;
	int authenticated;
	char *href;
	char **headers;
	size_t n_headers;
	time_t expires; /* 0 = never */
	int error;      /* per-object error code, -1 unusable action, 0 none */
	char *message;
	time_t got;    /* when the server answered */
	time_t handed; /* when resolve() last gave it out, 0 = never */
};

struct lfs_state {
	struct lfsfs_resolve_ctx *ctx;
	char *endpoint; /* LFS server URL, no trailing slash (may hold userinfo) */
	char *shown;    /* endpoint, redacted, for messages */
	char *batch_url;
	char *how;         /* which setting named the endpoint */
	char *unsupported; /* set: no batch API here; the note to give */
	char *ref;         /* "refs/heads/<branch>" or NULL */
	char *origin;      /* scheme://host[:port] of the endpoint, lowercased */
	/* what `git credential` is asked about */
	char cred_protocol[16];
	char cred_host[512];
	char *cred_path;
	char *cred_user; /* username from the endpoint's userinfo, or NULL */

	/* One conversation with the server at a time: concurrent first reads
	 * of a directory wait for one answer instead of each asking.  Lock
	 * order: net_lock, then lock. */
	pthread_mutex_t net_lock;
	/* protected by net_lock */
	char *user, *pass; /* from git credential fill (for approve/reject) */
	int approved;
	time_t last_cred_log; /* when a credential problem was last logged */
	int last_cred_kind;   /* and which: 1 refused, 0 missing */

	pthread_mutex_t lock;
	/* protected by lock */
	char *auth; /* "Authorization: Basic ..." once the server asked */
	struct entry *cache;
	size_t n, cap;
};

static void entry_release(struct entry *e)
{
	for (size_t i = 0; i < e->n_headers; i++) {
		if (e->headers[i])
			OPENSSL_cleanse(e->headers[i], strlen(e->headers[i]));
		free(e->headers[i]);
	}
	free(e->headers);
	free(e->href);
	free(e->message);
	memset(e, 0, sizeof(*e));
}

static void secret_free(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

/* The entry for oid; caller holds st->lock. */
static struct entry *cache_find(struct lfs_state *st, const char *oid)
{
	for (size_t i = 0; i < st->n; i++)
		if (!strcmp(st->cache[i].oid, oid))
			return &st->cache[i];
	return NULL;
}

/* Make room: drop lapsed and stale entries, then the oldest. Caller holds st->lock. */
static void cache_prune(struct lfs_state *st, time_t now)
{
	size_t k = 0, oldest = 0;

	for (size_t i = 0; i < st->n; i++) {
		struct entry *e = &st->cache[i];
		int drop = e->href ? (e->expires && now + LAPSE_MARGIN >= e->expires) :
		                     now - e->got >= ERROR_TTL;
		if (drop) {
			entry_release(e);
			continue;
		}
		if (k != i) {
			st->cache[k] = *e;
			memset(e, 0, sizeof(*e));
		}
		k++;
	}
	st->n = k;
	if (st->n < ENTRY_MAX)
		return;
	for (size_t i = 1; i < st->n; i++)
		if (st->cache[i].got < st->cache[oldest].got)
			oldest = i;
	entry_release(&st->cache[oldest]);
	st->cache[oldest] = st->cache[--st->n];
	memset(&st->cache[st->n], 0, sizeof(st->cache[st->n]));
}

/* Remember what the server said about o (taking its strings). Caller holds st->lock. */
static int cache_put(struct lfs_state *st, struct lfsfs_lfs_object *o, time_t now)
{
	struct entry *e = cache_find(st, o->oid);

	if (e) {
		entry_release(e);
	} else {
		if (st->n >= ENTRY_MAX)
			cache_prune(st, now);
		if (st->n == st->cap) {
			size_t nc = st->cap ? st->cap * 2 : 64;
			struct entry *ne = realloc(st->cache, nc * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			st->cache = ne;
			st->cap = nc;
		}
		e = &st->cache[st->n++];
	}
	memset(e, 0, sizeof(*e));
	memcpy(e->oid, o->oid, sizeof(e->oid));
	e->size = o->size;
	e->authenticated = o->authenticated;
	e->href = o->href;
	e->headers = o->headers;
	e->n_headers = o->n_headers;
	e->expires = o->expires;
	e->error = o->error;
	e->message = o->message;
	e->got = now;
	o->href = NULL;
	o->headers = NULL;
	o->n_headers = 0;
	o->message = NULL;
	return 0;
}

/* "scheme://host[:port]" of u, lowercased, without userinfo (malloc'd). */
static char *url_origin(const char *u)
{
	const char *sep = strstr(u, "://"), *a, *at;
	size_t alen;
	char *r;

	if (!sep)
		return NULL;
	a = sep + 3;
	alen = strcspn(a, "/?#");
	at = memchr(a, '@', alen);
	if (at) {
		alen -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	if (!(r = malloc((size_t)(sep - u) + 3 + alen + 1)))
		return NULL;
	memcpy(r, u, (size_t)(sep - u) + 3);
	memcpy(r + (sep - u) + 3, a, alen);
	r[(sep - u) + 3 + alen] = '\0';
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

static int has_header(char **h, size_t n, const char *name)
{
	size_t l = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (!strncasecmp(h[i], name, l) && h[i][l] == ':')
			return 1;
	return 0;
}

/* A record from e. Caller holds st->lock. */
static int entry_to_record(struct lfs_state *st, const struct entry *e, struct lfsfs_record *out)
{
	int add_auth = 0;
	size_t nh = e->n_headers;

	memset(out, 0, sizeof(*out));
	/* An href on the API's own origin that the server did not authorize
	 * itself gets the API's credentials, as git-lfs would look them up for it. */
	if (st->auth && !e->authenticated &&
	    !has_header(e->headers, e->n_headers, "Authorization")) {
		char *o = url_origin(e->href);
		add_auth = o && st->origin && !strcmp(o, st->origin);
		free(o);
	}
	if (!(out->urls = calloc(1, sizeof(char *))) || !(out->urls[0] = strdup(e->href)))
		goto nomem;
	out->n_urls = 1;
	if (nh + (size_t)add_auth) {
		if (!(out->headers = calloc(nh + (size_t)add_auth, sizeof(char *))))
			goto nomem;
		for (size_t i = 0; i < nh; i++) {
			if (!(out->headers[i] = strdup(e->headers[i])))
				goto nomem;
			out->n_headers++;
		}
		if (add_auth) {
			if (!(out->headers[nh] = strdup(st->auth)))
				goto nomem;
			out->n_headers++;
		}
	}
	out->expires = e->expires;
	out->size = e->size;
	out->has_size = 1;
	snprintf(out->sha256, sizeof(out->sha256), "%s", e->oid);
	return 0;
nomem:
	lfsfs_record_release(out);
	return -ENOMEM;
}

enum take_mode {
	TAKE_CACHED, /* only if well before expiry and not handed out just now */
	TAKE_FRESH,  /* the server just answered: whatever it said */
};

/*
 * Answer q from the cache: 0 (out filled), -ENOENT with a note (the server
 * does not have it), another negative code with a message, or -EAGAIN when
 * the server must be asked.
 */
static int cache_take(struct lfs_state *st, const char *oid, enum take_mode mode,
                      struct lfsfs_record *out, struct lfsfs_buf *why)
{
	time_t now = time(NULL);
	struct entry *e;
	int rc = -EAGAIN;

	pthread_mutex_lock(&st->lock);
	e = cache_find(st, oid);
	if (!e)
		goto out;
	if (!e->href) {
		if (mode == TAKE_CACHED && now - e->got >= ERROR_TTL)
			goto out;
		if (e->error == 404 || e->error == 410) {
			lfsfs_buf_printf(why, "%s has %s (%d: %s)", st->shown,
			                 e->error == 404 ? "no such object" :
			                                   "had it but its owner removed it",
			                 e->error, e->message ? e->message : "");
			rc = -ENOENT;
		} else if (e->error > 0) {
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
			                     "%s refuses object %s (%d: %s)", st->shown, oid,
			                     e->error, e->message ? e->message : "");
		} else {
			rc = lfsfs_error_set(
			        -LFSFS_ESOURCE_NOT_ACCESSIBLE, "%s gave object %s %s", st->shown,
			        oid, e->message ? e->message : "no download action and no error");
		}
		goto out;
	}
	if (mode == TAKE_CACHED && ((e->expires && now + LAPSE_MARGIN >= e->expires) ||
	                            (e->handed && now - e->handed < REHAND_GAP)))
		goto out;
	if ((rc = entry_to_record(st, e, out)) == 0)
		e->handed = now;
out:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ------------------------------------------------------------ credentials */

/* "protocol=..\nhost=..\npath=..\n[username=..\n]" for `git credential`. */
static int cred_describe(const struct lfs_state *st, const char *user, const char *pass,
                         struct lfsfs_buf *b)
{
	int rc = lfsfs_buf_printf(b, "protocol=%s\nhost=%s\n", st->cred_protocol, st->cred_host);

	if (!rc && st->cred_path && *st->cred_path)
		rc = lfsfs_buf_printf(b, "path=%s\n", st->cred_path);
	if (!rc && user)
		rc = lfsfs_buf_printf(b, "username=%s\n", user);
	if (!rc && pass)
		rc = lfsfs_buf_printf(b, "password=%s\n", pass);
	if (!rc)
		rc = lfsfs_buf_appends(b, "\n");
	return rc;
}

static void cred_report(struct lfs_state *st, const char *verb)
{
	struct lfsfs_buf in = LFSFS_BUF_INIT(0);
	const char *args[] = { "credential", verb, NULL };
	int ws;

	if (!st->user || !st->pass)
		return;
	if (!cred_describe(st, st->user, st->pass, &in))
		run_git(st->ctx->repo, args, in.data, in.len, REPORT_TIMEOUT_MS, NULL, NULL, &ws);
	if (in.data)
		OPENSSL_cleanse(in.data, in.len);
	lfsfs_buf_release(&in);
	log_debug("lfs: git credential %s for %s://%s", verb, st->cred_protocol, st->cred_host);
}

/* Last line of git's stderr, for messages ("terminal prompts disabled"). */
static void last_line(const struct lfsfs_buf *err, char *out, size_t cap)
{
	const char *s = err->data ? err->data : "";
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	const char *p = s + n;
	while (p > s && p[-1] != '\n')
		p--;
	snprintf(out, cap, "%.*s", (int)(s + n - p), p);
}

/* `git credential fill`: username and password into st (caller holds net_lock). */
static int cred_fill(struct lfs_state *st)
{
	struct lfsfs_buf in = LFSFS_BUF_INIT(0), out = LFSFS_BUF_INIT(65536),
	                 err = LFSFS_BUF_INIT(8192);
	const char *args[] = { "credential", "fill", NULL };
	char *user = NULL, *pass = NULL, why[512];
	int rc, ws = 0;

	secret_free(&st->user);
	secret_free(&st->pass);
	st->approved = 0;
	if ((rc = cred_describe(st, st->cred_user, NULL, &in)))
		goto out;
	rc = run_git(st->ctx->repo, args, in.data, in.len, FILL_TIMEOUT_MS, &out, &err, &ws);
	for (char *line = out.data, *nl; !rc && line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, "username=", 9) && !user)
			user = strdup(line + 9);
		else if (!strncmp(line, "password=", 9) && !pass)
			pass = strdup(line + 9);
		if (!nl)
			break;
	}
	last_line(&err, why, sizeof(why));
	if (rc == -ETIMEDOUT) {
		rc = lfsfs_error_set(
		        -LFSFS_ECREDENTIALS_MISSING,
		        "%s needs credentials (HTTP 401) and `git credential fill` for "
		        "%s://%s did not answer within %d s",
		        st->shown, st->cred_protocol, st->cred_host, FILL_TIMEOUT_MS / 1000);
	} else if (rc || !user || !pass || (WIFEXITED(ws) && WEXITSTATUS(ws))) {
		rc = lfsfs_error_set(
		        -LFSFS_ECREDENTIALS_MISSING,
		        "CREDENTIALS_MISSING: %s needs credentials (HTTP 401) and `git "
		        "credential fill` has none for %s://%s%s%s%s; store them with "
		        "a credential helper (git config credential.helper) or use an "
		        "lfs.url that carries a token",
		        st->shown, st->cred_protocol, st->cred_host, *why ? " (git: " : "", why,
		        *why ? ")" : "");
	} else {
		st->user = user;
		st->pass = pass;
		user = pass = NULL;
		rc = 0;
	}
out:
	secret_free(&user);
	secret_free(&pass);
	if (in.data)
		OPENSSL_cleanse(in.data, in.len);
	if (out.data)
		OPENSSL_cleanse(out.data, out.len);
	lfsfs_buf_release(&in);
	lfsfs_buf_release(&out);
	lfsfs_buf_release(&err);
	return rc;
}

/* "Authorization: Basic base64(user:pass)" (malloc'd). */
static char *basic_auth(const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass), l = ul + 1 + pl;
	unsigned char *plain = malloc(l + 1);
	char *hdr = NULL;
	size_t enc = 4 * ((l + 2) / 3) + 1;

	if (!plain)
		return NULL;
	memcpy(plain, user, ul);
	plain[ul] = ':';
	memcpy(plain + ul + 1, pass, pl);
	if ((hdr = malloc(strlen("Authorization: Basic ") + enc))) {
		strcpy(hdr, "Authorization: Basic ");
		EVP_EncodeBlock((unsigned char *)hdr + strlen(hdr), plain, (int)l);
	}
	OPENSSL_cleanse(plain, l);
	free(plain);
	return hdr;
}

static void set_auth(struct lfs_state *st, char *hdr)
{
	pthread_mutex_lock(&st->lock);
	secret_free(&st->auth);
	st->auth = hdr;
	pthread_mutex_unlock(&st->lock);
}

/* ------------------------------------------------------------ requests */

/* The "message" of a JSON error document, or its first line. */
static void server_message(const struct lfsfs_buf *body, char *out, size_t cap)
{
	cJSON *j = body->data ? cJSON_ParseWithLength(body->data, body->len) : NULL;
	const cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;

	out[0] = '\0';
	if (cJSON_IsString(m))
		snprintf(out, cap, "%s", m->valuestring);
	else if (body->data)
		snprintf(out, cap, "%.*s", (int)strcspn(body->data, "\r\n"), body->data);
	cJSON_Delete(j);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

static const char *status_hint(long st)
{
	switch (st) {
	case 403:
		return "; the credentials have no read access to this repository";
	case 404:
		return "; the repository does not exist or these credentials cannot see it";
	case 406:
	case 415:
		return "; the server does not speak the Git LFS batch API here";
	case 413:
		return "; the server refuses batches this large";
	default:
		return "";
	}
}

/*
 * POST one batch of n (<= LFSFS_LFS_BATCH_MAX) queries; *objs on success.
 * Handles 401 with `git credential`.  Caller holds st->net_lock.
 */
static int batch_post(struct lfs_state *st, const struct lfsfs_resolve_query *q, size_t n,
                      struct lfsfs_lfs_object **objs, size_t *nobj, time_t *when)
{
	struct lfsfs_buf body = LFSFS_BUF_INIT(0);
	int rc, filled = 0;

	*objs = NULL;
	*nobj = 0;
	if ((rc = lfsfs_lfs_request_body(q, n, st->ref, &body)))
		return rc;
	for (int attempt = 0; attempt < 3; attempt++) {
		struct lfsfs_http_req req;
		struct curl_slist *h = NULL, *h2;
		struct timespec t0;
		char *auth = NULL, msg[512];
		long status;

		memset(&req, 0, sizeof(req));
		pthread_mutex_lock(&st->lock);
		if (st->auth && !(auth = strdup(st->auth)))
			rc = -ENOMEM;
		pthread_mutex_unlock(&st->lock);
		if (rc)
			break;
		h = curl_slist_append(h, "Accept: " LFS_MEDIA_TYPE);
		if (h && (h2 = curl_slist_append(h, "Content-Type: " LFS_MEDIA_TYPE)))
			h = h2;
		if (h && auth && (h2 = curl_slist_append(h, auth)))
			h = h2;
		secret_free(&auth);
		if (!h) {
			rc = -ENOMEM;
			break;
		}
		req.method = LFSFS_HTTP_POST;
		req.url = st->batch_url;
		req.fd = -1;
		req.body.cap = BODY_CAP;
		req.headers = h;
		req.req_body = body.data;
		req.req_body_len = body.len;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = lfsfs_net_perform(st->ctx->net, &req);
		status = req.status;
		*when = time(NULL);
		curl_slist_free_all(h);
		log_debug("lfs: POST %s/objects/batch (%zu object%s) -> HTTP %ld in %ld ms",
		          st->shown, n, n == 1 ? "" : "s", status, ms_since(&t0));
		if (status >= 200 && status < 300 && !rc) {
			rc = lfsfs_lfs_parse_response(req.body.data, req.body.len, *when, objs,
			                              nobj);
			if (rc) {
				snprintf(msg, sizeof(msg), "%s", lfsfs_error_message());
				rc = lfsfs_error_set(rc, "%s: %s", st->shown, msg);
			} else if (filled && !st->approved) {
				cred_report(st, "approve");
				st->approved = 1;
			}
		} else if (status == 401) {
			if (filled) {
				/* fresh credentials refused: tell the helper, forget them */
				cred_report(st, "reject");
				secret_free(&st->user);
				secret_free(&st->pass);
				set_auth(st, NULL);
				rc = lfsfs_error_set(
				        -LFSFS_ECREDENTIALS_MISSING,
				        "CREDENTIALS_MISSING: %s refused the credentials "
				        "`git credential fill` gave for %s://%s (HTTP 401); "
				        "they were rejected (`git credential reject`): store "
				        "working ones with your credential helper (git config "
				        "credential.helper)",
				        st->shown, st->cred_protocol, st->cred_host);
			} else {
				if (st->user) /* worked before, refused now: password changed */
					cred_report(st, "reject");
				set_auth(st, NULL);
				rc = cred_fill(st);
				if (!rc) {
					char *hdr = basic_auth(st->user, st->pass);
					if (!hdr) {
						rc = -ENOMEM;
					} else {
						set_auth(st, hdr);
						filled = 1;
						lfsfs_buf_release(&req.body);
						lfsfs_buf_release(&req.errbody);
						continue;
					}
				}
			}
			if (rc && rc != -ENOMEM &&
			    (*when - st->last_cred_log >= 30 || st->last_cred_kind != filled)) {
				/* the reader's error names the object; say the cause once */
				st->last_cred_log = *when;
				st->last_cred_kind = filled;
				log_error("lfs: %s", lfsfs_error_message());
			}
		} else if (status >= 300) {
			server_message(&req.errbody, msg, sizeof(msg));
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
			                     "%s/objects/batch answered HTTP %ld%s%s%s", st->shown,
			                     status, *msg ? " (" : "", msg, *msg ? ")" : "");
			rc = lfsfs_error_set(rc, "%s%s", lfsfs_error_message(),
			                     status_hint(status));
		} else {
			rc = lfsfs_error_set(rc ? rc : -LFSFS_ESOURCE_NOT_ACCESSIBLE,
			                     "cannot %s %s/objects/batch: %s",
			                     status ? "read the answer of" : "reach", st->shown,
			                     req.error[0] ? req.error : "no answer");
		}
		lfsfs_buf_release(&req.body);
		lfsfs_buf_release(&req.errbody);
		break;
	}
	lfsfs_buf_release(&body);
	return rc;
}

/* Keep every answer; caller holds net_lock. */
static void cache_answers(struct lfs_state *st, struct lfsfs_lfs_object *o, size_t n, time_t when)
{
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < n; i++) {
		if (!o[i].href && !o[i].error)
			o[i].error = -1; /* neither action nor error */
		cache_put(st, &o[i], when);
	}
	pthread_mutex_unlock(&st->lock);
}

/* ------------------------------------------------------------ the ops */

static int lfs_resolve(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
                       struct lfsfs_record *out, struct lfsfs_buf *why)
{
	struct lfs_state *st = r->priv;
	struct lfsfs_lfs_object *objs = NULL;
	size_t nobj = 0;
	time_t when;
	int rc;

	if (st->unsupported) {
		lfsfs_buf_appends(why, st->unsupported);
		return -ENOENT;
	}
	if (!q->oid || !lfsfs_oid_valid(q->oid)) {
		lfsfs_buf_appends(why, "needs an oid");
		return -ENOENT;
	}
	if ((rc = cache_take(st, q->oid, TAKE_CACHED, out, why)) != -EAGAIN)
		return rc;
	pthread_mutex_lock(&st->net_lock);
	/* another reader may have asked while we waited */
	if ((rc = cache_take(st, q->oid, TAKE_CACHED, out, why)) == -EAGAIN) {
		rc = batch_post(st, q, 1, &objs, &nobj, &when);
		if (!rc) {
			cache_answers(st, objs, nobj, when);
			rc = cache_take(st, q->oid, TAKE_FRESH, out, why);
			if (rc == -EAGAIN)
				rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
				                     "%s did not mention object %s in its answer",
				                     st->shown, q->oid);
		}
	}
	pthread_mutex_unlock(&st->net_lock);
	lfsfs_lfs_objects_free(objs, nobj);
	return rc;
}

static int lfs_resolve_batch(struct lfsfs_resolver *r, const struct lfsfs_resolve_query *q,
                             size_t n, struct lfsfs_record *out)
{
	struct lfs_state *st = r->priv;
	struct lfsfs_resolve_query *chunk = NULL;
	int rc = 0;

	if (st->unsupported || !n)
		return 0;
	if (!(chunk = calloc(n < LFSFS_LFS_BATCH_MAX ? n : LFSFS_LFS_BATCH_MAX, sizeof(*chunk))))
		return -ENOMEM;
	pthread_mutex_lock(&st->net_lock);
	for (size_t i = 0; i < n && !rc;) {
		struct lfsfs_lfs_object *objs = NULL;
		size_t m = 0, nobj = 0, end = i;
		time_t when;

		/* the next up to 100 distinct oids without a good cached action */
		for (; end < n && m < LFSFS_LFS_BATCH_MAX; end++) {
			int seen = 0;
			struct entry *e;

			if (!q[end].oid || !lfsfs_oid_valid(q[end].oid))
				continue;
			for (size_t k = 0; k < m && !seen; k++)
				seen = !strcmp(chunk[k].oid, q[end].oid);
			pthread_mutex_lock(&st->lock);
			e = cache_find(st, q[end].oid);
			if (e && e->href &&
			    !(e->expires && time(NULL) + LAPSE_MARGIN >= e->expires))
				seen = 1;
			pthread_mutex_unlock(&st->lock);
			if (!seen)
				chunk[m++] = q[end];
		}
		if (m) {
			rc = batch_post(st, chunk, m, &objs, &nobj, &when);
			if (!rc)
				cache_answers(st, objs, nobj, when);
			lfsfs_lfs_objects_free(objs, nobj);
		}
		/* hand out what is known for every query of this stretch */
		pthread_mutex_lock(&st->lock);
		for (size_t k = i; k < end; k++) {
			struct entry *e;

			if (!q[k].oid || out[k].n_urls)
				continue;
			e = cache_find(st, q[k].oid);
			if (!e || !e->href)
				continue;
			if (entry_to_record(st, e, &out[k]) == -ENOMEM)
				rc = -ENOMEM;
			else
				e->handed = time(NULL); /* the caller keeps it: see cache_take */
		}
		pthread_mutex_unlock(&st->lock);
		i = end;
	}
	pthread_mutex_unlock(&st->net_lock);
	free(chunk);
	return rc;
}

/* ------------------------------------------------------------ setup */

struct kvlist {
	char **kv;     /* pairs */
	size_t n, cap; /* in pairs */
};

static int kv_add(struct kvlist *l, const char *k, size_t kl, const char *v, size_t vl)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 32;
		char **nk = realloc(l->kv, 2 * nc * sizeof(char *));
		if (!nk)
			return -ENOMEM;
		l->kv = nk;
		l->cap = nc;
	}
	if (!(l->kv[2 * l->n] = strndup(k, kl)))
		return -ENOMEM;
	if (!(l->kv[2 * l->n + 1] = strndup(v, vl))) {
		free(l->kv[2 * l->n]);
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

static void kv_free(struct kvlist *l)
{
	for (size_t i = 0; i < 2 * l->n; i++)
		free(l->kv[i]);
	free(l->kv);
	memset(l, 0, sizeof(*l));
}

/* Append the pairs `git config -z --get-regexp RE` prints for repo (or file). */
static int kv_load(struct kvlist *l, const char *repo, const char *file, const char *re)
{
	struct lfsfs_buf out = LFSFS_BUF_INIT(1 << 20);
	const char *a_file[] = { "config", "-z", "--file", file, "--get-regexp", re, NULL };
	const char *a_repo[] = { "config", "-z", "--get-regexp", re, NULL };
	int ws, rc = run_git(repo, file ? a_file : a_repo, NULL, 0, CONFIG_TIMEOUT_MS, &out, NULL,
	                     &ws);

	/* no git, no such key (exit 1), no file: nothing to add */
	for (size_t i = 0; !rc && out.data && i < out.len;) {
		const char *rec = out.data + i;
		size_t len = strnlen(rec, out.len - i);
		const char *nl = memchr(rec, '\n', len);

		rc = nl ? kv_add(l, rec, (size_t)(nl - rec), nl + 1, len - (size_t)(nl - rec) - 1) :
		          kv_add(l, rec, len, "true", 4);
		i += len + 1;
	}
	lfsfs_buf_release(&out);
	return rc == -ENOMEM ? rc : 0;
}

/* The checked-out branch (malloc'd) from <gitdir>/HEAD, or NULL. */
static char *head_branch(const char *gitdir)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(4096);
	char path[4200], *r = NULL;

	snprintf(path, sizeof(path), "%s/HEAD", gitdir);
	if (!lfsfs_buf_read_file(&b, path) && b.data && !strncmp(b.data, "ref: refs/heads/", 16)) {
		r = strndup(b.data + 16, strcspn(b.data + 16, "\r\n"));
		if (r && !*r) {
			free(r);
			r = NULL;
		}
	}
	lfsfs_buf_release(&b);
	return r;
}

static void state_free(struct lfs_state *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++)
		entry_release(&st->cache[i]);
	free(st->cache);
	secret_free(&st->auth);
	secret_free(&st->user);
	secret_free(&st->pass);
	free(st->endpoint);
	free(st->shown);
	free(st->batch_url);
	free(st->how);
	free(st->unsupported);
	free(st->ref);
	free(st->origin);
	free(st->cred_path);
	free(st->cred_user);
	pthread_mutex_destroy(&st->net_lock);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* protocol, host, path and username for `git credential`, from the endpoint. */
static int cred_fields(struct lfs_state *st)
{
	const char *u = st->endpoint, *sep = strstr(u, "://"), *a, *at, *p;
	size_t alen;

	if (!sep || (size_t)(sep - u) >= sizeof(st->cred_protocol))
		return -EINVAL;
	snprintf(st->cred_protocol, sizeof(st->cred_protocol), "%.*s", (int)(sep - u), u);
	for (char *c = st->cred_protocol; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	a = sep + 3;
	alen = strcspn(a, "/?#");
	at = memchr(a, '@', alen);
	if (at) {
		size_t ul = strcspn(a, ":@");
		if (!(st->cred_user = strndup(a, ul)))
			return -ENOMEM;
		alen -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	snprintf(st->cred_host, sizeof(st->cred_host), "%.*s", (int)alen, a);
	p = a + alen;
	while (*p == '/')
		p++;
	st->cred_path = strndup(p, strcspn(p, "?#"));
	return st->cred_path ? 0 : -ENOMEM;
}

static int lfs_init(struct lfsfs_resolver *r, struct lfsfs_resolve_ctx *ctx)
{
	struct kvlist kv = { 0 };
	struct lfs_state *st;
	char lfsconfig[4200], *branch = NULL, shown[2048];
	const char *v;
	int rc;

	if (!ctx->net)
		return -ENOENT; /* no network in this process */
	if (!(st = calloc(1, sizeof(*st))))
		return -ENOMEM;
	st->ctx = ctx;
	pthread_mutex_init(&st->net_lock, NULL);
	pthread_mutex_init(&st->lock, NULL);

	/* git-lfs reads lfs.url and remote.*.lfsurl from .lfsconfig, under git config */
	snprintf(lfsconfig, sizeof(lfsconfig), "%s/.lfsconfig", ctx->repo);
	if (access(lfsconfig, R_OK) == 0 &&
	    (rc = kv_load(&kv, ctx->repo, lfsconfig, "^(lfs\\.url|remote\\..*\\.lfsurl)$")))
		goto fail;
	if ((rc = kv_load(&kv, ctx->repo, NULL,
	                  "^(lfs\\.url|remote\\..*\\.(url|lfsurl)|remote\\.lfsdefault|"
	                  "url\\..*\\.insteadof|branch\\..*\\.remote)$")))
		goto fail;
	if ((v = lfsfs_config_get(ctx->cfg, "lfsfs.lfs.url")) && *v &&
	    (rc = kv_add(&kv, "lfsfs.lfs.url", 13, v, strlen(v))))
		goto fail;
	if ((v = lfsfs_config_get(ctx->cfg, "lfsfs.lfs.remote")) && *v &&
	    (rc = kv_add(&kv, "lfsfs.lfs.remote", 16, v, strlen(v))))
		goto fail;
	branch = ctx->gitdir ? head_branch(ctx->gitdir) : NULL;
	rc = lfsfs_lfs_discover((const char *const *)kv.kv, kv.n, branch, &st->endpoint, &st->how);
	if (rc == -ENOENT)
		goto fail; /* no remote, no lfs.url: not configured */
	if (rc == -LFSFS_EUNSUPPORTED || rc == -EINVAL) {
		/* stay in the chain to say why objects are not found */
		if (!(st->unsupported = strdup(lfsfs_error_message()))) {
			rc = -ENOMEM;
			goto fail;
		}
		log_info("lfs: no Git LFS batch API for this repository: %s", st->unsupported);
		goto done;
	}
	if (rc)
		goto fail;
	if (branch && asprintf(&st->ref, "refs/heads/%s", branch) < 0) {
		st->ref = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	if (asprintf(&st->batch_url, "%s/objects/batch", st->endpoint) < 0) {
		st->batch_url = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	if (!(st->shown = strdup(redacted(st->endpoint, shown, sizeof(shown)))) ||
	    !(st->origin = url_origin(st->endpoint)) || (rc = cred_fields(st))) {
		rc = rc ? rc : -ENOMEM;
		goto fail;
	}
	/* an ssh remote: say that its HTTPS endpoint is used without git-lfs-authenticate */
	v = NULL;
	for (size_t i = 0; i < kv.n; i++)
		if (!strcasecmp(kv.kv[2 * i], st->how))
			v = kv.kv[2 * i + 1];
	{
		char *rewritten = v ? apply_insteadof((const char *const *)kv.kv, kv.n, v) : NULL;
		int ssh = rewritten && !is_http_url(rewritten);

		free(rewritten);
		log_info(
		        "lfs: Git LFS batch endpoint %s (from %s)%s", st->shown, st->how,
		        ssh ? "; the remote is not http(s): its https endpoint is used (no "
		              "git-lfs-authenticate over ssh), credentials come from git credential" :
		              "");
	}
done:
	r->priv = st;
	kv_free(&kv);
	free(branch);
	return 0;
fail:
	kv_free(&kv);
	free(branch);
	state_free(st);
	return rc;
}

static void lfs_free(struct lfsfs_resolver *r)
{
	state_free(r->priv);
	r->priv = NULL;
}

const struct lfsfs_resolver_ops lfsfs_resolver_lfs = {
	.name = "lfs",
	.init = lfs_init,
	.resolve = lfs_resolve,
	.resolve_batch = lfs_resolve_batch,
	.free = lfs_free,
};
