/*
 * app.c: the app directory.  State lives in APP/.dyno (mode 0700), like git
 * keeps .git beside the working tree; see dyno(7) for every file in it.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dyno.h"

int
app_init(struct app *a, const char *dir)
{
	char real[PATH_MAX];

	if (dir == NULL)
		dir = getenv("DYNO_APP");
	if (dir == NULL || *dir == '\0')
		dir = ".";
	if (realpath(dir, real) == NULL)
		return -1;
	if (snprintf(a->dir, sizeof(a->dir), "%s", real) >= (int)sizeof(a->dir) ||
	    snprintf(a->state, sizeof(a->state), "%s/.dyno", real) >=
	    (int)sizeof(a->state)) {
		errno = ENAMETOOLONG;
		return -1;
	}
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

int
app_prepare(const struct app *a)
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

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (app_path(a, path, sizeof(path), "%s", dirs[i].rel) == -1 ||
		    mkdir_mode(path, dirs[i].mode) == -1)
			return -1;
	}
	return 0;
}

int
app_release(const struct app *a, char *version, size_t vlen, char *dir,
    size_t dlen)
{
	char link[4096], real[PATH_MAX], meta[4096], *base;

	if (app_path(a, link, sizeof(link), "current") == -1)
		return -1;
	if (realpath(link, real) == NULL) {
		struct stat st;
		/* No current: dev mode.  A current that points nowhere is an
		 * error, not a quiet fall back to the app's own code. */
		if (errno == ENOENT && lstat(link, &st) == -1)
			return 1;
		return -1;
	}
	if (snprintf(dir, dlen, "%s", real) >= (int)dlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	base = strrchr(real, '/');
	snprintf(version, vlen, "v%s", base ? base + 1 : real);
	if (snprintf(meta, sizeof(meta), "%s/meta", real) < (int)sizeof(meta)) {
		char text[4096], v[32];
		if (file_read(meta, text, sizeof(text)) > 0 &&
		    kv_get(text, "version", v, sizeof(v)) == 0)
			snprintf(version, vlen, "v%s", v[0] == 'v' ? v + 1 : v);
	}
	return 0;
}

pid_t
app_supervisor_pid(const struct app *a)
{
	char path[4096];

	if (app_path(a, path, sizeof(path), "run/lock") == -1)
		return 0;
	return pidfile_holder(path);
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
