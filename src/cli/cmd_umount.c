/* `lfsfs umount`: unmount, including stale mounts, and wait for the daemon. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/runtime.h"
#include "util/path.h"

static const char umount_usage[] =
	"usage: lfsfs umount [--lazy] MOUNTPOINT\n"
	"\n"
	"Unmount an lfsfs mount and wait (up to 60 s) for its daemon to flush the\n"
	"cache index and exit. Also cleans up a stale mount whose daemon was killed.\n"
	"\n"
	"  -l, --lazy   detach now even if files are open (the daemon exits when\n"
	"               the last one is closed)\n"
	"  -h, --help   show this help\n";

static int run_fusermount(const char *mnt, int lazy)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (lazy)
			execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", "-u", "--", mnt, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		errno = ENOENT;
		return -2;
	}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int cmd_umount(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "lazy", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, lazy = 0, rc;
	char *mnt;
	pid_t pid;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+lh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			lazy = 1;
			break;
		case 'h':
			fputs(umount_usage, stdout);
			return EXIT_OK;
		default:
			fputs(umount_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fputs(umount_usage, stderr);
		return EXIT_USAGE;
	}
	/* lexical: realpath() fails on a stale mount (ENOTCONN) */
	mnt = lfsfs_path_absolute(argv[optind]);
	if (!mnt) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	pid = lfsfs_runtime_lookup(mnt);
	if (geteuid() == 0) {
		rc = umount2(mnt, lazy ? MNT_DETACH : 0);
		if (rc && errno == EBUSY && !lazy) {
			cli_error("'%s' is busy: close the files and shells using it (see "
				  "'fuser -vm %s'), or use 'lfsfs umount --lazy'", mnt, mnt);
			free(mnt);
			return EXIT_FAIL;
		}
		if (rc) {
			cli_error("cannot unmount '%s': %s", mnt,
				  errno == EINVAL ? "not a mountpoint" : strerror(errno));
			if (errno == EINVAL && pid)
				lfsfs_runtime_unregister(mnt);
			free(mnt);
			return EXIT_FAIL;
		}
	} else {
		rc = run_fusermount(mnt, lazy);
		if (rc == -2) {
			cli_error("fusermount3 is missing; install the 'fuse3' package");
			free(mnt);
			return EXIT_FAIL;
		}
		if (rc) {
			cli_error("cannot unmount '%s' (see the fusermount3 message above); if it is "
				  "busy, close the files using it or use 'lfsfs umount --lazy'", mnt);
			free(mnt);
			return EXIT_FAIL;
		}
	}
	if (pid > 0 && !lazy) {
		/* wait for the daemon to flush and exit */
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		int i;
		for (i = 0; i < 3000 && kill(pid, 0) == 0; i++) {
			char st[64], path[64];
			FILE *f;
			snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
			/* a zombie child of ours (foreground test runs) counts as gone */
			if ((f = fopen(path, "r"))) {
				int zombie = fgets(st, sizeof(st), f) && strstr(st, ") Z");
				fclose(f);
				if (zombie)
					break;
			}
			nanosleep(&ts, NULL);
		}
		if (i == 3000)
			fprintf(stderr, "lfsfs: warning: daemon %d still running after 60 s\n",
				(int)pid);
	}
	lfsfs_runtime_unregister(mnt);
	free(mnt);
	return EXIT_OK;
}
