/* The mountpoint -> daemon pid registry used by umount. */
#include "cli/runtime.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

static int registry_path(const char *mnt_abs, char *out, size_t cap)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char dir[4096];
	uint64_t h = 1469598103934665603ull;

	if (geteuid() == 0)
		snprintf(dir, sizeof(dir), "/run/lfsfs");
	else if (xdg && *xdg == '/')
		snprintf(dir, sizeof(dir), "%s/lfsfs", xdg);
	else
		snprintf(dir, sizeof(dir), "/tmp/lfsfs-%u", (unsigned)getuid());
	if (cli_mkdir_p(dir))
		return -1;
	for (const char *s = mnt_abs; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	snprintf(out, cap, "%s/%016llx.pid", dir, (unsigned long long)h);
	return 0;
}

void lfsfs_runtime_register(const char *mnt_abs, pid_t pid)
{
	char path[4200];
	FILE *f;

	if (registry_path(mnt_abs, path, sizeof(path)))
		return;
	if ((f = fopen(path, "w"))) {
		fprintf(f, "%d\n%s\n", (int)pid, mnt_abs);
		fclose(f);
	}
}

void lfsfs_runtime_unregister(const char *mnt_abs)
{
	char path[4200];

	if (!registry_path(mnt_abs, path, sizeof(path)))
		unlink(path);
}

pid_t lfsfs_runtime_lookup(const char *mnt_abs)
{
	char path[4200];
	int pid = 0;
	FILE *f;

	if (registry_path(mnt_abs, path, sizeof(path)))
		return 0;
	if (!(f = fopen(path, "r")))
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 0 ? (pid_t)pid : 0;
}
