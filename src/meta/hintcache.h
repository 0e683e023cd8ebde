/*
 * The local pre-commit hint cache (seed 003, DESIGN section 4): advisory,
 * never committed, safe to delete (the next `lfsfs hook pre-commit` rebuilds
 * it from the index).
 *
 *   <gitdir>/drs/pre-commit/v1/
 *     paths/<base64url-no-pad(path)>.json  {"path", "lfs_oid", "updated_at"}
 *     oids/<64 hex>.json                    {"lfs_oid", "paths": [...],
 *                                           "s3_url"?, "updated_at",
 *                                           "content_changed"}
 *     tombstones/<base64url-no-pad(path)>.json
 *                                          {"path", "lfs_oid", "deleted_at",
 *                                           "reason", "renamed_to"?}
 *     state.json                           {"version": 1, "updated_at", ...}
 *
 * "lfs_oid" is written "sha256:<hex>"; the oid file is named by the bare
 * hex (what lfsfs_hint_read_url() and the `hints` resolver read).  A path
 * token longer than NAME_MAX allows is cut into 250-character directory
 * levels (paths/<first 250>/<rest>.json); base64url has no '/', so the
 * token is the concatenation of the levels.
 *
 * Records are written atomically (temp file + rename in the same directory,
 * no fsync: the cache is advisory and a torn file reads as malformed and is
 * replaced), with a fixed key order and a 2-space indent.  A new cache is
 * built in drs/pre-commit/v1.new.<pid> and renamed into place whole.
 * Writers take an exclusive flock on drs/pre-commit/.lock.  Keys an oid record holds that this
 * code does not know are kept.  "s3_url" is kept when present and never
 * invented.
 *
 * Also here: the git runner the hook and install commands share.
 *
 * Everything returned is owned by the caller (the matching _release/_free).
 * Errors are negative codes with the per-thread message set.
 */
#ifndef LFSFS_HINTCACHE_H
#define LFSFS_HINTCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "lfsfs/pointer.h"
#include "util/buf.h"

struct cJSON;

#define LFSFS_HINT_DIR "drs/pre-commit/v1" /* below the git directory */
#define LFSFS_HINT_TIME_LEN 20             /* "2026-02-01T12:34:56Z" */

/* ---- names ------------------------------------------------------------- */

/* Base64 URL-safe alphabet, no padding (Go's base64.RawURLEncoding) of len
 * bytes at in, malloc'd and NUL-terminated; NULL on ENOMEM. */
char *lfsfs_hint_b64url_encode(const void *in, size_t len);
/* The inverse: decoded bytes malloc'd in *out (NUL-terminated, *outlen
 * without it).  -EINVAL for characters outside the alphabet, '=' padding or
 * an impossible length (len % 4 == 1). */
int lfsfs_hint_b64url_decode(const char *in, size_t len, char **out, size_t *outlen);

/* "<root>/<dir>/<token>.json" for a path (dir "paths" or "tombstones"),
 * with the NAME_MAX split described above; malloc'd, NULL on ENOMEM. */
char *lfsfs_hint_path_file(const char *root, const char *dir, const char *path);
/* "<gitdir>/drs/pre-commit/v1", malloc'd. */
char *lfsfs_hint_root(const char *gitdir);
/* t as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into out[LFSFS_HINT_TIME_LEN + 1]. */
void lfsfs_hint_time(int64_t t, char *out);

/* ---- records ----------------------------------------------------------- */

struct lfsfs_hint_path_rec {
	char *path;                      /* repo-relative, UTF-8 */
	char oid[LFSFS_OID_HEX_LEN + 1]; /* bare hex */
	char updated_at[LFSFS_HINT_TIME_LEN + 1];
};

struct lfsfs_hint_oid_rec {
	char oid[LFSFS_OID_HEX_LEN + 1]; /* bare hex */
	char **paths;                    /* n_paths strings, sorted, unique */
	size_t n_paths;
	char *s3_url; /* NULL when not known */
	char updated_at[LFSFS_HINT_TIME_LEN + 1];
	int content_changed;
	struct cJSON *extra; /* unknown members (kept), or NULL */
};

void lfsfs_hint_path_rec_release(struct lfsfs_hint_path_rec *r);
void lfsfs_hint_oid_rec_release(struct lfsfs_hint_oid_rec *r);

/* Add (keeping order and uniqueness) or remove one path; 1 if the list
 * changed, 0 if not, -ENOMEM. */
int lfsfs_hint_oid_add_path(struct lfsfs_hint_oid_rec *r, const char *path);
int lfsfs_hint_oid_remove_path(struct lfsfs_hint_oid_rec *r, const char *path);

/* Append the JSON text of a record (with a final newline) to out. */
int lfsfs_hint_path_format(const struct lfsfs_hint_path_rec *r, struct lfsfs_buf *out);
int lfsfs_hint_oid_format(const struct lfsfs_hint_oid_rec *r, struct lfsfs_buf *out);
/* Parse a record from len bytes.  -LFSFS_EPARSE (message names `what`,
 * a file name for instance) when it is not JSON or a field has the wrong
 * type; "lfs_oid" may be bare hex or "sha256:<hex>". */
int lfsfs_hint_path_parse(const char *data, size_t len, const char *what,
                          struct lfsfs_hint_path_rec *out);
int lfsfs_hint_oid_parse(const char *data, size_t len, const char *what,
                         struct lfsfs_hint_oid_rec *out);

/* Read a record from the cache at root: 0, -ENOENT (no message), or
 * -LFSFS_EPARSE / negative errno with a message.  An oid record whose
 * "lfs_oid" disagrees with its file name is -LFSFS_EPARSE. */
int lfsfs_hint_path_read(const char *root, const char *path, struct lfsfs_hint_path_rec *out);
int lfsfs_hint_oid_read(const char *root, const char *oid, struct lfsfs_hint_oid_rec *out);
/* Write a record atomically, creating directories as needed. */
int lfsfs_hint_path_write(const char *root, const struct lfsfs_hint_path_rec *r);
int lfsfs_hint_oid_write(const char *root, const struct lfsfs_hint_oid_rec *r);

/* Write len bytes to file atomically (temp file in its directory, rename). */
int lfsfs_hint_write_file(const char *file, const void *data, size_t len);

/* Record a known URL for oid (other tools: registration, add-url). */
int lfsfs_hint_set_url(const char *gitdir, const char *oid, const char *url, const char *now);

/* ---- applying staged changes --------------------------------------------- */

enum lfsfs_hint_op {
	LFSFS_HINT_UPSERT, /* path holds pointer `oid` (prev_oid: what HEAD had
			     * there, "" if not a pointer or unknown) */
	LFSFS_HINT_DELETE, /* path (a pointer to prev_oid in HEAD, or "") is gone */
	LFSFS_HINT_RENAME, /* old_path (prev_oid) moved to path (oid) */
};

struct lfsfs_hint_change {
	enum lfsfs_hint_op op;
	const char *path;
	const char *old_path; /* RENAME only */
	const char *oid;      /* UPSERT, RENAME: bare hex */
	const char *prev_oid; /* "" or bare hex */
};

struct lfsfs_hint_stats {
	size_t paths_written;
	size_t paths_removed;
	size_t oids_written;
	size_t tombstones;
	size_t renames;
	size_t content_changes;
	size_t warnings; /* malformed records replaced, names too long, ... */
};

/*
 * Apply changes in order to the cache under gitdir at time `now` (UTC,
 * LFSFS_HINT_TIME_LEN).  Rules (seed 003):
 *   UPSERT  paths/ entry -> oid; oid's paths gets the path; if the path held
 *           another oid before (prev_oid, else the old paths/ entry) the new
 *           oid's record gets content_changed: true and the old oid keeps the
 *           path (stale, advisory); a tombstone for the path is removed.
 *   DELETE  paths/ entry removed, tombstone written, the path leaves its
 *           oid's paths.  Nothing happens for a path that was never in scope.
 *   RENAME  the paths/ entry moves, the oid's paths swaps old for new, a
 *           tombstone (reason "renamed", renamed_to) is left for old_path;
 *           with a different oid on each side the new one gets
 *           content_changed.
 * Each oid record is read and written once however many changes touch it.
 * A malformed record is replaced (counted in warnings, warn() told).
 * Returns 0, or the first write error (the cache may then be partly
 * updated: it is advisory, and the next run fixes it).
 */
int lfsfs_hint_apply(const char *gitdir, const struct lfsfs_hint_change *changes, size_t n,
                     const char *now, struct lfsfs_hint_stats *st,
                     void (*warn)(const char *msg, void *ctx), void *ctx);

/* Every path that has a paths/ entry, decoded from the file names (entries
 * whose names do not decode are skipped).  *out is a malloc'd array of
 * malloc'd strings, sorted; free with lfsfs_hint_paths_free(). */
int lfsfs_hint_list_paths(const char *gitdir, char ***out, size_t *n);
void lfsfs_hint_paths_free(char **paths, size_t n);

/* Write state.json: {"version": 1, "updated_at", "head", "mode", stats}. */
int lfsfs_hint_write_state(const char *gitdir, const char *now, const char *head, const char *mode,
                           const struct lfsfs_hint_stats *st, double ms);
/* The "head" of state.json (malloc'd into *head; NULL when it was null):
 * 0, or -ENOENT when there is no usable state.json. */
int lfsfs_hint_read_state(const char *gitdir, char **head);

/* ---- running git ------------------------------------------------------- */

/*
 * Run `git argv[0] argv[1] ...` (argv NULL-terminated, without "git") in
 * dir (NULL: the current directory; the environment, GIT_DIR and
 * GIT_INDEX_FILE included, is inherited), feeding in/inlen on stdin while
 * collecting stdout into out (its cap is respected: -E2BIG) and stderr
 * into err (may be NULL: stderr is dropped).  *status gets git's exit
 * status (128 + signal for a signal, 127 if git cannot be run).  Returns 0
 * when git ran, a negative errno otherwise.
 */
int lfsfs_git_run(const char *dir, const char *const *argv, const void *in, size_t inlen,
                  struct lfsfs_buf *out, struct lfsfs_buf *err, int *status);

#endif
