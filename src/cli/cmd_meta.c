/* `lfsfs meta sync`: write back the sha256 that mounts learned into pointers and .lfs-meta records. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cli/cli.h"
#include "index/index.h"
#include "lfsfs/error.h"
#include "meta/lfsmeta.h"
#include "meta/lfsmeta_write.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/path.h"

static const char meta_usage[] =
        "usage: lfsfs meta sync [--repo DIR] [--cache-dir DIR] [--dry-run]\n"
        "\n"
        "  sync   for every .lfs-meta/metadata.json entry without a sha256, look up\n"
        "         the object in the block cache: when a mount has read all of it and\n"
        "         computed its sha256, write that sha256 into metadata.json and\n"
        "         .lfs-meta/etag/<etag>.json, and write .lfs-meta/sha256/<oid>.json, the\n"
        "         Git LFS pointer at the entry's path and its .gitattributes line.\n"
        "         Entries the cache has not fully read are left as they are.  Works\n"
        "         while a mount is running; reruns change nothing.\n"
        "\n"
        "  --repo DIR       the repository (default: the one around the current\n"
        "                   directory)\n"
        "  --cache-dir DIR  the cache the mount used (default: as 'lfsfs mount':\n"
        "                   $XDG_CACHE_HOME/lfsfs or ~/.cache/lfsfs)\n"
        "  --dry-run        say what would be written, write nothing\n"
        "\n"
        "Exit status: 0 ok (also when nothing was learned), 1 an entry could not be\n"
        "written (the others are), 2 usage, 3 a learned sha256 contradicts a record.\n";

static void report(const char *prefix, int rc, const char *msg)
{
	const char *code = lfsfs_code_name(rc);
	char red[2048];
	int seed = (rc < 0 ? -rc : rc) > LFSFS_EBASE;

	lfsfs_redact(msg && *msg ? msg : code, red, sizeof(red));
	if (seed && strncmp(red, code, strlen(code)))
		cli_error("%s%s: %s", prefix, code, red);
	else
		cli_error("%s%s", prefix, red);
}

static void on_refused(const char *path, const char *why, void *ctx)
{
	(*(unsigned *)ctx)++;
	fprintf(stderr, "lfsfs: warning: metadata.json entry '%s' skipped: %s\n", path, why);
}

/* New pointers named in the `git add` hint; more are only counted. */
#define MAX_LISTED 10

static void print_quoted(const char *s)
{
	if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/+=,:@%") ==
	    strlen(s)) {
		printf(" %s", s);
		return;
	}
	printf(" '");
	for (; *s; s++) {
		if (*s == '\'')
			printf("'\\''");
		else
			putchar(*s);
	}
	printf("'");
}

/* What the cache learned about one entry. */
struct learned {
	const struct lfsfs_meta_entry *e;
	char sha256[LFSFS_OID_HEX_LEN + 1];
};

static int meta_sync(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "cache-dir", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo_opt = NULL, *cache_opt = NULL;
	char *repo = NULL, *prefix = NULL, *cache_dir = NULL, *index_dir = NULL;
	struct lfsfs_meta *meta = NULL;
	struct lfsfs_writer *w = NULL;
	struct lfsfs_index *ix = NULL;
	struct lfsfs_index_txn *t = NULL;
	struct learned *found = NULL;
	const char *listed[MAX_LISTED];
	size_t n_found = 0, n_missing = 0, n_written = 0, n_failed = 0, n_pointers = 0;
	unsigned refused = 0, committed = 0;
	struct stat sb;
	int c, rc, dry = 0, ret = EXIT_FAIL, worst = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo_opt = optarg;
			break;
		case 'c':
			cache_opt = optarg;
			break;
		case 'n':
			dry = 1;
			break;
		case 'h':
			fputs(meta_usage, stdout);
			return EXIT_OK;
		default:
			fputs(meta_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(meta_usage, stderr);
		return EXIT_USAGE;
	}
	if ((rc = lfsfs_repo_locate(repo_opt, &repo, &prefix))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	/* refuse a malformed metadata.json before anything else */
	if ((rc = lfsfs_writer_open(repo, 0, &w))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	if ((rc = lfsfs_meta_load(repo, &meta, on_refused, &refused))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	cache_dir = cache_opt ? lfsfs_path_absolute(cache_opt) : cli_default_cache_dir();
	index_dir = cache_dir ? lfsfs_path_join(cache_dir, "index") : NULL;
	if (!index_dir) {
		cli_error("out of memory");
		goto out;
	}
	if (stat(index_dir, &sb) || !S_ISDIR(sb.st_mode)) {
		printf("meta sync: no cache at '%s' (nothing has been read through a mount with "
		       "it); nothing to learn\n",
		       cache_dir);
		ret = EXIT_OK;
		goto out;
	}
	found = calloc(meta->n + 1, sizeof(*found));
	if (!found) {
		cli_error("out of memory");
		goto out;
	}
	/* LMDB readers never block the mount that may be writing this index */
	if ((rc = lfsfs_index_open(index_dir, &ix)) || (rc = lfsfs_index_begin(ix, 0, &t))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	for (size_t i = 0; i < meta->n; i++) {
		const struct lfsfs_meta_entry *e = &meta->entries[i];
		struct lfsfs_object_desc d = { 0 };
		struct lfsfs_objrec rec;
		char key[LFSFS_KEY_MAX + 1];

		if (e->sha256[0] || !e->url || !e->has_size)
			continue;
		n_missing++;
		d.etag = e->etag;
		d.url = e->url;
		d.size = e->size;
		if (lfsfs_cache_key(&d, key, sizeof(key)))
			continue;
		if (lfsfs_index_get_obj(t, key, &rec))
			continue;
		rec.sha256[sizeof(rec.sha256) - 1] = '\0';
		if (!(rec.flags & LFSFS_OBJ_VERIFIED) || rec.size != e->size ||
		    !lfsfs_oid_valid(rec.sha256))
			continue;
		/* an ETag is not unique across URLs (nginx's is mtime-size): take
		 * only bytes that came from this entry's URL */
		rec.etag[sizeof(rec.etag) - 1] = '\0';
		if (rec.etag[0] && rec.etag_src && rec.etag_src != lfsfs_cache_url_hash(e->url)) {
			fprintf(stderr,
			        "lfsfs: warning: '%s': the cached object with ETag %s came "
			        "from another URL; not learned (read it through a mount to learn "
			        "its own sha256)\n",
			        e->path, rec.etag);
			continue;
		}
		found[n_found].e = e;
		memcpy(found[n_found].sha256, rec.sha256, sizeof(found[n_found].sha256));
		n_found++;
	}
	lfsfs_index_abort(t);
	t = NULL;
	lfsfs_index_close(ix);
	ix = NULL;

	for (size_t i = 0; i < n_found; i++) {
		const struct lfsfs_meta_entry *e = found[i].e;
		struct lfsfs_regobj ro = { 0 };
		struct lfsfs_regresult res;
		struct lfsfs_buf desc = LFSFS_BUF_INIT(0);
		char prefix_msg[4200];

		if (dry) {
			printf("would write '%s': sha256 %s (learned from the cache)\n", e->path,
			       found[i].sha256);
			continue;
		}
		ro.path = e->path;
		ro.url = e->url;
		ro.etag = e->etag;
		ro.size = e->size;
		ro.sha256 = found[i].sha256;
		if ((rc = lfsfs_writer_register(w, &ro, &res))) {
			int ex = cli_exit_for(rc);
			/* most messages name the path already */
			snprintf(prefix_msg, sizeof(prefix_msg), "'%s': ", e->path);
			if (strstr(lfsfs_error_message(), e->path))
				prefix_msg[0] = '\0';
			report(prefix_msg, rc, lfsfs_error_message());
			n_failed++;
			if (ex > worst)
				worst = ex;
			continue;
		}
		if (res.changed) {
			n_written++;
			if ((res.changed & LFSFS_WROTE_POINTER) && n_pointers++ < MAX_LISTED)
				listed[n_pointers - 1] = e->path;
			printf("learned '%s': sha256 %s\n", e->path, res.sha256);
			lfsfs_regresult_describe(&res, &desc);
			fputs(desc.data ? desc.data : "", stdout);
		}
		lfsfs_buf_release(&desc);
	}
	if (!dry && (rc = lfsfs_writer_commit(w, &committed))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	if (dry)
		printf("meta sync --dry-run: %zu entr%s without sha256, %zu learnable from '%s', "
		       "%zu still unknown (not fully read through a mount yet); nothing written\n",
		       n_missing, n_missing == 1 ? "y" : "ies", n_found, cache_dir,
		       n_missing - n_found);
	else
		printf("meta sync: %zu entr%s without sha256, %zu learned from '%s' (%zu written, "
		       "%zu failed), %zu still unknown (not fully read through a mount yet)\n",
		       n_missing, n_missing == 1 ? "y" : "ies", n_found, cache_dir, n_written,
		       n_failed, n_missing - n_found);
	if (n_written && !dry) {
		printf("next: git add .lfs-meta .gitattributes");
		for (size_t i = 0; i < n_pointers && i < MAX_LISTED; i++)
			print_quoted(listed[i]);
		if (n_pointers > MAX_LISTED)
			printf("   (and the other %zu new pointer files: 'git status' lists them)",
			       n_pointers - MAX_LISTED);
		printf("\n");
	}
	ret = n_failed ? (worst ? worst : EXIT_FAIL) : EXIT_OK;
out:
	if (t)
		lfsfs_index_abort(t);
	if (ix)
		lfsfs_index_close(ix);
	free(found);
	lfsfs_meta_free(meta);
	lfsfs_writer_free(w);
	free(repo);
	free(prefix);
	free(cache_dir);
	free(index_dir);
	return ret;
}

int cmd_meta(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "sync"))
		return meta_sync(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(meta_usage, stdout);
		return EXIT_OK;
	}
	if (argc >= 2)
		cli_error("unknown meta subcommand '%s'", argv[1]);
	fputs(meta_usage, stderr);
	return EXIT_USAGE;
}
