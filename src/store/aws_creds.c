/* The AWS credential chain (env, shared files and credential_process, web
 * identity, ECS, IMDSv2) and its cache.  Network calls go through net/. */
#include "store/aws_creds.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "util/timefmt.h"

extern char **environ;

#define NOT_FOUND 1                 /* a source had nothing: try the next */
#define REFRESH_MARGIN 300          /* refresh this many seconds before expiry */
#ifndef PROCESS_TIMEOUT_MS
#define PROCESS_TIMEOUT_MS 30000    /* credential_process */
#endif
#define IMDS_PROBE_MS 1000          /* connect timeout of the IMDS probe */
#define IMDS_DEFAULT "http://169.254.169.254"
#define IMDS_DEFAULT_V6 "http://[fd00:ec2::254]"
#define ECS_HOST "http://169.254.170.2"
#define STS_DEFAULT "https://sts.amazonaws.com/"
#define IMDS_ABSENT_TTL 60          /* seconds a failed IMDS probe is remembered */

/* The last IMDS endpoint found absent and when: without an instance, every
 * credential lookup would otherwise spend up to a second probing again. */
static pthread_mutex_t imds_absent_lock = PTHREAD_MUTEX_INITIALIZER;
static char imds_absent_url[1024];      /* protected by imds_absent_lock */
static time_t imds_absent_at;           /* protected by imds_absent_lock */
static int imds_absent_err;             /* protected by imds_absent_lock */

/* ---------------------------------------------------------------- helpers */

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static void tried_add(struct lfsfs_buf *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void tried_add(struct lfsfs_buf *t, const char *fmt, ...)
{
	char tmp[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	lfsfs_buf_printf(t, "%s%s", t->len ? "; " : "", tmp);
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int set_field(char *dst, size_t cap, const char *v, const char *what, const char *where)
{
	size_t n = strlen(v);

	if (n >= cap)
		return lfsfs_error_set(-LFSFS_EPARSE, "%s: '%s' is too long (%zu bytes, at most %zu)",
				       where, what, n, cap - 1);
	memcpy(dst, v, n + 1);
	return 0;
}

static void home_dir(char *out, size_t cap)
{
	const char *h = env("HOME");
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (!h && !getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) && res)
		h = res->pw_dir;
	snprintf(out, cap, "%s", h ? h : "");
}

/* AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, "~/" expanded, or the
 * default under ~/.aws. */
static void aws_file(const char *var, const char *def, char *out, size_t cap)
{
	const char *v = env(var);
	char home[1024];

	home_dir(home, sizeof(home));
	if (v && v[0] == '~' && (v[1] == '/' || !v[1]))
		snprintf(out, cap, "%s%s", home, v + 1);
	else if (v)
		snprintf(out, cap, "%s", v);
	else
		snprintf(out, cap, "%s/.aws/%s", home, def);
}

/* Read a small file and trim it (tokens). */
static int read_trimmed(const char *path, char **out)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(256 * 1024);
	int rc = lfsfs_buf_read_file(&b, path);
	char *t;

	if (rc) {
		lfsfs_buf_release(&b);
		return rc;
	}
	t = trim(b.data);
	*out = strdup(t);
	OPENSSL_cleanse(b.data, b.len);
	lfsfs_buf_release(&b);
	return *out ? 0 : -ENOMEM;
}

static void cred_clear(struct lfsfs_aws_cred *c)
{
	OPENSSL_cleanse(c, sizeof(*c));
}

/* Fill c from the pieces; checks lengths.  `where` names the source. */
static int cred_fill(struct lfsfs_aws_cred *c, const char *ak, const char *sk, const char *tok,
		     const char *expiration, const char *source, const char *where)
{
	int rc;

	memset(c, 0, sizeof(*c));
	if (!ak || !*ak || !sk || !*sk)
		return lfsfs_error_set(-LFSFS_EPARSE, "%s: answer lacks %s", where,
				       !ak || !*ak ? "AccessKeyId" : "SecretAccessKey");
	if ((rc = set_field(c->access_key, sizeof(c->access_key), ak, "access key id", where)) ||
	    (rc = set_field(c->secret_key, sizeof(c->secret_key), sk, "secret key", where)) ||
	    (rc = set_field(c->session_token, sizeof(c->session_token), tok ? tok : "",
			    "session token", where)))
		return rc;
	if (expiration && *expiration && lfsfs_time_rfc3339(expiration, &c->expires))
		return lfsfs_error_set(-LFSFS_EPARSE, "%s: cannot parse expiration '%.64s'", where,
				       expiration);
	snprintf(c->source, sizeof(c->source), "%s", source);
	return 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* {AccessKeyId, SecretAccessKey, <token_key>, Expiration} as served by ECS,
 * IMDS and credential_process. */
static int cred_from_json(const char *text, size_t len, const char *token_key,
			  struct lfsfs_aws_cred *c, const char *source, const char *where)
{
	cJSON *j = cJSON_ParseWithLength(text ? text : "", len);
	int rc;

	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return lfsfs_error_set(-LFSFS_EPARSE, "%s: answer is not a JSON object", where);
	}
	rc = cred_fill(c, jstr(j, "AccessKeyId"), jstr(j, "SecretAccessKey"), jstr(j, token_key),
		       jstr(j, "Expiration"), source, where);
	cJSON_Delete(j);
	return rc;
}

/* One blocking HTTP exchange through the engine.  The response body (or the
 * error body of a >= 400 answer) is moved into *resp. */
static int http_call(struct lfsfs_net *net, enum lfsfs_http_method m, const char *url,
		     struct curl_slist *hdrs, const char *body, int attempts, long *status,
		     struct lfsfs_buf *resp, char *err, size_t errcap)
{
	struct lfsfs_http_req req = { 0 };
	int rc;

	req.method = m;
	req.url = url;
	req.fd = -1;
	req.body.cap = 1 << 20;
	req.headers = hdrs;
	req.req_body = body;
	req.req_body_len = body ? strlen(body) : 0;
	req.max_attempts = attempts;
	rc = lfsfs_net_perform(net, &req);
	*status = req.status;
	snprintf(err, errcap, "%s", req.error[0] ? req.error : "request failed");
	if (req.status >= 400) {
		*resp = req.errbody;
		req.errbody.data = NULL;
	} else {
		*resp = req.body;
		req.body.data = NULL;
	}
	lfsfs_buf_release(&req.body);
	lfsfs_buf_release(&req.errbody);
	curl_slist_free_all(req.resp_headers);
	return rc;
}

/* Split http(s)://host[:port]/... ; host without brackets. */
static int url_hostport(const char *url, char *scheme, size_t scap, char *host, size_t hcap,
			char *port, size_t pcap)
{
	const char *p = strstr(url, "://"), *h, *e;

	if (!p)
		return -EINVAL;
	snprintf(scheme, scap, "%.*s", (int)(p - url), url);
	h = p + 3;
	if (*h == '[') {
		e = strchr(h, ']');
		if (!e)
			return -EINVAL;
		snprintf(host, hcap, "%.*s", (int)(e - h - 1), h + 1);
		e++;
	} else {
		e = h + strcspn(h, ":/?#");
		snprintf(host, hcap, "%.*s", (int)(e - h), h);
	}
	if (*e == ':') {
		size_t n = strspn(e + 1, "0123456789");
		snprintf(port, pcap, "%.*s", (int)n, e + 1);
	} else {
		snprintf(port, pcap, "%s", !strcasecmp(scheme, "https") ? "443" : "80");
	}
	return *host ? 0 : -EINVAL;
}

/* Can we open a TCP connection to url's host within ms?  0 or -errno. */
static int tcp_probe(const char *url, int ms)
{
	char scheme[16], host[256], port[16];
	struct addrinfo hints = { 0 }, *ai = NULL;
	struct timespec t0, t1;
	int rc = -EHOSTUNREACH;

	if (url_hostport(url, scheme, sizeof(scheme), host, sizeof(host), port, sizeof(port)))
		return -EINVAL;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &ai) || !ai)
		return -EHOSTUNREACH;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		long left;

		if (fd < 0)
			continue;
		if (!connect(fd, a->ai_addr, a->ai_addrlen)) {
			rc = 0;
		} else if (errno == EINPROGRESS) {
			struct pollfd pf = { fd, POLLOUT, 0 };
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			clock_gettime(CLOCK_MONOTONIC, &t1);
			left = ms - ((t1.tv_sec - t0.tv_sec) * 1000 +
				     (t1.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0)
				rc = -ETIMEDOUT;
			else if (poll(&pf, 1, (int)left) <= 0)
				rc = -ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr)
				rc = -(soerr ? soerr : errno);
			else
				rc = 0;
		} else {
			rc = -errno;
		}
		close(fd);
		if (!rc || rc == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(ai);
	return rc;
}

/* ------------------------------------------------------------ XML (STS) */

/* Find the first element whose local name is `name` in [s, end); returns
 * its content and sets *cend to the content's end.  Tolerant: namespace
 * prefixes, attributes and whitespace are accepted. */
static const char *xml_elem(const char *s, const char *end, const char *name, const char **cend)
{
	size_t nl = strlen(name);

	for (const char *p = s; p && p < end; p++) {
		const char *q, *qn, *gt, *close;
		size_t qlen;

		p = memchr(p, '<', (size_t)(end - p));
		if (!p)
			return NULL;
		q = p + 1;
		if (q >= end || *q == '/' || *q == '?' || *q == '!')
			continue;
		qn = q;
		while (q < end && !isspace((unsigned char)*q) && *q != '>' && *q != '/')
			q++;
		qlen = (size_t)(q - qn);
		{
			const char *colon = memchr(qn, ':', qlen);
			const char *local = colon ? colon + 1 : qn;
			if ((size_t)(q - local) != nl || memcmp(local, name, nl))
				continue;
		}
		gt = memchr(q, '>', (size_t)(end - q));
		if (!gt)
			return NULL;
		if (gt[-1] == '/') {            /* <Name/> */
			*cend = gt + 1;
			return gt + 1;
		}
		for (close = gt + 1; close < end; close++) {
			close = memchr(close, '<', (size_t)(end - close));
			if (!close)
				break;
			if (close + 2 + qlen < end && close[1] == '/' &&
			    !memcmp(close + 2, qn, qlen) &&
			    (close[2 + qlen] == '>' || isspace((unsigned char)close[2 + qlen]))) {
				*cend = close;
				return gt + 1;
			}
		}
		return NULL;
	}
	return NULL;
}

/* Copy an element's text, trimmed, with the XML entities decoded. */
static char *xml_text(const char *s, const char *e)
{
	char *out = malloc((size_t)(e - s) + 1), *o = out, *t;

	if (!out)
		return NULL;
	while (s < e) {
		if (*s == '&') {
			static const struct { const char *ent; char c; } ents[] = {
				{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
				{ "&quot;", '"' }, { "&apos;", '\'' },
			};
			size_t i, n = sizeof(ents) / sizeof(ents[0]);
			for (i = 0; i < n; i++) {
				size_t l = strlen(ents[i].ent);
				if ((size_t)(e - s) >= l && !memcmp(s, ents[i].ent, l)) {
					*o++ = ents[i].c;
					s += l;
					break;
				}
			}
			if (i < n)
				continue;
			if (s + 2 < e && s[1] == '#') {
				const char *semi = memchr(s, ';', (size_t)(e - s));
				if (semi) {
					long v = s[2] == 'x' || s[2] == 'X' ?
						 strtol(s + 3, NULL, 16) : strtol(s + 2, NULL, 10);
					if (v > 0 && v < 128) {
						*o++ = (char)v;
						s = semi + 1;
						continue;
					}
				}
			}
		}
		*o++ = *s++;
	}
	*o = '\0';
	t = trim(out);
	memmove(out, t, strlen(t) + 1);
	return out;
}

static char *xml_get(const char *s, const char *end, const char *name)
{
	const char *ce, *c = xml_elem(s, end, name, &ce);
	return c ? xml_text(c, ce) : NULL;
}

/* ------------------------------------------------------------ web identity */

static int form_add(struct lfsfs_buf *b, const char *name, const char *value)
{
	size_t cap = strlen(value) * 3 + 1;
	char *enc = malloc(cap);
	int rc;

	if (!enc)
		return -ENOMEM;
	rc = lfsfs_sigv4_uri_encode(value, 0, enc, cap);
	if (!rc)
		rc = lfsfs_buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, enc);
	OPENSSL_cleanse(enc, cap);
	free(enc);
	return rc;
}

static int web_identity(struct lfsfs_aws_chain *ch, const char *role_arn, const char *token_file,
			const char *session, const char *how, struct lfsfs_aws_cred *c)
{
	const char *ep = env("AWS_ENDPOINT_URL_STS");
	struct lfsfs_buf form = LFSFS_BUF_INIT(0), resp = LFSFS_BUF_INIT(0);
	struct curl_slist *h = NULL;
	char *token = NULL, sess[96], err[256], where[160];
	long status = 0;
	int rc;

	if (!ep)
		ep = env("AWS_ENDPOINT_URL");
	if (!ep)
		ep = STS_DEFAULT;
	snprintf(where, sizeof(where), "web identity (%s)", how);
	if ((rc = read_trimmed(token_file, &token)))
		return lfsfs_error_set(rc, "%s: cannot read token file '%s': %s; check %s", where,
				       token_file, strerror(-rc),
				       strcmp(how, "env") ? "web_identity_token_file"
							  : "AWS_WEB_IDENTITY_TOKEN_FILE");
	if (!*token) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "%s: token file '%s' is empty", where,
				     token_file);
		goto out;
	}
	if (session && *session)
		snprintf(sess, sizeof(sess), "%s", session);
	else
		snprintf(sess, sizeof(sess), "lfsfs-%lld", (long long)time(NULL));
	if ((rc = form_add(&form, "Action", "AssumeRoleWithWebIdentity")) ||
	    (rc = form_add(&form, "Version", "2011-06-15")) ||
	    (rc = form_add(&form, "RoleArn", role_arn)) ||
	    (rc = form_add(&form, "RoleSessionName", sess)) ||
	    (rc = form_add(&form, "WebIdentityToken", token)))
		goto out;
	h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded; charset=utf-8");
	h = curl_slist_append(h, "Accept: application/xml");
	rc = http_call(ch->net, LFSFS_HTTP_POST, ep, h, form.data, 3, &status, &resp, err,
		       sizeof(err));
	if (rc) {
		char *code = NULL, *msg = NULL;
		if (resp.data) {
			code = xml_get(resp.data, resp.data + resp.len, "Code");
			msg = xml_get(resp.data, resp.data + resp.len, "Message");
		}
		if (status >= 400)
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "%s: sts AssumeRoleWithWebIdentity for role '%s' at '%s' "
					     "failed: HTTP %ld %s%s%.200s; check the role's trust "
					     "policy and the token in '%s'",
					     where, role_arn, ep, status, code ? code : "",
					     msg ? ": " : "", msg ? msg : "", token_file);
		else
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "%s: cannot reach sts at '%s': %s; set "
					     "AWS_ENDPOINT_URL_STS if it lives elsewhere",
					     where, ep, err);
		free(code);
		free(msg);
		goto out;
	}
	{
		const char *s = resp.data ? resp.data : "", *e = s + resp.len, *ce;
		const char *cs = xml_elem(s, e, "Credentials", &ce);
		char *ak, *sk, *st, *ex;

		if (!cs) {
			rc = lfsfs_error_set(-LFSFS_EPARSE,
					     "%s: sts answer from '%s' has no Credentials element",
					     where, ep);
			goto out;
		}
		ak = xml_get(cs, ce, "AccessKeyId");
		sk = xml_get(cs, ce, "SecretAccessKey");
		st = xml_get(cs, ce, "SessionToken");
		ex = xml_get(cs, ce, "Expiration");
		rc = cred_fill(c, ak, sk, st, ex, "web identity", where);
		if (sk)
			OPENSSL_cleanse(sk, strlen(sk));
		if (st)
			OPENSSL_cleanse(st, strlen(st));
		free(ak);
		free(sk);
		free(st);
		free(ex);
	}
out:
	if (resp.data)
		OPENSSL_cleanse(resp.data, resp.len);
	lfsfs_buf_release(&resp);
	if (form.data)
		OPENSSL_cleanse(form.data, form.len);
	lfsfs_buf_release(&form);
	curl_slist_free_all(h);
	if (token)
		OPENSSL_cleanse(token, strlen(token));
	free(token);
	return rc;
}

/* ------------------------------------------------------- credential_process */

static int run_process(const char *cmd, int timeout_ms, struct lfsfs_buf *out,
		       struct lfsfs_buf *err, int *wstatus)
{
	int op[2] = { -1, -1 }, ep[2] = { -1, -1 }, rc = 0, timed_out = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	struct timespec t0, t1;
	pid_t pid;

	if (pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC)) {
		rc = -errno;
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, op[1], 1);
	posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setpgroup(&at, 0);       /* own group: a timeout kills it all */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
				      POSIX_SPAWN_SETPGROUP);
	rc = -posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(op[1]);
	close(ep[1]);
	op[1] = ep[1] = -1;
	if (rc)
		goto out;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int open_fds = 2; open_fds > 0;) {
		struct pollfd pf[2] = { { op[0], POLLIN, 0 }, { ep[0], POLLIN, 0 } };
		long left;
		char buf[4096];

		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = timeout_ms - ((t1.tv_sec - t0.tv_sec) * 1000 +
				     (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (poll(pf, 2, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			timed_out = 1;
			break;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(i ? ep[0] : op[0]);
				if (i)
					ep[0] = -1;
				else
					op[0] = -1;
				open_fds--;
				continue;
			}
			/* over the cap: keep draining, drop the rest */
			if (i == 0 && lfsfs_buf_append(out, buf, (size_t)n) == -E2BIG)
				rc = -E2BIG;
			else if (i == 1 && err->len < 4096)
				lfsfs_buf_append(err, buf, (size_t)n < 4096 - err->len ?
							   (size_t)n : 4096 - err->len);
		}
	}
	/* stdout and stderr closed: give it the rest of the time to exit */
	for (;;) {
		struct timespec nap = { 0, 5 * 1000 * 1000 };
		pid_t w = waitpid(pid, wstatus, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {            /* SIGCHLD ignored by the host process */
			*wstatus = 0;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (timed_out || (t1.tv_sec - t0.tv_sec) * 1000 +
				 (t1.tv_nsec - t0.tv_nsec) / 1000000 >= timeout_ms) {
			timed_out = 1;
			kill(-pid, SIGKILL);    /* the shell and whatever it started */
			while (waitpid(pid, wstatus, 0) < 0 && errno == EINTR)
				;
			break;
		}
		nanosleep(&nap, NULL);
	}
	if (timed_out)
		rc = -ETIMEDOUT;
out:
	for (int i = 0; i < 2; i++) {
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	return rc;
}

static int credential_process(const char *cmd, const char *profile, struct lfsfs_aws_cred *c)
{
	struct lfsfs_buf out = LFSFS_BUF_INIT(1 << 20), err = LFSFS_BUF_INIT(0);
	char where[192];
	cJSON *j = NULL;
	int ws = 0, rc;

	snprintf(where, sizeof(where), "credential_process of profile '%s'", profile);
	rc = run_process(cmd, PROCESS_TIMEOUT_MS, &out, &err, &ws);
	if (rc == -ETIMEDOUT) {
		rc = lfsfs_error_set(-ETIMEDOUT, "%s: no answer within %d s; check the command",
				     where, PROCESS_TIMEOUT_MS / 1000);
		goto out;
	}
	if (rc) {
		rc = lfsfs_error_set(rc, "%s: cannot run it: %s", where, strerror(-rc));
		goto out;
	}
	if (!WIFEXITED(ws) || WEXITSTATUS(ws)) {
		const char *e = err.data ? trim(err.data) : "";
		size_t l = strcspn(e, "\n");
		rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE, "%s: %s %d%s%.*s", where,
				     WIFEXITED(ws) ? "exited with status" : "killed by signal",
				     WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws),
				     *e ? ": " : "", (int)(l < 200 ? l : 200), e);
		goto out;
	}
	j = cJSON_ParseWithLength(out.data ? out.data : "", out.len);
	if (!cJSON_IsObject(j)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "%s: output is not a JSON object", where);
		goto out;
	}
	{
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "Version");
		if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
			rc = lfsfs_error_set(-LFSFS_EPARSE, "%s: output lacks \"Version\": 1",
					     where);
			goto out;
		}
	}
	rc = cred_fill(c, jstr(j, "AccessKeyId"), jstr(j, "SecretAccessKey"),
		       jstr(j, "SessionToken"), jstr(j, "Expiration"), "credential_process", where);
out:
	cJSON_Delete(j);
	if (out.data)
		OPENSSL_cleanse(out.data, out.len);
	lfsfs_buf_release(&out);
	lfsfs_buf_release(&err);
	return rc;
}

/* ----------------------------------------------------------- shared files */

struct profile {
	int found;                  /* the section exists in some file */
	char access_key[128], secret_key[128], session_token[2048];
	char region[64];
	char credential_process[2048];
	char role_arn[512], web_identity_token_file[1024], role_session_name[128];
	int source_profile, sso;    /* present (not supported here) */
};

static void profile_clear(struct profile *p)
{
	OPENSSL_cleanse(p, sizeof(*p));
}

static int profile_set(struct profile *p, const char *k, const char *v, const char *path)
{
	static const struct { const char *key; size_t off, cap; } keys[] = {
#define K(name, field) { name, offsetof(struct profile, field), \
			 sizeof(((struct profile *)0)->field) }
		K("aws_access_key_id", access_key),
		K("aws_secret_access_key", secret_key),
		K("aws_session_token", session_token),
		K("aws_security_token", session_token),
		K("region", region),
		K("credential_process", credential_process),
		K("role_arn", role_arn),
		K("web_identity_token_file", web_identity_token_file),
		K("role_session_name", role_session_name),
#undef K
	};
	char where[1100];

	if (!strcmp(k, "source_profile") || !strcmp(k, "credential_source")) {
		p->source_profile = 1;
		return 0;
	}
	if (!strncmp(k, "sso_", 4)) {
		p->sso = 1;
		return 0;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(k, keys[i].key)) {
			snprintf(where, sizeof(where), "'%s'", path);
			return set_field((char *)p + keys[i].off, keys[i].cap, v, k, where);
		}
	return 0;
}

/* Does a section header (inside the brackets, trimmed) name `profile`? */
static int section_matches(char *sec, const char *profile, int is_config)
{
	if (!is_config)
		return !strcmp(sec, profile);
	if (!strcmp(sec, "default"))
		return !strcmp(profile, "default");
	if (!strncmp(sec, "profile", 7) && isspace((unsigned char)sec[7]))
		return !strcmp(trim(sec + 8), profile);
	return 0;
}

/* Merge the keys of `profile` in the INI file at path into *p.  Returns 0,
 * -ENOENT when the file does not exist, or another negative code. */
static int ini_read(const char *path, const char *profile, int is_config, struct profile *p)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(4 << 20);
	int rc = lfsfs_buf_read_file(&b, path), in = 0, nested = 0;
	char *line, *next;

	if (rc) {
		lfsfs_buf_release(&b);
		if (rc == -ENOENT || rc == -ENOTDIR)
			return -ENOENT;
		return lfsfs_error_set(rc, "cannot read '%s': %s", path, strerror(-rc));
	}
	for (line = b.data; line && !rc; line = next) {
		char *eq, *k, *v;
		int indented = *line == ' ' || *line == '\t';

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		line[strcspn(line, "\r")] = '\0';
		k = trim(line);
		if (!*k || *k == '#' || *k == ';')
			continue;
		if (*k == '[') {
			char *e = strrchr(k, ']');
			if (!e)
				continue;
			*e = '\0';
			in = section_matches(trim(k + 1), profile, is_config);
			p->found |= in;
			nested = 0;
			continue;
		}
		if (!in)
			continue;
		if (indented && nested)
			continue;       /* "s3 =\n  max_concurrent_requests = 4" */
		eq = strchr(k, '=');
		if (!eq)
			continue;
		*eq = '\0';
		v = trim(eq + 1);
		k = trim(k);
		for (char *c = k; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		nested = !*v;
		if (strcmp(k, "credential_process")) {
			/* an inline comment needs whitespace before it: secrets never
			 * hold spaces, and '#'/';' may be part of a value */
			for (char *c = v; *c; c++)
				if ((*c == '#' || *c == ';') && c > v && isspace((unsigned char)c[-1])) {
					*c = '\0';
					v = trim(v);
					break;
				}
		}
		rc = profile_set(p, k, v, path);
	}
	if (b.data)
		OPENSSL_cleanse(b.data, b.len);
	lfsfs_buf_release(&b);
	return rc;
}

static const char *profile_name(const char *configured, int *explicit_)
{
	const char *e = env("AWS_PROFILE");

	*explicit_ = 1;
	if (configured && *configured)
		return configured;
	if (e)
		return e;
	*explicit_ = 0;
	return "default";
}

/* Load a profile from both files (credentials file wins).  Sets *nfiles to
 * how many files exist. */
static int profile_load(const char *name, struct profile *p, char *cred_path, size_t cpcap,
			char *conf_path, size_t cfcap, int *nfiles)
{
	int rc;

	memset(p, 0, sizeof(*p));
	*nfiles = 0;
	aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", cred_path, cpcap);
	aws_file("AWS_CONFIG_FILE", "config", conf_path, cfcap);
	rc = ini_read(conf_path, name, 1, p);
	if (rc && rc != -ENOENT)
		return rc;
	*nfiles += !rc;
	rc = ini_read(cred_path, name, 0, p);
	if (rc && rc != -ENOENT)
		return rc;
	*nfiles += !rc;
	return 0;
}

static int from_profile(struct lfsfs_aws_chain *ch, struct lfsfs_aws_cred *c,
			struct lfsfs_buf *tried)
{
	int explicit_, nfiles, rc;
	const char *name = profile_name(ch->profile, &explicit_);
	const char *how = ch->profile[0] ? "the configured profile" : "AWS_PROFILE";
	char credp[1024], confp[1024], where[192];
	struct profile *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	snprintf(where, sizeof(where), "profile '%s'", name);
	rc = profile_load(name, p, credp, sizeof(credp), confp, sizeof(confp), &nfiles);
	if (rc)
		goto out;
	if (!p->found) {
		if (explicit_) {
			rc = lfsfs_error_set(-LFSFS_ECREDENTIALS_MISSING,
					     "profile '%s' not found in '%s' or '%s'; add it or "
					     "check %s",
					     name, credp, confp, how);
			tried_add(tried, "%s: not found", where);
			goto out;
		}
		if (!nfiles)
			tried_add(tried, "%s: no '%s' or '%s'", where, credp, confp);
		else
			tried_add(tried, "%s: no such section in '%s' or '%s'", where, credp,
				  confp);
		rc = NOT_FOUND;
		goto out;
	}
	if (p->access_key[0] || p->secret_key[0]) {
		if (!p->access_key[0] || !p->secret_key[0]) {
			tried_add(tried, "%s: only one of aws_access_key_id and "
					 "aws_secret_access_key", where);
			rc = lfsfs_error_set(-LFSFS_ECREDENTIALS_MISSING,
					     "%s has %s but not %s; set both in '%s'", where,
					     p->access_key[0] ? "aws_access_key_id"
							      : "aws_secret_access_key",
					     p->access_key[0] ? "aws_secret_access_key"
							      : "aws_access_key_id",
					     credp);
			goto out;
		}
		rc = cred_fill(c, p->access_key, p->secret_key, p->session_token, NULL, "", where);
		if (!rc)
			snprintf(c->source, sizeof(c->source), "profile '%s'", name);
		goto out;
	}
	if (p->credential_process[0]) {
		rc = credential_process(p->credential_process, name, c);
		goto out;
	}
	if (p->role_arn[0] && p->web_identity_token_file[0]) {
		char tf[1024], home[1024];
		if (p->web_identity_token_file[0] == '~' && p->web_identity_token_file[1] == '/') {
			home_dir(home, sizeof(home));
			snprintf(tf, sizeof(tf), "%s%s", home, p->web_identity_token_file + 1);
		} else {
			snprintf(tf, sizeof(tf), "%s", p->web_identity_token_file);
		}
		rc = web_identity(ch, p->role_arn, tf, p->role_session_name, where, c);
		goto out;
	}
	if (p->role_arn[0] && p->source_profile) {
		rc = lfsfs_error_set(-LFSFS_EUNSUPPORTED,
				     "%s assumes a role with source_profile/credential_source, "
				     "which lfsfs does not do; set credential_process = aws "
				     "configure export-credentials --profile %s --format process",
				     where, name);
		goto out;
	}
	if (p->sso) {
		rc = lfsfs_error_set(-LFSFS_EUNSUPPORTED,
				     "%s uses IAM Identity Center (sso_*), which lfsfs does not "
				     "read; set credential_process = aws configure "
				     "export-credentials --profile %s --format process",
				     where, name);
		goto out;
	}
	tried_add(tried, "%s: no credentials in '%s' or '%s'", where, credp, confp);
	rc = NOT_FOUND;
out:
	profile_clear(p);
	free(p);
	return rc;
}

/* -------------------------------------------------------------- sources */

static int from_env(struct lfsfs_aws_cred *c, struct lfsfs_buf *tried)
{
	const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
	const char *tok = env("AWS_SESSION_TOKEN");

	if (!ak) {
		tried_add(tried, "env: AWS_ACCESS_KEY_ID unset");
		return NOT_FOUND;
	}
	if (!sk) {
		tried_add(tried, "env: AWS_ACCESS_KEY_ID set but AWS_SECRET_ACCESS_KEY unset");
		return lfsfs_error_set(-LFSFS_ECREDENTIALS_MISSING,
				       "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; "
				       "set both, or unset AWS_ACCESS_KEY_ID to use another source");
	}
	if (!tok)
		tok = env("AWS_SECURITY_TOKEN");
	return cred_fill(c, ak, sk, tok, env("AWS_CREDENTIAL_EXPIRATION"), "env", "environment");
}

static int from_web_identity_env(struct lfsfs_aws_chain *ch, struct lfsfs_aws_cred *c,
				 struct lfsfs_buf *tried)
{
	const char *tf = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *arn = env("AWS_ROLE_ARN");

	if (!tf || !arn) {
		tried_add(tried, "web identity: %s unset",
			  !tf && !arn ? "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN"
				      : !tf ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN");
		return NOT_FOUND;
	}
	return web_identity(ch, arn, tf, env("AWS_ROLE_SESSION_NAME"), "env", c);
}

static int ecs_host_allowed(const char *url)
{
	char scheme[16], host[256], port[16];

	if (url_hostport(url, scheme, sizeof(scheme), host, sizeof(host), port, sizeof(port)))
		return 0;
	if (!strcasecmp(scheme, "https"))
		return 1;
	if (strcasecmp(scheme, "http"))
		return 0;
	return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
	       !strcmp(host, "169.254.170.2") || !strcmp(host, "169.254.170.23") ||
	       !strcasecmp(host, "fd00:ec2::23");
}

static int from_ecs(struct lfsfs_aws_chain *ch, struct lfsfs_aws_cred *c,
		    struct lfsfs_buf *tried)
{
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *tokf = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	struct lfsfs_buf resp = LFSFS_BUF_INIT(0);
	struct curl_slist *h = NULL;
	char url[2048], err[256], *auth = NULL;
	long status = 0;
	int rc;

	if (!rel && !full) {
		tried_add(tried, "ecs: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
				 "AWS_CONTAINER_CREDENTIALS_FULL_URI unset");
		return NOT_FOUND;
	}
	if (rel) {
		const char *host = env("LFSFS_ECS_ENDPOINT");
		snprintf(url, sizeof(url), "%s%s%s", host ? host : ECS_HOST, *rel == '/' ? "" : "/",
			 rel);
	} else {
		snprintf(url, sizeof(url), "%s", full);
		if (!ecs_host_allowed(url))
			return lfsfs_error_set(-EINVAL,
					       "ecs: AWS_CONTAINER_CREDENTIALS_FULL_URI '%s' is "
					       "neither https nor a loopback or container address",
					       url);
	}
	if (tokf) {
		if ((rc = read_trimmed(tokf, &auth)))
			return lfsfs_error_set(rc, "ecs: cannot read '%s': %s; check "
						   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
					       tokf, strerror(-rc));
	} else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
		auth = strdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
		if (!auth)
			return -ENOMEM;
	}
	if (auth) {
		struct lfsfs_buf hb = LFSFS_BUF_INIT(0);
		if (strpbrk(auth, "\r\n")) {
			rc = lfsfs_error_set(-EINVAL, "ecs: the authorization token has a line "
						      "break; check AWS_CONTAINER_AUTHORIZATION_TOKEN");
			goto out;
		}
		lfsfs_buf_printf(&hb, "Authorization: %s", auth);
		h = curl_slist_append(h, hb.data ? hb.data : "");
		if (hb.data)
			OPENSSL_cleanse(hb.data, hb.len);
		lfsfs_buf_release(&hb);
	}
	h = curl_slist_append(h, "Accept: application/json");
	rc = http_call(ch->net, LFSFS_HTTP_GET, url, h, NULL, 3, &status, &resp, err, sizeof(err));
	if (rc) {
		if (status >= 400)
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "ecs: container credentials from '%s' failed: HTTP %ld%s",
					     url, status,
					     status == 401 || status == 403 ?
					     "; check AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)" : "");
		else
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "ecs: container credentials from '%s' failed: %s", url,
					     err);
		goto out;
	}
	rc = cred_from_json(resp.data, resp.len, "Token", c, "ecs", "ecs");
out:
	if (resp.data)
		OPENSSL_cleanse(resp.data, resp.len);
	lfsfs_buf_release(&resp);
	curl_slist_free_all(h);
	if (auth) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	return rc;
}

static int from_imds(struct lfsfs_aws_chain *ch, struct lfsfs_aws_cred *c,
		     struct lfsfs_buf *tried)
{
	const char *dis = env("AWS_EC2_METADATA_DISABLED");
	const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	struct lfsfs_buf resp = LFSFS_BUF_INIT(0);
	struct curl_slist *h = NULL;
	char base[1024], url[1400], err[256], token[256] = "", hdr[320], role[256];
	long status = 0;
	int rc;

	if (dis && !strcasecmp(dis, "true")) {
		tried_add(tried, "imds: disabled by AWS_EC2_METADATA_DISABLED");
		return NOT_FOUND;
	}
	if (!ep)
		ep = mode && !strcasecmp(mode, "IPv6") ? IMDS_DEFAULT_V6 : IMDS_DEFAULT;
	snprintf(base, sizeof(base), "%s", ep);
	for (size_t n = strlen(base); n && base[n - 1] == '/'; n--)
		base[n - 1] = '\0';
	/* a laptop has no IMDS: find out in a second, not in curl's 20, and
	 * remember it for a minute */
	pthread_mutex_lock(&imds_absent_lock);
	rc = !strcmp(imds_absent_url, base) && time(NULL) - imds_absent_at < IMDS_ABSENT_TTL ?
	     imds_absent_err : 0;
	pthread_mutex_unlock(&imds_absent_lock);
	if (!rc && (rc = tcp_probe(base, IMDS_PROBE_MS))) {
		pthread_mutex_lock(&imds_absent_lock);
		snprintf(imds_absent_url, sizeof(imds_absent_url), "%s", base);
		imds_absent_at = time(NULL);
		imds_absent_err = rc;
		pthread_mutex_unlock(&imds_absent_lock);
	}
	if (rc) {
		tried_add(tried, "imds: no instance metadata service at '%s' (%s)", base,
			  strerror(-rc));
		return NOT_FOUND;
	}

	snprintf(url, sizeof(url), "%s/latest/api/token", base);
	h = curl_slist_append(h, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
	rc = http_call(ch->net, LFSFS_HTTP_PUT, url, h, "", 1, &status, &resp, err, sizeof(err));
	curl_slist_free_all(h);
	h = NULL;
	if (!rc && status == 200 && resp.data) {
		snprintf(token, sizeof(token), "%s", trim(resp.data));
	} else if (!(status == 403 || status == 404 || status == 405)) {
		/* 403/404/405: an IMDSv1-only service; anything else: none */
		if (status)
			tried_add(tried, "imds: token request to '%s' failed (HTTP %ld)", url,
				  status);
		else
			tried_add(tried, "imds: token request to '%s' failed (%s)", url, err);
		rc = NOT_FOUND;
		goto out;
	}
	lfsfs_buf_release(&resp);
	if (token[0]) {
		snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", token);
		h = curl_slist_append(h, hdr);
	}

	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", base);
	rc = http_call(ch->net, LFSFS_HTTP_GET, url, h, NULL, 2, &status, &resp, err, sizeof(err));
	if (status == 404) {
		tried_add(tried, "imds: no IAM role attached to the instance");
		rc = NOT_FOUND;
		goto out;
	}
	if (rc) {
		if (status)
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "imds: cannot list the instance role at '%s': HTTP %ld",
					     url, status);
		else
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "imds: cannot list the instance role at '%s': %s", url,
					     err);
		goto out;
	}
	{
		char *r = trim(resp.data ? resp.data : (char *)"");
		r[strcspn(r, "\r\n")] = '\0';
		if (!*r || strpbrk(r, "/ \t?#%") || strlen(r) >= sizeof(role)) {
			rc = lfsfs_error_set(-LFSFS_EPARSE, "imds: unusable role name from '%s'",
					     url);
			goto out;
		}
		snprintf(role, sizeof(role), "%s", r);
	}
	lfsfs_buf_release(&resp);
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", base, role);
	rc = http_call(ch->net, LFSFS_HTTP_GET, url, h, NULL, 2, &status, &resp, err, sizeof(err));
	if (rc) {
		if (status)
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "imds: credentials of role '%s' failed: HTTP %ld", role,
					     status);
		else
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "imds: credentials of role '%s' failed: %s", role, err);
		goto out;
	}
	{
		cJSON *j = cJSON_ParseWithLength(resp.data ? resp.data : "", resp.len);
		const char *code = jstr(j, "Code");
		if (code && strcmp(code, "Success")) {
			rc = lfsfs_error_set(-LFSFS_ESOURCE_NOT_ACCESSIBLE,
					     "imds: credentials of role '%s' not ready: %.64s", role,
					     code);
			cJSON_Delete(j);
			goto out;
		}
		cJSON_Delete(j);
	}
	rc = cred_from_json(resp.data, resp.len, "Token", c, "imds", "imds");
out:
	if (resp.data)
		OPENSSL_cleanse(resp.data, resp.len);
	lfsfs_buf_release(&resp);
	curl_slist_free_all(h);
	OPENSSL_cleanse(token, sizeof(token));
	OPENSSL_cleanse(hdr, sizeof(hdr));
	return rc;
}

static int resolve(struct lfsfs_aws_chain *ch, struct lfsfs_aws_cred *c, struct lfsfs_buf *t)
{
	int rc;

	if ((rc = from_env(c, t)) != NOT_FOUND)
		return rc;
	if ((rc = from_profile(ch, c, t)) != NOT_FOUND)
		return rc;
	if (!ch->net) {
		tried_add(t, "web identity, ecs, imds: no network engine");
		return NOT_FOUND;
	}
	if ((rc = from_web_identity_env(ch, c, t)) != NOT_FOUND)
		return rc;
	if ((rc = from_ecs(ch, c, t)) != NOT_FOUND)
		return rc;
	return from_imds(ch, c, t);
}

/* ------------------------------------------------------------------ API */

void lfsfs_aws_chain_init(struct lfsfs_aws_chain *ch, struct lfsfs_net *net, const char *profile)
{
	memset(ch, 0, sizeof(*ch));
	ch->net = net;
	snprintf(ch->profile, sizeof(ch->profile), "%s", profile ? profile : "");
	pthread_mutex_init(&ch->lock, NULL);
}

void lfsfs_aws_chain_release(struct lfsfs_aws_chain *ch)
{
	pthread_mutex_destroy(&ch->lock);
	cred_clear(&ch->cached);
	ch->have_cached = 0;
}

static int usable(const struct lfsfs_aws_cred *c, time_t now, time_t margin)
{
	return !c->expires || c->expires - margin > now;
}

int lfsfs_aws_chain_get(struct lfsfs_aws_chain *ch, struct lfsfs_aws_cred *out,
			struct lfsfs_buf *tried)
{
	struct lfsfs_buf t = LFSFS_BUF_INIT(16384);
	struct lfsfs_aws_cred c;
	time_t now = time(NULL);
	int rc;

	if (tried)
		lfsfs_buf_reset(tried);
	pthread_mutex_lock(&ch->lock);
	if (ch->have_cached && usable(&ch->cached, now, REFRESH_MARGIN)) {
		*out = ch->cached;
		pthread_mutex_unlock(&ch->lock);
		return 0;
	}
	/* Resolve under the lock: concurrent readers wait for one refresh
	 * instead of each asking STS/IMDS. */
	memset(&c, 0, sizeof(c));
	rc = resolve(ch, &c, &t);
	if (rc == NOT_FOUND)
		rc = lfsfs_error_set(-LFSFS_ECREDENTIALS_MISSING,
				     "no aws credentials found (%s); set AWS_ACCESS_KEY_ID and "
				     "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials",
				     t.data ? t.data : "");
	if (!rc) {
		ch->cached = c;
		ch->have_cached = 1;
		*out = c;
	} else if (ch->have_cached && usable(&ch->cached, now, 0)) {
		/* the refresh failed, but the old credential still works */
		*out = ch->cached;
		rc = 0;
	}
	pthread_mutex_unlock(&ch->lock);
	cred_clear(&c);
	if (tried && t.data)
		lfsfs_buf_append(tried, t.data, t.len);
	lfsfs_buf_release(&t);
	return rc;
}

void lfsfs_aws_chain_invalidate(struct lfsfs_aws_chain *ch)
{
	pthread_mutex_lock(&ch->lock);
	cred_clear(&ch->cached);
	ch->have_cached = 0;
	pthread_mutex_unlock(&ch->lock);
}

void lfsfs_aws_region(const char *profile, char *out, size_t cap)
{
	const char *r = env("AWS_REGION");
	char confp[1024];
	struct profile *p;
	int explicit_;

	if (!cap)
		return;
	out[0] = '\0';
	if (!r)
		r = env("AWS_DEFAULT_REGION");
	if (r) {
		snprintf(out, cap, "%s", r);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	aws_file("AWS_CONFIG_FILE", "config", confp, sizeof(confp));
	if (!ini_read(confp, profile_name(profile, &explicit_), 1, p))
		snprintf(out, cap, "%s", p->region);
	profile_clear(p);
	free(p);
}
