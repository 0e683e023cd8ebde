/*
 * Object stores: turn "fetch bytes [off, off+len) of URL into fd" into
 * whatever the backend needs (plain HTTP, a signed S3 request, a local
 * file read).  Backends are ops tables selected by URL scheme; adding one
 * touches only its own file and the table in store.c.
 *
 * A fetch is asynchronous: fetch() returns at once and f->done() runs
 * exactly once later (possibly on another thread, possibly before fetch()
 * returns).  The caller owns f until done() has been called.
 */
#ifndef LFSFS_STORE_H
#define LFSFS_STORE_H

#include <stdint.h>

struct lfsfs_net;
struct lfsfs_store;

struct lfsfs_fetch {
	/* in */
	const char *url;
	uint64_t off, len;          /* byte range of the object */
	uint64_t size;              /* expected object size */
	char etag[160];             /* known ETag ("" = unknown): sent as If-Match */
	int fd;                     /* write bytes at the same offsets in fd */
	void (*done)(struct lfsfs_fetch *f, int rc);
	void *ctx;
	/* out */
	char etag_seen[160];        /* ETag of the response */
	char error[256];            /* detail when rc != 0 */
	/* backend private */
	void *priv;
};

struct lfsfs_store_ops {
	const char *name;
	/* 1 if this backend serves url */
	int (*handles)(const char *url);
	int (*fetch)(struct lfsfs_store *st, struct lfsfs_fetch *f);
};

struct lfsfs_store {
	struct lfsfs_net *net;   /* not owned */
};

/* The backend for url, or NULL (then the scheme is unsupported). */
const struct lfsfs_store_ops *lfsfs_store_for_url(const char *url);
/* Comma-separated list of schemes served, for messages. */
const char *lfsfs_store_schemes(void);

/* Start f on the right backend; on immediate failure done() is still called. */
void lfsfs_store_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f);

extern const struct lfsfs_store_ops lfsfs_store_http;
extern const struct lfsfs_store_ops lfsfs_store_file;

#endif
