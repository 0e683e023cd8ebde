/*
 * The lfsfs command line: one cmd_<name>() per file, listed in the table
 * in main.c with its one-line help.  Commands print and return an exit
 * status; only this directory may print to the terminal or exit.
 */
#ifndef LFSFS_CLI_H
#define LFSFS_CLI_H

#include <stdint.h>

struct lfsfs_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

/* Exit statuses (documented in docs/CLI.md). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,     /* the operation failed */
	EXIT_USAGE = 2,    /* bad command line */
	EXIT_INTEGRITY = 3,/* SIZE/CHECKSUM_MISMATCH, IMMUTABILITY_VIOLATION, UNSTABLE_OBJECT_SOURCE */
	EXIT_SOURCE = 4,   /* SOURCE_NOT_ACCESSIBLE, CREDENTIALS_MISSING */
};

int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_track_remote(int argc, char **argv);
int cmd_add_url(int argc, char **argv);
int cmd_meta(int argc, char **argv);
int cmd_fhir(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_transfer_agent(int argc, char **argv);
int cmd_hook(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_uninstall(int argc, char **argv);

/* "error: <msg>" on stderr (message lowercase, subject quoted). */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parse "123", "64K", "10M", "2G", "1T" (binary units). -1 on error. */
int cli_parse_size(const char *s, uint64_t *out);
/* $XDG_CACHE_HOME/lfsfs or ~/.cache/lfsfs (malloc'd). */
char *cli_default_cache_dir(void);
/* mkdir -p with mode 0700 for created parts. 0 or -1 (errno set). */
int cli_mkdir_p(const char *dir);
/* Map a library return code to an exit status. */
int cli_exit_for(int rc);

#endif
