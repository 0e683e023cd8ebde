/* `lfsfs doctor URL...`: which backend, endpoint and credentials; a HEAD. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lfsfs/error.h"
#include "net/net.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/config.h"
#include "util/log.h"

static const char doctor_usage[] =
	"usage: lfsfs doctor [--repo DIR] [--json] URL...\n"
	"\n"
	"For each URL: the backend that serves it, the endpoint and the credential\n"
	"source it would use (secrets redacted), and the result of a HEAD (size,\n"
	"ETag, checksums, version) with its timing, or what to fix.\n"
	"Exits non-zero if any URL cannot be read.\n"
	"\n"
	"  --repo DIR  read per-repository settings (lfsfs.* in DIR/.lfsconfig and\n"
	"              git config); default: the current directory\n"
	"  --json      one JSON object per URL, one per line\n";

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* "key: value" lines from explain() as JSON members */
static void explain_to_json(cJSON *o, const char *text)
{
	char line[1024];

	while (text && *text) {
		size_t n = strcspn(text, "\n");
		char *colon;
		snprintf(line, sizeof(line), "%.*s", (int)n, text);
		text += n + (text[n] == '\n');
		colon = strstr(line, ": ");
		if (!colon || !strncmp(line, "backend:", 8))
			continue;
		*colon = '\0';
		cJSON_AddStringToObject(o, line, colon + 2);
	}
}

static int doctor_one(struct lfsfs_store *st, const char *url, int json)
{
	const struct lfsfs_store_ops *ops = lfsfs_store_for_url(url);
	struct lfsfs_buf ex = LFSFS_BUF_INIT(1 << 16);
	struct lfsfs_objmeta m = { 0 };
	char red[2048];
	double t0, ms = 0;
	int rc;

	lfsfs_redact(url, red, sizeof(red));
	if (!ops) {
		rc = lfsfs_error_set(-LFSFS_EUNSUPPORTED, "unsupported URL; lfsfs reads %s",
				     lfsfs_store_schemes());
		goto report;
	}
	if (ops->explain)
		ops->explain(st, url, &ex);
	t0 = now_ms();
	rc = lfsfs_store_head(st, url, &m);
	ms = now_ms() - t0;
report:
	if (json) {
		cJSON *o = cJSON_CreateObject();
		char *txt;
		cJSON_AddStringToObject(o, "url", red);
		cJSON_AddStringToObject(o, "backend", ops ? ops->name : "none");
		explain_to_json(o, ex.data);
		cJSON_AddBoolToObject(o, "ok", rc == 0);
		if (!rc) {
			cJSON_AddNumberToObject(o, "head_ms", (double)(long)(ms * 10 + 0.5) / 10);
			if (m.has_size)
				cJSON_AddNumberToObject(o, "size", (double)m.size);
			if (m.etag[0])
				cJSON_AddStringToObject(o, "etag", m.etag);
			if (m.md5[0])
				cJSON_AddStringToObject(o, "md5", m.md5);
			if (m.sha256[0])
				cJSON_AddStringToObject(o, "sha256", m.sha256);
			if (m.crc32c[0])
				cJSON_AddStringToObject(o, "crc32c", m.crc32c);
			if (m.version[0])
				cJSON_AddStringToObject(o, "version", m.version);
			if (m.last_modified[0])
				cJSON_AddStringToObject(o, "last_modified", m.last_modified);
			if (m.content_type[0])
				cJSON_AddStringToObject(o, "content_type", m.content_type);
		} else {
			char msg[2048];
			cJSON_AddStringToObject(o, "code", lfsfs_code_name(rc));
			cJSON_AddStringToObject(o, "error",
						lfsfs_redact(lfsfs_error_message(), msg, sizeof(msg)));
		}
		txt = cJSON_PrintUnformatted(o);
		puts(txt ? txt : "{}");
		free(txt);
		cJSON_Delete(o);
	} else {
		printf("%s\n", red);
		printf("  backend: %s\n", ops ? ops->name : "none");
		for (const char *p = ex.data; p && *p;) {
			size_t n = strcspn(p, "\n");
			if (strncmp(p, "backend:", 8)) /* already said */
				printf("  %.*s\n", (int)n, p);
			p += n + (p[n] == '\n');
		}
		if (!rc) {
			printf("  head: ok in %.1f ms\n", ms);
			if (m.has_size)
				printf("  size: %" PRIu64 "\n", m.size);
			if (m.etag[0])
				printf("  etag: %s\n", m.etag);
			if (m.md5[0])
				printf("  md5: %s\n", m.md5);
			if (m.sha256[0])
				printf("  sha256: %s\n", m.sha256);
			if (m.crc32c[0])
				printf("  crc32c: %s\n", m.crc32c);
			if (m.version[0])
				printf("  version: %s\n", m.version);
			if (m.last_modified[0])
				printf("  last-modified: %s\n", m.last_modified);
			if (m.content_type[0])
				printf("  content-type: %s\n", m.content_type);
		} else {
			char msg[2048];
			printf("  head: FAILED (%s)\n  fix: %s\n", lfsfs_code_name(rc),
			       lfsfs_redact(lfsfs_error_message(), msg, sizeof(msg)));
		}
	}
	lfsfs_buf_release(&ex);
	return rc;
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = NULL;
	struct lfsfs_config *cfg = NULL;
	struct lfsfs_net *net = NULL;
	struct lfsfs_store st;
	int c, json = 0, rc, worst = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(doctor_usage, stdout);
			return EXIT_OK;
		default:
			fputs(doctor_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(doctor_usage, stderr);
		return EXIT_USAGE;
	}
	if (!repo && access(".git", F_OK) == 0)
		repo = ".";
	if ((rc = lfsfs_config_load(repo, &cfg))) {
		cli_error("cannot read lfsfs settings: %s", strerror(-rc));
		return EXIT_FAIL;
	}
	if ((rc = lfsfs_net_new(&net))) {
		cli_error("cannot start the network engine: %s", lfsfs_error_message());
		lfsfs_config_free(cfg);
		return EXIT_FAIL;
	}
	lfsfs_store_init(&st, net, cfg);
	for (int i = optind; i < argc; i++) {
		rc = doctor_one(&st, argv[i], json);
		if (rc && (!worst || cli_exit_for(rc) > worst))
			worst = cli_exit_for(rc);
	}
	lfsfs_net_free(net);
	lfsfs_store_release(&st);
	lfsfs_config_free(cfg);
	return worst;
}
