/* `lfsfs track-remote`: register bucket/web objects by URL without copying them (one, or a batch). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lfsfs/error.h"
#include "meta/lfsmeta_write.h"
#include "net/net.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/log.h"

static const char track_usage[] =
        "usage: lfsfs track-remote [OPTIONS] URL [PATH]\n"
        "       lfsfs track-remote [OPTIONS] --batch FILE\n"
        "\n"
        "Register an object that already lives in a bucket or on a web server\n"
        "(s3://, gs://, az://, https://, file://) at PATH in this repository, without\n"
        "copying a byte: a HEAD gives its size and ETag, which go into\n"
        ".lfs-meta/metadata.json and .lfs-meta/etag/<etag>.json.  When its sha256 is\n"
        "known (--sha256, or reported by the store) a Git LFS pointer is written at\n"
        "PATH too, with .lfs-meta/sha256/<oid>.json and a .gitattributes line.\n"
        "Without a sha256 no pointer is written (never a placeholder): the object\n"
        "still appears in a mount at PATH; 'lfsfs add-url --hash' or a mount read\n"
        "followed by 'lfsfs meta sync' turns it into a verified pointer later.\n"
        "\n"
        "PATH defaults to the URL's last segment and is taken relative to the current\n"
        "directory inside the repository (to the repository's top otherwise).\n"
        "Reruns change nothing and say so.\n"
        "\n"
        "  --etag E           trust this ETag (with --size: no HEAD is sent)\n"
        "  --size N           trust this size in bytes; checked against the HEAD\n"
        "  --sha256 H         the content's sha256 (64 hex digits): write a pointer\n"
        "  --patient REF      metadata.json \"patient\" (e.g. Patient/1234)\n"
        "  --specimen REF     metadata.json \"specimen\" (e.g. Specimen/XYZ)\n"
        "  --meta KEY=VALUE   any other metadata.json field (repeatable)\n"
        "  --repo DIR         the repository (default: the one around the current\n"
        "                     directory)\n"
        "  --force            replace an ordinary file, a pointer or a registration of\n"
        "                     other content at PATH\n"
        "  --batch FILE       register every line of FILE ('-': stdin): TSV, CSV or\n"
        "                     NDJSON (by extension .tsv/.csv/.ndjson/.jsonl, else by\n"
        "                     content) with columns url[,path,etag,size,sha256,patient,\n"
        "                     specimen]; a header line naming the columns allows any\n"
        "                     order and extra columns (stored as fields).  Paths are\n"
        "                     relative to the repository's top.  HEADs run in\n"
        "                     parallel; metadata.json is written once at the end.\n"
        "  --jobs N           parallel HEADs in batch mode (default 16)\n"
        "\n"
        "Exit status: 0 ok, 1 failure, 2 usage, 3 integrity (SIZE_MISMATCH,\n"
        "CHECKSUM_MISMATCH, IMMUTABILITY_VIOLATION), 4 source (SOURCE_NOT_ACCESSIBLE,\n"
        "CREDENTIALS_MISSING).  In batch mode: the worst of the failed lines.\n";

/* Print "lfsfs: error: [prefix]CODE: message" (the code once, secrets redacted). */
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
	/* a source error's fix depends on what was tried: doctor shows it */
	if (!*prefix && cli_exit_for(rc) == EXIT_SOURCE)
		fprintf(stderr, "hint: check the URL and its credentials; 'lfsfs doctor URL' shows "
		                "the endpoint, the credential source and the HEAD result\n");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Shell-quote s for the `git add` hint when it needs it. */
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

/* New pointers named in the batch's `git add` hint; more are only counted. */
#define MAX_LISTED 10

/* Options shared by the single and the batch form. */
struct track_opts {
	const char *etag, *size, *sha256, *patient, *specimen;
	const char **meta; /* "key=value" */
	size_t n_meta;
	const char *repo;
	const char *batch;
	unsigned jobs;
	int force;
};

/* key, value pairs for lfsfs_regobj.fields from --patient/--specimen/--meta
 * and per-line extras; the strings are borrowed, the array is malloc'd. */
struct fields {
	const char **kv;
	size_t n, cap;
	char **owned; /* split --meta copies */
	size_t n_owned;
};

static int fields_set(struct fields *f, const char *k, const char *v)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->kv[2 * i], k)) {
			f->kv[2 * i + 1] = v;
			return 0;
		}
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		const char **kv = realloc(f->kv, cap * 2 * sizeof(*kv));
		if (!kv)
			return -ENOMEM;
		f->kv = kv;
		f->cap = cap;
	}
	f->kv[2 * f->n] = k;
	f->kv[2 * f->n + 1] = v;
	f->n++;
	return 0;
}

static void fields_release(struct fields *f)
{
	for (size_t i = 0; i < f->n_owned; i++)
		free(f->owned[i]);
	free(f->owned);
	free(f->kv);
	memset(f, 0, sizeof(*f));
}

/* The global fields of o (patient, specimen, --meta). -1 on a bad --meta. */
static int fields_from_opts(struct fields *f, const struct track_opts *o)
{
	if (o->patient && fields_set(f, "patient", o->patient))
		return -1;
	if (o->specimen && fields_set(f, "specimen", o->specimen))
		return -1;
	f->owned = calloc(o->n_meta + 1, sizeof(char *));
	if (!f->owned)
		return -1;
	for (size_t i = 0; i < o->n_meta; i++) {
		char *kv = strdup(o->meta[i]), *eq;
		if (!kv)
			return -1;
		f->owned[f->n_owned++] = kv;
		eq = strchr(kv, '=');
		if (!eq || eq == kv) {
			cli_error("--meta wants KEY=VALUE, not '%s'", o->meta[i]);
			return -1;
		}
		*eq = '\0';
		if (fields_set(f, kv, eq + 1))
			return -1;
	}
	return 0;
}

/* The network engine and stores, started on first need. */
struct netctx {
	struct lfsfs_config *cfg;
	struct lfsfs_net *net;
	struct lfsfs_store st;
	int up;
};

static int netctx_start(struct netctx *n, const char *repo)
{
	int rc;

	if (n->up)
		return 0;
	if ((rc = lfsfs_config_load(repo, &n->cfg))) {
		cli_error("cannot read lfsfs settings: %s", strerror(-rc));
		return rc;
	}
	if ((rc = lfsfs_net_new(&n->net))) {
		cli_error("cannot start the network engine: %s", lfsfs_error_message());
		return rc;
	}
	lfsfs_store_init(&n->st, n->net, n->cfg);
	n->up = 1;
	return 0;
}

static void netctx_stop(struct netctx *n)
{
	if (n->up) {
		lfsfs_net_free(n->net);
		lfsfs_store_release(&n->st);
	}
	lfsfs_config_free(n->cfg);
	memset(n, 0, sizeof(*n));
}

/* HEAD url; objmeta -> facts (strings point into m). */
static void facts_of(const struct lfsfs_objmeta *m, struct lfsfs_objfacts *f)
{
	memset(f, 0, sizeof(*f));
	f->etag = m->etag;
	f->size = m->size;
	f->has_size = m->has_size;
	f->sha256 = m->sha256;
	f->md5 = m->md5;
}

/* ---- one URL --------------------------------------------------------------- */

static int track_one(const struct track_opts *o, const char *url, const char *path_arg)
{
	char etag[160] = "", sha[LFSFS_OID_HEX_LEN + 1] = "";
	char *repo = NULL, *prefix = NULL, *base = NULL, *rel = NULL;
	struct lfsfs_writer *w = NULL;
	struct lfsfs_objfacts given = { 0 }, headf, facts;
	struct lfsfs_objmeta m;
	struct lfsfs_regobj ro = { 0 };
	struct lfsfs_regresult res;
	struct lfsfs_buf desc = LFSFS_BUF_INIT(0);
	struct netctx nc = { 0 };
	struct fields fl = { 0 };
	unsigned committed = 0;
	int rc, ret = EXIT_FAIL;

	/* the command line first: cheap checks before any I/O */
	if (o->etag && lfsfs_etag_normalize(o->etag, etag, sizeof(etag))) {
		cli_error("--etag: %s", lfsfs_error_message());
		return EXIT_USAGE;
	}
	if (o->size && cli_parse_size(o->size, &given.size)) {
		cli_error("--size wants a number of bytes, not '%s'", o->size);
		return EXIT_USAGE;
	}
	given.has_size = o->size != NULL;
	if (o->sha256 && lfsfs_sha256_parse(o->sha256, sha)) {
		cli_error("--sha256: %s", lfsfs_error_message());
		return EXIT_USAGE;
	}
	given.etag = etag;
	given.sha256 = sha;
	if (fields_from_opts(&fl, o)) {
		ret = EXIT_USAGE;
		goto out;
	}
	if (!lfsfs_store_for_url(url)) {
		cli_error("unsupported URL '%s'; lfsfs reads %s", url, lfsfs_store_schemes());
		ret = EXIT_USAGE;
		goto out;
	}
	if ((rc = lfsfs_repo_locate(o->repo, &repo, &prefix))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	if (!path_arg) {
		if ((rc = lfsfs_url_basename(url, &base))) {
			report("", rc, lfsfs_error_message());
			ret = EXIT_USAGE;
			goto out;
		}
		path_arg = base;
	}
	if ((rc = lfsfs_repo_relpath(repo, prefix, path_arg, &rel))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	/* a malformed metadata.json stops us before any network traffic */
	if ((rc = lfsfs_writer_open(repo, 0, &w))) {
		report("", rc, lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}

	memset(&m, 0, sizeof(m));
	if (!(etag[0] && given.has_size)) {
		if ((rc = netctx_start(&nc, repo)))
			goto out;
		if ((rc = lfsfs_store_head(&nc.st, url, &m))) {
			report("", rc, lfsfs_error_message());
			ret = cli_exit_for(rc);
			goto out;
		}
		facts_of(&m, &headf);
		rc = lfsfs_objfacts_merge(url, &given, &headf, &facts);
	} else {
		rc = lfsfs_objfacts_merge(url, &given, NULL, &facts);
	}
	if (rc) {
		report("", rc, lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}

	ro.path = rel;
	ro.url = url;
	ro.etag = facts.etag;
	ro.size = facts.size;
	ro.sha256 = facts.sha256;
	ro.md5 = facts.md5;
	ro.fields = fl.kv;
	ro.n_fields = fl.n;
	ro.flags = o->force ? LFSFS_W_FORCE : 0;
	if ((rc = lfsfs_writer_register(w, &ro, &res))) {
		report("", rc, lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}
	if ((rc = lfsfs_writer_commit(w, &committed))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	{
		char red[2048];
		lfsfs_redact(url, red, sizeof(red));
		if (!res.changed) {
			printf("'%s' is already registered as %s (%" PRIu64
			       " bytes%s%s%s); nothing "
			       "changed\n",
			       res.path, red, facts.size, facts.etag ? ", ETag " : "",
			       facts.etag ? facts.etag : "",
			       res.sha256[0] ? ", with a pointer" : "");
		} else {
			printf("registered '%s' -> %s (%" PRIu64 " bytes%s%s)\n", res.path, red,
			       facts.size, facts.etag ? ", ETag " : "",
			       facts.etag ? facts.etag : "");
			lfsfs_regresult_describe(&res, &desc);
			fputs(desc.data ? desc.data : "", stdout);
		}
	}
	if (!res.sha256[0]) {
		char red[2048];
		lfsfs_redact(url, red, sizeof(red));
		printf("no sha256 yet: '%s' is registered by ETag only, so no pointer was written "
		       "(a pointer needs the content's sha256; lfsfs never writes a placeholder).\n"
		       "It appears in a mount at its path.  For a verified pointer, run\n"
		       "  lfsfs add-url --hash",
		       res.path);
		print_quoted(red);
		print_quoted(res.path);
		printf("\nor mount, read it once, and run 'lfsfs meta sync'.\n");
	}
	if (res.changed) {
		printf("next: git add");
		if (res.changed & (LFSFS_WROTE_POINTER | LFSFS_REMOVED_POINTER))
			print_quoted(res.path);
		print_quoted(".lfs-meta");
		if (res.sha256[0])
			print_quoted(".gitattributes");
		printf("\n");
	}
	ret = EXIT_OK;
out:
	lfsfs_buf_release(&desc);
	fields_release(&fl);
	lfsfs_writer_free(w);
	netctx_stop(&nc);
	free(repo);
	free(prefix);
	free(base);
	free(rel);
	return ret;
}

/* ---- batch ----------------------------------------------------------------- */

enum bformat {
	FMT_TSV,
	FMT_CSV,
	FMT_NDJSON
};

struct bline {
	unsigned lineno;
	char **cells; /* owned strings of this line */
	size_t n_cells;
	const char *url, *path, *etag_in, *size_in, *sha_in;
	struct fields fl;
	char etag[160];
	char sha[LFSFS_OID_HEX_LEN + 1];
	struct lfsfs_objfacts given;
	char *error; /* parse or HEAD failure (malloc'd) */
	int rc;
	int need_head;
	int ready;               /* protected by batch.lock */
	struct lfsfs_objmeta *m; /* the HEAD's answer, from the worker until the
				  * main thread has registered the line */
};

struct batch {
	struct bline *lines;
	size_t n;
	struct lfsfs_store *st;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t next; /* next line to HEAD; protected by lock */
	size_t done; /* lines the main thread has registered; protected
				* by lock: HEADs run at most LOOKAHEAD lines
				* ahead, so memory stays bounded */
};

#define LOOKAHEAD 4096

static int cell_add(struct bline *l, const char *s, size_t n)
{
	char **c = realloc(l->cells, (l->n_cells + 1) * sizeof(*c));

	if (!c)
		return -ENOMEM;
	l->cells = c;
	c[l->n_cells] = strndup(s, n);
	if (!c[l->n_cells])
		return -ENOMEM;
	l->n_cells++;
	return 0;
}

/* Split one CSV/TSV line into cells (CSV: RFC 4180 quotes). */
static int split_line(struct bline *l, const char *s, enum bformat fmt, const char **err)
{
	char sep = fmt == FMT_TSV ? '\t' : ',';
	struct lfsfs_buf cell = LFSFS_BUF_INIT(0);
	int rc = 0;

	for (;;) {
		lfsfs_buf_reset(&cell);
		while (fmt == FMT_CSV && (*s == ' '))
			s++;
		if (fmt == FMT_CSV && *s == '"') {
			for (s++;; s++) {
				if (!*s) {
					*err = "unterminated quoted field";
					rc = -EINVAL;
					goto out;
				}
				if (*s == '"' && s[1] == '"') {
					s++;
				} else if (*s == '"') {
					s++;
					break;
				}
				if ((rc = lfsfs_buf_append(&cell, s, 1)))
					goto out;
			}
			while (*s == ' ')
				s++;
			if (*s && *s != sep) {
				*err = "text after a quoted field";
				rc = -EINVAL;
				goto out;
			}
		} else {
			size_t n = strcspn(s, fmt == FMT_TSV ? "\t" : ",");
			size_t m = n;
			while (m && (s[m - 1] == ' ' || s[m - 1] == '\r'))
				m--;
			if ((rc = lfsfs_buf_append(&cell, s, m)))
				goto out;
			s += n;
		}
		if ((rc = cell_add(l, cell.data ? cell.data : "", cell.len)))
			goto out;
		if (*s != sep)
			break;
		s++;
	}
out:
	lfsfs_buf_release(&cell);
	return rc;
}

static const char *const columns[] = { "url",    "path",    "etag",    "size",
	                               "sha256", "patient", "specimen" };
#define N_COLUMNS (sizeof(columns) / sizeof(columns[0]))

/* Assign a line's cells to its fields by column names (header) or position. */
static int assign(struct bline *l, char **header, size_t n_header, const char **err)
{
	size_t n = l->n_cells;

	for (size_t i = 0; i < n; i++) {
		const char *name = NULL;
		const char *v = l->cells[i];

		if (header) {
			if (i >= n_header) {
				*err = "more cells than the header names";
				return -EINVAL;
			}
			name = header[i];
		} else if (i < N_COLUMNS) {
			name = columns[i];
		} else {
			*err = "more than 7 columns (url,path,etag,size,sha256,patient,specimen); "
			       "add a header line to name extra columns";
			return -EINVAL;
		}
		if (!*v)
			continue;
		if (!strcmp(name, "url"))
			l->url = v;
		else if (!strcmp(name, "path"))
			l->path = v;
		else if (!strcmp(name, "etag"))
			l->etag_in = v;
		else if (!strcmp(name, "size"))
			l->size_in = v;
		else if (!strcmp(name, "sha256"))
			l->sha_in = v;
		else if (cell_add(l, name, strlen(name)) ||
		         fields_set(&l->fl, l->cells[l->n_cells - 1], v))
			return -ENOMEM; /* the header's names go away: the line keeps a copy */
	}
	return 0;
}

/* One NDJSON object -> cells and fields. */
static int assign_json(struct bline *l, const char *text, const char **err)
{
	cJSON *o = cJSON_Parse(text), *it;
	int rc = 0;

	if (!cJSON_IsObject(o)) {
		*err = "not a json object";
		rc = -EINVAL;
		goto out;
	}
	cJSON_ArrayForEach(it, o)
	{
		char num[32];
		const char *v;

		if (cJSON_IsNull(it))
			continue;
		if (cJSON_IsString(it)) {
			v = it->valuestring;
		} else if (cJSON_IsNumber(it) && !strcmp(it->string, "size") &&
		           it->valuedouble >= 0 && it->valuedouble <= 9007199254740992.0 &&
		           it->valuedouble == (double)(uint64_t)it->valuedouble) {
			snprintf(num, sizeof(num), "%" PRIu64, (uint64_t)it->valuedouble);
			v = num;
		} else {
			*err = "values must be strings (size: a non-negative integer)";
			rc = -EINVAL;
			goto out;
		}
		if (!*v)
			continue;
		if ((rc = cell_add(l, it->string, strlen(it->string))) ||
		    (rc = cell_add(l, v, strlen(v))))
			goto out;
	}
	/* cells are name, value pairs: assign them by name */
	for (size_t i = 0; i + 1 < l->n_cells; i += 2) {
		const char *name = l->cells[i], *v = l->cells[i + 1];
		if (!strcmp(name, "url"))
			l->url = v;
		else if (!strcmp(name, "path"))
			l->path = v;
		else if (!strcmp(name, "etag"))
			l->etag_in = v;
		else if (!strcmp(name, "size"))
			l->size_in = v;
		else if (!strcmp(name, "sha256"))
			l->sha_in = v;
		else if ((rc = fields_set(&l->fl, name, v)))
			goto out;
	}
out:
	cJSON_Delete(o);
	return rc;
}

static enum bformat detect_format(const char *file, const char *text)
{
	const char *dot = strrchr(file, '.');
	const char *p = text;

	if (dot && !strcasecmp(dot, ".tsv"))
		return FMT_TSV;
	if (dot && !strcasecmp(dot, ".csv"))
		return FMT_CSV;
	if (dot && (!strcasecmp(dot, ".ndjson") || !strcasecmp(dot, ".jsonl") ||
	            !strcasecmp(dot, ".json")))
		return FMT_NDJSON;
	/* by content: the first line that is not blank or a comment */
	while (*p) {
		size_t n = strcspn(p, "\n");
		const char *q = p;
		while (q < p + n && (*q == ' ' || *q == '\t' || *q == '\r'))
			q++;
		if (q < p + n && *q != '#') {
			if (*q == '{')
				return FMT_NDJSON;
			if (memchr(p, '\t', n))
				return FMT_TSV;
			return FMT_CSV;
		}
		p += n + (p[n] == '\n');
	}
	return FMT_CSV;
}

static void line_fail(struct bline *l, int rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void line_fail(struct bline *l, int rc, const char *fmt, ...)
{
	va_list ap;
	char msg[2048];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(l->error);
	l->error = strdup(msg);
	l->rc = rc;
}

/* Parse the whole batch file into b->lines. */
static int batch_parse(struct batch *b, const char *file, const struct fields *global)
{
	struct lfsfs_buf text = LFSFS_BUF_INIT((size_t)1 << 30);
	enum bformat fmt;
	char **header = NULL;
	size_t n_header = 0, cap = 0;
	unsigned lineno = 0;
	char *p;
	int rc, header_seen = 0;

	if (!strcmp(file, "-"))
		rc = lfsfs_buf_read_file(&text, "/dev/stdin");
	else
		rc = lfsfs_buf_read_file(&text, file);
	if (rc) {
		cli_error("cannot read '%s': %s", file, strerror(-rc));
		return rc;
	}
	fmt = detect_format(file, text.data);
	for (p = text.data; *p;) {
		size_t n = strcspn(p, "\n");
		char *line = p, *q;
		struct bline *l;
		const char *err = NULL;

		p += n + (p[n] == '\n');
		line[n] = '\0';
		lineno++;
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		for (q = line; *q == ' ' || *q == '\t'; q++)
			;
		if (!*q || *q == '#')
			continue;
		if (b->n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			struct bline *nl = realloc(b->lines, nc * sizeof(*nl));
			if (!nl) {
				rc = -ENOMEM;
				goto out;
			}
			b->lines = nl;
			cap = nc;
		}
		l = &b->lines[b->n];
		memset(l, 0, sizeof(*l));
		l->lineno = lineno;
		if (fmt == FMT_NDJSON) {
			rc = assign_json(l, line, &err);
		} else {
			rc = split_line(l, line, fmt, &err);
			if (!rc && !header_seen) {
				header_seen = 1;
				if (l->n_cells && !strcasecmp(l->cells[0], "url")) {
					/* a header: keep its names, not a line to register */
					header = l->cells;
					n_header = l->n_cells;
					for (size_t i = 0; i < n_header; i++)
						for (char *c = header[i]; *c; c++)
							*c = (char)tolower((unsigned char)*c);
					l->cells = NULL;
					l->n_cells = 0;
					continue;
				}
			}
			if (!rc)
				rc = assign(l, header, n_header, &err);
		}
		b->n++;
		if (rc == -ENOMEM)
			goto out;
		if (rc) {
			line_fail(l, -EINVAL, "%s", err ? err : "cannot parse the line");
			l->ready = 1;
			continue;
		}
		rc = 0;
		/* global fields first, the line's own override them */
		for (size_t i = 0; i < global->n; i++) {
			int have = 0;
			for (size_t j = 0; j < l->fl.n; j++)
				have |= !strcmp(l->fl.kv[2 * j], global->kv[2 * i]);
			if (!have && fields_set(&l->fl, global->kv[2 * i], global->kv[2 * i + 1])) {
				rc = -ENOMEM;
				goto out;
			}
		}
		if (!l->url) {
			line_fail(l, -EINVAL, "no url");
		} else if (!lfsfs_store_for_url(l->url)) {
			line_fail(l, -LFSFS_EUNSUPPORTED, "unsupported URL '%s'; lfsfs reads %s",
			          l->url, lfsfs_store_schemes());
		} else if (l->etag_in &&
		           lfsfs_etag_normalize(l->etag_in, l->etag, sizeof(l->etag))) {
			line_fail(l, -EINVAL, "etag: %s", lfsfs_error_message());
		} else if (l->size_in && cli_parse_size(l->size_in, &l->given.size)) {
			line_fail(l, -EINVAL, "size wants a number of bytes, not '%s'", l->size_in);
		} else if (l->sha_in && lfsfs_sha256_parse(l->sha_in, l->sha)) {
			line_fail(l, -EINVAL, "sha256: %s", lfsfs_error_message());
		}
		l->given.has_size = l->size_in != NULL;
		/* given.etag/sha256 point into the line: set once b->lines stops moving */
		l->need_head = !l->error && !(l->etag[0] && l->given.has_size);
		l->ready = !l->need_head;
	}
	rc = 0;
out:
	if (header) {
		for (size_t i = 0; i < n_header; i++)
			free(header[i]);
		free(header);
	}
	/* cells point into their own copies; the text can go */
	lfsfs_buf_release(&text);
	return rc;
}

static void *head_worker(void *arg)
{
	struct batch *b = arg;

	for (;;) {
		struct bline *l;
		int rc;

		struct lfsfs_objmeta *m;

		pthread_mutex_lock(&b->lock);
		while (b->next < b->n && !b->lines[b->next].need_head)
			b->next++;
		while (b->next < b->n && b->next >= b->done + LOOKAHEAD)
			pthread_cond_wait(&b->cond, &b->lock);
		if (b->next >= b->n) {
			pthread_mutex_unlock(&b->lock);
			return NULL;
		}
		l = &b->lines[b->next++];
		pthread_mutex_unlock(&b->lock);

		m = calloc(1, sizeof(*m));
		if (!m)
			rc = lfsfs_error_set(-ENOMEM, "out of memory");
		else
			rc = lfsfs_store_head(b->st, l->url, m);
		if (rc)
			line_fail(l, rc, "%s", lfsfs_error_message());
		pthread_mutex_lock(&b->lock);
		l->m = m;
		l->ready = 1;
		pthread_cond_broadcast(&b->cond);
		pthread_mutex_unlock(&b->lock);
	}
}

struct progress {
	int tty;
	double start, last;
	size_t total, registered, unchanged, failed;
};

static void progress_show(struct progress *p, int final)
{
	double now = now_s();
	size_t done = p->registered + p->unchanged + p->failed;

	if (!final && now - p->last < (p->tty ? 0.1 : 5.0))
		return;
	p->last = now;
	if (p->tty) {
		int width = 30,
		    fill = p->total ? (int)((double)done * width / (double)p->total) : width;
		fprintf(stderr,
		        "\r\033[K[%.*s%*s] %zu/%zu  %zu registered, %zu unchanged, %zu failed",
		        fill, "##############################", width - fill, "", done, p->total,
		        p->registered, p->unchanged, p->failed);
		if (final)
			fputs("\r\033[K", stderr);
	} else if (!final) {
		fprintf(stderr,
		        "track-remote: %zu/%zu lines (%zu registered, %zu unchanged, %zu "
		        "failed) after %.1f s\n",
		        done, p->total, p->registered, p->unchanged, p->failed, now - p->start);
	}
	fflush(stderr);
}

static void bline_release(struct bline *l)
{
	for (size_t i = 0; i < l->n_cells; i++)
		free(l->cells[i]);
	free(l->cells);
	free(l->error);
	free(l->m);
	fields_release(&l->fl);
}

static int track_batch(const struct track_opts *o)
{
	struct batch b = { 0 };
	struct fields global = { 0 };
	struct lfsfs_writer *w = NULL;
	struct netctx nc = { 0 };
	struct progress pr = { 0 };
	char *repo = NULL, *prefix = NULL;
	pthread_t *thr = NULL;
	char *listed[MAX_LISTED] = { 0 };
	size_t n_thr = 0, n_heads = 0, n_pointers = 0;
	unsigned committed = 0;
	int rc, worst = 0, ret = EXIT_FAIL;
	unsigned wflags = LFSFS_W_NOSYNC | (o->force ? LFSFS_W_FORCE : 0);

	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	pr.start = now_s();
	if (fields_from_opts(&global, o)) {
		ret = EXIT_USAGE;
		goto out;
	}
	if ((rc = lfsfs_repo_locate(o->repo, &repo, &prefix))) {
		report("", rc, lfsfs_error_message());
		goto out;
	}
	if ((rc = lfsfs_writer_open(repo, wflags, &w))) {
		report("", rc, lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}
	if ((rc = batch_parse(&b, o->batch, &global))) {
		goto out;
	}
	for (size_t i = 0; i < b.n; i++)
		n_heads += b.lines[i].need_head;
	if (n_heads) {
		if (netctx_start(&nc, repo))
			goto out;
		b.st = &nc.st;
		size_t want = o->jobs < n_heads ? o->jobs : n_heads;
		thr = calloc(want, sizeof(*thr));
		if (!thr)
			goto out;
		for (n_thr = 0; n_thr < want; n_thr++)
			if (pthread_create(&thr[n_thr], NULL, head_worker, &b))
				break;
		if (!n_thr) {
			cli_error("cannot start worker threads");
			goto out;
		}
	}

	pr.tty = isatty(2);
	pr.last = pr.start;
	pr.total = b.n;
	for (size_t i = 0; i < b.n; i++) {
		struct bline *l = &b.lines[i];
		struct lfsfs_objfacts headf, facts;
		struct lfsfs_regobj ro = { 0 };
		struct lfsfs_regresult res;
		char *rel = NULL, *base = NULL;
		const char *path;

		pthread_mutex_lock(&b.lock);
		while (!l->ready)
			pthread_cond_wait(&b.cond, &b.lock);
		pthread_mutex_unlock(&b.lock);

		if (!l->error) {
			path = l->path;
			if (!path && (rc = lfsfs_url_basename(l->url, &base)))
				line_fail(l, rc, "%s", lfsfs_error_message());
			else if ((rc = lfsfs_repo_relpath(repo, "", path ? path : base, &rel)))
				line_fail(l, rc, "%s", lfsfs_error_message());
		}
		l->given.etag = l->etag;
		l->given.sha256 = l->sha;
		if (!l->error) {
			if (l->need_head) {
				facts_of(l->m, &headf);
				rc = lfsfs_objfacts_merge(l->url, &l->given, &headf, &facts);
			} else {
				rc = lfsfs_objfacts_merge(l->url, &l->given, NULL, &facts);
			}
			if (rc)
				line_fail(l, rc, "%s", lfsfs_error_message());
		}
		if (!l->error) {
			ro.path = rel;
			ro.url = l->url;
			ro.etag = facts.etag;
			ro.size = facts.size;
			ro.sha256 = facts.sha256;
			ro.md5 = facts.md5;
			ro.fields = l->fl.kv;
			ro.n_fields = l->fl.n;
			if ((rc = lfsfs_writer_register(w, &ro, &res)))
				line_fail(l, rc, "%s", lfsfs_error_message());
		}
		if (l->error) {
			char prefix_msg[64];
			int ex = cli_exit_for(l->rc);
			if (l->rc == -EINVAL || l->rc == -LFSFS_EUNSUPPORTED)
				ex = EXIT_FAIL;
			if (ex > worst)
				worst = ex;
			pr.failed++;
			if (pr.tty)
				fputs("\r\033[K", stderr);
			snprintf(prefix_msg, sizeof(prefix_msg), "line %u: ", l->lineno);
			report(prefix_msg, l->rc, l->error);
		} else if (res.changed) {
			pr.registered++;
			if ((res.changed & LFSFS_WROTE_POINTER) && n_pointers++ < MAX_LISTED)
				listed[n_pointers - 1] = strdup(res.path);
		} else {
			pr.unchanged++;
		}
		free(rel);
		free(base);
		free(l->m);
		l->m = NULL;
		pthread_mutex_lock(&b.lock);
		b.done = i + 1;
		pthread_cond_broadcast(&b.cond);
		pthread_mutex_unlock(&b.lock);
		progress_show(&pr, 0);
	}
	progress_show(&pr, 1);
	if ((rc = lfsfs_writer_commit(w, &committed))) {
		report("", rc, lfsfs_error_message());
		worst = EXIT_FAIL;
	}
	if (worst == EXIT_SOURCE)
		fprintf(stderr, "hint: for the source errors above, 'lfsfs doctor URL' shows the "
		                "endpoint, the credential source and the HEAD result\n");
	printf("track-remote: %zu registered, %zu unchanged, %zu failed (%zu lines, %zu HEADs, "
	       "%.2f s)\n",
	       pr.registered, pr.unchanged, pr.failed, b.n, n_heads, now_s() - pr.start);
	if (pr.registered) {
		printf("next: git add .lfs-meta");
		if (n_pointers)
			printf(" .gitattributes");
		for (size_t i = 0; i < n_pointers && i < MAX_LISTED; i++)
			if (listed[i])
				print_quoted(listed[i]);
		if (n_pointers > MAX_LISTED)
			printf("   (and the other %zu new pointer files: 'git status' lists them)",
			       n_pointers - MAX_LISTED);
		printf("\n");
	}
	ret = worst;
out:
	for (size_t i = 0; i < n_pointers && i < MAX_LISTED; i++)
		free(listed[i]);
	for (size_t i = 0; i < n_thr; i++)
		pthread_join(thr[i], NULL);
	free(thr);
	for (size_t i = 0; i < b.n; i++)
		bline_release(&b.lines[i]);
	free(b.lines);
	pthread_mutex_destroy(&b.lock);
	pthread_cond_destroy(&b.cond);
	fields_release(&global);
	lfsfs_writer_free(w);
	netctx_stop(&nc);
	free(repo);
	free(prefix);
	return ret;
}

int cmd_track_remote(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "etag", required_argument, NULL, 'e' },
		{ "size", required_argument, NULL, 's' },
		{ "sha256", required_argument, NULL, 'S' },
		{ "patient", required_argument, NULL, 'p' },
		{ "specimen", required_argument, NULL, 'P' },
		{ "meta", required_argument, NULL, 'm' },
		{ "repo", required_argument, NULL, 'r' },
		{ "force", no_argument, NULL, 'f' },
		{ "batch", required_argument, NULL, 'b' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct track_opts o = { .jobs = 16 };
	int c, ret;

	o.meta = calloc((size_t)argc + 1, sizeof(*o.meta));
	if (!o.meta)
		return EXIT_FAIL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			o.etag = optarg;
			break;
		case 's':
			o.size = optarg;
			break;
		case 'S':
			o.sha256 = optarg;
			break;
		case 'p':
			o.patient = optarg;
			break;
		case 'P':
			o.specimen = optarg;
			break;
		case 'm':
			o.meta[o.n_meta++] = optarg;
			break;
		case 'r':
			o.repo = optarg;
			break;
		case 'f':
			o.force = 1;
			break;
		case 'b':
			o.batch = optarg;
			break;
		case 'j': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > 256) {
				cli_error("--jobs wants 1..256, not '%s'", optarg);
				free(o.meta);
				return EXIT_USAGE;
			}
			o.jobs = (unsigned)v;
			break;
		}
		case 'h':
			fputs(track_usage, stdout);
			free(o.meta);
			return EXIT_OK;
		default:
			fputs(track_usage, stderr);
			free(o.meta);
			return EXIT_USAGE;
		}
	}
	if (o.batch) {
		if (optind != argc || o.etag || o.size || o.sha256) {
			cli_error(
			        "--batch takes no URL, --etag, --size or --sha256 (put them in the "
			        "file)");
			fputs(track_usage, stderr);
			ret = EXIT_USAGE;
		} else {
			ret = track_batch(&o);
		}
	} else if (optind >= argc || argc - optind > 2) {
		fputs(track_usage, stderr);
		ret = EXIT_USAGE;
	} else {
		ret = track_one(&o, argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL);
	}
	free(o.meta);
	return ret;
}
