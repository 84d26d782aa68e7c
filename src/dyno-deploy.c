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

#define CONFIG_MAX (32 * 1024)
#define BUILDPACKS_MAX 8

static struct app app;
static struct {
	const char *message, *ref;
	const char *buildpacks[BUILDPACKS_MAX];
	int nbuildpacks;
	int64_t build_ms, wait_ms;
	int wait, rollback_on_failure, keep, no_git;
	long max_source_kb;
	const char *user;	/* -u: the dynos' user, who runs the app's code */
	uid_t uid;
	gid_t gid;
	char **user_env;	/* our environment, HOME, USER, LOGNAME its */
	int trust_dir;
} opt = {
	NULL, NULL, { NULL }, 0,
	15 * 60000, 120000,
	-1, 0, 20, 0,
	500 * 1024,	/* Heroku's slug cap */
	NULL, 0, 0, NULL, 0,
};
static char self_dir[PATH_MAX];
/* What a deploy that fails leaves, removed at exit: its build folder and a
 * slug it stored that no release points at yet. */
static char failed_build[PATH_MAX], failed_slug[PATH_MAX];
/* A build area of the dynos' user that a failed build leaves. */
static char failed_area[PATH_MAX];
/* The process group of the build step running now: a deploy that is
 * stopped (Ctrl-C, SIGTERM, SIGHUP) takes it along. */
static volatile pid_t build_pgid;

static void
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

/* ---- small helpers ------------------------------------------------------ */

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
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

static void
state_path(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
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

/* rm -rf path; the folders above its last component are ours. */
static void
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

static void area_leave(const char *area, int logfd);
static void sanitize_tree(const char *dir, int logfd);

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

/* A command of the build: what run_cmd needs to start and watch it. */
struct cmd {
	char *const *argv;	/* exec'd as is, found in PATH */
	const char *cwd;	/* NULL: ours */
	char **envp;		/* NULL: ours */
	int in_fd;		/* -1: /dev/null */
	int out_fd;		/* -1: stdout goes where stderr goes */
	int logfd;		/* stderr (and stdout) appended here too, -1: not */
	int quiet;		/* not to our stdout as well */
	int as_user;		/* as the dynos' user (-u), not as us */
};

/*
 * Run c->argv through spawn_process, in a session of its own (killed as a
 * whole), its output (stderr always, stdout unless c->out_fd) sent to our
 * stdout and appended to c->logfd, killed when --build-timeout passes.
 * Returns the exit status (128+signal), or -1 if it could not run.
 */
static int
run_cmd(const struct cmd *c)
{
	extern char **environ;
	struct spawn_opts so;
	int fds[2], status = 0;
	int64_t deadline = clock_ms() + opt.build_ms;
	pid_t pid;
	char buf[8192];
	sigset_t stop, old;

	if (pipe2(fds, O_CLOEXEC) == -1)
		return -1;
	memset(&so, 0, sizeof(so));
	so.argv = c->argv;
	so.envp = c->envp != NULL ? c->envp : c->as_user ? opt.user_env :
	    environ;
	so.dir = c->cwd;
	so.in_fd = c->in_fd;
	so.out_fd = c->out_fd >= 0 ? c->out_fd : fds[1];
	so.err_fd = fds[1];
	so.new_session = 1;
	/* A kill -9 of the deploy must not leave its build running. */
	so.pdeathsig = SIGKILL;
	/* The app's code gains no privilege; an operator's build may. */
	so.setid_ok = !c->as_user;
	if (c->as_user) {
		so.user = opt.user;
		so.uid = opt.uid;
		so.gid = opt.gid;
	}
	fflush(stdout);
	/* No stop signal between fork and knowing the session to kill. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, &old);
	pid = spawn_process(&so);
	if (pid > 0)
		build_pgid = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(fds[1]);
	if (pid == -1) {
		close(fds[0]);
		return -1;
	}
	for (;;) {
		struct pollfd pfd = { fds[0], POLLIN, 0 };
		int64_t now = clock_ms();
		ssize_t n;

		if (now >= deadline) {
			kill(-pid, SIGKILL);
			fprintf(stderr, "dyno-deploy: %s timed out after %llds\n",
			    c->argv[0], (long long)(opt.build_ms / 1000));
			break;
		}
		if (poll(&pfd, 1, (int)(deadline - now > 1000 ? 1000 :
		    deadline - now)) <= 0)
			continue;
		n = read(fds[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		if (!c->quiet)
			(void)!write(1, buf, (size_t)n);
		if (c->logfd >= 0)
			(void)!write(c->logfd, buf, (size_t)n);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	kill(-pid, SIGKILL);	/* whatever it left behind */
	build_pgid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* run_cmd as us, output (stdout too) to our stdout and logfd. */
static int
run_logged(char *const argv[], const char *cwd, char **envp, int logfd,
    int quiet)
{
	struct cmd c = { argv, cwd, envp, -1, -1, logfd, quiet, 0 };

	return run_cmd(&c);
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

/* ---- config ----------------------------------------------------------------- */

static void
config_load(struct env *e)
{
	char path[4096], err[DYNO_ERR_MAX];

	env_init(e, NULL);
	state_path(path, sizeof(path), "config");
	if (env_load_config(e, path, err, sizeof(err)) == -1)
		die("%s", err);
}

static void
config_save(const struct env *e)
{
	char path[4096], *text;
	size_t len;

	if ((text = env_format_config(e, &len)) == NULL)
		die("out of memory");
	if (len > CONFIG_MAX)
		die("config vars would take %zu bytes; at most %d", len, CONFIG_MAX);
	state_path(path, sizeof(path), "config");
	if (atomicfile_write(path, text, len, 0600, 1) == -1)
		die("cannot write %s: %s", path, strerror(errno));
	free(text);
}

/* ---- releases ----------------------------------------------------------------- */

static long
release_current(void)
{
	char path[4096], target[PATH_MAX], *base;
	ssize_t n;
	long v;

	state_path(path, sizeof(path), "current");
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	base = strrchr(target, '/');
	if (parse_long(base ? base + 1 : target, 1, LONG_MAX, &v) == -1)
		return 0;
	return v;
}

static int
cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* The release numbers, oldest first. */
static long *
release_list(size_t *n)
{
	char path[4096];
	struct dirent *de;
	long *list = NULL, v;
	size_t cap = 0;
	DIR *d;

	*n = 0;
	state_path(path, sizeof(path), "releases");
	if ((d = opendir(path)) == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (parse_long(de->d_name, 1, LONG_MAX, &v) == -1)
			continue;
		if (*n == cap) {
			long *nl = realloc(list, (cap = cap * 2 + 16) * sizeof(long));
			if (nl == NULL)
				die("out of memory");
			list = nl;
		}
		list[(*n)++] = v;
	}
	closedir(d);
	if (*n > 1)
		qsort(list, *n, sizeof(long), cmp_long);
	return list;
}

static void
meta_get(long v, const char *key, char *out, size_t len)
{
	char path[4096], text[8192];

	out[0] = '\0';
	state_path(path, sizeof(path), "releases/%ld/meta", v);
	if (file_read(path, text, sizeof(text)) > 0)
		kv_get(text, key, out, len);
}

static int
releases_show(void)
{
	size_t n, i;
	long *list = release_list(&n), cur = release_current();

	if (n == 0)
		printf("No releases yet; %s runs in dev mode.\n", app.dir);
	for (i = n; i-- > 0;) {
		char created[32], desc[512], when[32] = "?";
		time_t t;
		struct tm tm;

		meta_get(list[i], "created", created, sizeof(created));
		meta_get(list[i], "description", desc, sizeof(desc));
		t = (time_t)strtoll(created, NULL, 10);
		if (t > 0) {
			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		}
		printf("v%-4ld %s  %s%s\n", list[i], when, desc,
		    list[i] == cur ? "  (current)" : "");
	}
	free(list);
	return 0;
}

/* ---- the code: checksum, slug store --------------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A checksum of a tree: names, kinds, modes, contents, in sorted order. */
static void
tree_hash(struct sha256 *h, const char *root, const char *rel)
{
	char path[PATH_MAX], **names = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap * 2 + 32) * sizeof(char *));
			if (nn == NULL)
				die("out of memory");
			names = nn;
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(char *), cmp_str);
	for (i = 0; i < n; i++) {
		char sub[PATH_MAX], full[PATH_MAX], head[64];
		struct stat st;

		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
		snprintf(full, sizeof(full), "%s/%s", root, sub);
		if (lstat(full, &st) == -1)
			continue;
		snprintf(head, sizeof(head), "%c%o", S_ISDIR(st.st_mode) ? 'd' :
		    S_ISLNK(st.st_mode) ? 'l' : 'f', (unsigned)(st.st_mode & 07777));
		sha256_update(h, sub, strlen(sub) + 1);
		sha256_update(h, head, strlen(head) + 1);
		if (S_ISDIR(st.st_mode))
			tree_hash(h, root, sub);
		else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t k = readlink(full, target, sizeof(target));
			if (k > 0)
				sha256_update(h, target, (size_t)k);
		} else if (S_ISREG(st.st_mode)) {
			char buf[65536];
			ssize_t k;
			int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
			    O_NONBLOCK);
			while (fd >= 0 && (k = read(fd, buf, sizeof(buf))) > 0)
				sha256_update(h, buf, (size_t)k);
			if (fd >= 0)
				close(fd);
		}
		free(names[i]);
	}
	free(names);
}

/*
 * The built code's bytes must be on disk before a release can name them: a
 * power cut after the release is published must not leave it empty files.
 * The code was written by cp, tar or a buildpack, none of which syncs, so
 * sync the file system it is on once (syncfs), rather than fsync each of
 * possibly many thousand files.
 */
static int
sync_tree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd == -1)
		return -1;
	rc = syncfs(fd);
	close(fd);
	return rc;
}

/*
 * Move the built code into the slug store under its checksum, unless the
 * same code is there already, and leave a relative symlink in its place.
 */
static void
slug_store(const char *builddir, const char *sha)
{
	char code[PATH_MAX], slug[4096], slugs[4096], link[128];

	snprintf(code, sizeof(code), "%s/app", builddir);
	state_path(slugs, sizeof(slugs), "slugs");
	if (mkdir_mode(slugs, 0755) == -1)
		die("cannot make %s: %s", slugs, strerror(errno));
	state_path(slug, sizeof(slug), "slugs/%s", sha);
	if (access(slug, F_OK) == 0)
		remove_tree(code);		/* stored once already */
	else if (sync_tree(code) == -1)
		die("cannot sync the built code %s: %s", code, strerror(errno));
	else if (rename(code, slug) == -1)
		die("cannot store the slug %s: %s", slug, strerror(errno));
	else {
		snprintf(failed_slug, sizeof(failed_slug), "%s", slug);
		(void)dir_fsync(slugs);
	}
	snprintf(link, sizeof(link), "../../slugs/%s", sha);
	if (symlink(link, code) == -1)
		die("cannot link %s: %s", code, strerror(errno));
}

/* ---- fetching the source ------------------------------------------------------ */

static int
is_git(const char *src)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof(p), "%s/.git", src);
	if (stat(p, &st) == 0)
		return 1;
	snprintf(p, sizeof(p), "%s/objects", src);
	if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(p, sizeof(p), "%s/HEAD", src);
		return access(p, F_OK) == 0;
	}
	return 0;
}

struct fetch {
	int fd;
	unsigned long long got, max;	/* bytes written; the cap */
};

/* The body into the file, up to the cap: past it, the transfer stops. */
static size_t
curl_to_fd(char *p, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t n = size * nmemb, off = 0;

	if (f->got + n > f->max) {
		f->got = f->max + 1;
		return 0;
	}
	while (off < n) {
		ssize_t w = write(f->fd, p + off, n - off);
		if (w <= 0)
			return 0;
		off += (size_t)w;
	}
	f->got += n;
	return n;
}

/*
 * Fetch a URL into path with libcurl, three tries with backoff.  Each try
 * is bounded: --build-timeout in all, and --max-source-size bytes (a
 * source over it is refused at once, not tried again).
 */
static void
fetch_url(const char *url, const char *path)
{
	int attempt;

	for (attempt = 1; attempt <= 3; attempt++) {
		CURL *c = curl_easy_init();
		struct fetch f = { -1, 0, (unsigned long long)opt.max_source_kb * 1024 };
		long status = 0;
		CURLcode rc;

		f.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (c == NULL || f.fd == -1)
			die("cannot fetch %s: %s", url, strerror(errno));
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)opt.build_ms);
		curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)f.max);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "dyno-deploy");
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_to_fd);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
		rc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(c);
		close(f.fd);
		if (rc == CURLE_OK)
			return;
		if (rc == CURLE_FILESIZE_EXCEEDED || f.got > f.max)
			die("cannot fetch %s: over --max-source-size (%ldK)", url,
			    opt.max_source_kb);
		fprintf(stderr, "dyno-deploy: fetching %s (try %d of 3): %s\n", url,
		    attempt, curl_easy_strerror(rc));
		/* 4xx will not get better by asking again. */
		if (status >= 400 && status < 500)
			break;
		if (attempt < 3) {
			struct timespec ts = { attempt, 0 };
			nanosleep(&ts, NULL);	/* backoff between tries */
		}
	}
	die("cannot fetch %s", url);
}

/* Unpack a tarball (plain, gzip or zstd, told apart by GNU tar itself). */
static void
untar(const char *file, const char *dir, int logfd)
{
	char *argv[] = { "tar", "-x", "-f", (char *)file, "-C", (char *)dir,
	    "--no-same-owner", NULL };
	unsigned char magic[4] = { 0 };
	char *zargv[] = { "tar", "--zstd", "-x", "-f", (char *)file, "-C",
	    (char *)dir, "--no-same-owner", NULL };
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		die("cannot open %s: %s", file, strerror(errno));
	(void)!read(fd, magic, sizeof(magic));
	close(fd);
	if (run_logged(magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f &&
	    magic[3] == 0xfd ? zargv : argv, NULL, NULL, logfd, 0) != 0)
		die("cannot unpack %s", file);
}

/* A tarball with one top folder (as GitHub makes them): lift its contents. */
static void
lift_single_dir(const char *dir)
{
	char only[PATH_MAX] = "", tmp[PATH_MAX];
	struct dirent *de;
	int count = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		count++;
		snprintf(only, sizeof(only), "%s/%s", dir, de->d_name);
	}
	closedir(d);
	snprintf(tmp, sizeof(tmp), "%s/Procfile", dir);
	if (count != 1 || access(tmp, F_OK) == 0)
		return;
	{
		struct stat st;
		char up[PATH_MAX];
		if (lstat(only, &st) == -1 || !S_ISDIR(st.st_mode))
			return;
		snprintf(up, sizeof(up), "%s.lift", dir);
		if (rename(only, up) == -1 || rmdir(dir) == -1 ||
		    rename(up, dir) == -1)
			die("cannot unpack %s", dir);
	}
}

/* Put SOURCE's code into dir; fill *commit for git sources. */
static void
source_fetch(const char *src, const char *dir, char *commit, size_t clen,
    int logfd)
{
	struct stat st;

	commit[0] = '\0';
	if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
		char file[PATH_MAX];
		snprintf(file, sizeof(file), "%s.download", dir);
		fetch_url(src, file);
		untar(file, dir, logfd);
		unlink(file);
		lift_single_dir(dir);
		return;
	}
	if (stat(src, &st) == -1)
		die("%s: %s", src, strerror(errno));
	if (S_ISDIR(st.st_mode) && (opt.ref != NULL || (is_git(src) &&
	    !opt.no_git))) {
		/* git: the committed tree at REF, never the work tree. */
		char rev[256], out[PATH_MAX];
		char *revparse[] = { "git", "-C", (char *)src, "rev-parse",
		    "--verify", "--quiet", rev, NULL };
		int fd, rc;

		/* The argv goes to git as is: no shell, so no quoting to get wrong. */
		snprintf(rev, sizeof(rev), "%s^{commit}", opt.ref ? opt.ref : "HEAD");
		snprintf(out, sizeof(out), "%s.rev", dir);
		fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd == -1)
			die("cannot open %s: %s", out, strerror(errno));
		rc = run_logged(revparse, NULL, NULL, fd, 1);
		close(fd);
		if (rc != 0 || file_read(out, commit, clen) <= 0) {
			unlink(out);
			die("%s: no git commit %s", src, opt.ref ? opt.ref : "HEAD");
		}
		unlink(out);
		commit[strcspn(commit, "\n")] = '\0';
		{
			char *argv[] = { "sh", "-c",
			    "git -C \"$1\" archive --format=tar \"$2\" | "
			    "tar -x -C \"$3\" --no-same-owner", "sh", (char *)src,
			    commit, (char *)dir, NULL };
			if (run_logged(argv, NULL, NULL, logfd, 0) != 0)
				die("cannot export %s from %s", commit, src);
		}
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		char *argv[] = { "sh", "-c",
		    "tar -C \"$1\" --exclude=./.dyno --exclude=./.git -cf - . | "
		    "tar -C \"$2\" -xf - --no-same-owner", "sh", (char *)src,
		    (char *)dir, NULL };
		if (run_logged(argv, NULL, NULL, logfd, 0) != 0)
			die("cannot copy %s", src);
		return;
	}
	if (S_ISREG(st.st_mode)) {
		untar(src, dir, logfd);
		lift_single_dir(dir);
		return;
	}
	die("%s: not a directory, tarball, git repository or URL", src);
}

/* ---- buildpacks --------------------------------------------------------------- */

/* Heroku's bin/release prints YAML; we read default_process_types only. */
static void
buildpack_release_types(const char *yaml, char *procfile_add, size_t len)
{
	const char *p = strstr(yaml, "default_process_types:");
	size_t off = strlen(procfile_add);

	if (p == NULL)
		return;
	p = strchr(p, '\n');
	while (p != NULL && (p[1] == ' ' || p[1] == '\t')) {
		const char *line = p + 1, *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		while (n > 0 && (*line == ' ' || *line == '\t')) {
			line++;
			n--;
		}
		if (n > 0 && off + n + 2 < len) {
			memcpy(procfile_add + off, line, n);
			off += n;
			procfile_add[off++] = '\n';
			procfile_add[off] = '\0';
		}
		p = eol;
	}
}

/* ENV_DIR: one file per config var, named by the key. */
static void
envdir_write(const char *envdir, const struct env *config)
{
	size_t k;

	if (mkdir(envdir, 0700) == -1)
		die("cannot make %s: %s", envdir, strerror(errno));
	for (k = 0; k < config->n; k++) {
		char f[PATH_MAX], key[256];
		const char *eq = strchr(config->vars[k], '=');
		snprintf(key, sizeof(key), "%.*s", (int)(eq - config->vars[k]),
		    config->vars[k]);
		snprintf(f, sizeof(f), "%s/%s", envdir, key);
		if (atomicfile_write(f, eq + 1, strlen(eq + 1), 0600, 0) == -1)
			die("cannot write %s: %s", f, strerror(errno));
	}
}

/* A folder's contents into another, by tar, as root: both are ours. */
static void
tree_copy(const char *from, const char *to, int logfd)
{
	char *argv[] = { "sh", "-c", "tar -C \"$1\" -cf - . | "
	    "tar -C \"$2\" -xf - --no-same-owner", "sh", (char *)from,
	    (char *)to, NULL };

	if (run_logged(argv, NULL, NULL, logfd, 1) != 0)
		die("cannot copy %s to %s", from, to);
}

/*
 * The buildpacks run as the dynos' user (-u) in a build area of that user's:
 * a fresh folder in $TMPDIR (or /tmp), since .dyno is root's alone.  Root
 * fills it (code, cache, config vars) while it is still root's, hands it
 * over whole, and afterwards takes back only a tar stream of the code and
 * the cache, written by the user and unpacked by root in .dyno/tmp, where
 * the user cannot reach: whatever the build left (symlinks, FIFOs, a
 * process still running), root never walks the user's tree.
 */
static void
area_enter(char *area, size_t len, const char *code, const char *cache,
    const struct env *config, int logfd)
{
	const char *tmp = getenv("TMPDIR");
	char sub[PATH_MAX], ids[64];

	snprintf(area, len, "%s/dyno-build.XXXXXX", tmp && tmp[0] == '/' ? tmp :
	    "/tmp");
	if (mkdtemp(area) == NULL)
		die("cannot make a build area in %s: %s", tmp && tmp[0] == '/' ?
		    tmp : "/tmp", strerror(errno));
	snprintf(sub, sizeof(sub), "%s/app", area);
	if (mkdir(sub, 0755) == -1)
		die("cannot make %s: %s", sub, strerror(errno));
	tree_copy(code, sub, logfd);
	snprintf(sub, sizeof(sub), "%s/cache", area);
	if (mkdir(sub, 0700) == -1)
		die("cannot make %s: %s", sub, strerror(errno));
	tree_copy(cache, sub, logfd);
	snprintf(sub, sizeof(sub), "%s/env", area);
	envdir_write(sub, config);
	snprintf(ids, sizeof(ids), "%lu:%lu", (unsigned long)opt.uid,
	    (unsigned long)opt.gid);
	{
		/* -P: symlinks are changed themselves, never followed. */
		char *argv[] = { "chown", "-R", "-P", "-h", ids, area, NULL };
		if (run_logged(argv, NULL, NULL, logfd, 0) != 0)
			die("cannot give %s to %s", area, opt.user);
	}
}

/* What the user's tar wrote to fd, unpacked into dir (made afresh) by root. */
static void
area_take(const char *area, const char *what, const char *dir, mode_t mode,
    const char *builddir, int logfd)
{
	char out[PATH_MAX], from[PATH_MAX];
	int fd;

	snprintf(out, sizeof(out), "%s/%s.tar", builddir, what);
	snprintf(from, sizeof(from), "%s/%s", area, what);
	fd = open(out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		die("cannot make %s: %s", out, strerror(errno));
	{
		char *argv[] = { "tar", "-C", from, "-cf", "-", ".", NULL };
		struct cmd c = { argv, area, NULL, -1, fd, logfd, 0, 1 };
		if (run_cmd(&c) != 0)
			die("cannot take the build's %s back from %s", what, area);
	}
	remove_tree(dir);
	if (mkdir(dir, mode) == -1 || lseek(fd, 0, SEEK_SET) == -1)
		die("cannot make %s: %s", dir, strerror(errno));
	{
		char *argv[] = { "tar", "-C", (char *)dir, "-xf", "-",
		    "--no-same-owner", NULL };
		struct cmd c = { argv, NULL, NULL, fd, -1, logfd, 0, 0 };
		if (run_cmd(&c) != 0)
			die("cannot unpack the build's %s", what);
	}
	close(fd);
	unlink(out);
	sanitize_tree(dir, logfd);
}

/* The user empties the area, then root removes the empty folder. */
static void
area_leave(const char *area, int logfd)
{
	char *argv[] = { "rm", "-rf", "--", "app", "cache", "env", NULL };
	struct cmd c = { argv, area, NULL, -1, -1, logfd, 1, 1 };

	(void)run_cmd(&c);
	remove_tree(area);
}

static void
buildpacks_run(const char *builddir, const struct env *config, int logfd,
    char *procfile_add, size_t addlen)
{
	char code[PATH_MAX], cache[4096], envdir[PATH_MAX], area[PATH_MAX];
	char bcode[PATH_MAX + 8], bcache[PATH_MAX + 8], benv[PATH_MAX + 8];
	int i, as_user = opt.user != NULL;

	if (opt.nbuildpacks == 0)
		return;
	snprintf(code, sizeof(code), "%s/app", builddir);
	state_path(cache, sizeof(cache), "cache");
	if (mkdir_mode(cache, 0700) == -1)
		die("cannot make %s: %s", cache, strerror(errno));
	if (as_user) {
		area_enter(area, sizeof(area), code, cache, config, logfd);
		snprintf(failed_area, sizeof(failed_area), "%s", area);
		snprintf(bcode, sizeof(bcode), "%s/app", area);
		snprintf(bcache, sizeof(bcache), "%s/cache", area);
		snprintf(benv, sizeof(benv), "%s/env", area);
	} else {
		snprintf(envdir, sizeof(envdir), "%s/env", builddir);
		envdir_write(envdir, config);
		snprintf(bcode, sizeof(bcode), "%s", code);
		snprintf(bcache, sizeof(bcache), "%s", cache);
		snprintf(benv, sizeof(benv), "%s", envdir);
	}
	for (i = 0; i < opt.nbuildpacks; i++) {
		char bp[PATH_MAX], detect[PATH_MAX], compile[PATH_MAX],
		    release[PATH_MAX], out[PATH_MAX];
		int rc;

		if (realpath(opt.buildpacks[i], bp) == NULL)
			die("buildpack %s: %s", opt.buildpacks[i], strerror(errno));
		snprintf(detect, sizeof(detect), "%s/bin/detect", bp);
		snprintf(compile, sizeof(compile), "%s/bin/compile", bp);
		snprintf(release, sizeof(release), "%s/bin/release", bp);
		{
			char *argv[] = { detect, bcode, NULL };
			struct cmd c = { argv, bcode, NULL, -1, -1, logfd, 0,
			    as_user };
			char msg[256];
			int n = snprintf(msg, sizeof(msg), "-----> %s: detect\n", bp);
			(void)!write(1, msg, (size_t)n);
			(void)!write(logfd, msg, (size_t)n);
			if (access(detect, X_OK) == 0 && (rc = run_cmd(&c)) != 0) {
				n = snprintf(msg, sizeof(msg), "-----> %s does not "
				    "apply (detect exited %d)\n", bp, rc);
				(void)!write(1, msg, (size_t)n);
				(void)!write(logfd, msg, (size_t)n);
				continue;
			}
		}
		{
			char *argv[] = { compile, bcode, bcache, benv, NULL };
			struct cmd c = { argv, bcode, NULL, -1, -1, logfd, 0,
			    as_user };
			char msg[256];
			int n = snprintf(msg, sizeof(msg), "-----> %s: compile\n", bp);
			(void)!write(1, msg, (size_t)n);
			(void)!write(logfd, msg, (size_t)n);
			rc = run_cmd(&c);
			if (rc != 0)
				die("buildpack %s: compile failed (exit %d); nothing "
				    "changed", bp, rc);
		}
		if (access(release, X_OK) == 0) {
			char *argv[] = { release, bcode, NULL };
			char text[8192];
			int fd;
			snprintf(out, sizeof(out), "%s/release.yml", builddir);
			fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			{
				struct cmd c = { argv, bcode, NULL, -1, fd, logfd,
				    0, as_user };
				if (fd == -1 || run_cmd(&c) != 0)
					die("buildpack %s: bin/release failed", bp);
			}
			close(fd);
			if (file_read(out, text, sizeof(text)) > 0)
				buildpack_release_types(text, procfile_add, addlen);
			unlink(out);
		}
	}
	if (as_user) {
		char newcache[4200];
		area_take(area, "app", code, 0755, builddir, logfd);
		snprintf(newcache, sizeof(newcache), "%s.new", cache);
		area_take(area, "cache", newcache, 0700, builddir, logfd);
		remove_tree(cache);
		if (rename(newcache, cache) == -1)
			die("cannot keep the build cache: %s", strerror(errno));
		area_leave(area, logfd);
		failed_area[0] = '\0';
	} else
		remove_tree(envdir);
}

/* ---- switching and waiting ----------------------------------------------------- */

static void
current_switch(long v)
{
	char link[4096], tmp[4200], target[64];

	state_path(link, sizeof(link), "current");
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", link, (long)getpid());
	snprintf(target, sizeof(target), "releases/%ld", v);
	unlink(tmp);
	/* A symlink cannot be rewritten in place: make a new one, rename it. */
	if (symlink(target, tmp) == -1 || rename(tmp, link) == -1)
		die("cannot switch %s to %s: %s", link, target, strerror(errno));
	(void)dir_fsync(app.state);
}

/*
 * Every dyno of the formation runs release v and is up (web: routable).
 * Returns 1 when done, 0 while not yet, -1 when the new release crashes.
 */
static int
release_settled(long v)
{
	struct dyno_info *d;
	size_t n, i;
	char want[32];
	int done = 1, crashed = 0;

	snprintf(want, sizeof(want), "v%ld", v);
	if (dynos_list(&app, &d, &n) == -1)
		return 0;
	for (i = 0; i < n; i++) {
		int mine = strcmp(d[i].release, want) == 0;
		if (strcmp(d[i].state, "down") == 0)
			continue;	/* held by "stop": deliberately not running */
		if (mine && strcmp(d[i].state, "crashed") == 0)
			crashed = 1;
		if (!mine || strcmp(d[i].state, "up") != 0 ||
		    (strcmp(d[i].type, "web") == 0 && !routes_has(&app, d[i].name)))
			done = 0;
	}
	/* An old process still on its way out keeps the switch unfinished. */
	{
		char path[4096];
		DIR *dir;
		struct dirent *de;
		state_path(path, sizeof(path), "run/dynos");
		if ((dir = opendir(path)) != NULL) {
			while ((de = readdir(dir)) != NULL)
				if (strchr(de->d_name, '~'))
					done = 0;
			closedir(dir);
		}
	}
	free(d);
	return crashed ? -1 : done;
}

/* Tell the supervisor; wait as asked.  0: running, 1: failed. */
static int
release_activate(long v, int quiet)
{
	pid_t sup = app_supervisor_pid(&app);
	int64_t start = clock_ms();
	int wait = opt.wait < 0 ? sup > 0 : opt.wait;

	current_switch(v);
	if (sup == 0) {
		if (!quiet)
			printf("Released v%ld; no supervisor runs %s: dyno-run will "
			    "start it.\n", v, app.dir);
		return 0;
	}
	if (control_send(&app, "reload") == -1)
		kill(sup, SIGHUP);
	if (!wait) {
		if (!quiet)
			printf("Released v%ld; the supervisor is replacing the "
			    "dynos.\n", v);
		return 0;
	}
	for (;;) {
		struct timespec ts = { 0, 50 * 1000000L };
		int s = release_settled(v);
		if (s == 1) {
			printf("Released v%ld: every dyno runs it after %.1fs\n", v,
			    (clock_ms() - start) / 1000.0);
			return 0;
		}
		if (s == -1) {
			fprintf(stderr, "dyno-deploy: v%ld crashed while starting "
			    "(see the supervisor's log: R10, exit status)\n", v);
			return 1;
		}
		if (clock_ms() - start > opt.wait_ms) {
			fprintf(stderr, "dyno-deploy: v%ld did not come up within "
			    "%llds\n", v, (long long)(opt.wait_ms / 1000));
			return 1;
		}
		nanosleep(&ts, NULL);	/* poll interval */
	}
}

/* ---- making a release ------------------------------------------------------------ */

struct release_spec {
	const char *source;	/* where the code came from */
	const char *commit;
	const char *desc;
	long from;		/* > 0: reuse release `from`'s code */
	const struct env *config;
};

/* Some dyno (one-offs and those on their way out too) runs release v. */
static int
release_running(long v)
{
	char path[4096], want[32];
	struct dirent *de;
	int running = 0;
	DIR *d;

	snprintf(want, sizeof(want), "v%ld", v);
	state_path(path, sizeof(path), "run/dynos");
	if ((d = opendir(path)) == NULL)
		return 0;
	while (!running && (de = readdir(d)) != NULL) {
		char f[PATH_MAX], text[8192], rel[32];
		if (de->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
		running = file_read(f, text, sizeof(text)) > 0 &&
		    kv_get(text, "release", rel, sizeof(rel)) == 0 &&
		    strcmp(rel, want) == 0;
	}
	closedir(d);
	return running;
}

static void
retention(void)
{
	size_t n, i, keep_from;
	long *list = release_list(&n), cur = release_current();
	char slugs[4096], path[4096];
	struct dirent *de;
	DIR *d;

	keep_from = n > (size_t)opt.keep ? n - (size_t)opt.keep : 0;
	for (i = 0; i < keep_from; i++) {
		if (list[i] == cur || release_running(list[i]))
			continue;	/* never one that runs or is to run */
		state_path(path, sizeof(path), "releases/%ld", list[i]);
		remove_tree(path);
	}
	free(list);
	/* Slugs no kept release points at go too. */
	state_path(slugs, sizeof(slugs), "slugs");
	if ((d = opendir(slugs)) == NULL)
		return;
	list = release_list(&n);
	while ((de = readdir(d)) != NULL) {
		int used = 0;
		if (de->d_name[0] == '.')
			continue;
		for (i = 0; i < n && !used; i++) {
			char link[4096], target[PATH_MAX];
			ssize_t k;
			state_path(link, sizeof(link), "releases/%ld/app", list[i]);
			k = readlink(link, target, sizeof(target) - 1);
			if (k > 0) {
				target[k] = '\0';
				used = strstr(target, de->d_name) != NULL;
			}
		}
		if (!used) {
			snprintf(path, sizeof(path), "%s/%s", slugs, de->d_name);
			remove_tree(path);
		}
	}
	closedir(d);
	free(list);
}

/*
 * The code as the tenant gave it holds nothing the platform would not:
 * special files (devices, FIFOs, sockets) go, set-id bits and
 * world-writable bits come off (the sticky bit too), whatever a tarball,
 * a git tree or a buildpack left.  Symlinks stay (never followed here).
 * Each change is said once on stdout and in the build log.  -1 if the
 * tree cannot be walked.
 */
static int
sanitize_at(int dfd, const char *rel, int logfd, int depth)
{
	DIR *d;
	struct dirent *de;
	int fd;

	if (depth > 256)
		return -1;
	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char sub[PATH_MAX], msg[PATH_MAX + 128];
		struct stat st;
		mode_t keep;
		int n = 0, cfd;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "",
		    de->d_name);
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    S_ISLNK(st.st_mode))
			continue;
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			if (unlinkat(dfd, de->d_name, 0) == 0)
				n = snprintf(msg, sizeof(msg), "-----> removed %s: "
				    "not a file, folder or symlink\n", sub);
		} else {
			keep = st.st_mode & 0777 & ~(mode_t)S_IWOTH;
			if ((st.st_mode & 07777) != keep) {
				if (fchmodat(dfd, de->d_name, keep, 0) == -1) {
					closedir(d);
					return -1;
				}
				n = snprintf(msg, sizeof(msg), "-----> %s: mode %04o "
				    "made %04o (no set-id, sticky or world-writable "
				    "bits)\n", sub, (unsigned)(st.st_mode & 07777),
				    (unsigned)keep);
			}
		}
		if (n > 0) {
			(void)!write(1, msg, (size_t)n);
			(void)!write(logfd, msg, (size_t)n);
		}
		if (!S_ISDIR(st.st_mode))
			continue;
		cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (cfd == -1 || sanitize_at(cfd, sub, logfd, depth + 1) == -1) {
			if (cfd != -1)
				close(cfd);
			closedir(d);
			return -1;
		}
		close(cfd);
	}
	closedir(d);
	return 0;
}

static void
sanitize_tree(const char *dir, int logfd)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	/* The top folder too: a tarball's "./" entry sets its mode. */
	if (dfd == -1 || fstat(dfd, &st) == -1 || ((st.st_mode & 07777) !=
	    (st.st_mode & 0777 & ~(mode_t)S_IWOTH) && fchmod(dfd, st.st_mode &
	    0777 & ~(mode_t)S_IWOTH) == -1) || sanitize_at(dfd, "", logfd, 0) == -1)
		die("cannot check the modes in %s: %s", dir, strerror(errno));
	if ((st.st_mode & 07777) != (st.st_mode & 0777 & ~(mode_t)S_IWOTH)) {
		char msg[128];
		int n = snprintf(msg, sizeof(msg), "-----> the top folder: mode "
		    "%04o made %04o (no set-id, sticky or world-writable bits)\n",
		    (unsigned)(st.st_mode & 07777),
		    (unsigned)(st.st_mode & 0777 & ~(mode_t)S_IWOTH));
		(void)!write(1, msg, (size_t)n);
		if (logfd >= 0)
			(void)!write(logfd, msg, (size_t)n);
	}
	close(dfd);
}

/*
 * The code's Procfile: code is untrusted, so the file is read only if it
 * is a regular file inside it (a symlink to /etc/shadow is refused, a FIFO
 * does not hold the deploy and its lock), at most 1 MB.  -1 with errno.
 */
static int
procfile_read_code(const char *code, char **text)
{
	int dfd = open(code, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	int rc, saved;

	if (dfd == -1)
		return -1;
	rc = file_read_beneath(dfd, "Procfile", text, NULL, 1 << 20);
	saved = errno;
	close(dfd);
	errno = saved;
	return rc;
}

/* Run the Procfile's release: entry as a one-off dyno in the new release. */
static void
release_phase(const char *builddir, const struct procfile *pf, int logfd)
{
	const struct proctype *rel = procfile_find(pf, "release");
	char dynorun[PATH_MAX];
	int rc;

	if (rel == NULL)
		return;
	snprintf(dynorun, sizeof(dynorun), "%s/dyno-run", self_dir);
	if (access(dynorun, X_OK) == -1)
		snprintf(dynorun, sizeof(dynorun), "dyno-run");
	{
		char msg[512];
		int n = snprintf(msg, sizeof(msg), "-----> Release phase: %s\n",
		    rel->command);
		(void)!write(1, msg, (size_t)n);
		(void)!write(logfd, msg, (size_t)n);
	}
	{
		/* As a dyno: as the dynos' user (-u), with their limits. */
		char *argv[12];
		int n = 0;
		argv[n++] = dynorun;
		argv[n++] = "-a";
		argv[n++] = app.dir;
		if (opt.user != NULL) {
			argv[n++] = "-u";
			argv[n++] = (char *)opt.user;
			if (opt.trust_dir)
				argv[n++] = "--trust-app-dir";
		}
		argv[n++] = "--release";
		argv[n++] = (char *)builddir;
		argv[n++] = "--one-off";
		argv[n++] = rel->command;
		argv[n] = NULL;
		rc = run_logged(argv, NULL, NULL, logfd, 0);
	}
	if (rc != 0)
		die("release phase failed (exit %d): current is unchanged", rc);
}

/* Build release N+1 in .dyno/tmp and rename it into place.  Returns N+1. */
static long
release_make(const struct release_spec *rs, char *const procfile_text_in)
{
	char tmpdir[4096], builddir[PATH_MAX], code[PATH_MAX], path[PATH_MAX];
	char sha[65], commit[128] = "", err[DYNO_ERR_MAX], releases[4096];
	char procfile_add[8192] = "", *cfgtext, meta[8192], final[4096];
	struct procfile pf;
	struct sha256 h;
	size_t n, cfglen;
	long *list, v;
	int logfd;

	list = release_list(&n);
	v = n > 0 ? list[n - 1] + 1 : 1;
	free(list);
	state_path(tmpdir, sizeof(tmpdir), "tmp");
	state_path(releases, sizeof(releases), "releases");
	if (mkdir_mode(tmpdir, 0700) == -1 || mkdir_mode(releases, 0755) == -1)
		die("cannot make %s: %s", tmpdir, strerror(errno));
	snprintf(builddir, sizeof(builddir), "%s/build.%ld.%ld", tmpdir, v,
	    (long)getpid());
	snprintf(code, sizeof(code), "%s/app", builddir);
	if (mkdir(builddir, 0755) == -1)
		die("cannot make %s: %s", builddir, strerror(errno));
	snprintf(failed_build, sizeof(failed_build), "%s", builddir);
	snprintf(path, sizeof(path), "%s/build.log", builddir);
	if ((logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644)) == -1)
		die("cannot open %s: %s", path, strerror(errno));
	if (rs->from > 0) {
		/* Same code as release `from`: point at its slug. */
		char link[4096], target[PATH_MAX];
		ssize_t k;
		state_path(link, sizeof(link), "releases/%ld/app", rs->from);
		k = readlink(link, target, sizeof(target) - 1);
		if (k <= 0)
			die("release v%ld has no code", rs->from);
		target[k] = '\0';
		if (symlink(target, code) == -1)
			die("cannot link %s: %s", code, strerror(errno));
		meta_get(rs->from, "sha256", sha, sizeof(sha));
		meta_get(rs->from, "commit", commit, sizeof(commit));
	} else {
		if (mkdir(code, 0755) == -1)
			die("cannot make %s: %s", code, strerror(errno));
		source_fetch(rs->source, code, commit, sizeof(commit), logfd);
		sanitize_tree(code, logfd);
		buildpacks_run(builddir, rs->config, logfd, procfile_add,
		    sizeof(procfile_add));
		sanitize_tree(code, logfd);
		sha256_init(&h);
		tree_hash(&h, code, "");
		sha256_hex(&h, sha);
	}
	/* The effective Procfile: the code's, plus buildpack defaults. */
	{
		char *text = NULL;
		if (procfile_text_in != NULL)
			text = strdup(procfile_text_in);
		else if (procfile_read_code(code, &text) == -1) {
			if (errno != ENOENT)
				die("%s: Procfile: %s", rs->source ? rs->source :
				    "the release", errno == EXDEV ?
				    "a symlink that leads out of the code" :
				    errno == ELOOP ? "a symlink (not followed here)" :
				    errno == EINVAL ? "not a regular file" :
				    errno == EFBIG ? "over 1 MB" : strerror(errno));
			if (procfile_add[0] == '\0')
				die("%s has no Procfile", rs->source ? rs->source :
				    "the release");
			text = strdup("");
		}
		if (procfile_parse(text, strlen(text), "Procfile", &pf, err,
		    sizeof(err)) == -1)
			die("%s", err);
		if (procfile_add[0]) {
			struct procfile extra;
			size_t i;
			if (procfile_parse(procfile_add, strlen(procfile_add),
			    "bin/release", &extra, err, sizeof(err)) == -1)
				die("buildpack default_process_types: %s", err);
			for (i = 0; i < extra.ntypes; i++) {
				char line[4200];
				char *nt;
				if (procfile_find(&pf, extra.types[i].name))
					continue;
				snprintf(line, sizeof(line), "%s: %s\n",
				    extra.types[i].name, extra.types[i].command);
				nt = malloc(strlen(text) + strlen(line) + 2);
				sprintf(nt, "%s%s%s", text, text[0] && text[strlen(text)
				    - 1] != '\n' ? "\n" : "", line);
				free(text);
				text = nt;
			}
			procfile_free(&extra);
			procfile_free(&pf);
			if (procfile_parse(text, strlen(text), "Procfile", &pf, err,
			    sizeof(err)) == -1)
				die("%s", err);
		}
		snprintf(path, sizeof(path), "%s/Procfile", builddir);
		if (atomicfile_write(path, text, strlen(text), 0644, 1) == -1)
			die("cannot write %s: %s", path, strerror(errno));
		free(text);
	}
	if (rs->from <= 0)
		slug_store(builddir, sha);
	if ((cfgtext = env_format_config(rs->config, &cfglen)) == NULL)
		die("out of memory");
	snprintf(path, sizeof(path), "%s/config", builddir);
	if (atomicfile_write(path, cfgtext, cfglen, 0600, 1) == -1)
		die("cannot write %s: %s", path, strerror(errno));
	free(cfgtext);
	{
		char desc[512];
		size_t i;
		snprintf(desc, sizeof(desc), "%s", rs->desc ? rs->desc : "");
		if (desc[0] == '\0')
			snprintf(desc, sizeof(desc), "Deploy %.7s",
			    commit[0] ? commit : sha);
		for (i = 0; desc[i]; i++)	/* one line in a key=value file */
			if (desc[i] == '\n' || desc[i] == '\r')
				desc[i] = ' ';
		n = (size_t)snprintf(meta, sizeof(meta),
		    "version=%ld\ncreated=%lld\nsource=%s\ncommit=%s\n"
		    "description=%s\nsha256=%s\nbuild_log=build.log\n", v,
		    (long long)time(NULL), rs->source ? rs->source : "",
		    commit, desc, sha);
	}
	snprintf(path, sizeof(path), "%s/meta", builddir);
	if (atomicfile_write(path, meta, n, 0644, 1) == -1)
		die("cannot write %s: %s", path, strerror(errno));
	release_phase(builddir, &pf, logfd);
	procfile_free(&pf);
	fsync(logfd);
	close(logfd);
	(void)dir_fsync(builddir);
	/* The one step that makes it a release. */
	state_path(final, sizeof(final), "releases/%ld", v);
	if (rename(builddir, final) == -1)
		die("cannot rename %s to %s: %s", builddir, final, strerror(errno));
	failed_build[0] = failed_slug[0] = '\0';
	(void)dir_fsync(releases);
	return v;
}

/* Leftovers of deploys that were killed: never releases, just remove them. */
static void
tmp_sweep(void)
{
	char tmpdir[4096];
	struct dirent *de;
	DIR *d;

	state_path(tmpdir, sizeof(tmpdir), "tmp");
	if ((d = opendir(tmpdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char p[PATH_MAX];
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
		remove_tree(p);
	}
	closedir(d);
}

static int rollback_to(long target);

/*
 * A new release with release `from`'s code and Procfile and the given
 * config vars (rollback, config:set, config:unset); the config file follows
 * it, then the switch.
 */
static int
release_reuse(long from, const char *desc, struct env *config, int rollback)
{
	struct release_spec rs;
	char path[4096], *pftext;
	long v;
	int rc;

	state_path(path, sizeof(path), "releases/%ld/Procfile", from);
	if (file_read_alloc(path, &pftext, NULL, 1 << 20) == -1)
		die("cannot read %s: %s", path, strerror(errno));
	memset(&rs, 0, sizeof(rs));
	rs.from = from;
	rs.desc = desc;
	rs.config = config;
	meta_get(from, "source", path, sizeof(path));
	rs.source = path;
	v = release_make(&rs, pftext);
	free(pftext);
	config_save(config);
	if (rollback)
		printf("Built v%ld: %s\n", v, desc);
	else
		printf("%s: v%ld\n", desc, v);
	rc = release_activate(v, 0);
	retention();
	return rc;
}

static int
finish(long v, long previous)
{
	int rc = release_activate(v, 0);

	/* Roll back before pruning, which could take `previous` away. */
	if (rc != 0 && opt.rollback_on_failure && previous > 0) {
		fprintf(stderr, "dyno-deploy: rolling back to v%ld\n", previous);
		rollback_to(previous);	/* prunes when done */
		return 1;
	}
	retention();
	return rc;
}

static int
deploy(const char *source)
{
	struct release_spec rs;
	struct env config;
	char real[PATH_MAX];
	long v, prev = release_current();

	config_load(&config);
	memset(&rs, 0, sizeof(rs));
	/* Local sources are recorded by their full path. */
	if (strstr(source, "://") == NULL && realpath(source, real) != NULL)
		rs.source = real;
	else {
		/* meta is 0644: keep a URL's credentials and query out of it. */
		const char *scheme = strstr(source, "://"), *at, *slash;
		size_t q = strcspn(source, "?#");
		at = scheme ? strchr(scheme + 3, '@') : NULL;
		slash = scheme ? strchr(scheme + 3, '/') : NULL;
		if (at != NULL && (slash == NULL || at < slash))
			snprintf(real, sizeof(real), "%.*s%.*s",
			    (int)(scheme + 3 - source), source,
			    (int)(q > (size_t)(at + 1 - source) ?
			    q - (size_t)(at + 1 - source) : 0), at + 1);
		else
			snprintf(real, sizeof(real), "%.*s", (int)q, source);
		rs.source = real;
	}
	rs.desc = opt.message;
	rs.config = &config;
	v = release_make(&rs, NULL);
	env_free(&config);
	printf("Built v%ld\n", v);
	return finish(v, prev);
}

static int
rollback_to(long target)
{
	char desc[64], path[4096], err[DYNO_ERR_MAX];
	struct env config;
	int rc;

	state_path(path, sizeof(path), "releases/%ld", target);
	if (access(path, F_OK) == -1)
		die("no release v%ld (kept: see dyno-deploy releases)", target);
	/* Its config vars come back too, as on Heroku. */
	env_init(&config, NULL);
	state_path(path, sizeof(path), "releases/%ld/config", target);
	if (env_load_config(&config, path, err, sizeof(err)) == -1)
		die("%s", err);
	snprintf(desc, sizeof(desc), "Rollback to v%ld", target);
	rc = release_reuse(target, desc, &config, 1);
	env_free(&config);
	return rc;
}

/* ---- config commands --------------------------------------------------------------- */

static int
config_show(int show)
{
	struct env e;
	size_t i, width = 0;

	config_load(&e);
	for (i = 0; i < e.n; i++) {
		size_t k = (size_t)(strchr(e.vars[i], '=') - e.vars[i]);
		if (k > width)
			width = k;
	}
	printf("=== %s Config Vars\n", app.dir);
	for (i = 0; i < e.n; i++) {
		const char *eq = strchr(e.vars[i], '=');
		int k = (int)(eq - e.vars[i]);
		printf("%.*s:%*s %s\n", k, e.vars[i], (int)(width - (size_t)k), "",
		    show ? eq + 1 : "********");
	}
	env_free(&e);
	return 0;
}

static int
config_get(const char *key)
{
	struct env e;
	const char *v;

	config_load(&e);
	v = env_get(&e, key);
	if (v == NULL) {
		env_free(&e);
		return 1;
	}
	fputs(v, stdout);
	fputc('\n', stdout);
	env_free(&e);
	return 0;
}

/* config:set / config:unset: one new release with the same code. */
static int
config_change(int argc, char **argv, int set)
{
	char desc[512], names[400] = "";
	struct env e;
	size_t off = 0, len;
	long cur;
	int i;
	char *text;

	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	config_load(&e);
	/* Check every argument before anything changes. */
	for (i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		size_t klen = set ? (eq ? (size_t)(eq - argv[i]) : 0) :
		    strlen(argv[i]);
		/* The config file's reader takes keys of up to 255 bytes. */
		if ((set && eq == NULL) || klen > 255 ||
		    !key_valid(argv[i], klen)) {
			fprintf(stderr, "dyno-deploy: %s: expected %s with KEY "
			    "matching [A-Za-z_][A-Za-z0-9_]{0,254}\n", argv[i],
			    set ? "KEY=VALUE" : "KEY");
			env_free(&e);
			return 2;
		}
	}
	for (i = 0; i < argc; i++) {
		char key[256];
		const char *eq = strchr(argv[i], '=');
		size_t klen = set ? (size_t)(eq - argv[i]) : strlen(argv[i]);
		snprintf(key, sizeof(key), "%.*s", (int)klen, argv[i]);
		if (set)
			env_set(&e, key, eq + 1);
		else
			env_unset(&e, key);
		if (off + klen + 3 < sizeof(names))
			off += (size_t)snprintf(names + off, sizeof(names) - off,
			    "%s%s", i ? ", " : "", key);
	}
	if ((text = env_format_config(&e, &len)) == NULL)
		die("out of memory");
	free(text);
	if (len > CONFIG_MAX) {
		fprintf(stderr, "dyno-deploy: config vars would take %zu bytes; at "
		    "most %d; nothing changed\n", len, CONFIG_MAX);
		env_free(&e);
		return 1;
	}
	snprintf(desc, sizeof(desc), "%s %s config vars", set ? "Set" : "Remove",
	    names);
	cur = release_current();
	if (cur == 0) {
		/* Dev mode: no release to copy; the config file is the truth and
		 * a reload replaces the dynos (their environment changed). */
		pid_t sup;
		config_save(&e);
		env_free(&e);
		printf("%s (dev mode)\n", desc);
		if ((sup = app_supervisor_pid(&app)) > 0 &&
		    control_send(&app, "reload") == -1)
			kill(sup, SIGHUP);
		return 0;
	}
	{
		int rc = release_reuse(cur, desc, &e, 0);
		env_free(&e);
		return rc;
	}
}

/* ---- main -------------------------------------------------------------------------- */

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
		fprintf(stderr, "dyno-deploy: app directory %s: %s\n",
		    appdir ? appdir : ".", strerror(errno));
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
		fprintf(stderr, "dyno-deploy: cannot prepare %s: %s\n", app.state,
		    strerror(errno));
		return 1;
	}
	/* One writer of releases/, current and config at a time. */
	state_path(lockpath, sizeof(lockpath), "deploy.lock");
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
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
