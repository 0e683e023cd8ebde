/*
 * FHIR R4 DocumentReference resources for the objects of
 * .lfs-meta/metadata.json (docs/FHIR.md is the mapping).
 *
 *   struct lfsfs_fhir_set *s;
 *   lfsfs_fhir_load("repo/.lfs-meta/metadata.json", &s, on_skip, ctx);
 *   lfsfs_fhir_write_file(s, "repo/META/DocumentReference.ndjson");
 *   lfsfs_fhir_set_free(s);
 *
 * One resource per object, one compact JSON object per line (NDJSON),
 * sorted by normalized path.  The output is a pure function of the
 * accepted entries: no clock, no randomness, so reruns are byte-identical
 * and ids never churn.
 *
 * Everything returned is owned by the caller and freed with the matching
 * _free().  Functions return 0 or a negative errno / -LFSFS_E* code with
 * the details in the per-thread message (lfsfs_error_message()).
 */
#ifndef LFSFS_FHIR_H
#define LFSFS_FHIR_H

#include <stddef.h>
#include <stdint.h>

/* Project-defined extension URLs (on content[].attachment) and identifier
 * system.  Stable: consumers key on them. */
#define LFSFS_FHIR_NS "https://lfsfs.invalid/fhir/"
#define LFSFS_FHIR_EXT_SHA256 LFSFS_FHIR_NS "StructureDefinition/sha256" /* valueString */
#define LFSFS_FHIR_EXT_MD5 LFSFS_FHIR_NS "StructureDefinition/md5"       /* valueString */
#define LFSFS_FHIR_EXT_ETAG LFSFS_FHIR_NS "StructureDefinition/etag"     /* valueString */
#define LFSFS_FHIR_EXT_SIZE LFSFS_FHIR_NS "StructureDefinition/size"     /* valueDecimal */
#define LFSFS_FHIR_SID_PATH LFSFS_FHIR_NS "sid/path" /* identifier.system: repo path */

/* Resource ids are RFC 4122 version 5 UUIDs of the normalized path in this
 * namespace, itself uuid5(NAMESPACE_URL, "https://lfsfs.invalid/fhir/
 * DocumentReference"); python: uuid.uuid5(uuid.UUID(NS), path). */
#define LFSFS_FHIR_ID_NAMESPACE "9f3ede07-d03e-58b7-9562-139b3f34ffd4"
#define LFSFS_FHIR_ID_LEN 36

/* R4 Attachment.size is an unsignedInt; larger sizes go to the size
 * extension and attachment.size is omitted. */
#define LFSFS_FHIR_UNSIGNED_MAX 4294967295u

/* One accepted metadata.json entry.  Strings are valid UTF-8 and
 * non-empty when non-NULL. */
struct lfsfs_fhir_object {
	char *path;         /* normalized repo-relative path (never NULL) */
	char *url;          /* remote_url (never NULL) */
	uint64_t size;      /* "size" (required, as for the mount) */
	char sha256[65];    /* lowercase hex, "" when unknown */
	char sha1_b64[29];  /* base64 of the SHA-1 ("sha1"), "" when unknown */
	char *etag;         /* as recorded, quotes kept; or NULL */
	char *md5;          /* as recorded; or NULL */
	char *subject;      /* "patient" as a reference ("Patient/1234"); or NULL */
	char *specimen;     /* "specimen" as a reference ("Specimen/X"); or NULL */
	char *content_type; /* "content_type" override; NULL: guessed from path */
	char *date;         /* "date", an R4 instant; or NULL */
	char *description;  /* "description"; or NULL */
};

struct lfsfs_fhir_set {
	struct lfsfs_fhir_object *objs; /* sorted by path (strcmp), unique */
	size_t n;
};

/*
 * Read a metadata.json file (path-keyed object).  A missing file is
 * -ENOENT with a message; malformed JSON is -LFSFS_EPARSE with a message
 * naming file:line:column.  Entries that cannot become a valid resource
 * (path refused by lfsfs_relpath_normalize(), no remote_url, bad size,
 * malformed sha256/sha1/patient/specimen/date/content_type, invalid
 * UTF-8, a duplicate of an earlier path) are reported through `skipped`
 * (may be NULL; `why` is valid during the call only) and left out.
 * Unknown keys are ignored.
 */
int lfsfs_fhir_load(const char *file, struct lfsfs_fhir_set **out,
                    void (*skipped)(const char *path, const char *why, void *ctx), void *ctx);
void lfsfs_fhir_set_free(struct lfsfs_fhir_set *s);

/* The media type for a path, from its extension (case-insensitive; a
 * ".gz"/".bgz" suffix wins).  A static string; application/octet-stream
 * when nothing matches. */
const char *lfsfs_fhir_content_type(const char *path);

/* The resource id for a normalized path: out gets LFSFS_FHIR_ID_LEN
 * lowercase characters plus NUL.  0, or -ENOMEM/-EIO (digest failure). */
int lfsfs_fhir_id(const char *path, char out[LFSFS_FHIR_ID_LEN + 1]);

/*
 * Normalize a "patient" or "specimen" value into a reference string:
 * a bare id becomes "<default_type>/<id>"; "Type/id" (optionally with
 * "/_history/<vid>"), an absolute http(s) URL ending in one, and
 * "urn:uuid:<uuid>" are kept as given when Type is one of `types`
 * (a NULL-terminated list).  *out is malloc'd.  0, -EINVAL (*why set to a
 * static reason, no message), -ENOMEM.
 */
int lfsfs_fhir_reference(const char *value, const char *default_type, const char *const *types,
                         char **out, const char **why);

/* The DocumentReference for o as compact JSON (no newline) in *out,
 * malloc'd.  0 or -ENOMEM. */
int lfsfs_fhir_render(const struct lfsfs_fhir_object *o, char **out);

/*
 * Check one resource (JSON text) against the R4 rules that can be checked
 * locally: resourceType, id syntax, status code, required content and
 * attachment, element names, value types (string, uri, code, instant,
 * unsignedInt, base64Binary), Reference syntax, extension shape, and the
 * JSON rules (no null, empty string, empty array or empty object).
 * 0, or -LFSFS_EPARSE with a message naming the element.
 */
int lfsfs_fhir_check(const char *json);

/* Write every resource of s, each checked with lfsfs_fhir_check(), one
 * per line, to fd (streamed: memory stays bounded by one chunk). */
int lfsfs_fhir_write_fd(const struct lfsfs_fhir_set *s, int fd);

/*
 * Write the NDJSON of s to the file at path atomically: a temporary file
 * in the same directory, fsync, rename over path, fsync of the directory.
 * Missing parent directories are created.  On failure path is untouched
 * and the temporary file removed.  An existing file keeps its mode; a new
 * one gets 0644.
 */
int lfsfs_fhir_write_file(const struct lfsfs_fhir_set *s, const char *path);

#endif
