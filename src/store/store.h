/*
 * Object stores: turn "fetch bytes [off, off+len) of URL into fd" into
 * whatever the backend needs (plain HTTP, a SigV4-signed S3 request, an
 * Azure SharedKey request, a GCS JSON-API media request, a local file
 * read).  Backends are ops tables selected by URL; adding one touches only
 * its own files and the table in store.c.
 *
 * A fetch is asynchronous: fetch() returns at once and f->done() runs
 * exactly once later (possibly on the network thread, possibly before
 * fetch() returns).  The caller owns f until done() has been called.
 * fetch() itself runs on a reader thread, so a backend may block there
 * briefly to obtain or refresh credentials (never inside done()).
 *
 * Error codes (include/lfsfs/error.h) a backend returns or passes to done():
 *   -LFSFS_ECREDENTIALS_MISSING   no usable credentials: the message names the
 *                                 URL, every source tried, and what to set
 *   -LFSFS_ESOURCE_NOT_ACCESSIBLE 401/403/404, rejected credentials (the
 *                                 message names the source that was used),
 *                                 network failure after retries
 *   -LFSFS_EIMMUTABILITY          412, or the ETag/generation changed
 *   -LFSFS_ESIZE_MISMATCH         total size differs from the expected one
 */
#ifndef LFSFS_STORE_H
#define LFSFS_STORE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"

struct lfsfs_net;
struct lfsfs_config;
struct lfsfs_store;

/*
 * Where an object's bytes are: what a resolver found.  Owned by whoever
 * holds it; free with lfsfs_source_release().
 */
struct lfsfs_source {
	char *url;
	char *etag;          /* the version the record pins, or NULL */
	char **headers;      /* "Name: value" to send with every request (signed
			      * DRS access, LFS batch hrefs); may be NULL */
	size_t n_headers;
	time_t expires;      /* 0 = does not expire */
	const char *resolver;/* name of the resolver that answered (static) */
};
void lfsfs_source_release(struct lfsfs_source *s);

struct lfsfs_fetch {
	/* in */
	const char *url;
	const char *const *headers; /* extra "Name: value" request headers, may be NULL */
	size_t n_headers;
	uint64_t off, len;          /* byte range of the object */
	uint64_t size;              /* expected object size */
	char etag[160];             /* known ETag ("" = unknown): sent as If-Match */
	int fd;                     /* write bytes at the same offsets in fd */
	void (*done)(struct lfsfs_fetch *f, int rc);
	void *ctx;
	/* out */
	char etag_seen[160];        /* ETag of the response */
	long status;                /* final HTTP status, 0 if none */
	char error[768];            /* detail when rc != 0 (no secrets) */
	/* backend private */
	void *priv;
};

/* What a HEAD (or metadata GET) says about an object, normalized. */
struct lfsfs_objmeta {
	long status;                /* HTTP status of the lookup, set on failure
				     * too (0: none, or not an HTTP backend) */
	uint64_t size;
	int has_size;
	char etag[160];             /* as served, quotes kept */
	char md5[33];               /* hex, when derivable (single-part S3 ETag,
				     * GCS md5Hash, Azure Content-MD5) */
	char sha256[65];            /* hex, when the store has a full-object one */
	char crc32c[16];            /* as served (base64), GCS */
	char version[160];          /* S3 version id, GCS generation, Azure version */
	char last_modified[64];
	char content_type[128];
};

struct lfsfs_store_ops {
	const char *name;
	const char *forms;          /* URL forms served, for messages: "s3://bucket/key" */
	/* 1 if this backend serves url */
	int (*handles)(const char *url);
	int (*fetch)(struct lfsfs_store *st, struct lfsfs_fetch *f);
	/* Synchronous metadata lookup; message set on failure. */
	int (*head)(struct lfsfs_store *st, const char *url, struct lfsfs_objmeta *out);
	/* For `lfsfs doctor`: append lines "key: value" describing the endpoint
	 * and the credential source that would be used (secrets redacted) and,
	 * on trouble, what to fix.  May be NULL. */
	int (*explain)(struct lfsfs_store *st, const char *url, struct lfsfs_buf *out);
	/* Free the backend state created with lfsfs_store_state(). May be NULL. */
	void (*release)(void *state);
};

#define LFSFS_STORE_MAX 8

struct lfsfs_store {
	struct lfsfs_net *net;           /* not owned */
	const struct lfsfs_config *cfg;  /* not owned, may be NULL */
	pthread_mutex_t lock;            /* protects state[] */
	void *state[LFSFS_STORE_MAX];    /* per-backend, by table index */
};

void lfsfs_store_init(struct lfsfs_store *st, struct lfsfs_net *net,
		      const struct lfsfs_config *cfg);
/* Release every backend's state. */
void lfsfs_store_release(struct lfsfs_store *st);

/*
 * The state of backend ops in st, created on first use by create(st)
 * (called once, under st->lock; may return NULL on failure, then called
 * again next time).  The state lives until lfsfs_store_release().
 */
void *lfsfs_store_state(struct lfsfs_store *st, const struct lfsfs_store_ops *ops,
			void *(*create)(struct lfsfs_store *st));

/* The backend for url, or NULL (then the scheme is unsupported). */
const struct lfsfs_store_ops *lfsfs_store_for_url(const char *url);
/* Comma-separated list of URL forms served, for messages. */
const char *lfsfs_store_schemes(void);

/* Start f on the right backend; on immediate failure done() is still called. */
void lfsfs_store_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f);
/* HEAD through the right backend. */
int lfsfs_store_head(struct lfsfs_store *st, const char *url, struct lfsfs_objmeta *out);

extern const struct lfsfs_store_ops lfsfs_store_gcs;
extern const struct lfsfs_store_ops lfsfs_store_azure;
extern const struct lfsfs_store_ops lfsfs_store_http;
extern const struct lfsfs_store_ops lfsfs_store_file;
extern const struct lfsfs_store_ops lfsfs_store_s3;

#endif
