/*
 * restore.c: restore into a database, and download.
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

static void
confirm_or_die(const struct backup *b, const char *target)
{
	if (opt.confirm == NULL || strcmp(opt.confirm, app_name) != 0)
		die("restoring %s overwrites %s; to go on, run this again with --confirm %s",
		    b->id, target, app_name);
}

/* Check a file against B's checksum before anything is overwritten. */
static void
check_sum_or_die(const struct backup *b, const char *path)
{
	char sha[65];
	long long size;

	if (file_sha256(path, sha, &size) == -1)
		die("%s: %s", path, strerror(errno));
	if (size != b->size || strcmp(sha, b->sha256) != 0)
		die("%s is corrupt (sha256 %s, expected %s); nothing was restored",
		    b->id, sha, b->sha256);
}

static void
restore_sqlite(const struct backup *b, const char *src, const struct dburl *db)
{
	char tmp[PATH_MAX], dir[PATH_MAX], err[1024], side[PATH_MAX + 16];
	const char *slash;
	static const char *const sides[] = { "-wal", "-shm", "-journal" };
	struct stat st;
	size_t i;
	int fd;

	slash = strrchr(db->path, '/');
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - db->path), db->path);
	if (dir[0] == '\0')
		snprintf(dir, sizeof(dir), "/");
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.dyno-restore-%ld", dir, slash + 1,
	    (long)getpid()) >= (int)sizeof(tmp))
		die("path too long: %s", db->path);
	unlink(tmp);
	tmp_add(tmp);
	if (decompress_to(src, tmp, err, sizeof(err)) == -1 ||
	    sqlite_check(tmp, err, sizeof(err)) == -1)
		die("%s: %s; nothing was restored", b->id, err);
	if ((fd = open(tmp, O_RDONLY | O_CLOEXEC)) == -1 || fsync(fd) == -1)
		die("%s: %s", tmp, strerror(errno));
	/* the restored file keeps the old one's owner and mode */
	if (stat(db->path, &st) == 0) {
		if (fchmod(fd, st.st_mode & 07777) == -1 ||
		    (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) == -1))
			die("%s: %s", tmp, strerror(errno));
	}
	close(fd);
	/*
	 * A journal or WAL left beside the old file would be replayed into
	 * the new one; they belong to the database being replaced.
	 */
	for (i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
		snprintf(side, sizeof(side), "%s%s", db->path, sides[i]);
		if (unlink(side) == -1 && errno != ENOENT)
			die("%s: %s", side, strerror(errno));
	}
	if (rename(tmp, db->path) == -1)
		die("%s: %s", db->path, strerror(errno));
	tmp_done(tmp, 0);
	if (dir_fsync(dir) == -1)
		die("%s: %s", dir, strerror(errno));
}

int
cmd_restore(const char *id)
{
	struct backup *list, *b;
	struct dburl db;
	char path[PATH_MAX], err[1024];
	int fetched, lockfd;
	size_t n;

	lockfd = backups_lock();
	list = backups_load(&n);
	b = backup_find(list, n, id);
	memset(&db, 0, sizeof(db));
	if (strcmp(b->type, "cmd") == 0) {
		if (opt.cmd == NULL)
			die("%s was captured from a command; restore it with --cmd COMMAND, which gets it on stdin",
			    b->id);
		confirm_or_die(b, "what the command writes");
	} else {
		if (opt.cmd != NULL)
			usage_error("restore: --cmd is for backups captured with --cmd");
		db_resolve(&db);
		if ((strcmp(b->type, "postgres") == 0) != (db.type == DBURL_POSTGRES))
			die("%s is a %s backup; %s is not a %s database", b->id,
			    b->type, db.redacted, b->type);
		confirm_or_die(b, db.redacted);
	}
	backup_source(b, path, sizeof(path), &fetched);
	/* A postgres backup is checked as it streams in (see struct feed);
	 * a fetched copy was checked as it came. */
	if (!fetched && (strcmp(b->type, "postgres") != 0 || b->encrypted))
		check_sum_or_die(b, path);
	if (b->encrypted) {
		char plain[PATH_MAX];

		if (decrypt_to(b, path, plain, sizeof(plain), err, sizeof(err)) != 0)
			die("%s is encrypted and cannot be decrypted here: %s", b->id,
			    err);
		if (fetched)
			tmp_done(path, 1);
		snprintf(path, sizeof(path), "%s", plain);
		fetched = 1;	/* the plaintext is a temp file: removed below */
	}
	say("restoring %s into %s", b->id, strcmp(b->type, "cmd") == 0 ?
	    opt.cmd : db.redacted);
	if (strcmp(b->type, "postgres") == 0) {
		/* From stdin: the archive was written to a pipe, so it has
		 * no offsets to seek to and reads front to back. */
		char *argv[] = { "pg_restore", "--clean", "--if-exists",
		    "--single-transaction", "--no-owner", "--no-privileges",
		    "--no-password", "--dbname", db.url, NULL };
		struct feed f;
		struct stat st;

		memset(&f, 0, sizeof(f));
		if ((f.fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
		    fstat(f.fd, &st) == -1)
			die("%s: %s", path, strerror(errno));
		f.size = st.st_size;
		f.sha = b->encrypted ? b->plain_sha256 : b->sha256;
		if (run_io(argv, pg_env(&db), NULL, -1, &f, NULL, "pg_restore",
		    err, sizeof(err)) == -1)
			die("%s: %s; the database is as it was", b->id, err);
		close(f.fd);
	} else if (strcmp(b->type, "sqlite") == 0)
		restore_sqlite(b, path, &db);
	else {
		char *argv[] = { "/bin/sh", "-c", (char *)opt.cmd, NULL };
		int in = open(path, O_RDONLY | O_CLOEXEC);
		if (in == -1)
			die("%s: %s", path, strerror(errno));
		if (run(argv, NULL, NULL, in, NULL, "the restore command", err,
		    sizeof(err)) == -1)
			die("%s: %s", b->id, err);
		close(in);
	}
	if (fetched)
		tmp_done(path, 1);
	say("restored %s", b->id);
	backups_free(list, n);
	close(lockfd);
	return 0;
}

int
cmd_download(const char *id, const char *dest)
{
	struct backup *list, *b;
	char path[PATH_MAX], tmp[PATH_MAX + 32], sha[65];
	static char buf[IO_BUF];
	struct sha256 s;
	long long size = 0;
	int in, out, fetched = 0, lockfd = -1;
	ssize_t r;
	size_t n;

	list = backups_load(&n);
	b = backup_find(list, n, id);
	data_path(b, path, sizeof(path));
	if (opt.remote || access(path, F_OK) == -1) {
		lockfd = backups_lock();	/* the fetch writes a temp file here */
		backup_source(b, path, sizeof(path), &fetched);
	}
	if (dest == NULL)
		dest = b->file;
	if ((in = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die("%s: %s", path, strerror(errno));
	if (strcmp(dest, "-") == 0)
		out = 1;
	else {
		snprintf(tmp, sizeof(tmp), "%s.dyno-download-%ld", dest,
		    (long)getpid());
		tmp_add(tmp);
		if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600)) == -1)
			die("%s: %s", tmp, strerror(errno));
	}
	sha256_init(&s);
	while ((r = read(in, buf, sizeof(buf))) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			die("%s: %s", path, strerror(errno));
		}
		sha256_update(&s, buf, (size_t)r);
		size += r;
		if (write_all(out, buf, (size_t)r) == -1)
			die("%s: %s", out == 1 ? "stdout" : tmp, strerror(errno));
	}
	close(in);
	sha256_hex(&s, sha);
	if (size != b->size || strcmp(sha, b->sha256) != 0)
		die("%s is corrupt (sha256 %s, expected %s)%s", b->id, sha,
		    b->sha256, out == 1 ? "; what was written to stdout is not the backup" : "");
	if (out != 1) {
		if (fsync(out) == -1 || close(out) == -1 || rename(tmp, dest) == -1)
			die("%s: %s", dest, strerror(errno));
		tmp_done(tmp, 0);
		say("wrote %s to %s", b->id, dest);
	}
	if (fetched)
		tmp_done(path, 1);
	if (lockfd != -1)
		close(lockfd);
	backups_free(list, n);
	return 0;
}
