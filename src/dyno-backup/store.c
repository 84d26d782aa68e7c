/*
 * store.c: the local store: .dyno/backups, b001.. with their meta files,
 * its lock and sequence, list, info, delete and prune.
 */
#define _GNU_SOURCE
#include <ctype.h>
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
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "backup.h"

int
id_parse(const char *s, long *num)
{
	if (s[0] != 'b' || !isdigit((unsigned char)s[1]))
		return -1;
	return parse_long(s + 1, 1, 99999999, num);
}

void
id_format(long num, char *buf, size_t len)
{
	snprintf(buf, len, "b%03ld", num);
}

static int
backup_cmp(const void *a, const void *b)
{
	const struct backup *x = a, *y = b;

	return x->num < y->num ? -1 : x->num > y->num;
}

void
meta_fill(struct backup *b)
{
	char v[64];

	kv_get(b->meta, "kind", b->kind, sizeof(b->kind));
	kv_get(b->meta, "status", b->status, sizeof(b->status));
	kv_get(b->meta, "type", b->type, sizeof(b->type));
	kv_get(b->meta, "file", b->file, sizeof(b->file));
	kv_get(b->meta, "sha256", b->sha256, sizeof(b->sha256));
	if (kv_get(b->meta, "remote", b->remote, sizeof(b->remote)) == -1)
		b->remote[0] = '\0';
	if (kv_get(b->meta, "remote_endpoint", b->endpoint, sizeof(b->endpoint)) == -1)
		b->endpoint[0] = '\0';
	b->encrypted = kv_get(b->meta, "encryption", v, sizeof(v)) == 0 &&
	    strcmp(v, "gpg") == 0;
	if (kv_get(b->meta, "plain_sha256", b->plain_sha256,
	    sizeof(b->plain_sha256)) == -1)
		b->plain_sha256[0] = '\0';
	b->created = b->size = 0;
	if (kv_get(b->meta, "created_unix", v, sizeof(v)) == 0)
		b->created = strtoll(v, NULL, 10);
	if (kv_get(b->meta, "size", v, sizeof(v)) == 0)
		b->size = strtoll(v, NULL, 10);
}

/* Every published backup (those with a .meta), oldest first. */
struct backup *
backups_load(size_t *np)
{
	DIR *d;
	struct dirent *de;
	struct backup *list = NULL, *b;
	size_t n = 0, cap = 0, len;
	char path[PATH_MAX], idbuf[32];
	long num;

	*np = 0;
	if ((d = opendir(backups_dir)) == NULL) {
		if (errno == ENOENT)
			return NULL;
		die("%s: %s", backups_dir, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (!has_suffix(de->d_name, ".meta") ||
		    strlen(de->d_name) - 5 >= sizeof(idbuf))
			continue;
		snprintf(idbuf, sizeof(idbuf), "%.*s",
		    (int)(strlen(de->d_name) - 5), de->d_name);
		if (id_parse(idbuf, &num) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			if ((list = realloc(list, cap * sizeof(*list))) == NULL)
				die("out of memory");
		}
		b = &list[n];
		memset(b, 0, sizeof(*b));
		b->num = num;
		snprintf(b->id, sizeof(b->id), "%s", idbuf);
		path_in(path, sizeof(path), backups_dir, de->d_name);
		if (file_read_alloc(path, &b->meta, &len, META_MAX) == -1) {
			if (errno == ENOENT)
				continue;	/* deleted meanwhile */
			die("%s: %s", path, strerror(errno));
		}
		meta_fill(b);
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(list, n, sizeof(*list), backup_cmp);
	*np = n;
	return list;
}

void
backups_free(struct backup *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(list[i].meta);
	free(list);
}

/* ID, "latest" or NULL (the newest) among LIST. */
struct backup *
backup_find(struct backup *list, size_t n, const char *id)
{
	long num;
	size_t i;

	if (id == NULL || strcmp(id, "latest") == 0) {
		if (n == 0)
			die("no backups in %s yet", app.dir);
		return &list[n - 1];
	}
	if (id_parse(id, &num) == -1)
		die("not a backup ID: %s (IDs look like b001)", id);
	for (i = 0; i < n; i++)
		if (list[i].num == num)
			return &list[i];
	die("no backup %s in %s", id, app.dir);
}

/* Set KEY=VALUE in a meta text (replace the line or append one). */
void
meta_set(struct backup *b, const char *key, const char *value)
{
	size_t klen = strlen(key), len = strlen(b->meta), vlen = strlen(value);
	char *p = b->meta, *line = NULL, *end, *out;

	if (strchr(value, '\n') != NULL)
		die("internal error: newline in meta value for %s", key);
	while (*p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			line = p;
			break;
		}
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	if ((out = malloc(len + klen + vlen + 3)) == NULL)
		die("out of memory");
	if (line != NULL) {
		end = strchr(line, '\n');
		end = end != NULL ? end + 1 : line + strlen(line);
		sprintf(out, "%.*s%s=%s\n%s", (int)(line - b->meta), b->meta,
		    key, value, end);
	} else
		sprintf(out, "%s%s%s=%s\n", b->meta,
		    len > 0 && b->meta[len - 1] != '\n' ? "\n" : "", key, value);
	free(b->meta);
	b->meta = out;
	meta_fill(b);
}

void
meta_save(const struct backup *b)
{
	char path[PATH_MAX], name[64];

	snprintf(name, sizeof(name), "%s.meta", b->id);
	path_in(path, sizeof(path), backups_dir, name);
	if (atomicfile_write(path, b->meta, strlen(b->meta), 0600, 1) == -1)
		die("%s: %s", path, strerror(errno));
}

void
data_path(const struct backup *b, char *buf, size_t len)
{
	if (b->file[0] == '\0' || strchr(b->file, '/') != NULL ||
	    b->file[0] == '.')
		die("%s.meta: bad file= line", b->id);
	path_in(buf, len, backups_dir, b->file);
}

static void
backups_dir_make(void)
{
	if (mkdir_mode(app.state, 0700) == -1)
		die("%s: %s", app.state, strerror(errno));
	if (mkdir_mode(backups_dir, 0700) == -1)
		die("%s: %s", backups_dir, strerror(errno));
}

/*
 * The lock every command that writes in backups/ takes.  Holding it, the
 * leftovers of a run that was killed are removed: .tmp- files, and a data
 * file whose meta never got written.
 */
int
backups_lock(void)
{
	char path[PATH_MAX], p2[PATH_MAX], meta[80];
	DIR *d;
	struct dirent *de;
	pid_t holder;
	long num;
	int fd;

	backups_dir_make();
	path_in(path, sizeof(path), backups_dir, ".lock");
	if ((fd = lock_take(AT_FDCWD, path, &holder)) == -1) {
		if (errno == EWOULDBLOCK) {
			if (holder > 0)
				die("another dyno-backup (pid %ld) is running on %s; try again when it ends",
				    (long)holder, app.dir);
			die("another dyno-backup is running on %s; try again when it ends",
			    app.dir);
		}
		die("%s: %s", path, strerror(errno));
	}
	(void)fchmod(fd, 0600);
	if ((d = opendir(backups_dir)) == NULL)
		die("%s: %s", backups_dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char idbuf[32];
		size_t idlen;

		if (strncmp(de->d_name, ".tmp-", 5) == 0) {
			path_in(p2, sizeof(p2), backups_dir, de->d_name);
			if (unlink(p2) == 0)
				say("removed %s, left by a run that was stopped",
				    de->d_name);
			continue;
		}
		if (de->d_name[0] != 'b' || has_suffix(de->d_name, ".meta"))
			continue;
		idlen = strcspn(de->d_name, ".");
		if (idlen >= sizeof(idbuf) || de->d_name[idlen] != '.')
			continue;
		snprintf(idbuf, sizeof(idbuf), "%.*s", (int)idlen, de->d_name);
		if (id_parse(idbuf, &num) == -1)
			continue;
		snprintf(meta, sizeof(meta), "%s.meta", idbuf);
		path_in(p2, sizeof(p2), backups_dir, meta);
		if (access(p2, F_OK) == 0)
			continue;
		path_in(p2, sizeof(p2), backups_dir, de->d_name);
		if (unlink(p2) == 0)
			say("removed %s: its capture never finished", de->d_name);
	}
	closedir(d);
	return fd;
}

/* The next ID: one past the highest ever used (.seq) or present. */
long
next_num(void)
{
	char path[PATH_MAX], buf[32];
	struct backup *list;
	size_t n;
	long seq = 0;

	path_in(path, sizeof(path), backups_dir, ".seq");
	if (file_read(path, buf, sizeof(buf)) > 0) {
		buf[strcspn(buf, "\n")] = '\0';
		if (parse_long(buf, 0, 99999998, &seq) == -1)
			die("%s: not a number: %s", path, buf);
	}
	list = backups_load(&n);
	if (n > 0 && list[n - 1].num > seq)
		seq = list[n - 1].num;
	backups_free(list, n);
	if (seq >= 99999999)
		die("out of backup IDs");
	return seq + 1;
}

void
seq_save(long num)
{
	char path[PATH_MAX], buf[32];
	int n;

	path_in(path, sizeof(path), backups_dir, ".seq");
	n = snprintf(buf, sizeof(buf), "%ld\n", num);
	if (atomicfile_write(path, buf, (size_t)n, 0600, 1) == -1)
		die("%s: %s", path, strerror(errno));
}

/* backups/.last-capture: "status=running|ok|failed", for prune's safety. */
void
last_capture(const char *status, const char *error)
{
	char path[PATH_MAX], buf[1024], at[32];
	int n;

	iso_utc((long long)time(NULL), at, sizeof(at));
	path_in(path, sizeof(path), backups_dir, ".last-capture");
	n = snprintf(buf, sizeof(buf), "status=%s\nat=%s\n%s%.900s%s", status,
	    at, error != NULL ? "error=" : "", error != NULL ? error : "",
	    error != NULL ? "\n" : "");
	(void)atomicfile_write(path, buf, (size_t)n, 0600, 1);
}

int
cmd_list(void)
{
	struct backup *list;
	size_t n, i;
	char created[32], size[32];
	struct tm tm;
	time_t t;

	list = backups_load(&n);
	printf("%-6s  %-23s  %10s  %-9s  %-9s  %s\n", "ID", "CREATED", "SIZE",
	    "KIND", "STATUS", "REMOTE");
	for (i = 0; i < n; i++) {
		t = (time_t)list[i].created;
		gmtime_r(&t, &tm);
		strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S UTC", &tm);
		human_size(list[i].size, size, sizeof(size));
		printf("%-6s  %-23s  %10s  %-9s  %-9s  %s\n", list[i].id, created,
		    size, list[i].kind, list[i].status,
		    list[i].remote[0] ? list[i].remote : "-");
	}
	backups_free(list, n);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
cmd_info(const char *id)
{
	struct backup *list, *b;
	size_t n;

	list = backups_load(&n);
	b = backup_find(list, n, id);
	fputs(b->meta, stdout);
	backups_free(list, n);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* Remove backup B: its meta first (so it is no longer listed), then data. */
static void
remove_backup(const struct backup *b)
{
	char path[PATH_MAX], name[64];

	snprintf(name, sizeof(name), "%s.meta", b->id);
	path_in(path, sizeof(path), backups_dir, name);
	if (unlink(path) == -1 && errno != ENOENT)
		die("%s: %s", path, strerror(errno));
	data_path(b, path, sizeof(path));
	if (unlink(path) == -1 && errno != ENOENT)
		die("%s: %s", path, strerror(errno));
}

int
cmd_delete(const char *id)
{
	struct backup *list, *b;
	size_t n;
	int lockfd;

	if (id == NULL)
		usage_error("delete: which backup? (e.g. dyno-backup delete b001)");
	lockfd = backups_lock();
	list = backups_load(&n);
	b = backup_find(list, n, id);
	remove_backup(b);
	if (dir_fsync(backups_dir) == -1)
		die("%s: %s", backups_dir, strerror(errno));
	say("deleted %s%s%s", b->id, b->remote[0] ? "; its remote copy stays at " : "",
	    b->remote);
	backups_free(list, n);
	close(lockfd);
	return 0;
}

/*
 * Retention, as borg and restic count it: walking the scheduled backups
 * newest first, keep the newest of each calendar day for the newest
 * KEEP_DAILY days; then, walking them again, the newest of each ISO week
 * for KEEP_WEEKLY weeks, where a week whose newest backup is already kept
 * does not count.  The newest KEEP_MANUAL manual backups, and the newest
 * completed backup of all, are kept too.  Corrupt backups keep nothing.
 */
static void
keep_periods(struct backup *list, size_t n, char *keep, int weekly, long count)
{
	char last[16] = "", period[16];
	struct tm tm;
	time_t t;
	long kept = 0;
	size_t i;

	for (i = n; i-- > 0 && kept < count;) {
		if (strcmp(list[i].kind, "scheduled") != 0 ||
		    strcmp(list[i].status, "completed") != 0)
			continue;
		t = (time_t)list[i].created;
		localtime_r(&t, &tm);
		strftime(period, sizeof(period), weekly ? "%G-%V" : "%Y-%m-%d", &tm);
		if (strcmp(period, last) == 0)
			continue;
		snprintf(last, sizeof(last), "%s", period);
		if (keep[i])
			continue;
		keep[i] = weekly ? 'w' : 'd';
		kept++;
	}
}

/* The sort order of backups is by ID, which is also by capture time; but a
 * faked or stepped clock may disagree, so retention sorts by time. */
static int
created_cmp(const void *a, const void *b)
{
	const struct backup *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return backup_cmp(a, b);
}

int
cmd_prune(void)
{
	struct backup *list;
	char path[PATH_MAX], state[1024], status[16], *keep;
	long manual = 0;
	size_t n, i, gone = 0;
	int lockfd;

	lockfd = backups_lock();
	path_in(path, sizeof(path), backups_dir, ".last-capture");
	if (!opt.force && file_read(path, state, sizeof(state)) > 0 &&
	    kv_get(state, "status", status, sizeof(status)) == 0 &&
	    strcmp(status, "ok") != 0) {
		char at[40] = "";
		kv_get(state, "at", at, sizeof(at));
		die("the last capture (%s) %s; not pruning until one succeeds (--force prunes anyway)",
		    at, strcmp(status, "running") == 0 ? "was stopped before it finished" :
		    "failed");
	}
	list = backups_load(&n);
	if (n > 1)
		qsort(list, n, sizeof(*list), created_cmp);
	if ((keep = calloc(n + 1, 1)) == NULL)
		die("out of memory");
	keep_periods(list, n, keep, 0, opt.keep_daily);
	keep_periods(list, n, keep, 1, opt.keep_weekly);
	for (i = n; i-- > 0;)
		if (strcmp(list[i].kind, "manual") == 0 &&
		    strcmp(list[i].status, "completed") == 0 &&
		    manual < opt.keep_manual) {
			keep[i] = 'm';
			manual++;
		}
	for (i = n; i-- > 0;)
		if (strcmp(list[i].status, "completed") == 0) {
			if (!keep[i])
				keep[i] = 'n';	/* the newest good one, always */
			break;
		}
	for (i = 0; i < n; i++) {
		if (keep[i])
			continue;
		if (opt.dry_run) {
			printf("would delete %s (%s, %s)\n", list[i].id,
			    list[i].kind, list[i].status);
			continue;
		}
		remove_backup(&list[i]);
		say("deleted %s (%s, %s)", list[i].id, list[i].kind,
		    list[i].status);
		gone++;
	}
	if (gone > 0 && dir_fsync(backups_dir) == -1)
		die("%s: %s", backups_dir, strerror(errno));
	free(keep);
	backups_free(list, n);
	close(lockfd);
	return fflush(stdout) == 0 ? 0 : 1;
}
