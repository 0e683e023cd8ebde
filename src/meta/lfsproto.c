/* Git LFS custom transfer protocol: request parsing and one-line replies. */
#include "meta/lfsproto.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfsfs/error.h"

/* Largest integer a JSON number (a double) carries exactly: 2^53. */
#define JSON_EXACT_MAX 9007199254740992.0

void lfsproto_msg_release(struct lfsproto_msg *m)
{
	free(m->remote);
	free(m->path);
	free(m->href);
	for (size_t i = 0; i < m->n_headers; i++)
		free(m->headers[i]);
	free(m->headers);
	memset(m, 0, sizeof(*m));
}

const char *lfsproto_event_name(enum lfsproto_event e)
{
	switch (e) {
	case LFSPROTO_INIT:
		return "init";
	case LFSPROTO_DOWNLOAD:
		return "download";
	case LFSPROTO_UPLOAD:
		return "upload";
	case LFSPROTO_TERMINATE:
		return "terminate";
	}
	return "unknown";
}

/* A non-negative integer that a double holds exactly. */
static int get_u64(const cJSON *o, const char *name, int required, uint64_t *out,
		   const char *event)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	double d;

	*out = 0;
	if (!v || cJSON_IsNull(v)) {
		if (!required)
			return 0;
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s' request without \"%s\"", event, name);
	}
	if (!cJSON_IsNumber(v))
		return lfsfs_error_set(-LFSFS_EPARSE, "\"%s\" of the '%s' request is not a number",
				       name, event);
	d = v->valuedouble;
	if (!(d >= 0) || d > JSON_EXACT_MAX || floor(d) != d)
		return lfsfs_error_set(-LFSFS_EPARSE, "\"%s\" of the '%s' request is not a "
				       "non-negative integer", name, event);
	*out = (uint64_t)d;
	return 0;
}

/* An optional string member, copied; -LFSFS_EPARSE if present and not a string. */
static int get_str(const cJSON *o, const char *name, char **out, const char *event)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring)
		return lfsfs_error_set(-LFSFS_EPARSE, "\"%s\" of the '%s' request is not a string",
				       name, event);
	if (!(*out = strdup(v->valuestring)))
		return -ENOMEM;
	return 0;
}

/* RFC 9110 token characters, for header names. */
static int is_tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* action: null, absent, or {"href": string, "header": {name: string}}. */
static int parse_action(const cJSON *o, struct lfsproto_msg *m, const char *event)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "action");
	const cJSON *h, *it;
	size_t n = 0;
	int rc;

	if (!a || cJSON_IsNull(a))
		return 0;
	if (!cJSON_IsObject(a))
		return lfsfs_error_set(-LFSFS_EPARSE, "\"action\" of the '%s' request is "
				       "neither an object nor null", event);
	if ((rc = get_str(a, "href", &m->href, event)))
		return rc;
	if (!m->href || !*m->href)
		return lfsfs_error_set(-LFSFS_EPARSE, "\"action\" of the '%s' request has no "
				       "\"href\"", event);
	h = cJSON_GetObjectItemCaseSensitive(a, "header");
	if (!h || cJSON_IsNull(h))
		return 0;
	if (!cJSON_IsObject(h))
		return lfsfs_error_set(-LFSFS_EPARSE, "\"action.header\" of the '%s' request "
				       "is not an object", event);
	cJSON_ArrayForEach(it, h)
		n++;
	if (!n)
		return 0;
	if (!(m->headers = calloc(n, sizeof(*m->headers))))
		return -ENOMEM;
	cJSON_ArrayForEach(it, h) {
		const char *name = it->string ? it->string : "";
		size_t len;

		if (!*name)
			return lfsfs_error_set(-LFSFS_EPARSE,
					       "empty header name in \"action.header\"");
		for (const char *p = name; *p; p++)
			if (!is_tchar((unsigned char)*p))
				return lfsfs_error_set(-LFSFS_EPARSE, "header name '%s' in "
						       "\"action.header\" has a forbidden "
						       "character", name);
		if (!cJSON_IsString(it) || !it->valuestring)
			return lfsfs_error_set(-LFSFS_EPARSE, "header '%s' in \"action.header\" is "
					       "not a string", name);
		/* a CR or LF would let the value smuggle in another header */
		if (strpbrk(it->valuestring, "\r\n"))
			return lfsfs_error_set(-LFSFS_EPARSE, "header '%s' in \"action.header\" "
					       "contains a line break", name);
		len = strlen(name) + strlen(it->valuestring) + 3;
		if (!(m->headers[m->n_headers] = malloc(len)))
			return -ENOMEM;
		snprintf(m->headers[m->n_headers], len, "%s: %s", name, it->valuestring);
		m->n_headers++;
	}
	return 0;
}

static int parse_transfer(const cJSON *o, struct lfsproto_msg *m)
{
	const char *event = lfsproto_event_name(m->event);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "oid");
	int rc;

	if (!v || !cJSON_IsString(v) || !v->valuestring)
		return lfsfs_error_set(-LFSFS_EPARSE, "'%s' request without a string \"oid\"",
				       event);
	/* the oid names files (temp files, cache data files): only the exact
	 * form git-lfs uses is accepted */
	if (!lfsfs_oid_valid(v->valuestring))
		return lfsfs_error_set(-LFSFS_EPARSE, "\"oid\" of the '%s' request is not 64 "
				       "lowercase hex digits", event);
	memcpy(m->oid, v->valuestring, LFSFS_OID_HEX_LEN + 1);
	if ((rc = get_u64(o, "size", 1, &m->size, event)))
		return rc;
	if (m->event == LFSPROTO_UPLOAD && (rc = get_str(o, "path", &m->path, event)))
		return rc;
	return parse_action(o, m, event);
}

static int parse_init(const cJSON *o, struct lfsproto_msg *m)
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "operation");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "concurrent");
	uint64_t n;
	int rc;

	if (!op || !cJSON_IsString(op) || !op->valuestring)
		return lfsfs_error_set(-LFSFS_EPARSE, "'init' request without a string "
				       "\"operation\"");
	if (!strcmp(op->valuestring, "download"))
		m->operation = LFSPROTO_OP_DOWNLOAD;
	else if (!strcmp(op->valuestring, "upload"))
		m->operation = LFSPROTO_OP_UPLOAD;
	else
		return lfsfs_error_set(-LFSFS_EPARSE, "unknown operation '%s' in 'init' (expected "
				       "download or upload)", op->valuestring);
	if ((rc = get_str(o, "remote", &m->remote, "init")))
		return rc;
	m->concurrent = -1;
	if (c && !cJSON_IsNull(c)) {
		if (!cJSON_IsBool(c))
			return lfsfs_error_set(-LFSFS_EPARSE, "\"concurrent\" of the 'init' "
					       "request is not a boolean");
		m->concurrent = cJSON_IsTrue(c);
	}
	if ((rc = get_u64(o, "concurrenttransfers", 0, &n, "init")))
		return rc;
	m->concurrenttransfers = n > 65536 ? 65536 : (int)n;
	return 0;
}

int lfsproto_parse(const char *line, size_t len, struct lfsproto_msg *out)
{
	const cJSON *ev;
	cJSON *o;
	int rc;

	memset(out, 0, sizeof(*out));
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len > LFSPROTO_MAX_LINE)
		return lfsfs_error_set(-LFSFS_EPARSE, "request line of %zu bytes is too long "
				       "(limit %zu)", len, LFSPROTO_MAX_LINE);
	if (memchr(line, '\0', len))
		return lfsfs_error_set(-LFSFS_EPARSE, "request line contains a NUL byte");
	o = cJSON_ParseWithLength(line, len);
	if (!o)
		return lfsfs_error_set(-LFSFS_EPARSE, "request is not valid JSON");
	if (!cJSON_IsObject(o)) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "request is not a JSON object");
		goto out;
	}
	ev = cJSON_GetObjectItemCaseSensitive(o, "event");
	if (!ev || !cJSON_IsString(ev) || !ev->valuestring) {
		rc = lfsfs_error_set(-LFSFS_EPARSE, "request without a string \"event\"");
		goto out;
	}
	if (!strcmp(ev->valuestring, "init")) {
		out->event = LFSPROTO_INIT;
		rc = parse_init(o, out);
	} else if (!strcmp(ev->valuestring, "download")) {
		out->event = LFSPROTO_DOWNLOAD;
		rc = parse_transfer(o, out);
	} else if (!strcmp(ev->valuestring, "upload")) {
		out->event = LFSPROTO_UPLOAD;
		rc = parse_transfer(o, out);
	} else if (!strcmp(ev->valuestring, "terminate")) {
		out->event = LFSPROTO_TERMINATE;
		rc = 0;
	} else {
		char ev_name[64];
		/* quote at most a little of what we were sent */
		snprintf(ev_name, sizeof(ev_name), "%s", ev->valuestring);
		rc = lfsfs_error_set(-LFSFS_EUNSUPPORTED, "unknown event '%s' (expected init, "
				     "download, upload or terminate)", ev_name);
	}
out:
	cJSON_Delete(o);
	return rc;
}

int lfsproto_error_code(int rc)
{
	switch (rc < 0 ? -rc : rc) {
	case LFSFS_ESIZE_MISMATCH:
	case LFSFS_ECHECKSUM_MISMATCH:
	case LFSFS_EIMMUTABILITY:
	case LFSFS_EUNSTABLE_SOURCE:
		return 3;
	case LFSFS_ESOURCE_NOT_ACCESSIBLE:
	case LFSFS_ECREDENTIALS_MISSING:
		return 4;
	case LFSFS_EPARSE:
	case LFSFS_EUNSUPPORTED:
		return 2;
	default:
		return 1;
	}
}

/* ---- replies ---- */

/* Print o on one line into out (plus "\n") and free it. */
static int emit(struct lfsfs_buf *out, cJSON *o)
{
	char *txt;
	int rc;

	if (!o)
		return -ENOMEM;
	txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!txt)
		return -ENOMEM;
	rc = lfsfs_buf_appends(out, txt);
	if (!rc)
		rc = lfsfs_buf_append(out, "\n", 1);
	cJSON_free(txt);
	return rc;
}

/* Integers as plain digits (cJSON would print large doubles with an
 * exponent, which Go's int64 decoding refuses). */
static int add_u64(cJSON *o, const char *name, uint64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	return cJSON_AddRawToObject(o, name, num) ? 0 : -ENOMEM;
}

static int add_error(cJSON *o, int code, const char *msg)
{
	cJSON *e = cJSON_AddObjectToObject(o, "error");

	if (!e || add_u64(e, "code", code < 0 ? 1u : (uint64_t)code) ||
	    !cJSON_AddStringToObject(e, "message", msg ? msg : ""))
		return -ENOMEM;
	return 0;
}

int lfsproto_reply_init_ok(struct lfsfs_buf *out)
{
	return lfsfs_buf_appends(out, "{}\n");
}

int lfsproto_reply_error(struct lfsfs_buf *out, int code, const char *msg)
{
	cJSON *o = cJSON_CreateObject();

	if (o && add_error(o, code, msg)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	return emit(out, o);
}

/* {"event": event, "oid": oid} */
static cJSON *event_obj(const char *event, const char *oid)
{
	cJSON *o = cJSON_CreateObject();

	if (o && (!cJSON_AddStringToObject(o, "event", event) ||
		  !cJSON_AddStringToObject(o, "oid", oid ? oid : ""))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int lfsproto_reply_progress(struct lfsfs_buf *out, const char *oid, uint64_t so_far,
			    uint64_t since_last)
{
	cJSON *o = event_obj("progress", oid);

	if (o && (add_u64(o, "bytesSoFar", so_far) || add_u64(o, "bytesSinceLast", since_last))) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	return emit(out, o);
}

int lfsproto_reply_complete(struct lfsfs_buf *out, const char *oid, const char *path)
{
	cJSON *o = event_obj("complete", oid);

	if (o && path && !cJSON_AddStringToObject(o, "path", path)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	return emit(out, o);
}

int lfsproto_reply_complete_error(struct lfsfs_buf *out, const char *oid, int code,
				  const char *msg)
{
	cJSON *o = event_obj("complete", oid);

	if (o && add_error(o, code, msg)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	return emit(out, o);
}
