/* LMDB environment and schema for the block cache index. */
#include "index/index.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lfsfs/error.h"

struct lfsfs_index {
	MDB_env *env;
	MDB_dbi objects, bits, alias;
};

struct lfsfs_index_txn {
	struct lfsfs_index *ix;
	MDB_txn *txn;
};

static int mdb_err(int rc, const char *what)
{
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == MDB_MAP_FULL)
		return lfsfs_error_set(-ENOSPC, "cache index full during %s; run 'lfsfs cache clear'", what);
	if (rc > 0)
		return lfsfs_error_set(-rc, "cache index: %s: %s", what, mdb_strerror(rc));
	return lfsfs_error_set(-EIO, "cache index: %s: %s", what, mdb_strerror(rc));
}

int lfsfs_index_open(const char *dir, struct lfsfs_index **out)
{
	struct lfsfs_index *ix = calloc(1, sizeof(*ix));
	MDB_txn *txn = NULL;
	int rc;

	if (!ix)
		return -ENOMEM;
	if (mkdir(dir, 0700) && errno != EEXIST) {
		rc = lfsfs_error_set(-errno, "cannot create cache index dir '%s': %s", dir,
				     strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&ix->env)))
		goto mdb_fail;
	mdb_env_set_maxdbs(ix->env, 4);
	/* Address space only; the file grows as used. 64 GiB holds bitmaps
	 * for petabytes of cached objects. */
	mdb_env_set_mapsize(ix->env, (size_t)64 << 30);
	/* NOTLS: read txns are used from FUSE worker threads. */
	if ((rc = mdb_env_open(ix->env, dir, MDB_NOTLS, 0600)))
		goto mdb_fail;
	if ((rc = mdb_txn_begin(ix->env, NULL, 0, &txn)))
		goto mdb_fail;
	if ((rc = mdb_dbi_open(txn, "objects", MDB_CREATE, &ix->objects)) ||
	    (rc = mdb_dbi_open(txn, "bits", MDB_CREATE, &ix->bits)) ||
	    (rc = mdb_dbi_open(txn, "alias", MDB_CREATE, &ix->alias))) {
		mdb_txn_abort(txn);
		goto mdb_fail;
	}
	if ((rc = mdb_txn_commit(txn)))
		goto mdb_fail;
	*out = ix;
	return 0;
mdb_fail:
	rc = lfsfs_error_set(-EIO, "cannot open cache index in '%s': %s; remove the directory "
			     "or use another --cache-dir", dir, mdb_strerror(rc));
fail:
	if (ix->env)
		mdb_env_close(ix->env);
	free(ix);
	return rc;
}

void lfsfs_index_close(struct lfsfs_index *ix)
{
	if (!ix)
		return;
	mdb_env_close(ix->env);
	free(ix);
}

int lfsfs_index_begin(struct lfsfs_index *ix, int write, struct lfsfs_index_txn **out)
{
	struct lfsfs_index_txn *t = malloc(sizeof(*t));
	int rc;

	if (!t)
		return -ENOMEM;
	t->ix = ix;
	rc = mdb_txn_begin(ix->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc) {
		free(t);
		return mdb_err(rc, "begin");
	}
	*out = t;
	return 0;
}

int lfsfs_index_commit(struct lfsfs_index_txn *t)
{
	int rc = mdb_txn_commit(t->txn);

	free(t);
	return rc ? mdb_err(rc, "commit") : 0;
}

void lfsfs_index_abort(struct lfsfs_index_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

static MDB_val kval(const char *key)
{
	MDB_val v = { strlen(key), (void *)key };
	return v;
}

int lfsfs_index_get_obj(struct lfsfs_index_txn *t, const char *key, struct lfsfs_objrec *out)
{
	MDB_val k = kval(key), v;
	int rc = mdb_get(t->txn, t->ix->objects, &k, &v);

	if (rc)
		return mdb_err(rc, "get object");
	memset(out, 0, sizeof(*out));
	/* Older/shorter layouts are zero-extended; unknown versions ignored. */
	memcpy(out, v.mv_data, v.mv_size < sizeof(*out) ? v.mv_size : sizeof(*out));
	if (out->version != 1)
		return -ENOENT;
	out->etag[sizeof(out->etag) - 1] = '\0';
	out->sha256[sizeof(out->sha256) - 1] = '\0';
	return 0;
}

int lfsfs_index_put_obj(struct lfsfs_index_txn *t, const char *key, const struct lfsfs_objrec *rec)
{
	MDB_val k = kval(key), v = { sizeof(*rec), (void *)rec };
	int rc = mdb_put(t->txn, t->ix->objects, &k, &v, 0);

	return rc ? mdb_err(rc, "put object") : 0;
}

static size_t page_key(const char *key, uint32_t page, char *buf)
{
	size_t n = strlen(key);

	memcpy(buf, key, n);
	buf[n] = '\0';
	buf[n + 1] = (char)(page >> 24);
	buf[n + 2] = (char)(page >> 16);
	buf[n + 3] = (char)(page >> 8);
	buf[n + 4] = (char)page;
	return n + 5;
}

int lfsfs_index_del_obj(struct lfsfs_index_txn *t, const char *key)
{
	char pk[LFSFS_KEY_MAX + 8];
	size_t klen = strlen(key);
	MDB_val k = kval(key), v;
	MDB_cursor *c;
	int rc;

	if (klen > LFSFS_KEY_MAX)
		return -ENAMETOOLONG;
	rc = mdb_del(t->txn, t->ix->objects, &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return mdb_err(rc, "delete object");
	if ((rc = mdb_cursor_open(t->txn, t->ix->bits, &c)))
		return mdb_err(rc, "cursor");
	k.mv_size = page_key(key, 0, pk);
	k.mv_data = pk;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == klen + 5 && !memcmp(k.mv_data, key, klen + 1)) {
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
		if (rc == EINVAL) /* deleted the last item */
			rc = MDB_NOTFOUND;
	}
	mdb_cursor_close(c);
	return (rc && rc != MDB_NOTFOUND) ? mdb_err(rc, "delete bits") : 0;
}

int lfsfs_index_get_bits(struct lfsfs_index_txn *t, const char *key, uint8_t *bits, size_t nbytes)
{
	char pk[LFSFS_KEY_MAX + 8];
	size_t klen = strlen(key);
	MDB_val k, v;
	MDB_cursor *c;
	int rc;

	if (klen > LFSFS_KEY_MAX)
		return -ENAMETOOLONG;
	memset(bits, 0, nbytes);
	if ((rc = mdb_cursor_open(t->txn, t->ix->bits, &c)))
		return mdb_err(rc, "cursor");
	k.mv_size = page_key(key, 0, pk);
	k.mv_data = pk;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == klen + 5 && !memcmp(k.mv_data, key, klen + 1)) {
		const unsigned char *p = (const unsigned char *)k.mv_data + klen + 1;
		uint32_t page = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		size_t off = (size_t)page * LFSFS_BITS_PAGE;
		if (off < nbytes) {
			size_t n = v.mv_size;
			if (n > nbytes - off)
				n = nbytes - off;
			memcpy(bits + off, v.mv_data, n);
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return (rc && rc != MDB_NOTFOUND) ? mdb_err(rc, "read bits") : 0;
}

int lfsfs_index_put_bits_page(struct lfsfs_index_txn *t, const char *key, uint32_t page,
			      const uint8_t *data, size_t len)
{
	char pk[LFSFS_KEY_MAX + 8];
	uint8_t full[LFSFS_BITS_PAGE];
	MDB_val k, v;
	int rc;

	if (strlen(key) > LFSFS_KEY_MAX)
		return -ENAMETOOLONG;
	if (len > LFSFS_BITS_PAGE)
		len = LFSFS_BITS_PAGE;
	memset(full, 0, sizeof(full));
	memcpy(full, data, len);
	k.mv_size = page_key(key, page, pk);
	k.mv_data = pk;
	v.mv_size = sizeof(full);
	v.mv_data = full;
	rc = mdb_put(t->txn, t->ix->bits, &k, &v, 0);
	return rc ? mdb_err(rc, "put bits") : 0;
}

int lfsfs_index_get_alias(struct lfsfs_index_txn *t, const char *key, char *out, size_t cap)
{
	MDB_val k = kval(key), v;
	int rc = mdb_get(t->txn, t->ix->alias, &k, &v);

	if (rc)
		return mdb_err(rc, "get alias");
	if (v.mv_size + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(out, v.mv_data, v.mv_size);
	out[v.mv_size] = '\0';
	return 0;
}

int lfsfs_index_put_alias(struct lfsfs_index_txn *t, const char *key, const char *target)
{
	MDB_val k = kval(key), v = kval(target);
	int rc = mdb_put(t->txn, t->ix->alias, &k, &v, 0);

	return rc ? mdb_err(rc, "put alias") : 0;
}

int lfsfs_index_foreach_obj(struct lfsfs_index_txn *t,
			    int (*fn)(const char *key, const struct lfsfs_objrec *rec, void *ctx),
			    void *ctx)
{
	char key[LFSFS_KEY_MAX + 1];
	struct lfsfs_objrec rec;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, ret = 0;

	if ((rc = mdb_cursor_open(t->txn, t->ix->objects, &c)))
		return mdb_err(rc, "cursor");
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size > LFSFS_KEY_MAX)
			continue;
		memcpy(key, k.mv_data, k.mv_size);
		key[k.mv_size] = '\0';
		memset(&rec, 0, sizeof(rec));
		memcpy(&rec, v.mv_data, v.mv_size < sizeof(rec) ? v.mv_size : sizeof(rec));
		if (rec.version != 1)
			continue;
		rec.etag[sizeof(rec.etag) - 1] = '\0';
		rec.sha256[sizeof(rec.sha256) - 1] = '\0';
		if ((ret = fn(key, &rec, ctx)))
			break;
	}
	mdb_cursor_close(c);
	if (ret)
		return ret;
	return (rc && rc != MDB_NOTFOUND) ? mdb_err(rc, "iterate") : 0;
}
