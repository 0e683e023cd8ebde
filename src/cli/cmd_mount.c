/* `lfsfs mount`: check everything, start the daemon, return once mounted. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cli/cli.h"
#include "cli/runtime.h"
#include "fuse/fs.h"
#include "lfsfs/error.h"
#include "net/net.h"
#include "resolve/resolve.h"
#include "store/store.h"
#include "util/log.h"
#include "util/config.h"
#include "util/path.h"
#include "view/view.h"

static const char mount_usage[] =
	"usage: lfsfs mount [OPTIONS] REPO MOUNTPOINT\n"
	"\n"
	"Mount the working tree of the git repository REPO read-only at MOUNTPOINT.\n"
	"Git LFS pointer files and .lfs-meta/metadata.json entries appear as regular\n"
	"files of their real size; reading them fetches only the blocks touched.\n"
	"Returns once the mount is ready (the daemon keeps running in the background).\n"
	"\n"
	"options:\n"
	"  --cache-dir DIR     block cache location (default $XDG_CACHE_HOME/lfsfs\n"
	"                      or ~/.cache/lfsfs); one mount per cache dir\n"
	"  --cache-size SIZE   evict least recently used blocks beyond SIZE\n"
	"                      (e.g. 500M, 20G; default: unlimited)\n"
	"  --block-size SIZE   cache block size for new objects (default 1M)\n"
	"  --readahead SIZE    largest sequential readahead window (default 64M)\n"
	"  -f, --foreground    stay in the foreground (logs to stderr)\n"
	"  --log-level LEVEL   error, warn, info or debug (default warn)\n"
	"  --log-file FILE     log here (default: DIR/lfsfs.log when in background)\n"
	"  --allow-other       let other users read the mount (needs user_allow_other\n"
	"                      in /etc/fuse.conf unless root)\n"
	"  -h, --help          show this help\n"
	"\n"
	"Unmount with 'lfsfs umount MOUNTPOINT'.\n";

struct mount_opts {
	const char *repo, *mnt;
	char *cache_dir;
	uint64_t cache_size, block_size, readahead;
	int foreground, allow_other, log_level;
	const char *log_file;
};

/* Report to the waiting parent: "OK" or the error text. */
static void report(int fd, const char *msg)
{
	if (fd < 0)
		return;
	if (write(fd, msg, strlen(msg)) < 0) {
		/* the parent is gone; nothing else to tell */
	}
	close(fd);
}

static int check_mountpoint(const char *mnt)
{
	struct stat sb, pb;
	char parent[PATH_MAX];

	if (stat(mnt, &sb)) {
		if (errno == ENOTCONN) {
			cli_error("'%s' is a stale lfsfs mount (its daemon is gone); run "
				  "'lfsfs umount %s' first", mnt, mnt);
			return -1;
		}
		cli_error("mountpoint '%s': %s; create it with 'mkdir -p %s'", mnt,
			  strerror(errno), mnt);
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		cli_error("mountpoint '%s' is not a directory", mnt);
		return -1;
	}
	snprintf(parent, sizeof(parent), "%s/..", mnt);
	if (stat(parent, &pb) == 0 && (pb.st_dev != sb.st_dev || pb.st_ino == sb.st_ino)) {
		cli_error("mountpoint '%s' is busy: something is already mounted there; "
			  "unmount it first ('lfsfs umount %s')", mnt, mnt);
		return -1;
	}
	if (access("/dev/fuse", R_OK | W_OK)) {
		cli_error("cannot use /dev/fuse: %s; load the fuse module ('modprobe fuse') or, "
			  "in a container, pass the device (--device /dev/fuse)", strerror(errno));
		return -1;
	}
	if (geteuid() != 0 && system("command -v fusermount3 >/dev/null 2>&1") != 0) {
		cli_error("fusermount3 is missing: unprivileged mounts need it; install the "
			  "'fuse3' package");
		return -1;
	}
	return 0;
}

static void write_state(const struct mount_opts *o, const char *repo_abs, const char *mnt_abs)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	cJSON *j = cJSON_CreateObject();
	char *txt;
	FILE *f;

	if (!j)
		return;
	cJSON_AddNumberToObject(j, "pid", (double)getpid());
	cJSON_AddStringToObject(j, "repo", repo_abs);
	cJSON_AddStringToObject(j, "mountpoint", mnt_abs);
	cJSON_AddNumberToObject(j, "limit_bytes", (double)o->cache_size);
	cJSON_AddNumberToObject(j, "block_size", (double)(o->block_size ? o->block_size : 1 << 20));
	txt = cJSON_Print(j);
	cJSON_Delete(j);
	snprintf(path, sizeof(path), "%s/mount.json", o->cache_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (txt && (f = fopen(tmp, "w"))) {
		fputs(txt, f);
		fputc('\n', f);
		if (fclose(f) == 0)
			rename(tmp, path);
	}
	free(txt);
}

/* Runs in the daemon (or in the foreground): serve until unmounted. */
static int serve(struct mount_opts *o, struct lfsfs_view *view, const struct lfsfs_config *cfg,
		 const char *mnt_abs, int ready_fd)
{
	struct lfsfs_cache_opts copts = { 0 };
	struct lfsfs_net *net = NULL;
	struct lfsfs_store store = { 0 };
	struct lfsfs_cache *cache = NULL;
	struct lfsfs_fs *fs = NULL;
	struct fuse_session *se = NULL;
	struct fuse_loop_config lcfg = { .clone_fd = 0, .max_idle_threads = 16 };
	char optstr[256], msg[1200];
	char *fargv[4];
	struct fuse_args args;
	int rc, mounted = 0, ret = EXIT_FAIL;

	if ((rc = lfsfs_net_new(&net))) {
		snprintf(msg, sizeof(msg), "cannot start the network engine: %s",
			 lfsfs_error_message());
		goto fail;
	}
	lfsfs_store_init(&store, net, cfg);
	if ((rc = lfsfs_resolve_configure(lfsfs_view_resolver(view), cfg, net))) {
		snprintf(msg, sizeof(msg), "%s", lfsfs_error_message());
		goto fail;
	}
	copts.dir = o->cache_dir;
	copts.limit = o->cache_size;
	copts.block_size = (uint32_t)o->block_size;
	copts.max_readahead = (uint32_t)o->readahead;
	if ((rc = lfsfs_cache_open(&copts, &store, &cache))) {
		snprintf(msg, sizeof(msg), "%s", lfsfs_error_message());
		goto fail;
	}
	if ((rc = lfsfs_fs_new(view, cache, &fs))) {
		snprintf(msg, sizeof(msg), "out of memory");
		goto fail;
	}
	snprintf(optstr, sizeof(optstr), "ro,fsname=lfsfs,subtype=lfsfs,default_permissions%s",
		 o->allow_other ? ",allow_other" : "");
	fargv[0] = "lfsfs";
	fargv[1] = "-o";
	fargv[2] = optstr;
	fargv[3] = NULL;
	args = (struct fuse_args)FUSE_ARGS_INIT(3, fargv);
	se = lfsfs_fs_session(fs, &args);
	if (!se) {
		snprintf(msg, sizeof(msg), "cannot create the FUSE session (see messages above)");
		goto fail;
	}
	if (fuse_set_signal_handlers(se)) {
		snprintf(msg, sizeof(msg), "cannot install signal handlers");
		goto fail;
	}
	if (fuse_session_mount(se, mnt_abs)) {
		snprintf(msg, sizeof(msg), "cannot mount at '%s' (is it busy, or does "
			 "--allow-other need user_allow_other in /etc/fuse.conf?)", mnt_abs);
		goto fail;
	}
	mounted = 1;
	write_state(o, lfsfs_view_repo(view), mnt_abs);
	lfsfs_runtime_register(mnt_abs, getpid());
	log_info("mounted '%s' at '%s' (cache '%s')", lfsfs_view_repo(view), mnt_abs,
		 o->cache_dir);
	report(ready_fd, "OK");
	ready_fd = -1;
	if (!o->foreground) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			if (!o->log_file)
				dup2(null, 2);
			if (null > 2)
				close(null);
		}
	}
	rc = fuse_session_loop_mt(se, &lcfg);
	ret = rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? EXIT_OK : EXIT_FAIL;
	log_info("unmounting '%s'", mnt_abs);
	goto out;
fail:
	log_error("%s", msg);
	if (ready_fd < 0)
		cli_error("%s", msg);
	report(ready_fd, msg);
out:
	if (se) {
		if (mounted)
			fuse_session_unmount(se);
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
	if (mounted)
		lfsfs_runtime_unregister(mnt_abs);
	lfsfs_fs_free(fs);
	lfsfs_cache_close(cache);
	if (net) {
		lfsfs_net_free(net);
		lfsfs_store_release(&store);
	}
	return ret;
}

int cmd_mount(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "cache-size", required_argument, NULL, 'S' },
		{ "block-size", required_argument, NULL, 'B' },
		{ "readahead", required_argument, NULL, 'R' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "log-file", required_argument, NULL, 'F' },
		{ "allow-other", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mount_opts o = { .log_level = LFSFS_LOG_WARN };
	int ret = EXIT_FAIL;
	struct lfsfs_view *view = NULL;
	struct lfsfs_config *cfg = NULL;
	char mnt_abs[PATH_MAX], log_default[PATH_MAX + 16];
	int c, rc, pipefd[2];
	pid_t pid;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+fh", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			free(o.cache_dir);
			o.cache_dir = strdup(optarg);
			break;
		case 'S':
			if (cli_parse_size(optarg, &o.cache_size)) {
				cli_error("bad --cache-size '%s'; use a size like 500M or 20G", optarg);
				ret = EXIT_USAGE;
				goto out;
			}
			break;
		case 'B':
			if (cli_parse_size(optarg, &o.block_size) || o.block_size < 4096 ||
			    o.block_size > (64u << 20) || (o.block_size & (o.block_size - 1))) {
				cli_error("bad --block-size '%s'; use a power of two from 4K to 64M",
					  optarg);
				ret = EXIT_USAGE;
				goto out;
			}
			break;
		case 'R':
			if (cli_parse_size(optarg, &o.readahead) || o.readahead > (1u << 30)) {
				cli_error("bad --readahead '%s'; use a size up to 1G", optarg);
				ret = EXIT_USAGE;
				goto out;
			}
			break;
		case 'f':
			o.foreground = 1;
			break;
		case 'L':
			if ((o.log_level = lfsfs_log_level_parse(optarg)) < 0) {
				cli_error("bad --log-level '%s'; use error, warn, info or debug", optarg);
				ret = EXIT_USAGE;
				goto out;
			}
			break;
		case 'F':
			o.log_file = optarg;
			break;
		case 'A':
			o.allow_other = 1;
			break;
		case 'h':
			fputs(mount_usage, stdout);
			ret = EXIT_OK;
			goto out;
		default:
			fputs(mount_usage, stderr);
			ret = EXIT_USAGE;
			goto out;
		}
	}
	if (argc - optind != 2) {
		fputs(mount_usage, stderr);
		ret = EXIT_USAGE;
		goto out;
	}
	o.repo = argv[optind];
	o.mnt = argv[optind + 1];
	lfsfs_log_set_level(o.log_level);

	if (check_mountpoint(o.mnt))
		goto out;
	if (!realpath(o.mnt, mnt_abs)) {
		cli_error("mountpoint '%s': %s", o.mnt, strerror(errno));
		goto out;
	}
	if (!o.cache_dir)
		o.cache_dir = cli_default_cache_dir();
	if (!o.cache_dir) {
		cli_error("out of memory");
		goto out;
	}
	{
		/* the daemon changes directory: make the cache path absolute */
		char *abs = lfsfs_path_absolute(o.cache_dir);
		if (!abs) {
			cli_error("out of memory");
			goto out;
		}
		free(o.cache_dir);
		o.cache_dir = abs;
	}
	if (!o.log_file && !o.foreground) {
		if (cli_mkdir_p(o.cache_dir) == 0) {
			snprintf(log_default, sizeof(log_default), "%s/lfsfs.log", o.cache_dir);
			o.log_file = log_default;
		}
	}
	if (o.log_file && lfsfs_log_open(o.log_file)) {
		cli_error("cannot open log file '%s': %s", o.log_file, strerror(errno));
		goto out;
	}
	if ((rc = lfsfs_view_open(o.repo, &view))) {
		cli_error("%s", lfsfs_error_message());
		ret = cli_exit_for(rc);
		goto out;
	}
	if ((rc = lfsfs_config_load(lfsfs_view_repo(view), &cfg))) {
		cli_error("cannot read the lfsfs settings of '%s': %s", o.repo, strerror(-rc));
		goto out;
	}
	if (!strncmp(mnt_abs, lfsfs_view_repo(view), strlen(lfsfs_view_repo(view))) &&
	    (mnt_abs[strlen(lfsfs_view_repo(view))] == '/' ||
	     !mnt_abs[strlen(lfsfs_view_repo(view))])) {
		cli_error("mountpoint '%s' is inside the repository '%s'; mount it elsewhere",
			  o.mnt, lfsfs_view_repo(view));
		ret = EXIT_USAGE;
		goto out;
	}

	if (o.foreground) {
		ret = serve(&o, view, cfg, mnt_abs, -1);
		goto out;
	}
	if (pipe(pipefd)) {
		cli_error("pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		cli_error("fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		goto out;
	}
	if (pid == 0) {
		close(pipefd[0]);
		setsid();
		if (chdir("/")) {
			/* paths are absolute by now */
		}
		rc = serve(&o, view, cfg, mnt_abs, pipefd[1]);
		lfsfs_view_free(view);
		lfsfs_config_free(cfg);
		free(o.cache_dir);
		_exit(rc);
	}
	close(pipefd[1]);
	{
		char buf[1300];
		size_t n = 0;
		ssize_t k;
		while (n < sizeof(buf) - 1 &&
		       ((k = read(pipefd[0], buf + n, sizeof(buf) - 1 - n)) > 0 ||
			(k < 0 && errno == EINTR)))
			if (k > 0)
				n += (size_t)k;
		buf[n] = '\0';
		close(pipefd[0]);
		if (!strcmp(buf, "OK")) {
			fprintf(stderr, "lfsfs: mounted '%s' at '%s' (cache '%s', log '%s')\n",
				o.repo, mnt_abs, o.cache_dir, o.log_file ? o.log_file : "-");
			ret = EXIT_OK;
			goto out;
		}
		waitpid(pid, NULL, 0);
		if (n)
			cli_error("%s", buf);
		else
			cli_error("the lfsfs daemon exited before the mount was ready; see '%s'",
				  o.log_file ? o.log_file : "its log");
	}
out:
	lfsfs_view_free(view);
	lfsfs_config_free(cfg);
	free(o.cache_dir);
	return ret;
}
