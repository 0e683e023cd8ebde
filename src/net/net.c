/* The shared libcurl multi engine: queueing, retries, response checks. */
#include "net/net.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "util/log.h"

struct lfsfs_net {
	CURLM *multi;
	CURLSH *share;
	pthread_t thread;
	pthread_mutex_t lock;          /* protects incoming, stop, stats */
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
	struct lfsfs_http_req *incoming;
	struct lfsfs_http_req *delayed; /* engine thread only */
	struct lfsfs_http_req *active;  /* engine thread only */
	int stop;
	unsigned backoff_ms;
	uint64_t rng;                   /* engine thread only: xorshift state */
	struct lfsfs_net_stats stats;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void share_lock_cb(CURL *h, curl_lock_data d, curl_lock_access a, void *p)
{
	struct lfsfs_net *net = p;

	pthread_mutex_lock(&net->share_lock[d]);
}

static void share_unlock_cb(CURL *h, curl_lock_data d, void *p)
{
	struct lfsfs_net *net = p;

	pthread_mutex_unlock(&net->share_lock[d]);
}

/* Parse "bytes S-E/T" (T may be "*"). */
static int parse_content_range(const char *v, uint64_t *s, uint64_t *e, uint64_t *t)
{
	char star;

	while (*v == ' ')
		v++;
	if (strncasecmp(v, "bytes ", 6))
		return -1;
	v += 6;
	if (sscanf(v, "%" SCNu64 "-%" SCNu64 "/%" SCNu64, s, e, t) == 3)
		return 0;
	if (sscanf(v, "%" SCNu64 "-%" SCNu64 "/%c", s, e, &star) == 3 && star == '*') {
		*t = 0;
		return 0;
	}
	return -1;
}

static size_t header_cb(char *data, size_t size, size_t n, void *p)
{
	struct lfsfs_http_req *req = p;
	size_t len = size * n, vl;
	const char *v;

	if (len > 5 && !strncmp(data, "HTTP/", 5)) {
		/* a new response (after a redirect or 100-continue) */
		const char *sp = memchr(data, ' ', len);
		req->etag[0] = '\0';
		req->total = 0;
		req->priv_hdr_status = sp ? strtol(sp + 1, NULL, 10) : 0;
		curl_slist_free_all(req->resp_headers);
		req->resp_headers = NULL;
		return len;
	}
	if (req->keep_headers && len > 2 && memchr(data, ':', len)) {
		char line[2048];
		size_t ll = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
		memcpy(line, data, ll);
		while (ll && (line[ll - 1] == '\r' || line[ll - 1] == '\n'))
			ll--;
		line[ll] = '\0';
		req->resp_headers = curl_slist_append(req->resp_headers, line);
	}
	if (len > 5 && !strncasecmp(data, "etag:", 5)) {
		v = data + 5;
		while (*v == ' ' || *v == '\t')
			v++;
		vl = len - (size_t)(v - data);
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof(req->etag))
			vl = sizeof(req->etag) - 1;
		memcpy(req->etag, v, vl);
		req->etag[vl] = '\0';
	} else if (req->priv_hdr_status == 206 && len > 14 &&
		   !strncasecmp(data, "content-range:", 14)) {
		char tmp[128];
		uint64_t s, e, t;
		vl = len - 14 < sizeof(tmp) - 1 ? len - 14 : sizeof(tmp) - 1;
		memcpy(tmp, data + 14, vl);
		tmp[vl] = '\0';
		if (!parse_content_range(tmp, &s, &e, &t)) {
			req->total = t;
			/* remember the served range in priv fields via status check */
			if (req->range_len && (s != req->range_start ||
					       e != req->range_start + req->range_len - 1))
				req->priv_write_err = 2; /* wrong range */
		} else {
			req->priv_write_err = 3; /* unparseable */
		}
	}
	return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *p)
{
	struct lfsfs_http_req *req = p;
	size_t len = size * n;
	long status = 0;

	if (req->priv_write_err)
		return 0;
	curl_easy_getinfo((CURL *)req->priv_easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status >= 300) {
		/* keep the start of error documents: backends explain them */
		if (status >= 400 && req->errbody.len < 65536) {
			size_t room = 65536 - req->errbody.len;
			lfsfs_buf_append(&req->errbody, data, len < room ? len : room);
		}
		return len;
	}
	if (req->range_len) {
		/* Only a 206 for exactly our range may be written; a 200 means
		 * the server ignored Range and sends the whole object. */
		if (status != 206) {
			if (!(status == 200 && req->range_start == 0 &&
			      (req->expect_total == 0 || req->expect_total == req->range_len))) {
				req->priv_write_err = 4;
				return 0;
			}
		}
		if (req->received + len > req->range_len) {
			req->priv_write_err = 5; /* longer than asked */
			return 0;
		}
	}
	if (req->fd >= 0) {
		size_t off = 0;
		while (off < len) {
			ssize_t w = pwrite(req->fd, data + off, len - off,
					   (off_t)(req->range_start + req->received + off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				req->priv_write_err = errno == ENOSPC ? 6 : 7;
				return 0;
			}
			off += (size_t)w;
		}
	} else if (lfsfs_buf_append(&req->body, data, len)) {
		req->priv_write_err = 8;
		return 0;
	}
	req->received += len;
	return len;
}

static CURL *make_easy(struct lfsfs_net *net, struct lfsfs_http_req *req,
		       struct curl_slist **hdrs_out)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	char range[80], im[200];

	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_SHARE, net->share);
	curl_easy_setopt(h, CURLOPT_PRIVATE, req);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
	/* A stalled transfer (under 1 KiB/s for 30 s) is dropped and retried. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "lfsfs/" LFSFS_VERSION);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
	{
		/* libcurl itself reads CURL_CA_BUNDLE only in the tool; honour
		 * both common variables here. */
		const char *ca = getenv("CURL_CA_BUNDLE");
		if (!ca || !*ca)
			ca = getenv("SSL_CERT_FILE");
		if (ca && *ca)
			curl_easy_setopt(h, CURLOPT_CAINFO, ca);
		const char *cadir = getenv("SSL_CERT_DIR");
		if (cadir && *cadir)
			curl_easy_setopt(h, CURLOPT_CAPATH, cadir);
	}
	if (req->method == LFSFS_HTTP_HEAD)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (req->method == LFSFS_HTTP_POST || req->method == LFSFS_HTTP_PUT) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->req_body ? req->req_body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->req_body_len);
		if (req->method == LFSFS_HTTP_PUT)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
	}
	if (req->range_len) {
		snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, req->range_start,
			 req->range_start + req->range_len - 1);
		curl_easy_setopt(h, CURLOPT_RANGE, range);
	}
	for (struct curl_slist *s = req->headers; s; s = s->next)
		hdrs = curl_slist_append(hdrs, s->data);
	if (req->if_match[0]) {
		snprintf(im, sizeof(im), "If-Match: %s", req->if_match);
		hdrs = curl_slist_append(hdrs, im);
	}
	if (hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	*hdrs_out = hdrs;
	return h;
}

static int start_request(struct lfsfs_net *net, struct lfsfs_http_req *req)
{
	struct curl_slist *hdrs = NULL;
	CURL *h;

	req->received = 0;
	req->status = 0;
	req->total = 0;
	req->etag[0] = '\0';
	req->priv_write_err = 0;
	req->priv_hdr_status = 0;
	lfsfs_buf_reset(&req->errbody);
	curl_slist_free_all(req->resp_headers);
	req->resp_headers = NULL;
	if (req->fd < 0)
		lfsfs_buf_reset(&req->body);
	h = make_easy(net, req, &hdrs);
	if (!h)
		return -ENOMEM;
	req->priv_easy = h;
	curl_easy_setopt(h, CURLOPT_PRIVATE, req);
	req->priv_hdrs = hdrs;
	req->priv_active = net->active;
	net->active = req;
	req->attempts++;
	pthread_mutex_lock(&net->lock);
	net->stats.requests++;
	pthread_mutex_unlock(&net->lock);
	curl_multi_add_handle(net->multi, h);
	return 0;
}

static void release_easy(struct lfsfs_net *net, struct lfsfs_http_req *req)
{
	struct lfsfs_http_req **pp;

	for (pp = &net->active; *pp; pp = &(*pp)->priv_active)
		if (*pp == req) {
			*pp = req->priv_active;
			break;
		}
	req->priv_active = NULL;
	curl_multi_remove_handle(net->multi, (CURL *)req->priv_easy);
	curl_easy_cleanup((CURL *)req->priv_easy);
	curl_slist_free_all(req->priv_hdrs);
	req->priv_hdrs = NULL;
	req->priv_easy = NULL;
}

static void finish(struct lfsfs_http_req *req, int rc)
{
	req->done(req, rc);
}

/* Classify a finished attempt: 0 success, >0 retry, <0 final error. */
static int classify(struct lfsfs_net *net, struct lfsfs_http_req *req, CURLcode cc, int *final_rc)
{
	long st = req->status;

	*final_rc = 0;
	if (req->priv_write_err) {
		switch (req->priv_write_err) {
		case 2:
			snprintf(req->error, sizeof(req->error),
				 "server answered a different range than requested");
			*final_rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
			return -1;
		case 3:
			snprintf(req->error, sizeof(req->error), "unparseable Content-Range header");
			*final_rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
			return -1;
		case 4:
			snprintf(req->error, sizeof(req->error),
				 "server ignored the Range header (HTTP %ld); lfsfs needs an origin "
				 "that supports range requests", st);
			*final_rc = -LFSFS_EUNSUPPORTED;
			return -1;
		case 5:
			snprintf(req->error, sizeof(req->error), "server sent more bytes than requested");
			*final_rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
			return -1;
		case 6:
			snprintf(req->error, sizeof(req->error), "cache disk is full");
			*final_rc = -ENOSPC;
			return -1;
		case 8:
			snprintf(req->error, sizeof(req->error), "response body too large");
			*final_rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
			return -1;
		default:
			snprintf(req->error, sizeof(req->error), "cannot write to the cache");
			*final_rc = -EIO;
			return -1;
		}
	}
	if (cc != CURLE_OK) {
		snprintf(req->error, sizeof(req->error), "%s", curl_easy_strerror(cc));
		switch (cc) {
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_PARTIAL_FILE:
		case CURLE_GOT_NOTHING:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			return 1;
		default:
			/* TLS verification failures and the like are final. */
			*final_rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
			return -1;
		}
	}
	if (st == 412) {
		snprintf(req->error, sizeof(req->error),
			 "HTTP 412: the object no longer matches ETag %s", req->if_match);
		*final_rc = -LFSFS_EIMMUTABILITY;
		return -1;
	}
	if (st == 429 || st >= 500) {
		snprintf(req->error, sizeof(req->error), "HTTP %ld", st);
		return 1;
	}
	if (st == 416) {
		snprintf(req->error, sizeof(req->error),
			 "HTTP 416: range not satisfiable (object smaller than recorded)");
		*final_rc = -LFSFS_ESIZE_MISMATCH;
		return -1;
	}
	if (st == 401 || st == 403) {
		snprintf(req->error, sizeof(req->error), "HTTP %ld: access denied", st);
		*final_rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
		return -1;
	}
	if (st < 200 || st >= 300) {
		snprintf(req->error, sizeof(req->error), "HTTP %ld", st);
		*final_rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
		return -1;
	}
	if (req->method == LFSFS_HTTP_GET && req->range_len) {
		if (st == 206 && req->total == 0 && req->expect_total) {
			/* "bytes S-E/star": total unknown, range was checked */
		} else if (st == 200) {
			req->total = req->received;
		}
		if (req->expect_total && req->total && req->total != req->expect_total) {
			snprintf(req->error, sizeof(req->error),
				 "object is %" PRIu64 " bytes at the origin, expected %" PRIu64,
				 req->total, req->expect_total);
			*final_rc = -LFSFS_ESIZE_MISMATCH;
			return -1;
		}
		if (req->received != req->range_len) {
			snprintf(req->error, sizeof(req->error),
				 "short body: %" PRIu64 " of %" PRIu64 " bytes", req->received,
				 req->range_len);
			return 1;
		}
	} else if (req->method == LFSFS_HTTP_HEAD || !req->range_len) {
		curl_off_t cl = -1;
		curl_easy_getinfo((CURL *)req->priv_easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
		if (cl >= 0)
			req->total = (uint64_t)cl;
	}
	return 0;
}

static uint64_t next_rand(struct lfsfs_net *net)
{
	uint64_t x = net->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return net->rng = x;
}

static void schedule_retry(struct lfsfs_net *net, struct lfsfs_http_req *req)
{
	/* Equal jitter: uniform in [cap/2, cap], cap = base * 2^attempt, at
	 * most 10 s; seeded per process so many clients do not retry in step. */
	uint64_t cap = (uint64_t)net->backoff_ms << (req->attempts < 6 ? req->attempts : 6);
	uint64_t delay;

	if (cap > 10000)
		cap = 10000;
	delay = cap / 2 + next_rand(net) % (cap / 2 + 1);
	req->priv_due_ms = now_ms() + delay;
	req->priv_next = net->delayed;
	net->delayed = req;
	pthread_mutex_lock(&net->lock);
	net->stats.retries++;
	pthread_mutex_unlock(&net->lock);
	log_info("retrying %s in %" PRIu64 " ms (attempt %d): %s", req->url, delay,
		 req->attempts + 1, req->error);
}

static void on_done(struct lfsfs_net *net, CURL *h, CURLcode cc)
{
	struct lfsfs_http_req *req = NULL;
	int rc, final_rc, max;
	curl_off_t dl = 0;

	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&req);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &req->status);
	curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &dl);
	rc = classify(net, req, cc, &final_rc);
	release_easy(net, req);
	pthread_mutex_lock(&net->lock);
	net->stats.bytes += (uint64_t)dl;
	pthread_mutex_unlock(&net->lock);
	max = req->max_attempts ? req->max_attempts : 5;
	if (rc > 0 && req->attempts < max) {
		schedule_retry(net, req);
		return;
	}
	if (rc > 0)
		final_rc = -LFSFS_ESOURCE_NOT_ACCESSIBLE;
	finish(req, final_rc);
}

static void *engine_main(void *p)
{
	struct lfsfs_net *net = p;

	for (;;) {
		struct lfsfs_http_req *in, **pp;
		int running = 0, msgs;
		uint64_t now;
		CURLMsg *m;
		int timeout = 1000;

		pthread_mutex_lock(&net->lock);
		in = net->incoming;
		net->incoming = NULL;
		int stop = net->stop;
		pthread_mutex_unlock(&net->lock);
		if (stop)
			break;
		{
			/* the queue is pushed at its head: reverse for FIFO */
			struct lfsfs_http_req *rev = NULL;
			while (in) {
				struct lfsfs_http_req *n2 = in->priv_next;
				in->priv_next = rev;
				rev = in;
				in = n2;
			}
			in = rev;
		}
		while (in) {
			struct lfsfs_http_req *next = in->priv_next;
			in->priv_next = NULL;
			if (start_request(net, in)) {
				snprintf(in->error, sizeof(in->error), "out of memory");
				finish(in, -ENOMEM);
			}
			in = next;
		}
		curl_multi_perform(net->multi, &running);
		while ((m = curl_multi_info_read(net->multi, &msgs)))
			if (m->msg == CURLMSG_DONE)
				on_done(net, m->easy_handle, m->data.result);
		/* start due retries; sleep no longer than the next one (after the
		 * completions above, which may have scheduled new ones) */
		now = now_ms();
		for (pp = &net->delayed; *pp;) {
			struct lfsfs_http_req *r = *pp;
			if (r->priv_due_ms <= now) {
				*pp = r->priv_next;
				r->priv_next = NULL;
				if (start_request(net, r))
					finish(r, -ENOMEM);
				timeout = 0;
			} else {
				if (r->priv_due_ms - now < (uint64_t)timeout)
					timeout = (int)(r->priv_due_ms - now);
				pp = &r->priv_next;
			}
		}
		curl_multi_poll(net->multi, NULL, 0, timeout, NULL);
	}
	return NULL;
}

int lfsfs_net_new(struct lfsfs_net **out)
{
	struct lfsfs_net *net = calloc(1, sizeof(*net));
	int rc;

	if (!net)
		return -ENOMEM;
	pthread_once(&curl_once, curl_init_once);
	pthread_mutex_init(&net->lock, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&net->share_lock[i], NULL);
	net->backoff_ms = 200;
	{
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		net->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
			   ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)net;
		if (!net->rng)
			net->rng = 88172645463325252ull;
	}
	net->multi = curl_multi_init();
	net->share = curl_share_init();
	if (!net->multi || !net->share) {
		rc = -ENOMEM;
		goto fail;
	}
	curl_share_setopt(net->share, CURLSHOPT_LOCKFUNC, share_lock_cb);
	curl_share_setopt(net->share, CURLSHOPT_UNLOCKFUNC, share_unlock_cb);
	curl_share_setopt(net->share, CURLSHOPT_USERDATA, net);
	curl_share_setopt(net->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(net->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_multi_setopt(net->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(net->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
	if ((rc = pthread_create(&net->thread, NULL, engine_main, net))) {
		rc = -rc;
		goto fail;
	}
	*out = net;
	return 0;
fail:
	if (net->multi)
		curl_multi_cleanup(net->multi);
	if (net->share)
		curl_share_cleanup(net->share);
	free(net);
	return rc;
}

void lfsfs_net_free(struct lfsfs_net *net)
{
	if (!net)
		return;
	pthread_mutex_lock(&net->lock);
	net->stop = 1;
	pthread_mutex_unlock(&net->lock);
	curl_multi_wakeup(net->multi);
	pthread_join(net->thread, NULL);
	/* Cancel whatever is still queued, running or delayed. */
	while (net->incoming) {
		struct lfsfs_http_req *r = net->incoming;
		net->incoming = r->priv_next;
		r->priv_next = NULL;
		finish(r, -ECANCELED);
	}
	while (net->delayed) {
		struct lfsfs_http_req *r = net->delayed;
		net->delayed = r->priv_next;
		r->priv_next = NULL;
		finish(r, -ECANCELED);
	}
	while (net->active) {
		struct lfsfs_http_req *r = net->active;
		release_easy(net, r);
		finish(r, -ECANCELED);
	}
	curl_multi_cleanup(net->multi);
	curl_share_cleanup(net->share);
	free(net);
}

void lfsfs_net_submit(struct lfsfs_net *net, struct lfsfs_http_req *req)
{
	req->attempts = 0;
	req->error[0] = '\0';
	pthread_mutex_lock(&net->lock);
	req->priv_next = net->incoming;
	net->incoming = req;
	pthread_mutex_unlock(&net->lock);
	curl_multi_wakeup(net->multi);
}

struct sync_wait {
	pthread_mutex_t m;
	pthread_cond_t c;
	int done, rc;
};

static void sync_done(struct lfsfs_http_req *req, int rc)
{
	struct sync_wait *w = req->ctx;

	pthread_mutex_lock(&w->m);
	w->done = 1;
	w->rc = rc;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

int lfsfs_net_perform(struct lfsfs_net *net, struct lfsfs_http_req *req)
{
	struct sync_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };

	req->done = sync_done;
	req->ctx = &w;
	lfsfs_net_submit(net, req);
	pthread_mutex_lock(&w.m);
	while (!w.done)
		pthread_cond_wait(&w.c, &w.m);
	pthread_mutex_unlock(&w.m);
	req->done = NULL;
	return w.rc;
}

const char *lfsfs_http_header(const struct curl_slist *h, const char *name)
{
	size_t n = strlen(name);

	for (; h; h = h->next)
		if (!strncasecmp(h->data, name, n) && h->data[n] == ':') {
			const char *v = h->data + n + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
	return NULL;
}

void lfsfs_net_get_stats(struct lfsfs_net *net, struct lfsfs_net_stats *out)
{
	pthread_mutex_lock(&net->lock);
	*out = net->stats;
	pthread_mutex_unlock(&net->lock);
}

void lfsfs_net_set_backoff_ms(struct lfsfs_net *net, unsigned ms)
{
	net->backoff_ms = ms ? ms : 1;
}
