/*
 * Loading JSON files, with errors that point at the failing line:column,
 * and the field parsers the metadata readers share.
 *
 * Every loader reads at most `cap` bytes (a hostile or corrupt file must
 * not eat memory) and hands back a tree the caller owns and frees with
 * cJSON_Delete().  A missing file is -ENOENT without a message, so callers
 * can treat "absent" as a normal answer; every other failure sets the
 * per-thread message:
 *
 *   cannot read 'FILE': larger than N bytes          (-LFSFS_EPARSE)
 *   cannot read 'FILE': <errno text>                 (negated errno)
 *   cannot parse 'FILE:LINE:COL': nul byte in json   (-LFSFS_EPARSE)
 *   cannot parse 'FILE:LINE:COL': malformed json     (-LFSFS_EPARSE)
 */
#ifndef LFSFS_JSON_H
#define LFSFS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "lfsfs/pointer.h"

/* Read and parse the file at path into *out (NULL on failure); messages
 * name the file by its path. */
int lfsfs_json_load_file(const char *path, size_t cap, cJSON **out);

/*
 * The same for a file a command is about to rewrite: messages name it
 * `name` (its path inside the repository, say), an oversized file is
 * "cannot use 'NAME': larger than N bytes", and both parse messages end
 * with "; the file was left untouched: fix it by hand, then run the
 * command again".
 */
int lfsfs_json_load_edit(const char *path, const char *name, size_t cap, cJSON **out);

/*
 * A size: a non-negative integral JSON number (exact only up to 2^53, so
 * larger ones must be strings) or a string of decimal digits that fits in
 * uint64_t.  0 and *out set, or -LFSFS_EPARSE without a message (the
 * caller knows which field it was).
 */
int lfsfs_json_size(const cJSON *it, uint64_t *out);

/*
 * A sha256: a JSON string "<hex>" or "sha256:<hex>", 64 hex digits in
 * either case.  0 and out set to NUL-terminated lowercase hex, or
 * -LFSFS_EPARSE without a message (out may then hold part of the digits).
 */
int lfsfs_json_sha256(const cJSON *it, char out[LFSFS_OID_HEX_LEN + 1]);

#endif
