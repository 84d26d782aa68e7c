/*
 * capture.c: taking a backup: the dump or command, compressed, hashed,
 * checked, published, and sent off the host.
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

/* Strip the "*** ... ***" that zstd puts around its version line. */
static void
trim_stars(char *s)
{
	size_t n, lead = strspn(s, "* ");

	memmove(s, s + lead, strlen(s + lead) + 1);
	n = strlen(s);
	while (n > 0 && (s[n - 1] == '*' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* The versions of the programs that make a backup, for its meta file. */
static void
tools_versions(int type, const char *compress, char *out, size_t outlen)
{
	char a[200] = "", c[200] = "", v[200];

	if (type == DBURL_POSTGRES) {
		char *argv[] = { "pg_dump", "--version", NULL };
		first_line(argv, a, sizeof(a));
	} else if (type == DBURL_SQLITE) {
		char *argv[] = { "sqlite3", "--version", NULL };
		first_line(argv, v, sizeof(v));
		v[strcspn(v, " ")] = '\0';	/* "3.40.1 2022-12-28 ..." */
		snprintf(a, sizeof(a), "sqlite3 %s", v);
		if (compress != NULL) {
			char *argv2[] = { (char *)compress, "--version", NULL };
			first_line(argv2, c, sizeof(c));
			trim_stars(c);
		}
	}
	snprintf(out, outlen, "%s%s%s", a, c[0] ? "; " : "", c);
}

static int
open_tmp(const char *path)
{
	int fd;

	tmp_add(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		die("%s: %s", path, strerror(errno));
	return fd;
}


int
cmd_capture(void)
{
	struct dburl db;
	struct sink s;
	struct backup b;
	char id[16], tmp[PATH_MAX], raw[PATH_MAX], final[PATH_MAX], err[1024];
	char file[64], tools[512], created[32], sha[65], meta[8192], dur[32];
	char plain_sha[65];
	long long plain_size = 0;
	const char *compress = NULL, *what;
	long long t0, when;
	long num;
	int fd, lockfd;

	memset(&db, 0, sizeof(db));
	if (opt.cmd != NULL) {
		if (opt.db != NULL)
			usage_error("capture: --db and --cmd do not go together");
		db.type = DB_CMD;
		snprintf(db.redacted, sizeof(db.redacted), "command");
	} else
		db_resolve(&db);
	if (opt.to != NULL)
		remote_check(opt.to);
	if (opt.encrypt_to != NULL) {
		char *argv[] = { "gpg", "--batch", "--quiet", "--no-tty",
		    "--auto-key-locate", "local", "--list-keys",
		    (char *)opt.encrypt_to, NULL };

		if (!in_path("gpg"))
			die("--encrypt-to needs gpg (apt-get install gnupg)");
		if (run(argv, NULL, NULL, -1, NULL, "gpg --list-keys", err,
		    sizeof(err)) == -1)
			die("--encrypt-to %s: no such public key in gpg's keyring",
			    opt.encrypt_to);
	}
	lockfd = backups_lock();
	last_capture("running", NULL);
	capturing = 1;
	num = next_num();
	id_format(num, id, sizeof(id));
	t0 = clock_ms();
	when = now_unix();
	sink_init(&s, -1);
	switch (db.type) {
	case DBURL_POSTGRES: {
		char *argv[] = { "pg_dump", "--format=custom", "--no-password",
		    "--dbname", db.url, NULL };

		what = "pg_dump";
		snprintf(file, sizeof(file), "%s.dump", id);
		snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", backups_dir, file);
		fd = open_tmp(tmp);
		sink_init(&s, fd);
		say("capturing %s from %s", id, db.redacted);
		if (run(argv, pg_env(&db), NULL, -1, &s, what, err, sizeof(err)) == -1)
			die("%s: %s", db.redacted, err);
		break;
	}
	case DBURL_SQLITE: {
		char target[64], backup_cmd[128];
		char *argv[] = { "sqlite3", "-bail", db.path, ".timeout 30000",
		    "BEGIN;", "SELECT count(*) FROM sqlite_schema;", backup_cmd,
		    "COMMIT;", NULL };

		what = "sqlite3";
		if (access(db.path, R_OK) == -1)
			die("%s: %s", db.path, strerror(errno));
		compress = in_path("zstd") ? "zstd" : "gzip";
		snprintf(file, sizeof(file), "%s.sqlite.%s", id,
		    strcmp(compress, "zstd") == 0 ? "zst" : "gz");
		/*
		 * The online backup API copies the pages inside one read
		 * transaction, so a writer in WAL mode goes on and the copy is
		 * one consistent snapshot; in rollback mode a writer waits.
		 */
		snprintf(target, sizeof(target), ".tmp-%s.sqlite", id);
		snprintf(raw, sizeof(raw), "%s/%s", backups_dir, target);
		/* run in backups/, so the name needs no quoting whatever the
		 * app's path holds */
		snprintf(backup_cmd, sizeof(backup_cmd), ".backup '%s'", target);
		tmp_add(raw);
		say("capturing %s from %s", id, db.redacted);
		if (run(argv, NULL, backups_dir, -1, NULL, what, err,
		    sizeof(err)) == -1)
			die("%s: %s", db.redacted, err);
		snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", backups_dir, file);
		fd = open_tmp(tmp);
		sink_init(&s, fd);
		{
			char *zargv[] = { (char *)compress, "-c", "-q", raw, NULL };
			char *gargv[] = { (char *)compress, "-c", "-n", raw, NULL };
			if (run(strcmp(compress, "zstd") == 0 ? zargv : gargv, NULL,
			    NULL, -1, &s, compress, err, sizeof(err)) == -1)
				die("%s", err);
		}
		tmp_done(raw, 1);
		break;
	}
	case DB_CMD: {
		char *argv[] = { "/bin/sh", "-c", (char *)opt.cmd, NULL };

		what = "the command";
		snprintf(file, sizeof(file), "%s.raw", id);
		snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", backups_dir, file);
		fd = open_tmp(tmp);
		sink_init(&s, fd);
		say("capturing %s from: %s", id, opt.cmd);
		if (run(argv, NULL, NULL, -1, &s, what, err, sizeof(err)) == -1)
			die("%s", err);
		break;
	}
	default:
		die("internal error: no database type");
	}
	if (s.size == 0)
		die("%s printed nothing: an empty backup is no backup",
		    what);
	if (fsync(fd) == -1 || close(fd) == -1)
		die("%s: %s", tmp, strerror(errno));
	check_interrupted();
	sha256_hex(&s.sha, sha);
	if (readable(db.type == DBURL_POSTGRES ? "postgres" :
	    db.type == DBURL_SQLITE ? "sqlite" : "cmd", tmp, err, sizeof(err)) == -1)
		die("%s did not verify: %s", id, err);
	check_interrupted();
	plain_sha[0] = '\0';
	if (opt.encrypt_to != NULL) {
		/* The plaintext was checked; what is kept is its gpg encryption. */
		char enc[PATH_MAX];
		char *argv[] = { "gpg", "--batch", "--quiet", "--no-tty", "--yes",
		    "--auto-key-locate", "local", "--trust-model", "always",
		    "--encrypt", "--recipient",
		    (char *)opt.encrypt_to, "--output", "-", tmp, NULL };
		struct sink es;

		snprintf(plain_sha, sizeof(plain_sha), "%s", sha);
		plain_size = s.size;
		snprintf(file + strlen(file), sizeof(file) - strlen(file), ".gpg");
		snprintf(enc, sizeof(enc), "%s/.tmp-%s", backups_dir, file);
		fd = open_tmp(enc);
		sink_init(&es, fd);
		if (run(argv, NULL, NULL, -1, &es, "gpg --encrypt", err,
		    sizeof(err)) == -1)
			die("%s", err);
		if (es.size == 0)
			die("gpg --encrypt printed nothing");
		if (fsync(fd) == -1 || close(fd) == -1)
			die("%s: %s", enc, strerror(errno));
		tmp_done(tmp, 1);
		snprintf(tmp, sizeof(tmp), "%s", enc);
		s.size = es.size;
		sha256_hex(&es.sha, sha);
	}
	/* Publish: the data file first, the meta last (a backup exists when
	 * its meta does). */
	path_in(final, sizeof(final), backups_dir, file);
	if (rename(tmp, final) == -1)
		die("%s: %s", final, strerror(errno));
	tmp_done(tmp, 0);
	tools_versions(db.type, compress, tools, sizeof(tools));
	iso_utc(when, created, sizeof(created));
	snprintf(dur, sizeof(dur), "%lld", (long long)(clock_ms() - t0));
	snprintf(meta, sizeof(meta),
	    "id=%s\ncreated=%s\ncreated_unix=%lld\nkind=%s\nstatus=completed\n"
	    "type=%s\nfile=%s\nsize=%lld\nsha256=%s\nduration_ms=%s\n"
	    "database=%s\ncompression=%s\ntools=%s\nverified=%s\n",
	    id, created, when, opt.scheduled ? "scheduled" : "manual",
	    db.type == DBURL_POSTGRES ? "postgres" : db.type == DBURL_SQLITE ?
	    "sqlite" : "cmd", file, s.size, sha, dur, db.redacted,
	    db.type == DBURL_POSTGRES ? "pg_dump" : compress != NULL ? compress :
	    "none", tools[0] ? tools : "-", created);
	memset(&b, 0, sizeof(b));
	b.num = num;
	snprintf(b.id, sizeof(b.id), "%s", id);
	if ((b.meta = strdup(meta)) == NULL)
		die("out of memory");
	meta_fill(&b);
	if (plain_sha[0] != '\0') {
		char v[32];

		meta_set(&b, "encryption", "gpg");
		meta_set(&b, "recipient", opt.encrypt_to);
		meta_set(&b, "plain_sha256", plain_sha);
		snprintf(v, sizeof(v), "%lld", plain_size);
		meta_set(&b, "plain_size", v);
	}
	seq_save(num);
	meta_save(&b);
	say("captured %s: %lld bytes in %s ms, sha256 %s", id, s.size, dur, sha);
	if (opt.to != NULL) {
		if (upload(&b, opt.to, opt.endpoint, err, sizeof(err)) == -1)
			die("%s is kept here, but %s", id, err);
	}
	capturing = 0;
	last_capture("ok", NULL);
	free(b.meta);
	close(lockfd);
	if (opt.scheduled)
		return cmd_prune();
	return 0;
}
