/*
 * The Git LFS custom transfer protocol (git-lfs docs/custom-transfers.md),
 * the agent side: parse the line-delimited JSON requests git-lfs writes to
 * the agent's stdin, and build the one-line replies it reads from stdout.
 *
 *   -> {"event":"init","operation":"download"|"upload","remote":"origin",
 *       "concurrent":true,"concurrenttransfers":8}
 *   <- {}                          or {"error":{"code":N,"message":"..."}}
 *   -> {"event":"download","oid":"<64 hex>","size":N,
 *       "action":{"href":"...","header":{"Name":"value"}}|null}
 *   <- {"event":"progress","oid":"...","bytesSoFar":N,"bytesSinceLast":N} (0..n)
 *   <- {"event":"complete","oid":"...","path":"/tmp/file"}
 *      or {"event":"complete","oid":"...","error":{"code":N,"message":"..."}}
 *   -> {"event":"upload","oid":"...","size":N,"path":"/file","action":...}
 *   <- {"event":"complete","oid":"..."} or the same with "error"
 *   -> {"event":"terminate"}       (no reply)
 *
 * Pure code: no I/O, no global state; the agent loop lives in
 * src/cli/cmd_transfer_agent.c.  Every reply is one line ending in '\n'
 * (strings are JSON-escaped, so a message never breaks the framing) and
 * integers are written as plain decimal digits (git-lfs decodes them into
 * Go int64s, which refuse exponent forms).
 */
#ifndef LFSFS_LFSPROTO_H
#define LFSFS_LFSPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "lfsfs/pointer.h"
#include "util/buf.h"

/* Longest request line accepted (a download with a few signed headers is
 * a few KiB; anything near this is not git-lfs talking). */
#define LFSPROTO_MAX_LINE ((size_t)1 << 20)

enum lfsproto_event {
	LFSPROTO_INIT = 1,
	LFSPROTO_DOWNLOAD,
	LFSPROTO_UPLOAD,
	LFSPROTO_TERMINATE,
};

enum lfsproto_op { LFSPROTO_OP_DOWNLOAD = 1, LFSPROTO_OP_UPLOAD };

/* One parsed request.  Strings are malloc'd and owned by the message;
 * lfsproto_msg_release() frees them. */
struct lfsproto_msg {
	enum lfsproto_event event;
	/* init */
	enum lfsproto_op operation;
	char *remote;             /* NULL when absent (older git-lfs) */
	int concurrent;           /* -1 when absent */
	int concurrenttransfers;  /* 0 when absent */
	/* download, upload */
	char oid[LFSFS_OID_HEX_LEN + 1];
	uint64_t size;
	char *path;               /* upload: the file to read; NULL otherwise */
	char *href;               /* action.href, NULL when action is null/absent */
	char **headers;           /* action.header as "Name: value", n_headers long */
	size_t n_headers;
};

/*
 * Parse one request line (len bytes, no NUL needed; a trailing "\r\n" or
 * "\n" is ignored).  Returns 0 and fills *out, or:
 *   -LFSFS_EPARSE        not JSON, not an object, or a field missing or of
 *                        the wrong type (oid not 64 lowercase hex, size not
 *                        a non-negative integer, a header with CR/LF);
 *   -LFSFS_EUNSUPPORTED  a well-formed object with an unknown "event".
 * On error the per-thread message says what is wrong, and out->event and
 * out->oid are still filled when they could be read (so a bad download can
 * be answered with a per-object "complete" error).  Release *out in every
 * case.
 */
int lfsproto_parse(const char *line, size_t len, struct lfsproto_msg *out);
void lfsproto_msg_release(struct lfsproto_msg *m);

/* "download", "upload", "init", "terminate"; "unknown" otherwise. */
const char *lfsproto_event_name(enum lfsproto_event e);

/*
 * The error code put in replies for a library return code: the `lfsfs`
 * exit statuses (docs: README "Exit status"), so a person reading a
 * git-lfs message sees the same number the CLI would exit with:
 *   3  SIZE_MISMATCH, CHECKSUM_MISMATCH, IMMUTABILITY_VIOLATION,
 *      UNSTABLE_OBJECT_SOURCE
 *   4  SOURCE_NOT_ACCESSIBLE, CREDENTIALS_MISSING
 *   2  a malformed or unknown request (PARSE_ERROR, UNSUPPORTED event)
 *   1  anything else (including "lfsfs does not upload")
 */
int lfsproto_error_code(int rc);

/*
 * Reply builders: each appends exactly one line ("...\n") to out and
 * returns 0, or a negative errno (-ENOMEM, -E2BIG past out's cap).
 * String arguments may contain anything; they are escaped.
 */
int lfsproto_reply_init_ok(struct lfsfs_buf *out);
/* {"error":{"code":code,"message":msg}}: a failed init, or the answer to
 * a line that is not a request at all. */
int lfsproto_reply_error(struct lfsfs_buf *out, int code, const char *msg);
int lfsproto_reply_progress(struct lfsfs_buf *out, const char *oid, uint64_t so_far,
			    uint64_t since_last);
/* path NULL: a successful upload (no "path" member). */
int lfsproto_reply_complete(struct lfsfs_buf *out, const char *oid, const char *path);
int lfsproto_reply_complete_error(struct lfsfs_buf *out, const char *oid, int code,
				  const char *msg);

#endif
