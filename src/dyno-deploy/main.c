/*
 * dyno-deploy: numbered releases, config vars and rollback.  A release is
 * built in .dyno/tmp, checked (Procfile, release phase), and only then
 * renamed into .dyno/releases/N; .dyno/current moves with one rename, so a
 * killed deploy leaves the old release running and no half-made new one.
 * Code is stored once per checksum in .dyno/slugs and shared by releases.
 * See dyno-deploy(1).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "deploy.h"

struct app app;
struct deploy_opts opt = {
	NULL, NULL, { NULL }, 0,
	15 * 60000, 120000,
	-1, 0, 20, 0,
	500 * 1024,	/* Heroku's slug cap */
	NULL, 0, 0, NULL, 0,
};
char self_dir[PATH_MAX];
/* What a deploy that fails leaves, removed at exit: its build folder and a
 * slug it stored that no release points at yet. */
char failed_build[PATH_MAX], failed_slug[PATH_MAX];
/* A build area of the dynos' user that a failed build leaves. */
char failed_area[PATH_MAX];
/* The process group of the build step running now: a deploy that is
 * stopped (Ctrl-C, SIGTERM, SIGHUP) takes it along. */
volatile pid_t build_pgid;

void
usage(FILE *fp)
{
	fprintf(fp,
"usage: dyno-deploy [-a APP] [-u USER] [-m DESC] [--ref REF] [--buildpack DIR] [options] SOURCE\n"
"       dyno-deploy [-a APP] releases\n"
"       dyno-deploy [-a APP] rollback [vN]\n"
"       dyno-deploy [-a APP] config [--show] | config:get KEY\n"
"       dyno-deploy [-a APP] config:set KEY=VALUE ... | config:unset KEY ...\n");
}

static void
help(void)
{
	usage(stdout);
	printf(
"\nBuild and switch to numbered releases; manage config vars.\n\n"
"SOURCE is a directory, a git repository, a .tar/.tar.gz/.tar.zst file or\n"
"an http(s) URL of a tarball.\n\n"
"  -a, --app DIR            app directory (default $DYNO_APP, then .)\n"
"  -m, --message DESC       the release's description\n"
"      --ref REF            git: deploy REF instead of HEAD\n"
"      --no-git             copy a git work tree as files, uncommitted too\n"
"      --buildpack DIR      run DIR's bin/detect, bin/compile, bin/release\n"
"                           (repeatable, in order)\n"
"      --build-timeout DUR  (15m)\n"
"      --max-source-size SIZE  a URL source's limit (500M)\n"
"      --wait / --no-wait   wait until every dyno runs the new release\n"
"                           (default: wait when a supervisor runs)\n"
"      --wait-timeout DUR   (120s)\n"
"      --rollback-on-failure  go back if the new release does not come up\n"
"      --keep N             releases kept (20)\n"
"  -u, --user USER          root only: run the buildpacks and the release\n"
"                           phase as USER (the dynos' user, as dyno-run -u)\n"
"      --trust-app-dir      with -u, build even if USER can write the app\n"
"                           directory, .dyno or the folder above\n"
"      --show               config: print values, not just names\n"
"  -h, --help               this help\n");
}

void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dyno-deploy: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void
state_path(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void
state_path(char *buf, size_t len, const char *fmt, ...)
{
	char rel[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (app_path(&app, buf, len, "%s", rel) == -1)
		die("path too long: %s", rel);
}

/*
 * rm -rf name in the folder dfd, never through a symlink: each folder is
 * opened with O_NOFOLLOW and emptied by its fd, so a tree someone else can
 * write while we remove it (a build area of the dynos' user) cannot lead
 * us out of it.
 */
static void
remove_at(int dfd, const char *name, int depth)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlinkat(dfd, name, 0);
		return;
	}
	fd = depth < 256 ? openat(dfd, name, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC) : -1;
	if (fd != -1) {
		(void)fchmod(fd, 0700);	/* a read-only folder empties too */
		if ((d = fdopendir(fd)) == NULL)
			close(fd);
		else {
			while ((de = readdir(d)) != NULL)
				if (strcmp(de->d_name, ".") != 0 &&
				    strcmp(de->d_name, "..") != 0)
					remove_at(dirfd(d), de->d_name, depth + 1);
			closedir(d);
		}
	}
	unlinkat(dfd, name, AT_REMOVEDIR);
}

/* rm -rf name, relative to dfd (a name in .dyno: app.fd). */
void
remove_tree_at(int dfd, const char *name)
{
	remove_at(dfd, name, 0);
}

/* rm -rf path; the folders above its last component are ours. */
void
remove_tree(const char *path)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int dfd;

	if (slash == NULL || slash[1] == '\0') {
		remove_at(AT_FDCWD, path, 0);
		return;
	}
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - path), path);
	dfd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1)
		return;
	remove_at(dfd, slash + 1, 0);
	close(dfd);
}

static void
on_stop(int sig)
{
	if (build_pgid > 0)
		kill(-build_pgid, SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
failed_cleanup(void)
{
	if (failed_area[0])
		area_leave(failed_area, -1);
	if (failed_build[0])
		remove_tree(failed_build);
	if (failed_slug[0])
		remove_tree(failed_slug);
}

/*
 * -u USER: it must exist and we must be root.  The build's commands get
 * our environment with USER's HOME, USER and LOGNAME, so that a tool that
 * keeps things in $HOME keeps them in USER's.
 */
static int
user_init(void)
{
	extern char **environ;
	struct passwd *pw = getpwnam(opt.user);
	size_t n = 0, i, k = 0;

	if (pw == NULL) {
		fprintf(stderr, "dyno-deploy: no such user \"%s\"\n", opt.user);
		return -1;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "dyno-deploy: -u needs root\n");
		return -1;
	}
	opt.uid = pw->pw_uid;
	opt.gid = pw->pw_gid;
	while (environ[n] != NULL)
		n++;
	if ((opt.user_env = calloc(n + 4, sizeof(char *))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "HOME=", 5) != 0 &&
		    strncmp(environ[i], "USER=", 5) != 0 &&
		    strncmp(environ[i], "LOGNAME=", 8) != 0)
			opt.user_env[k++] = environ[i];
	if (asprintf(&opt.user_env[k++], "HOME=%s", pw->pw_dir) == -1 ||
	    asprintf(&opt.user_env[k++], "USER=%s", pw->pw_name) == -1 ||
	    asprintf(&opt.user_env[k++], "LOGNAME=%s", pw->pw_name) == -1)
		return -1;
	return 0;
}

static int64_t
duration_arg(const char *name, const char *arg)
{
	int64_t v;

	if (parse_duration_ms(arg, &v) == -1 || v <= 0) {
		fprintf(stderr, "dyno-deploy: --%s: invalid duration \"%s\"\n",
		    name, arg);
		usage(stderr);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "app", required_argument, NULL, 'a' },
		{ "build-timeout", required_argument, NULL, 'T' },
		{ "buildpack", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "keep", required_argument, NULL, 'k' },
		{ "max-source-size", required_argument, NULL, 'S' },
		{ "message", required_argument, NULL, 'm' },
		{ "no-git", no_argument, NULL, 'G' },
		{ "no-wait", no_argument, NULL, 'n' },
		{ "ref", required_argument, NULL, 'r' },
		{ "rollback-on-failure", no_argument, NULL, 'R' },
		{ "show", no_argument, NULL, 's' },
		{ "trust-app-dir", no_argument, NULL, 't' },
		{ "user", required_argument, NULL, 'u' },
		{ "wait", no_argument, NULL, 'w' },
		{ "wait-timeout", required_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 }
	};
	const char *appdir = NULL, *cmd;
	char lockpath[4096], exe[PATH_MAX];
	int ch, show = 0, lockfd, rc;
	long v;

	while ((ch = getopt_long(argc, argv, "a:hm:u:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			appdir = optarg;
			break;
		case 'b':
			if (opt.nbuildpacks == BUILDPACKS_MAX) {
				fprintf(stderr, "dyno-deploy: at most %d buildpacks\n",
				    BUILDPACKS_MAX);
				return 2;
			}
			opt.buildpacks[opt.nbuildpacks++] = optarg;
			break;
		case 'G':
			opt.no_git = 1;
			break;
		case 'h':
			help();
			return 0;
		case 'k':
			if (parse_long(optarg, 1, 100000, &v) == -1) {
				fprintf(stderr, "dyno-deploy: --keep: invalid \"%s\"\n",
				    optarg);
				return 2;
			}
			opt.keep = (int)v;
			break;
		case 'm':
			opt.message = optarg;
			break;
		case 'n':
			opt.wait = 0;
			break;
		case 'r':
			opt.ref = optarg;
			break;
		case 'R':
			opt.rollback_on_failure = 1;
			break;
		case 's':
			show = 1;
			break;
		case 'S':
			if (parse_size_kb(optarg, &opt.max_source_kb) == -1 ||
			    opt.max_source_kb < 1) {
				fprintf(stderr, "dyno-deploy: --max-source-size: "
				    "invalid size \"%s\"\n", optarg);
				usage(stderr);
				exit(2);
			}
			break;
		case 'T':
			opt.build_ms = duration_arg("build-timeout", optarg);
			break;
		case 't':
			opt.trust_dir = 1;
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'w':
			opt.wait = 1;
			break;
		case 'W':
			opt.wait_ms = duration_arg("wait-timeout", optarg);
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	cmd = argv[0];
	/* Too many operands is a usage error, found before .dyno is made. */
	if (argc > 1 && strncmp(cmd, "config:", 7) != 0 &&
	    !(strcmp(cmd, "rollback") == 0 && argc == 2)) {
		usage(stderr);
		return 2;
	}
	/*
	 * The first deploy (or config:set before it, as on Heroku) makes the
	 * app directory, as git init makes its own: its last component only,
	 * 0755, with .dyno 0700 inside.  A command that reads needs an app.
	 */
	if (appdir != NULL && (strcmp(cmd, "config:set") == 0 || (argc == 1 &&
	    strncmp(cmd, "config", 6) != 0 && strcmp(cmd, "releases") != 0 &&
	    strcmp(cmd, "rollback") != 0)) && mkdir(appdir, 0755) == 0)
		fprintf(stderr, "dyno-deploy: created app directory %s\n", appdir);
	if (opt.user != NULL && user_init() == -1)
		return 2;
	if (app_init(&app, appdir) == -1) {
		fprintf(stderr, "dyno-deploy: %s\n", app.why);
		return 1;
	}
	/* Root builds as the dynos' user: as for dyno-run -u, that user must
	 * not be able to replace .dyno, which root builds and switches in. */
	if (opt.user != NULL && !opt.trust_dir) {
		char path[4096];
		if (app_safe_for(&app, opt.user, opt.uid, opt.gid, path,
		    sizeof(path)) == -1) {
			fprintf(stderr, "dyno-deploy: %s can be written by %s, who "
			    "could replace .dyno under root: make it root's (and "
			    "not group- or world-writable), or pass "
			    "--trust-app-dir\n", path, opt.user);
			return 1;
		}
	}
	if (strcmp(cmd, "config") == 0 && argc == 1)
		return config_show(show);
	if (strcmp(cmd, "config:get") == 0) {
		if (argc != 2 || !key_valid(argv[1], strlen(argv[1]))) {
			usage(stderr);
			return 2;
		}
		return config_get(argv[1]);
	}
	if (strcmp(cmd, "releases") == 0 && argc == 1)
		return releases_show();
	if (app_prepare(&app) == -1) {
		fprintf(stderr, "dyno-deploy: %s\n", app.why);
		return 1;
	}
	/* One writer of releases/, current and config at a time. */
	state_path(lockpath, sizeof(lockpath), "deploy.lock");
	lockfd = app_openat(&app, "deploy.lock", O_RDWR | O_CREAT, 0600);
	if (lockfd == -1 || flock(lockfd, LOCK_EX) == -1)
		die("cannot lock %s: %s", lockpath, strerror(errno));
	tmp_sweep();
	atexit(failed_cleanup);
	{
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	if (realpath("/proc/self/exe", exe) != NULL && strrchr(exe, '/')) {
		*strrchr(exe, '/') = '\0';
		snprintf(self_dir, sizeof(self_dir), "%s", exe);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "config:set") == 0)
		rc = config_change(argc - 1, argv + 1, 1);
	else if (strcmp(cmd, "config:unset") == 0)
		rc = config_change(argc - 1, argv + 1, 0);
	else if (strcmp(cmd, "rollback") == 0 && argc <= 2) {
		long target;
		if (argc == 2) {
			if (parse_long(argv[1][0] == 'v' ? argv[1] + 1 : argv[1], 1,
			    LONG_MAX, &target) == -1) {
				fprintf(stderr, "dyno-deploy: rollback: expected vN, "
				    "not \"%s\"\n", argv[1]);
				return 2;
			}
		} else {
			size_t n, i;
			long *list = release_list(&n), cur = release_current();
			target = 0;
			for (i = 0; i < n; i++)
				if (list[i] < cur)
					target = list[i];
			free(list);
			if (target == 0)
				die("no release before v%ld to roll back to", cur);
		}
		rc = rollback_to(target);
	} else if (argc == 1 && strncmp(cmd, "config", 6) != 0)
		rc = deploy(cmd);
	else {
		usage(stderr);
		rc = 2;
	}
	curl_global_cleanup();
	return rc;
}

