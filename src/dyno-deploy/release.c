/*
 * release.c: numbered releases: list, build one (release_make), switch
 * .dyno/current and wait for the dynos, retention, rollback.
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

long
release_current(void)
{
	char target[PATH_MAX], *base;
	ssize_t n;
	long v;

	n = readlinkat(app.fd, "current", target, sizeof(target) - 1);
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
long *
release_list(size_t *n)
{
	struct dirent *de;
	long *list = NULL, v;
	size_t cap = 0;
	DIR *d;

	*n = 0;
	if ((d = app_opendir(&app, "releases")) == NULL)
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
	char rel[64], text[8192];

	out[0] = '\0';
	snprintf(rel, sizeof(rel), "releases/%ld/meta", v);
	if (app_read(&app, rel, text, sizeof(text)) > 0)
		kv_get(text, key, out, len);
}

int
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

static void
current_switch(long v)
{
	char link[4096], tmp[64], target[64];

	state_path(link, sizeof(link), "current");
	snprintf(tmp, sizeof(tmp), "current.tmp.%ld", (long)getpid());
	snprintf(target, sizeof(target), "releases/%ld", v);
	app_unlinkat(&app, tmp);
	/* A symlink cannot be rewritten in place: make a new one, rename it,
	 * both in the .dyno we opened. */
	if (symlinkat(target, app.fd, tmp) == -1 ||
	    renameat(app.fd, tmp, app.fd, "current") == -1)
		die("cannot switch %s to %s: %s", link, target, strerror(errno));
	(void)fsync(app.fd);
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
		DIR *dir;
		struct dirent *de;
		if ((dir = app_opendir(&app, "run/dynos")) != NULL) {
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

/* Some dyno (one-offs and those on their way out too) runs release v. */
static int
release_running(long v)
{
	char want[32];
	struct dirent *de;
	int running = 0;
	DIR *d;

	snprintf(want, sizeof(want), "v%ld", v);
	if ((d = app_opendir(&app, "run/dynos")) == NULL)
		return 0;
	while (!running && (de = readdir(d)) != NULL) {
		char f[PATH_MAX], text[8192], rel[32];
		if (de->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "run/dynos/%s", de->d_name);
		running = app_read(&app, f, text, sizeof(text)) > 0 &&
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
	char path[4096];
	struct dirent *de;
	DIR *d;

	keep_from = n > (size_t)opt.keep ? n - (size_t)opt.keep : 0;
	for (i = 0; i < keep_from; i++) {
		if (list[i] == cur || release_running(list[i]))
			continue;	/* never one that runs or is to run */
		snprintf(path, sizeof(path), "releases/%ld", list[i]);
		remove_tree_at(app.fd, path);
	}
	free(list);
	/* Slugs no kept release points at go too. */
	if ((d = app_opendir(&app, "slugs")) == NULL)
		return;
	list = release_list(&n);
	while ((de = readdir(d)) != NULL) {
		int used = 0;
		if (de->d_name[0] == '.')
			continue;
		for (i = 0; i < n && !used; i++) {
			char link[64], target[PATH_MAX];
			ssize_t k;
			snprintf(link, sizeof(link), "releases/%ld/app", list[i]);
			k = readlinkat(app.fd, link, target, sizeof(target) - 1);
			if (k > 0) {
				target[k] = '\0';
				used = strstr(target, de->d_name) != NULL;
			}
		}
		if (!used) {
			snprintf(path, sizeof(path), "slugs/%s", de->d_name);
			remove_tree_at(app.fd, path);
		}
	}
	closedir(d);
	free(list);
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
	if (renameat(app.fd, app_rel(&app, builddir), app.fd,
	    app_rel(&app, final)) == -1)
		die("cannot rename %s to %s: %s", builddir, final, strerror(errno));
	failed_build[0] = failed_slug[0] = '\0';
	(void)dir_fsync_at(app.fd, "releases");
	return v;
}

/* Leftovers of deploys that were killed: never releases, just remove them. */
void
tmp_sweep(void)
{
	struct dirent *de;
	DIR *d;

	if ((d = app_opendir(&app, "tmp")) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char p[PATH_MAX];
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "tmp/%s", de->d_name);
		remove_tree_at(app.fd, p);
	}
	closedir(d);
}

/*
 * A new release with release `from`'s code and Procfile and the given
 * config vars (rollback, config:set, config:unset); the config file follows
 * it, then the switch.
 */
int
release_reuse(long from, const char *desc, struct env *config, int rollback)
{
	struct release_spec rs;
	char path[4096], *pftext;
	long v;
	int rc, fd;

	state_path(path, sizeof(path), "releases/%ld/Procfile", from);
	if ((fd = app_openat(&app, app_rel(&app, path), O_RDONLY | O_NONBLOCK,
	    0)) == -1 || file_read_alloc_fd(fd, &pftext, NULL, 1 << 20) == -1)
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

int
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

int
rollback_to(long target)
{
	char desc[64], path[4096];
	struct stat st;
	struct env config;
	int rc;

	snprintf(path, sizeof(path), "releases/%ld", target);
	if (app_lstat(&app, path, &st) == -1 || !S_ISDIR(st.st_mode))
		die("no release v%ld (kept: see dyno-deploy releases)", target);
	/* Its config vars come back too, as on Heroku. */
	snprintf(path, sizeof(path), "releases/%ld/config", target);
	config_load_from(&config, path);
	snprintf(desc, sizeof(desc), "Rollback to v%ld", target);
	rc = release_reuse(target, desc, &config, 1);
	env_free(&config);
	return rc;
}
