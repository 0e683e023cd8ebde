/* `lfsfs add-url`: register an existing object as a Git LFS pointer (seed 002 modes A and B). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

static const char add_url_usage[] =
        "usage: lfsfs add-url [OPTIONS] URL [PATH]\n"
        "\n"
        "Register an object that already exists at URL (s3://, gs://, az://, https://,\n"
        "file://) as a Git LFS pointer at PATH, without uploading it.\n"
        "\n"
        "  mode A  --sha256 H --size N: a HEAD checks that the object exists and has\n"
        "          that size (else SIZE_MISMATCH), then the pointer and the records\n"
        "          are written.\n"
        "  mode B  URL only: the sha256 is taken from the store when it keeps a\n"
        "          full-object one; otherwise --hash streams the object once (nothing\n"
        "          is stored on disk) between two HEADs, and a changed ETag or size\n"
        "          is UNSTABLE_OBJECT_SOURCE.  Without either, the object is recorded\n"
        "          by ETag only (no pointer) and the output says how to finish.\n"
        "\n"
        "PATH defaults to the URL's last segment, relative to the current directory\n"
        "inside the repository.  Writes what 'lfsfs track-remote' writes; reruns\n"
        "change nothing.\n"
        "\n"
        "  --sha256 H         the content's sha256 (64 hex digits)\n"
        "  --size N           the content's size in bytes (checked by the HEAD)\n"
        "  --hash             compute the sha256 by reading the object once (with\n"
        "                     --sha256: verify it, else CHECKSUM_MISMATCH)\n"
        "  --patient REF      metadata.json \"patient\"\n"
        "  --specimen REF     metadata.json \"specimen\"\n"
        "  --meta KEY=VALUE   any other metadata.json field (repeatable)\n"
        "  --repo DIR         the repository (default: the one around the current\n"
        "                     directory)\n"
        "  --force            replace an ordinary file, a pointer or a registration of\n"
        "                     other content at PATH\n"
        "\n"
        "Exit status: 0 ok, 1 failure, 2 usage, 3 integrity (SIZE_MISMATCH,\n"
        "CHECKSUM_MISMATCH, UNSTABLE_OBJECT_SOURCE, IMMUTABILITY_VIOLATION), 4 source\n"
        "(SOURCE_NOT_ACCESSIBLE, CREDENTIALS_MISSING).\n";

/* Bytes per ranged GET while hashing, and how many run at once: the
 * anonymous buffer holds at most WINDOW * CHUNK bytes. */
#define CHUNK ((uint64_t)8 << 20)
#define WINDOW 4

static void report(int rc, const char *msg)
{
	const char *code = lfsfs_code_name(rc);
	char red[2048];
	int seed = (rc < 0 ? -rc : rc) > LFSFS_EBASE;

	lfsfs_redact(msg && *msg ? msg : code, red, sizeof(red));
	if (seed && strncmp(red, code, strlen(code)))
		cli_error("%s: %s", code, red);
	else
		cli_error("%s", red);
	if (cli_exit_for(rc) == EXIT_SOURCE)
		fprintf(stderr, "hint: check the URL and its credentials; 'lfsfs doctor URL' shows "
		                "the endpoint, the credential source and the HEAD result\n");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- streaming sha256 ----------------------------------------------------- */

struct chunk {
	struct lfsfs_fetch f;
	int done, rc; /* protected by hasher.lock */
	struct hasher *h;
};

struct hasher {
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void chunk_done(struct lfsfs_fetch *f, int rc)
{
	struct chunk *c = f->ctx;

	pthread_mutex_lock(&c->h->lock);
	c->rc = rc;
	c->done = 1;
	pthread_cond_broadcast(&c->h->cond);
	pthread_mutex_unlock(&c->h->lock);
}

/*
 * Read url once through its store backend, WINDOW ranged GETs of CHUNK bytes
 * in flight, into an anonymous memory file that is hashed in order and
 * emptied behind the hash (fallocate punch).  Every GET carries If-Match
 * etag when known; an object that changes (412, other ETag, other size) is
 * UNSTABLE_OBJECT_SOURCE.
 */
static int stream_sha256(struct lfsfs_store *st, const char *url, uint64_t size, const char *etag,
                         char out[LFSFS_OID_HEX_LEN + 1])
{
	struct hasher h;
	struct chunk c[WINDOW];
	uint64_t n_chunks = (size + CHUNK - 1) / CHUNK, next = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char dig[32], *buf = malloc(1 << 20);
	unsigned int dlen = 0;
	int fd = memfd_create("lfsfs-hash", MFD_CLOEXEC);
	int tty = isatty(2), rc = 0;
	double last = 0, t0 = now_s();

	memset(c, 0, sizeof(c));
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cond, NULL);
	if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		rc = -ENOMEM;
		goto out;
	}
	if (fd < 0) {
		rc = lfsfs_error_set(-errno, "cannot create an in-memory buffer: %s",
		                     strerror(errno));
		goto out;
	}
	for (uint64_t k = 0; k < n_chunks; k++) {
		struct chunk *ck;

		/* keep WINDOW GETs in flight */
		while (next < n_chunks && next < k + WINDOW) {
			ck = &c[next % WINDOW];
			memset(ck, 0, sizeof(*ck));
			ck->h = &h;
			ck->f.url = url;
			ck->f.off = next * CHUNK;
			ck->f.len = size - ck->f.off < CHUNK ? size - ck->f.off : CHUNK;
			ck->f.size = size;
			snprintf(ck->f.etag, sizeof(ck->f.etag), "%s", etag ? etag : "");
			ck->f.fd = fd;
			ck->f.done = chunk_done;
			ck->f.ctx = ck;
			lfsfs_store_fetch(st, &ck->f);
			next++;
		}
		ck = &c[k % WINDOW];
		pthread_mutex_lock(&h.lock);
		while (!ck->done)
			pthread_cond_wait(&h.cond, &h.lock);
		pthread_mutex_unlock(&h.lock);
		if (ck->rc) {
			int code = ck->rc;
			if (code == -LFSFS_EIMMUTABILITY || code == -LFSFS_ESIZE_MISMATCH)
				rc = lfsfs_error_set(
				        -LFSFS_EUNSTABLE_SOURCE,
				        "UNSTABLE_OBJECT_SOURCE: '%s' changed while it was being read "
				        "(%s at byte %" PRIu64
				        ": %s); its sha256 cannot be known: make "
				        "the object immutable (or wait until it stops changing) and run "
				        "again",
				        url, lfsfs_code_name(code), ck->f.off, ck->f.error);
			else
				rc = lfsfs_error_set(
				        code, "%s: cannot read '%s' at byte %" PRIu64 ": %s",
				        lfsfs_code_name(code), url, ck->f.off,
				        ck->f.error[0] ? ck->f.error : lfsfs_error_message());
			goto out;
		}
		if (etag && *etag && ck->f.etag_seen[0] &&
		    !lfsfs_etag_same(etag, ck->f.etag_seen)) {
			rc = lfsfs_error_set(
			        -LFSFS_EUNSTABLE_SOURCE,
			        "UNSTABLE_OBJECT_SOURCE: '%s' changed while it was being "
			        "read (ETag %s, then %s); its sha256 cannot be known: make "
			        "the object immutable and run again",
			        url, etag, ck->f.etag_seen);
			goto out;
		}
		for (uint64_t off = ck->f.off; off < ck->f.off + ck->f.len;) {
			size_t want = (size_t)(ck->f.off + ck->f.len - off);
			ssize_t n;
			if (want > (1 << 20))
				want = 1 << 20;
			n = pread(fd, buf, want, (off_t)off);
			if (n <= 0) {
				rc = lfsfs_error_set(-EIO, "cannot read the in-memory buffer");
				goto out;
			}
			EVP_DigestUpdate(md, buf, (size_t)n);
			off += (uint64_t)n;
		}
		/* give the memory back: the hash has these bytes */
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)ck->f.off,
		          (off_t)ck->f.len);
		if (tty && (now_s() - last > 0.1 || k + 1 == n_chunks)) {
			last = now_s();
			fprintf(stderr, "\r\033[Khashing: %" PRIu64 "/%" PRIu64 " MiB (%.0f MiB/s)",
			        (ck->f.off + ck->f.len) >> 20, size >> 20,
			        (double)((ck->f.off + ck->f.len) >> 20) / (last - t0 + 1e-9));
		}
	}
	if (tty && n_chunks)
		fputs("\r\033[K", stderr);
	EVP_DigestFinal_ex(md, dig, &dlen);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", dig[i]);
	rc = 0;
out:
	/* never leave a GET running into our buffer */
	pthread_mutex_lock(&h.lock);
	for (uint64_t k = next > WINDOW ? next - WINDOW : 0; k < next; k++)
		while (!c[k % WINDOW].done)
			pthread_cond_wait(&h.cond, &h.lock);
	pthread_mutex_unlock(&h.lock);
	if (rc && tty)
		fputs("\r\033[K", stderr);
	if (fd >= 0)
		close(fd);
	free(buf);
	EVP_MD_CTX_free(md);
	pthread_mutex_destroy(&h.lock);
	pthread_cond_destroy(&h.cond);
	return rc;
}

/* ---- the command ----------------------------------------------------------- */

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

int cmd_add_url(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "sha256", required_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 's' },
		{ "hash", no_argument, NULL, 'H' },
		{ "patient", required_argument, NULL, 'p' },
		{ "specimen", required_argument, NULL, 'P' },
		{ "meta", required_argument, NULL, 'm' },
		{ "repo", required_argument, NULL, 'r' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo_opt = NULL, *size_opt = NULL, *sha_opt = NULL;
	const char *url, *path_arg;
	char sha[LFSFS_OID_HEX_LEN + 1] = "", computed[LFSFS_OID_HEX_LEN + 1] = "";
	char *repo = NULL, *prefix = NULL, *base = NULL, *rel = NULL;
	const char **kv = NULL;
	char **owned = NULL;
	size_t n_kv = 0, n_owned = 0;
	struct lfsfs_config *cfg = NULL;
	struct lfsfs_net *net = NULL;
	struct lfsfs_store st;
	struct lfsfs_writer *w = NULL;
	struct lfsfs_objfacts given = { 0 }, headf = { 0 }, facts;
	struct lfsfs_objmeta m1, m2;
	struct lfsfs_regobj ro = { 0 };
	struct lfsfs_regresult res;
	struct lfsfs_buf desc = LFSFS_BUF_INIT(0);
	int c, rc, hash = 0, force = 0, store_up = 0, ret = EXIT_FAIL;
	unsigned committed = 0;
	const char *how = NULL;
	char red[2048];

	kv = calloc(2 * (size_t)argc + 2, sizeof(*kv));
	owned = calloc((size_t)argc + 1, sizeof(*owned));
	if (!kv || !owned) {
		free(kv);
		free(owned);
		return EXIT_FAIL;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			sha_opt = optarg;
			break;
		case 's':
			size_opt = optarg;
			break;
		case 'H':
			hash = 1;
			break;
		case 'p':
		case 'P':
			kv[2 * n_kv] = c == 'p' ? "patient" : "specimen";
			kv[2 * n_kv + 1] = optarg;
			n_kv++;
			break;
		case 'm': {
			char *copy = strdup(optarg), *eq = copy ? strchr(copy, '=') : NULL;
			if (!copy)
				goto out;
			owned[n_owned++] = copy;
			if (!eq || eq == copy) {
				cli_error("--meta wants KEY=VALUE, not '%s'", optarg);
				ret = EXIT_USAGE;
				goto out;
			}
			*eq = '\0';
			kv[2 * n_kv] = copy;
			kv[2 * n_kv + 1] = eq + 1;
			n_kv++;
			break;
		}
		case 'r':
			repo_opt = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 'h':
			fputs(add_url_usage, stdout);
			ret = EXIT_OK;
			goto out;
		default:
			fputs(add_url_usage, stderr);
			ret = EXIT_USAGE;
			goto out;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		fputs(add_url_usage, stderr);
		ret = EXIT_USAGE;
		goto out;
	}
	url = argv[optind];
	path_arg = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (size_opt && cli_parse_size(size_opt, &given.size)) {
		cli_error("--size wants a number of bytes, not '%s'", size_opt);
		ret = EXIT_USAGE;
		goto out;
	}
	given.has_size = size_opt != NULL;
	if (sha_opt && lfsfs_sha256_parse(sha_opt, sha)) {
		cli_error("--sha256: %s", lfsfs_error_message());
		ret = EXIT_USAGE;
		goto out;
	}
	given.sha256 = sha;
	if (!lfsfs_store_for_url(url)) {
		cli_error("unsupported URL '%s'; lfsfs reads %s", url, lfsfs_store_schemes());
		ret = EXIT_USAGE;
		goto out;
	}
	lfsfs_redact(url, red, sizeof(red));

	if ((rc = lfsfs_repo_locate(repo_opt, &repo, &prefix))) {
		report(rc, lfsfs_error_message());
		goto out;
	}
	if (!path_arg) {
		if ((rc = lfsfs_url_basename(url, &base))) {
			report(rc, lfsfs_error_message());
			ret = EXIT_USAGE;
			goto out;
		}
		path_arg = base;
	}
	if ((rc = lfsfs_repo_relpath(repo, prefix, path_arg, &rel))) {
		report(rc, lfsfs_error_message());
		goto out;
	}
	if ((rc = lfsfs_writer_open(repo, 0, &w))) {
		report(rc, lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}

	if ((rc = lfsfs_config_load(repo, &cfg))) {
		cli_error("cannot read lfsfs settings: %s", strerror(-rc));
		goto out;
	}
	if ((rc = lfsfs_net_new(&net))) {
		cli_error("cannot start the network engine: %s", lfsfs_error_message());
		goto out;
	}
	lfsfs_store_init(&st, net, cfg);
	store_up = 1;

	/* HEAD: the object exists, and its size is what was given */
	memset(&m1, 0, sizeof(m1));
	if ((rc = lfsfs_store_head(&st, url, &m1))) {
		report(rc, lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}
	headf.etag = m1.etag;
	headf.size = m1.size;
	headf.has_size = m1.has_size;
	headf.sha256 = m1.sha256;
	headf.md5 = m1.md5;
	if ((rc = lfsfs_objfacts_merge(url, &given, &headf, &facts))) {
		report(rc, lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}
	if (sha[0])
		how = "given (mode A)";
	else if (m1.sha256[0])
		how = "reported by the store";

	if (hash) {
		double t0 = now_s(), dt;
		if ((rc = stream_sha256(&st, url, facts.size, facts.etag, computed))) {
			report(rc, lfsfs_error_message());
			ret = cli_exit_for(rc);
			goto out;
		}
		dt = now_s() - t0;
		/* a second HEAD: the bytes hashed are the object still there */
		memset(&m2, 0, sizeof(m2));
		if ((rc = lfsfs_store_head(&st, url, &m2))) {
			report(rc, lfsfs_error_message());
			ret = cli_exit_for(rc);
			goto out;
		}
		if (m2.size != m1.size || m2.has_size != m1.has_size || strcmp(m2.etag, m1.etag) ||
		    strcmp(m2.version, m1.version)) {
			rc = lfsfs_error_set(
			        -LFSFS_EUNSTABLE_SOURCE,
			        "UNSTABLE_OBJECT_SOURCE: '%s' changed while it was being "
			        "hashed (ETag %s, %" PRIu64 " bytes before; %s, %" PRIu64
			        " bytes after); its sha256 cannot be known: make the "
			        "object immutable and run again",
			        url, m1.etag[0] ? m1.etag : "none", m1.size,
			        m2.etag[0] ? m2.etag : "none", m2.size);
			report(rc, lfsfs_error_message());
			ret = cli_exit_for(rc);
			goto out;
		}
		if (!m1.etag[0])
			fprintf(stderr,
			        "lfsfs: warning: '%s' has no ETag: only its size could be "
			        "compared before and after hashing\n",
			        red);
		if (facts.sha256 && strcmp(facts.sha256, computed)) {
			rc = lfsfs_error_set(
			        -LFSFS_ECHECKSUM_MISMATCH,
			        "CHECKSUM_MISMATCH: '%s' has sha256 %s, not the %s %s; "
			        "check --sha256 (or the URL)",
			        url, computed, sha[0] ? "given" : "store's", facts.sha256);
			report(rc, lfsfs_error_message());
			ret = cli_exit_for(rc);
			goto out;
		}
		printf("hashed %s: %" PRIu64 " bytes in %.2f s, sha256 %s\n", red, facts.size, dt,
		       computed);
		facts.sha256 = computed;
		how = sha[0] ? "given and verified by --hash" : "computed by --hash";
	}

	ro.path = rel;
	ro.url = url;
	ro.etag = facts.etag;
	ro.size = facts.size;
	ro.sha256 = facts.sha256;
	ro.md5 = facts.md5;
	ro.fields = kv;
	ro.n_fields = n_kv;
	ro.flags = force ? LFSFS_W_FORCE : 0;
	if ((rc = lfsfs_writer_register(w, &ro, &res))) {
		report(rc, lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}
	if ((rc = lfsfs_writer_commit(w, &committed))) {
		report(rc, lfsfs_error_message());
		goto out;
	}
	if (!res.changed) {
		printf("'%s' is already registered as %s (%" PRIu64 " bytes%s); nothing changed\n",
		       res.path, red, facts.size, res.sha256[0] ? ", with a pointer" : "");
	} else {
		printf("registered '%s' -> %s (%" PRIu64 " bytes%s%s)\n", res.path, red, facts.size,
		       facts.etag ? ", ETag " : "", facts.etag ? facts.etag : "");
		if (res.sha256[0] && how)
			printf("  sha256 %s\n", how);
		lfsfs_regresult_describe(&res, &desc);
		fputs(desc.data ? desc.data : "", stdout);
	}
	if (!res.sha256[0])
		printf("no sha256: the store keeps none for '%s', so it is registered by ETag only "
		       "and no pointer was written (lfsfs never writes a placeholder oid).\n"
		       "It appears in a mount at its path.  For a verified pointer: run again with "
		       "--hash (reads the object once), or mount, read it once and run 'lfsfs "
		       "meta sync'.\n",
		       res.path);
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
	lfsfs_writer_free(w);
	if (store_up) {
		lfsfs_net_free(net);
		lfsfs_store_release(&st);
	} else if (net) {
		lfsfs_net_free(net);
	}
	lfsfs_config_free(cfg);
	for (size_t i = 0; i < n_owned; i++)
		free(owned[i]);
	free(owned);
	free(kv);
	free(repo);
	free(prefix);
	free(base);
	free(rel);
	return ret;
}
