/* Small helpers shared by the subcommands. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "util/path.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("lfsfs: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case '\0': break;
	case 'K': mul = 1ull << 10; end++; break;
	case 'M': mul = 1ull << 20; end++; break;
	case 'G': mul = 1ull << 30; end++; break;
	case 'T': mul = 1ull << 40; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'I')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end)
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

char *cli_default_cache_dir(void)
{
	const char *x = getenv("XDG_CACHE_HOME");
	const char *home;

	if (x && *x == '/')
		return lfsfs_path_join(x, "lfsfs");
	home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/tmp";
	}
	return lfsfs_path_join(home, ".cache/lfsfs");
}

int cli_exit_for(int rc)
{
	switch (rc < 0 ? -rc : rc) {
	case 0:
		return EXIT_OK;
	case LFSFS_ESIZE_MISMATCH:
	case LFSFS_ECHECKSUM_MISMATCH:
	case LFSFS_EIMMUTABILITY:
	case LFSFS_EUNSTABLE_SOURCE:
		return EXIT_INTEGRITY;
	case LFSFS_ESOURCE_NOT_ACCESSIBLE:
	case LFSFS_ECREDENTIALS_MISSING:
		return EXIT_SOURCE;
	default:
		return EXIT_FAIL;
	}
}

int cli_mkdir_p(const char *dir)
{
	char tmp[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -1;
	return 0;
}
