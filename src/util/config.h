/*
 * Per-repository settings: `lfsfs.*` keys from <repo>/.lfsconfig, overridden
 * by the repository's git config (local, global, system), read once with
 * `git config -z --get-regexp`.  Keys are as git prints them: section and
 * key lowercased ("lfsfs.s3.pathstyle").
 *
 * Known keys (docs/CONFIG.md): lfsfs.s3.endpoint, lfsfs.s3.region,
 * lfsfs.s3.pathstyle, lfsfs.s3.profile, lfsfs.gcs.endpoint,
 * lfsfs.azure.account, lfsfs.azure.endpoint.
 */
#ifndef LFSFS_CONFIG_H
#define LFSFS_CONFIG_H

struct lfsfs_config;

/* Load the settings for repo (NULL: only global/system git config).
 * A missing git binary or .lfsconfig gives an empty set, not an error. */
int lfsfs_config_load(const char *repo, struct lfsfs_config **out);
/* An empty set (for tests and tools without a repository). */
struct lfsfs_config *lfsfs_config_new(void);
/* Add or override key=value (tests, command-line overrides). */
int lfsfs_config_set(struct lfsfs_config *c, const char *key, const char *value);
void lfsfs_config_free(struct lfsfs_config *c);

/* The last value for key, or NULL. c may be NULL. Owned by c. */
const char *lfsfs_config_get(const struct lfsfs_config *c, const char *key);
/* git's boolean spelling (true/yes/on/1, false/no/off/0); def if unset or unparsable. */
int lfsfs_config_get_bool(const struct lfsfs_config *c, const char *key, int def);

#endif
