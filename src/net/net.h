/*
 * One libcurl multi engine shared by every transfer of a process.
 *
 * A dedicated thread drives curl_multi; other threads hand it requests with
 * lfsfs_net_submit() and get a completion callback (called on the engine
 * thread: keep it short, never call back into the engine from it).
 * Connections are reused across requests; HTTP/2 is negotiated where the
 * server offers it; TLS verification is always on and honours
 * SSL_CERT_FILE / CURL_CA_BUNDLE; proxies come from the standard variables.
 *
 * Ranged GETs write their body straight into a file descriptor at an
 * offset (the cache's sparse data file), after checking the status line
 * and Content-Range; nothing is written for a response that fails them.
 * Retries with jittered exponential backoff on 5xx, 429, resets, stalls
 * and truncated bodies.
 */
#ifndef LFSFS_NET_H
#define LFSFS_NET_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct lfsfs_net;
struct curl_slist;

enum lfsfs_http_method { LFSFS_HTTP_GET = 0, LFSFS_HTTP_HEAD, LFSFS_HTTP_POST, LFSFS_HTTP_PUT };

struct lfsfs_http_req {
	/* --- set by the caller; owned by the caller until done() --- */
	enum lfsfs_http_method method;
	const char *url;
	struct curl_slist *headers;   /* extra headers, may be NULL */
	const char *req_body;         /* POST/PUT body (not copied), may be NULL */
	size_t req_body_len;
	uint64_t range_start;         /* range_len == 0: no Range header */
	uint64_t range_len;
	uint64_t expect_total;        /* object size to check against, 0 = unknown */
	char if_match[160];           /* sent as If-Match when non-empty */
	int fd;                       /* body sink for ranged GETs; -1 = into body */
	struct lfsfs_buf body;        /* body sink when fd < 0 (set its cap) */
	int max_attempts;             /* 0 = default (5) */
	void (*done)(struct lfsfs_http_req *req, int rc);
	void *ctx;

	/* --- results, valid in done() --- */
	long status;
	struct lfsfs_buf errbody;     /* first 64 KiB of a >= 400 response body
				       * (S3/Azure/GCS error documents); owned
				       * by req: lfsfs_buf_release() it */
	char etag[160];               /* ETag response header, as sent */
	struct curl_slist *resp_headers; /* every response header line ("Name: value",
					  * trimmed) of the final response when
					  * keep_headers is set; free with
					  * curl_slist_free_all() */
	int keep_headers;             /* in: collect resp_headers */
	uint64_t total;               /* from Content-Range / Content-Length */
	uint64_t received;            /* body bytes accepted */
	int attempts;
	char error[256];              /* human detail on failure */

	/* --- engine private --- */
	void *priv_easy;
	struct curl_slist *priv_hdrs;
	uint64_t priv_due_ms;
	struct lfsfs_http_req *priv_next;     /* queue link */
	struct lfsfs_http_req *priv_active;   /* running-list link */
	long priv_hdr_status;
	int priv_write_err;
};

struct lfsfs_net_stats {
	uint64_t requests;      /* HTTP requests started, retries included */
	uint64_t bytes;         /* body bytes received */
	uint64_t retries;
};

int lfsfs_net_new(struct lfsfs_net **out);
/* Stops the thread; outstanding requests complete with -ECANCELED. */
void lfsfs_net_free(struct lfsfs_net *net);

/* Queue req; done() is always called exactly once, even on failure. */
void lfsfs_net_submit(struct lfsfs_net *net, struct lfsfs_http_req *req);
/* Submit and wait; returns the rc that done() would get. req->done must
 * be NULL. */
int lfsfs_net_perform(struct lfsfs_net *net, struct lfsfs_http_req *req);

/* Value of response header name (case-insensitive) in a keep_headers
 * list, or NULL. Points into the list. */
const char *lfsfs_http_header(const struct curl_slist *h, const char *name);

void lfsfs_net_get_stats(struct lfsfs_net *net, struct lfsfs_net_stats *out);

/* Test knob: base backoff delay in ms (default 200). */
void lfsfs_net_set_backoff_ms(struct lfsfs_net *net, unsigned ms);

#endif
