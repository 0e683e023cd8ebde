/* `lfsfs ls`: every tracked object with its size, identity, URL and cache state. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cli/cli.h"
#include "cli/tracked_args.h"
#include "index/index.h"
#include "lfsfs/error.h"
#include "meta/tracked.h"
#include "net/net.h"
#include "util/config.h"
#include "util/log.h"

static const char ls_usage[] =
	"usage: lfsfs ls [--json] [--repo DIR] [--cache-dir DIR] [PATH...]\n"
	"\n"
	"List every tracked object of a repository (Git LFS pointer files in the\n"
	"working tree and .lfs-meta/metadata.json entries), sorted by path: its\n"
	"size, oid (or ETag when no sha256 is known), URL (credentials and query\n"
	"strings redacted) and cache state:\n"
	"  remote    nothing cached      partial   some blocks cached\n"
	"  cached    every block cached  verified  cached and its sha256 checked\n"
	"Works while the repository is mounted (states lag the mount by up to a\n"
	"second).  PATH limits the list to objects at or under it.\n"
	"\n"
	"  --repo DIR       the repository (default: the working tree containing\n"
	"                   the current directory)\n"
	"  --cache-dir DIR  the cache to report on (default as for mount:\n"
	"                   $XDG_CACHE_HOME/lfsfs or ~/.cache/lfsfs)\n"
	"  --json           a JSON array, one object per tracked object\n";

/* What the cache index says about one object. */
struct lsinfo {
	enum lfsfs_obj_state state;
	uint64_t cached_bytes;
	char sha256[65];          /* learned or known, "" otherwise */
};

static void human(uint64_t v, char *out, size_t cap)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	int i = 0;

	while (d >= 1024 && i < 5) {
		d /= 1024;
		i++;
	}
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", d, u[i]);
}

/* The cache state of t, keyed exactly as the mount keys it (fuse/fs.c). */
static void peek(struct lfsfs_index_txn *txn, const struct lfsfs_tracked *t, struct lsinfo *out)
{
	struct lfsfs_object_desc d = {
		.oid = t->oid[0] ? t->oid : NULL,
		.etag = t->etag && t->etag[0] ? t->etag : NULL,
		.url = t->from == LFSFS_TRACKED_META ? t->meta_url : NULL,
		.size = t->size,
	};
	char key[LFSFS_KEY_MAX + 1], alias[LFSFS_KEY_MAX + 1];
	struct lfsfs_objrec rec;

	memset(out, 0, sizeof(*out));
	out->state = LFSFS_STATE_REMOTE;
	snprintf(out->sha256, sizeof(out->sha256), "%s", t->oid);
	if (!txn || lfsfs_cache_key(&d, key, sizeof(key)))
		return;
	if (lfsfs_index_get_obj(txn, key, &rec)) {
		/* an etag-keyed object whose sha256 was learned may hold the bytes */
		if (!d.oid || lfsfs_index_get_alias(txn, key, alias, sizeof(alias)) ||
		    lfsfs_index_get_obj(txn, alias, &rec))
			return;
	}
	if (rec.size != t->size)
		return; /* not these bytes */
	out->cached_bytes = rec.cached_bytes;
	if (!out->sha256[0] && rec.sha256[0])
		snprintf(out->sha256, sizeof(out->sha256), "%s", rec.sha256);
	if ((rec.flags & LFSFS_OBJ_VERIFIED) && rec.cached_bytes == rec.size)
		out->state = LFSFS_STATE_VERIFIED;
	else if (rec.size && rec.cached_bytes >= rec.size)
		out->state = LFSFS_STATE_CACHED;
	else if (rec.cached_bytes)
		out->state = LFSFS_STATE_PARTIAL;
}

static const char *source_name(unsigned from)
{
	if (from == (LFSFS_TRACKED_POINTER | LFSFS_TRACKED_META))
		return "pointer+metadata";
	return from & LFSFS_TRACKED_POINTER ? "pointer" : "metadata";
}

static void refused(const char *path, const char *why, void *ctx)
{
	fprintf(stderr, "lfsfs: warning: metadata.json entry '%s' skipped: %s\n", path, why);
}

static cJSON *json_item(const struct lfsfs_tracked *t, const struct lsinfo *li)
{
	cJSON *o = cJSON_CreateObject();
	char red[4096];

	cJSON_AddStringToObject(o, "path", t->path);
	cJSON_AddNumberToObject(o, "size", (double)t->size);
	if (t->oid[0])
		cJSON_AddStringToObject(o, "oid", t->oid);
	else
		cJSON_AddNullToObject(o, "oid");
	if (t->etag || t->pinned_etag)
		cJSON_AddStringToObject(o, "etag", t->etag ? t->etag : t->pinned_etag);
	else
		cJSON_AddNullToObject(o, "etag");
	if (t->url) {
		cJSON_AddStringToObject(o, "url", lfsfs_redact(t->url, red, sizeof(red)));
	} else {
		cJSON_AddNullToObject(o, "url");
		cJSON_AddStringToObject(o, "error", lfsfs_redact(t->resolve_error ? t->resolve_error
							: "unresolved", red, sizeof(red)));
	}
	cJSON_AddStringToObject(o, "state", lfsfs_obj_state_name(li->state));
	cJSON_AddNumberToObject(o, "cached_bytes", (double)li->cached_bytes);
	if (!t->oid[0] && li->sha256[0])
		cJSON_AddStringToObject(o, "sha256", li->sha256); /* learned on a full read */
	cJSON_AddStringToObject(o, "source", source_name(t->from));
	return o;
}

/* The table's identity column: a short oid, else the recorded ETag, else "-". */
static int ident(const struct lfsfs_tracked *t, char *out, size_t cap)
{
	if (t->oid[0])
		return snprintf(out, cap, "%.12s", t->oid);
	if (t->etag && t->etag[0])
		return snprintf(out, cap, "etag:%s", t->etag);
	return snprintf(out, cap, "-");
}

static void print_table(const struct lfsfs_tracked_list *l, const struct lsinfo *li)
{
	int wp = 4, ws = 4, wi = 8, wst = 5;
	char sz[32], id[200], red[4096];

	for (size_t i = 0; i < l->n; i++) {
		const struct lfsfs_tracked *t = &l->items[i];
		int n = (int)strlen(t->path);
		if (n > wp)
			wp = n;
		human(t->size, sz, sizeof(sz));
		if ((int)strlen(sz) > ws)
			ws = (int)strlen(sz);
		n = ident(t, id, sizeof(id));
		if (n > wi)
			wi = n;
		if ((int)strlen(lfsfs_obj_state_name(li[i].state)) > wst)
			wst = (int)strlen(lfsfs_obj_state_name(li[i].state));
	}
	printf("%-*s  %*s  %-*s  %-*s  %s\n", wp, "PATH", ws, "SIZE", wi, "OID/ETAG", wst, "STATE",
	       "URL");
	for (size_t i = 0; i < l->n; i++) {
		const struct lfsfs_tracked *t = &l->items[i];
		human(t->size, sz, sizeof(sz));
		ident(t, id, sizeof(id));
		printf("%-*s  %*s  %-*s  %-*s  %s\n", wp, t->path, ws, sz, wi, id, wst,
		       lfsfs_obj_state_name(li[i].state),
		       t->url ? lfsfs_redact(t->url, red, sizeof(red)) : "(unresolved)");
	}
}

int cmd_ls(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo_arg = NULL, *cache_arg = NULL;
	struct cli_tracked_args ta = CLI_TRACKED_ARGS_INIT;
	const char *repo = NULL;
	char *cache_dir = NULL, ixpath[PATH_MAX];
	struct lfsfs_tracked_opts topts = { .resolve = 1, .refused = refused };
	struct lfsfs_config *cfg = NULL;
	struct lfsfs_net *net = NULL;
	struct lfsfs_tracked_list *l = NULL;
	struct lfsfs_index *ix = NULL;
	struct lfsfs_index_txn *txn = NULL;
	struct lsinfo *li = NULL;
	struct stat sb;
	int c, json = 0, rc, ret = EXIT_FAIL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo_arg = optarg;
			break;
		case 'C':
			cache_arg = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(ls_usage, stdout);
			return EXIT_OK;
		default:
			fputs(ls_usage, stderr);
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
	/* the configured resolver chain (DRS, Indexd, LFS batch) needs both */
	if (lfsfs_config_load(repo, &cfg) == 0 && lfsfs_net_new(&net) == 0) {
		topts.cfg = cfg;
		topts.net = net;
	}
	if ((rc = lfsfs_tracked_load(repo, &topts, &l))) {
		cli_error("cannot list the objects of '%s': %s", repo, lfsfs_error_message());
		goto out;
	}
	if (cli_tracked_args_check(&ta, l))
		goto out;

	/* the cache index, read-only and alongside a running mount */
	cache_dir = cache_arg ? strdup(cache_arg) : cli_default_cache_dir();
	if (!cache_dir) {
		cli_error("out of memory");
		goto out;
	}
	snprintf(ixpath, sizeof(ixpath), "%s/index", cache_dir);
	if (!stat(ixpath, &sb)) {
		if (lfsfs_index_open(ixpath, &ix) || lfsfs_index_begin(ix, 0, &txn)) {
			cli_error("cannot read the cache index in '%s': %s", cache_dir,
				  lfsfs_error_message());
			goto out;
		}
	}
	if (l->n && !(li = calloc(l->n, sizeof(*li)))) {
		cli_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < l->n; i++)
		peek(txn, &l->items[i], &li[i]);

	if (json) {
		cJSON *arr = cJSON_CreateArray();
		char *txt;
		for (size_t i = 0; i < l->n; i++)
			cJSON_AddItemToArray(arr, json_item(&l->items[i], &li[i]));
		txt = cJSON_Print(arr);
		puts(txt ? txt : "[]");
		free(txt);
		cJSON_Delete(arr);
	} else if (l->n) {
		print_table(l, li);
	} else {
		fprintf(stderr, "no tracked objects in '%s'\n", l->repo);
	}
	ret = EXIT_OK;
out:
	if (txn)
		lfsfs_index_abort(txn);
	if (ix)
		lfsfs_index_close(ix);
	free(li);
	lfsfs_tracked_free(l);
	lfsfs_net_free(net);
	lfsfs_config_free(cfg);
	cli_tracked_args_release(&ta);
	free(cache_dir);
	return ret;
}
