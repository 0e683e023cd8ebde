/*
 * Writers for what a repository commits about remote objects: the
 * `.lfs-meta/` records, Git LFS pointer files and `.gitattributes` lines
 * (DESIGN section 4).  The readers are in meta/lfsmeta.h.
 *
 *   .lfs-meta/metadata.json      {"<path>": {"remote_url", "etag", "size",
 *                                "sha256"?, "md5"?, "patient"?, ...}}
 *   .lfs-meta/etag/<name>.json   {"etag", "url", "size", "sha256": null|hex}
 *   .lfs-meta/sha256/<oid>.json  {"sha256", "url" (+ "urls"), "size", "etag"?}
 *   <path>                       canonical pointer, only once the sha256 is known
 *   .gitattributes               "<path> filter=lfs diff=lfs merge=lfs -text"
 *
 * Rules every writer here keeps:
 *   - a file is replaced atomically (temp file in the same directory, fsync,
 *     rename, fsync of the directory) and only when its bytes change, so a
 *     rerun touches nothing;
 *   - JSON is written with sorted keys and a 2-space indent (the layout of
 *     Python's json.dump(indent=2, sort_keys=True)); keys the writer does not
 *     know are kept;
 *   - an existing JSON file that does not parse is never overwritten: the
 *     error names the file and line:column;
 *   - a pointer is never written with a placeholder oid: no sha256, no pointer;
 *   - paths are normalized with lfsfs_relpath_normalize() and may not leave the
 *     repository, pass through a symbolic link or land in .lfs-meta/.
 *
 * Not thread-safe: one writer is used by one thread.  Errors are negative
 * codes with the per-thread message set (lfsfs_error_message()).
 */
#ifndef LFSFS_LFSMETA_WRITE_H
#define LFSFS_LFSMETA_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "lfsfs/pointer.h"

/* ETag -> record file name (without ".json"): a leading W/ and the
 * surrounding quotes are stripped, every byte outside [A-Za-z0-9._-] becomes
 * %XX (uppercase hex).  -EINVAL for an empty ETag, -ENAMETOOLONG if the name
 * does not fit cap or NAME_MAX. */
int lfsfs_etag_filename(const char *etag, char *out, size_t cap);

/* An entity tag as HTTP sends it: `abc` -> `"abc"`; `"abc"` and `W/"abc"`
 * are kept.  -EINVAL if empty, has control characters or does not fit. */
int lfsfs_etag_normalize(const char *in, char *out, size_t cap);

/* 1 if a and b name the same entity (quotes and W/ ignored). */
int lfsfs_etag_same(const char *a, const char *b);

/* Parse a sha256 given by a person ("<hex>" or "sha256:<hex>", any case) into
 * 64 lowercase hex digits.  -EINVAL with a message otherwise. */
int lfsfs_sha256_parse(const char *in, char out[LFSFS_OID_HEX_LEN + 1]);

/* Write len bytes to path atomically (see above).  Returns 1 if the file was
 * written, 0 if it already held exactly these bytes.  A new file gets mode
 * 0666 & ~umask, a replaced one keeps its mode.  LFSFS_WRITE_NOSYNC skips the
 * fsyncs (the caller syncs the filesystem once later). */
#define LFSFS_WRITE_NOSYNC 0x1u
int lfsfs_write_atomic(const char *path, const void *data, size_t len, unsigned flags);

/* ---- facts about one object ------------------------------------------- */

/* What is known about a remote object, from the user or from a HEAD.
 * Strings are borrowed; "" or NULL means unknown. */
struct lfsfs_objfacts {
	const char *etag;
	uint64_t size;
	int has_size;
	const char *sha256; /* 64 lowercase hex */
	const char *md5;    /* 32 hex */
};

/* The facts to register: what the user gave, checked against what the origin
 * reported (head may be NULL: trust given).  Fills out (strings point into
 * given/head).  Errors, with the object named and the fix in the message:
 *   -LFSFS_ESIZE_MISMATCH       given size != origin size
 *   -LFSFS_EIMMUTABILITY        given ETag != origin ETag (the object changed)
 *   -LFSFS_ECHECKSUM_MISMATCH   given sha256 != the store's own sha256
 *   -LFSFS_ESOURCE_NOT_ACCESSIBLE  no size from anywhere */
int lfsfs_objfacts_merge(const char *url, const struct lfsfs_objfacts *given,
                         const struct lfsfs_objfacts *head, struct lfsfs_objfacts *out);

/* ---- the repository writer -------------------------------------------- */

struct lfsfs_writer;

#define LFSFS_W_FORCE \
	0x1u /* replace an ordinary file, a pointer or a
			      * registration of other content at the path */
#define LFSFS_W_NOSYNC \
	0x2u /* per-file fsyncs off; lfsfs_writer_commit()
			      * syncs the filesystem once (batch mode) */

/*
 * Open repo for writing: loads .lfs-meta/metadata.json (missing = empty) and
 * .gitattributes.  -LFSFS_EPARSE with "<file>:<line>:<col>" if metadata.json
 * is malformed (or not an object): nothing will ever be written over it.
 * *out is owned by the caller: lfsfs_writer_free().
 */
int lfsfs_writer_open(const char *repo, unsigned flags, struct lfsfs_writer **out);
void lfsfs_writer_free(struct lfsfs_writer *w);

/* One object to register at a path. */
struct lfsfs_regobj {
	const char *path; /* repo-relative; normalized here */
	const char *url;  /* remote_url */
	const char *etag; /* as served (quotes kept), or NULL */
	uint64_t size;
	const char *sha256;        /* 64 lowercase hex, or NULL: then no pointer */
	const char *md5;           /* 32 hex, or NULL */
	const char *const *fields; /* extra metadata.json string fields: key,
				    * value, key, value, ... (patient, ...) */
	size_t n_fields;           /* number of pairs */
	unsigned flags;            /* LFSFS_W_FORCE */
};

/* What lfsfs_writer_register() changed (bits of `changed`). */
enum {
	LFSFS_WROTE_META = 0x01,      /* metadata.json entry (written at commit) */
	LFSFS_WROTE_ETAG = 0x02,      /* .lfs-meta/etag/<name>.json */
	LFSFS_WROTE_SHA256 = 0x04,    /* .lfs-meta/sha256/<oid>.json */
	LFSFS_WROTE_POINTER = 0x08,   /* the pointer file at the path */
	LFSFS_WROTE_ATTR = 0x10,      /* .gitattributes line (written at commit) */
	LFSFS_REMOVED_POINTER = 0x20, /* a stale pointer was removed (--force) */
	LFSFS_DROPPED_SHA256 = 0x40,  /* an older registration's sha256 was dropped */
};

struct lfsfs_regresult {
	unsigned changed;                   /* LFSFS_WROTE_* bits; 0 = unchanged */
	char path[4096];                    /* the normalized path */
	char sha256[LFSFS_OID_HEX_LEN + 1]; /* registered sha256 ("" if none): given,
					     * or kept from the existing entry */
	char etag_record[320];              /* ".lfs-meta/etag/<name>.json" or "" */
	char sha256_record[96];             /* ".lfs-meta/sha256/<oid>.json" or "" */
};

/*
 * Register o: check the path and every existing record first (nothing is
 * written when a check fails), then write the per-object files and update
 * metadata.json and .gitattributes in memory.  Errors:
 *   -EINVAL        bad path (outside the repository, .lfs-meta/, through a
 *                  symlink, a directory), bad field name
 *   -EEXIST        an ordinary file, another object's pointer or another
 *                  URL is registered at the path (LFSFS_W_FORCE replaces)
 *   -LFSFS_EIMMUTABILITY  the path's URL is registered with another ETag or
 *                  size: the remote object changed (LFSFS_W_FORCE replaces)
 *   -LFSFS_ECHECKSUM_MISMATCH / -LFSFS_ESIZE_MISMATCH  a record already says
 *                  otherwise about the same object
 *   -LFSFS_EPARSE  an existing record is malformed (left untouched)
 */
int lfsfs_writer_register(struct lfsfs_writer *w, const struct lfsfs_regobj *o,
                          struct lfsfs_regresult *res);

/* Write metadata.json and .gitattributes if they changed (syncing the
 * filesystem first under LFSFS_W_NOSYNC).  *changed gets LFSFS_WROTE_META
 * and/or LFSFS_WROTE_ATTR (may be NULL). */
int lfsfs_writer_commit(struct lfsfs_writer *w, unsigned *changed);

/* The repository directory the writer was opened on. */
const char *lfsfs_writer_repo(const struct lfsfs_writer *w);

/* Append one line per file r changed ("  <what> <file>\n") to out. */
int lfsfs_regresult_describe(const struct lfsfs_regresult *r, struct lfsfs_buf *out);

/* ---- where to write ----------------------------------------------------- */

/*
 * The repository to write to: repo_opt if given (it must hold .git), else the
 * nearest directory at or above the current one holding .git.  *repo gets its
 * real absolute path; *prefix the current directory relative to it when the
 * current directory is inside the repository ("" at its top or outside), so
 * PATH arguments can be taken relative to where the user stands, as git does.
 * Both malloc'd, owned by the caller.
 */
int lfsfs_repo_locate(const char *repo_opt, char **repo, char **prefix);

/*
 * arg (absolute, or relative to repo/prefix) as a normalized repo-relative
 * path (malloc'd into *out).  "." and ".." are resolved lexically; a result
 * outside the repository, or one lfsfs_relpath_normalize() refuses, gives
 * -EINVAL with the reason.
 */
int lfsfs_repo_relpath(const char *repo, const char *prefix, const char *arg, char **out);

/* The last path segment of url (query and fragment dropped, %XX decoded),
 * malloc'd into *out; -EINVAL if there is none usable (then ask for PATH). */
int lfsfs_url_basename(const char *url, char **out);

#endif
