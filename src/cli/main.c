/* lfsfs: the command table and dispatch. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct lfsfs_cmd commands[] = {
	{ "mount", cmd_mount, "mount a repository: pointers appear as full-size files, read lazily" },
	{ "umount", cmd_umount, "unmount (also a stale mount left by a killed daemon)" },
	{ "cache", cmd_cache, "show (stat) or empty (clear) the local block cache" },
	{ "doctor", cmd_doctor, "explain how each URL would be read: backend, endpoint, credentials, HEAD" },
	{ "track-remote", cmd_track_remote, "register bucket/web objects by URL (HEAD only, no copy); --batch for many" },
	{ "add-url", cmd_add_url, "register an existing object as a Git LFS pointer (given sha256, or --hash)" },
	{ "meta", cmd_meta, "meta sync: write back sha256s learned by mounts as pointers and records" },
	{ "ls", cmd_ls, "list tracked objects: path, size, oid or etag, URL, cache state" },
	{ "verify", cmd_verify, "check tracked objects against their origin (HEAD, or re-hash with --deep)" },
	{ "fhir", cmd_fhir, "write FHIR R4 DocumentReference NDJSON from .lfs-meta/metadata.json" },
	{ "transfer-agent", cmd_transfer_agent, "Git LFS custom transfer agent: git lfs pull from the lfsfs cache and registered URLs" },
	{ "hook", cmd_hook, "git hooks: pre-commit (local hint cache), pre-push (check against DRS/Indexd)" },
	{ "install", cmd_install, "install the pre-commit/pre-push hooks (chained) and the LFS transfer agent" },
	{ "uninstall", cmd_uninstall, "remove what 'install' added, putting earlier hooks back" },
	{ "version", cmd_version, "print the version" },
	{ "help", cmd_help, "show this help, or a command's with 'help COMMAND'" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: lfsfs COMMAND [ARGS...]\n\n"
		   "Read Git LFS and cloud-registered data without downloading it first.\n\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'lfsfs COMMAND --help' for a command's options.\n");
}

static int cmd_version(int argc, char **argv)
{
	printf("lfsfs %s\n", LFSFS_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	if (argc > 1) {
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (!strcmp(argv[1], commands[i].name)) {
				char *av[] = { argv[1], "--help", NULL };
				return commands[i].fn(2, av);
			}
		fprintf(stderr, "lfsfs: error: unknown command '%s'\n", argv[1]);
		return EXIT_USAGE;
	}
	usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(1, argv);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(1, argv);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "lfsfs: error: unknown command '%s'; see 'lfsfs --help'\n", argv[1]);
	return EXIT_USAGE;
}
