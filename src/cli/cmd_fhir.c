/* `lfsfs fhir`: FHIR R4 DocumentReference NDJSON from .lfs-meta/metadata.json. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lfsfs/error.h"
#include "meta/fhir.h"
#include "util/path.h"

static const char fhir_usage[] =
        "usage: lfsfs fhir [--repo DIR] [--input FILE] [--output FILE]\n"
        "\n"
        "Write one FHIR R4 DocumentReference per object of .lfs-meta/metadata.json,\n"
        "one JSON resource per line (NDJSON), sorted by path; see docs/FHIR.md for\n"
        "the mapping. The output is replaced atomically and is byte-identical when\n"
        "the input is unchanged.\n"
        "\n"
        "  --repo DIR     the repository (default: the current directory)\n"
        "  --input FILE   default: DIR/.lfs-meta/metadata.json\n"
        "  --output FILE  default: DIR/META/DocumentReference.ndjson ('-': standard\n"
        "                 output); missing directories are created\n"
        "\n"
        "Entries that cannot become a valid resource (no remote_url, a bad size,\n"
        "patient or specimen, a path outside the repository, ...) are reported and\n"
        "left out; the others are written and the exit status is 1. Malformed JSON\n"
        "leaves the output untouched and exits 1.\n";

/* Skipped entries: counted, and reported with control bytes masked. */
static void on_skipped(const char *path, const char *why, void *ctx)
{
	char shown[512];
	size_t i;

	(*(size_t *)ctx)++;
	for (i = 0; path[i] && i + 1 < sizeof(shown); i++)
		shown[i] = (unsigned char)path[i] < 0x20 || path[i] == 0x7f ? '?' : path[i];
	shown[i] = '\0';
	fprintf(stderr, "lfsfs: warning: skipping '%s%s': %s\n", shown, path[i] ? "..." : "", why);
}

int cmd_fhir(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *repo = ".", *input = NULL, *output = NULL;
	char *in_def = NULL, *out_def = NULL;
	struct lfsfs_fhir_set *set = NULL;
	struct stat ist, ost;
	size_t skipped = 0;
	int c, rc, repo_given = 0, ret = EXIT_FAIL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			repo_given = 1;
			break;
		case 'i':
			input = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'h':
			fputs(fhir_usage, stdout);
			return EXIT_OK;
		default:
			fputs(fhir_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc || !*repo || (input && !*input) || (output && !*output)) {
		fputs(fhir_usage, stderr);
		return EXIT_USAGE;
	}
	/* Without --repo, plain relative names read better in messages. */
	if (!input) {
		in_def = repo_given ? lfsfs_path_join(repo, ".lfs-meta/metadata.json") :
		                      strdup(".lfs-meta/metadata.json");
		input = in_def;
	}
	if (!output) {
		out_def = repo_given ? lfsfs_path_join(repo, "META/DocumentReference.ndjson") :
		                       strdup("META/DocumentReference.ndjson");
		output = out_def;
	}
	if (!input || !output) {
		cli_error("out of memory");
		goto out;
	}
	if (strcmp(output, "-") && !stat(input, &ist) && !stat(output, &ost) &&
	    ist.st_dev == ost.st_dev && ist.st_ino == ost.st_ino) {
		cli_error("refusing to write '%s': it is the input file; give another --output",
		          output);
		goto out;
	}
	rc = lfsfs_fhir_load(input, &set, on_skipped, &skipped);
	if (rc == -ENOENT) {
		cli_error("%s; run in the repository or give --repo DIR or --input FILE",
		          lfsfs_error_message());
		goto out;
	}
	if (rc) {
		cli_error("%s", lfsfs_error_message());
		goto out;
	}
	if (!strcmp(output, "-")) {
		rc = lfsfs_fhir_write_fd(set, STDOUT_FILENO);
		if (rc) {
			cli_error("cannot write to standard output: %s", lfsfs_error_message());
			goto out;
		}
	} else {
		rc = lfsfs_fhir_write_file(set, output);
		if (rc) {
			cli_error("%s", lfsfs_error_message());
			goto out;
		}
		fprintf(stderr, "lfsfs: wrote %zu DocumentReference resource%s to '%s'\n", set->n,
		        set->n == 1 ? "" : "s", output);
	}
	if (skipped) {
		cli_error("%zu entr%s of '%s' skipped (see above); fix and run again", skipped,
		          skipped == 1 ? "y" : "ies", input);
		goto out;
	}
	ret = EXIT_OK;
out:
	lfsfs_fhir_set_free(set);
	free(in_def);
	free(out_def);
	return ret;
}
