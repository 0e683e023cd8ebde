/* The table of object-store backends, URL dispatch and backend state. */
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lfsfs/error.h"

/* More specific backends first: an Azure https:// URL before plain https. */
static const struct lfsfs_store_ops *const backends[] = {
	&lfsfs_store_s3,
	&lfsfs_store_gcs,
	&lfsfs_store_azure,
	&lfsfs_store_http,
	&lfsfs_store_file,
};

#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

void lfsfs_source_release(struct lfsfs_source *s)
{
	free(s->url);
	free(s->etag);
	for (size_t i = 0; i < s->n_headers; i++)
		free(s->headers[i]);
	free(s->headers);
	memset(s, 0, sizeof(*s));
}

void lfsfs_store_init(struct lfsfs_store *st, struct lfsfs_net *net,
		      const struct lfsfs_config *cfg)
{
	memset(st, 0, sizeof(*st));
	st->net = net;
	st->cfg = cfg;
	pthread_mutex_init(&st->lock, NULL);
}

void lfsfs_store_release(struct lfsfs_store *st)
{
	for (size_t i = 0; i < NBACKENDS && i < LFSFS_STORE_MAX; i++) {
		if (st->state[i] && backends[i]->release)
			backends[i]->release(st->state[i]);
		st->state[i] = NULL;
	}
	pthread_mutex_destroy(&st->lock);
}

void *lfsfs_store_state(struct lfsfs_store *st, const struct lfsfs_store_ops *ops,
			void *(*create)(struct lfsfs_store *st))
{
	void *s = NULL;

	for (size_t i = 0; i < NBACKENDS && i < LFSFS_STORE_MAX; i++) {
		if (backends[i] != ops)
			continue;
		pthread_mutex_lock(&st->lock);
		if (!st->state[i])
			st->state[i] = create(st);
		s = st->state[i];
		pthread_mutex_unlock(&st->lock);
		break;
	}
	return s;
}

const struct lfsfs_store_ops *lfsfs_store_for_url(const char *url)
{
	for (size_t i = 0; i < NBACKENDS; i++)
		if (backends[i]->handles(url))
			return backends[i];
	return NULL;
}

static char forms_text[512];
static pthread_once_t forms_once = PTHREAD_ONCE_INIT;

static void forms_build(void)
{
	size_t o = 0;

	for (size_t i = 0; i < NBACKENDS; i++) {
		int n = snprintf(forms_text + o, sizeof(forms_text) - o, "%s%s", o ? ", " : "",
				 backends[i]->forms);
		if (n < 0 || (size_t)n >= sizeof(forms_text) - o)
			break;
		o += (size_t)n;
	}
}

const char *lfsfs_store_schemes(void)
{
	pthread_once(&forms_once, forms_build);
	return forms_text;
}

void lfsfs_store_fetch(struct lfsfs_store *st, struct lfsfs_fetch *f)
{
	const struct lfsfs_store_ops *ops = lfsfs_store_for_url(f->url);
	int rc;

	f->etag_seen[0] = '\0';
	f->error[0] = '\0';
	f->status = 0;
	if (!ops) {
		snprintf(f->error, sizeof(f->error), "unsupported URL scheme (supported: %s)",
			 lfsfs_store_schemes());
		f->done(f, -LFSFS_EUNSUPPORTED);
		return;
	}
	rc = ops->fetch(st, f);
	if (rc) {
		if (!f->error[0])
			snprintf(f->error, sizeof(f->error), "%s", lfsfs_error_message());
		f->done(f, rc);
	}
}

int lfsfs_store_head(struct lfsfs_store *st, const char *url, struct lfsfs_objmeta *out)
{
	const struct lfsfs_store_ops *ops = lfsfs_store_for_url(url);

	memset(out, 0, sizeof(*out));
	if (!ops)
		return lfsfs_error_set(-LFSFS_EUNSUPPORTED, "cannot read '%s': unsupported URL "
				       "(supported: %s)", url, lfsfs_store_schemes());
	if (!ops->head)
		return lfsfs_error_set(-LFSFS_EUNSUPPORTED, "the %s backend cannot look up "
				       "metadata", ops->name);
	return ops->head(st, url, out);
}
