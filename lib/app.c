/*
 * app.c: the app directory.  State lives in APP/.dyno (mode 0700), like git
 * keeps .git beside the working tree; see dyno(7) for every file in it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dyno.h"

/*
 * Open .dyno once, and keep working in the folder we opened: a name is
 * resolved again on every use, and whoever can write the app directory
 * (a dyno's user under --trust-app-dir) could rename .dyno away and plant
 * one of its own, with symlinks where our folders were.  So the folder
 * opened must be a folder (not a link to one), ours or root's, and not
 * writable by group or others, who could plant links inside it.
 */
static int
app_open(struct app *a)
{
	struct stat st;
	int fd, saved;

	fd = open(a->state, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		if (errno == ELOOP || errno == ENOTDIR)
			snprintf(a->why, sizeof(a->why), "%s is not a folder "
			    "(a symlink?): refusing it", a->state);
		else
			snprintf(a->why, sizeof(a->why), "cannot open %s: %s",
			    a->state, strerror(errno));
		errno = saved;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		snprintf(a->why, sizeof(a->why), "cannot open %s: %s",
		    a->state, strerror(errno));
		close(fd);
		errno = saved;
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(a->why, sizeof(a->why), "%s is owned by uid %ld, not "
		    "by uid %ld or root: refusing it", a->state,
		    (long)st.st_uid, (long)geteuid());
		close(fd);
		errno = EPERM;
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(a->why, sizeof(a->why), "%s is writable by group or "
		    "others: refusing it", a->state);
		close(fd);
		errno = EPERM;
		return -1;
	}
	a->fd = fd;
	return 0;
}

/* Find the app directory; open its .dyno if there is one.  -1 with
 * a->why, a one-line reason, set. */
int
app_init(struct app *a, const char *dir)
{
	char real[PATH_MAX];
	int saved;

	a->fd = -1;
	a->why[0] = '\0';
	if (dir == NULL)
		dir = getenv("DYNO_APP");
	if (dir == NULL || *dir == '\0')
		dir = ".";
	if (realpath(dir, real) == NULL) {
		saved = errno;
		snprintf(a->why, sizeof(a->why), "app directory %s: %s", dir,
		    strerror(errno));
		errno = saved;
		return -1;
	}
	if (snprintf(a->dir, sizeof(a->dir), "%s", real) >= (int)sizeof(a->dir) ||
	    snprintf(a->state, sizeof(a->state), "%s/.dyno", real) >=
	    (int)sizeof(a->state)) {
		snprintf(a->why, sizeof(a->why), "app directory %s: %s", dir,
		    strerror(ENAMETOOLONG));
		errno = ENAMETOOLONG;
		return -1;
	}
	if (app_open(a) == -1 && errno != ENOENT)
		return -1;
	a->why[0] = '\0';
	return 0;
}

int
app_path(const struct app *a, char *buf, size_t len, const char *fmt, ...)
{
	char rel[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(rel) ||
	    snprintf(buf, len, "%s/%s", a->state, rel) >= (int)len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Make .dyno and its folders with their modes; open .dyno if app_init
 * found none.  -1 with a->why set. */
int
app_prepare(struct app *a)
{
	static const struct {
		const char *rel;
		mode_t mode;
	} dirs[] = {
		{ "", 0700 }, { "run", 0755 }, { "run/dynos", 0755 },
		{ "run/health", 0755 }, { "run/logs", 0700 },
	};
	char path[4096];
	size_t i;

	int saved;

	if (a->fd == -1 && (mkdir_mode(a->state, dirs[0].mode) == -1 ||
	    app_open(a) == -1)) {
		saved = errno;
		if (a->why[0] == '\0')
			snprintf(a->why, sizeof(a->why), "cannot prepare %s: %s",
			    a->state, strerror(errno));
		errno = saved;
		return -1;
	}
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (mkdir_modeat(a->fd, *dirs[i].rel ? dirs[i].rel : ".",
		    dirs[i].mode) == -1) {
			saved = errno;
			app_path(a, path, sizeof(path), "%s", dirs[i].rel);
			snprintf(a->why, sizeof(a->why), "cannot prepare %s: %s",
			    path, strerror(errno));
			errno = saved;
			return -1;
		}
	}
	return 0;
}

/*
 * The ways to use a file under .dyno, each relative to the folder opened
 * and never through a symlink at the last name.  The folders between
 * (run/, run/dynos/) are inside that folder, which only its owner can
 * write.  Where .dyno is not open (none yet): ENOENT.
 */
static int
app_fd(const struct app *a, const char *rel)
{
	if (rel == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (a->fd == -1)
		errno = ENOENT;
	return a->fd;
}

/* A path app_path made, as its name in .dyno (run/logs/x); NULL if it is
 * not one. */
const char *
app_rel(const struct app *a, const char *path)
{
	size_t n = strlen(a->state);

	if (strncmp(path, a->state, n) != 0 || path[n] != '/' ||
	    path[n + 1] == '\0')
		return NULL;
	return path + n + 1;
}

int
app_openat(const struct app *a, const char *rel, int flags, mode_t mode)
{
	if (app_fd(a, rel) == -1)
		return -1;
	return openat(a->fd, rel, flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

int
app_unlinkat(const struct app *a, const char *rel)
{
	if (app_fd(a, rel) == -1)
		return -1;
	return unlinkat(a->fd, rel, 0);
}

int
app_mkfifoat(const struct app *a, const char *rel, mode_t mode)
{
	if (app_fd(a, rel) == -1)
		return -1;
	return mkfifoat(a->fd, rel, mode);
}

int
app_lstat(const struct app *a, const char *rel, struct stat *st)
{
	if (app_fd(a, rel) == -1)
		return -1;
	return fstatat(a->fd, rel, st, AT_SYMLINK_NOFOLLOW);
}

DIR *
app_opendir(const struct app *a, const char *rel)
{
	DIR *d;
	int fd = app_openat(a, rel, O_RDONLY | O_DIRECTORY, 0), saved;

	if (fd == -1)
		return NULL;
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
	}
	return d;
}

int
app_read(const struct app *a, const char *rel, char *buf, size_t len)
{
	int fd = app_openat(a, rel, O_RDONLY | O_NONBLOCK, 0);

	if (fd == -1)
		return -1;
	return file_read_fd(fd, buf, len);
}

int
app_write(const struct app *a, const char *rel, const void *data, size_t len,
    mode_t mode, int durable)
{
	if (app_fd(a, rel) == -1)
		return -1;
	return atomicfile_writeat(a->fd, rel, data, len, mode, durable);
}

/*
 * The release current names, read in the .dyno we opened: current must be
 * a symlink to releases/N (as dyno-deploy makes it), and releases/N a
 * folder there.  Its path (for a dyno's working directory) is built from
 * .dyno's, not resolved again.
 */
int
app_release(const struct app *a, char *version, size_t vlen, char *dir,
    size_t dlen)
{
	char target[256], rel[512], text[4096], v[32];
	struct stat st;
	ssize_t n;
	long num;

	if (app_fd(a, "current") == -1)
		return errno == ENOENT ? 1 : -1;
	n = readlinkat(a->fd, "current", target, sizeof(target) - 1);
	if (n == -1)
		return errno == ENOENT ? 1 : -1;	/* no current: dev mode */
	target[n] = '\0';
	if (strncmp(target, "releases/", 9) != 0 ||
	    parse_long(target + 9, 1, 1L << 30, &num) == -1) {
		errno = EINVAL;
		return -1;
	}
	/* A current that points nowhere is an error, not a quiet fall back
	 * to the app's own code. */
	if (app_lstat(a, target, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	if (snprintf(dir, dlen, "%s/%s", a->state, target) >= (int)dlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(version, vlen, "v%s", target + 9);
	snprintf(rel, sizeof(rel), "%s/meta", target);
	if (app_read(a, rel, text, sizeof(text)) > 0 &&
	    kv_get(text, "version", v, sizeof(v)) == 0)
		snprintf(version, vlen, "v%s", v[0] == 'v' ? v + 1 : v);
	return 0;
}

pid_t
app_supervisor_pid(const struct app *a)
{
	if (app_fd(a, "run/lock") == -1)
		return 0;
	return pidfile_holder(a->fd, "run/lock");
}

/* Can uid (primary group gid, of user name) write dir: own it, be in its
 * group while it is group-writable, or find it world-writable?  With
 * sticky, a world- or group-writable folder lets no one rename what they
 * do not own, which is all that matters for a parent. */
static int
writable_by(const char *dir, const char *name, uid_t uid, gid_t gid,
    int sticky_ok)
{
	struct stat st;
	gid_t groups[256];
	int n = 256, i;

	if (stat(dir, &st) == -1)
		return errno == ENOENT ? 0 : 1;
	if (st.st_uid == uid)
		return 1;
	if (sticky_ok && (st.st_mode & S_ISVTX))
		return 0;
	if (st.st_mode & S_IWOTH)
		return 1;
	if (!(st.st_mode & S_IWGRP) || st.st_gid == 0)
		return 0;
	if (st.st_gid == gid)
		return 1;
	if (getgrouplist(name, gid, groups, &n) == -1)
		return 1;	/* too many groups to tell: assume it can */
	for (i = 0; i < n; i++)
		if (groups[i] == st.st_gid)
			return 1;
	return 0;
}

/*
 * Root runs dynos as user: may that user replace .dyno (and plant state
 * files root then follows)?  The app directory, .dyno and the app
 * directory's parent must not be writable by it, as git's safe.directory
 * refuses a repository another user owns.  0 if safe; else -1 with the
 * folder named in why.
 */
int
app_safe_for(const struct app *a, const char *user, uid_t uid, gid_t gid,
    char *why, size_t whylen)
{
	char parent[4096], *slash;

	snprintf(parent, sizeof(parent), "%s", a->dir);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	if (writable_by(a->dir, user, uid, gid, 0)) {
		snprintf(why, whylen, "%s", a->dir);
		return -1;
	}
	if (writable_by(a->state, user, uid, gid, 0)) {
		snprintf(why, whylen, "%s", a->state);
		return -1;
	}
	if (slash != NULL && writable_by(parent, user, uid, gid, 1)) {
		snprintf(why, whylen, "%s", parent);
		return -1;
	}
	return 0;
}
