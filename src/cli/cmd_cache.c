/* `lfsfs cache stat|clear`: look at or empty the block cache. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cli/cli.h"
#include "lfsfs/error.h"
#include "util/buf.h"

static const char cache_usage[] =
	"usage: lfsfs cache stat [--cache-dir DIR] [--json]\n"
	"       lfsfs cache clear [--cache-dir DIR]\n"
	"\n"
	"stat   objects, cached and verified bytes, the size limit of the mount\n"
	"       using the cache (if any); works while mounted (figures lag the\n"
	"       daemon by up to a second)\n"
	"clear  delete every cached block; refused while a mount uses DIR\n"
	"\n"
	"  --cache-dir DIR  the cache (default $XDG_CACHE_HOME/lfsfs or ~/.cache/lfsfs)\n"
	"  --json           machine-readable output\n";

static void human(uint64_t v, char *out, size_t cap)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	int i = 0;

	while (d >= 1024 && i < 4) {
		d /= 1024;
		i++;
	}
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", d, u[i]);
}

/* 1 if pid is a live process (a zombie is not). */
static int alive(pid_t pid)
{
	char path[64], st[128];
	FILE *f;
	int z = 0;

	if (pid <= 0 || kill(pid, 0))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r"))) {
		z = fgets(st, sizeof(st), f) && strstr(st, ") Z");
		fclose(f);
	}
	return !z;
}

/* What the last mount of DIR left in DIR/mount.json (limit, mountpoint). */
static cJSON *last_mount(const char *dir, int *in_use)
{
	struct lfsfs_buf b = LFSFS_BUF_INIT(1 << 16);
	char path[4200];
	cJSON *j, *pid;

	*in_use = 0;
	snprintf(path, sizeof(path), "%s/mount.json", dir);
	if (lfsfs_buf_read_file(&b, path)) {
		lfsfs_buf_release(&b);
		return NULL;
	}
	j = cJSON_Parse(b.data);
	lfsfs_buf_release(&b);
	pid = j ? cJSON_GetObjectItem(j, "pid") : NULL;
	*in_use = cJSON_IsNumber(pid) && alive((pid_t)pid->valuedouble);
	return j;
}

int cmd_cache(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *dir = NULL;
	const char *sub;
	int c, json = 0, rc;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(cache_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	sub = argv[1];
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			free(dir);
			dir = strdup(optarg);
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(cache_usage, stdout);
			free(dir);
			return EXIT_OK;
		default:
			fputs(cache_usage, stderr);
			free(dir);
			return EXIT_USAGE;
		}
	}
	if (!dir)
		dir = cli_default_cache_dir();
	if (!strcmp(sub, "stat")) {
		struct lfsfs_cache_stats st;
		int in_use;
		cJSON *m = last_mount(dir, &in_use);
		cJSON *limit = m ? cJSON_GetObjectItem(m, "limit_bytes") : NULL;
		uint64_t lim = cJSON_IsNumber(limit) ? (uint64_t)limit->valuedouble : 0;

		rc = lfsfs_cache_offline_stats(dir, &st);
		if (rc) {
			cli_error("cannot read cache '%s': %s", dir, lfsfs_error_message());
			cJSON_Delete(m);
			free(dir);
			return EXIT_FAIL;
		}
		if (json) {
			cJSON *o = cJSON_CreateObject();
			char *txt;
			cJSON_AddStringToObject(o, "cache_dir", dir);
			cJSON_AddNumberToObject(o, "objects", (double)st.objects);
			cJSON_AddNumberToObject(o, "verified_objects", (double)st.verified);
			cJSON_AddNumberToObject(o, "cached_bytes", (double)st.cached_bytes);
			cJSON_AddNumberToObject(o, "limit_bytes", (double)lim);
			if (m && in_use) {
				cJSON_AddItemToObject(o, "mount", m);
				m = NULL;
			} else {
				cJSON_AddNullToObject(o, "mount");
			}
			txt = cJSON_Print(o);
			puts(txt ? txt : "{}");
			free(txt);
			cJSON_Delete(o);
		} else {
			char cb[32], lb[32];
			cJSON *mp = m && in_use ? cJSON_GetObjectItem(m, "mountpoint") : NULL;
			human(st.cached_bytes, cb, sizeof(cb));
			human(lim, lb, sizeof(lb));
			printf("cache:     %s\n", dir);
			printf("objects:   %" PRIu64 " (%" PRIu64 " verified)\n", st.objects,
			       st.verified);
			printf("cached:    %s (%" PRIu64 " bytes)\n", cb, st.cached_bytes);
			printf("limit:     %s%s\n", lim ? lb : "none", in_use ? "" : " (as last mounted)");
			printf("in use by: %s\n", cJSON_IsString(mp) ? mp->valuestring : "no mount");
		}
		cJSON_Delete(m);
		free(dir);
		return EXIT_OK;
	}
	if (!strcmp(sub, "clear")) {
		rc = lfsfs_cache_offline_clear(dir);
		if (rc) {
			cli_error("%s", lfsfs_error_message());
			free(dir);
			return EXIT_FAIL;
		}
		printf("cleared cache '%s'\n", dir);
		free(dir);
		return EXIT_OK;
	}
	cli_error("unknown cache command '%s'; use 'stat' or 'clear'", sub);
	free(dir);
	return EXIT_USAGE;
}
