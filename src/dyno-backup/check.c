/*
 * check.c: reading a stored backup back: checksums, decompression, a
 * sqlite integrity check, decryption, and verify.
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

/* sha256 of a file, in hex; -1 if it cannot be read. */
/*
 * sha256 (and md5 unless NULL) of LEN bytes of a file from OFF; -1 with
 * errno when it cannot be read (EIO when it is shorter).
 */
int
range_sums(int fd, long long off, long long len, char sha[65],
    unsigned char md5[16])
{
	static char *buf;
	struct sha256 s;
	struct md5 m;
	ssize_t r;

	if (buf == NULL && (buf = malloc(IO_BUF)) == NULL)
		die("out of memory");
	sha256_init(&s);
	md5_init(&m);
	while (len > 0) {
		r = pread(fd, buf, len < IO_BUF ? (size_t)len : IO_BUF, off);
		if (r == -1 && errno == EINTR && !interrupted)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		sha256_update(&s, buf, (size_t)r);
		if (md5 != NULL)
			md5_update(&m, buf, (size_t)r);
		off += r;
		len -= r;
	}
	sha256_hex(&s, sha);
	if (md5 != NULL)
		md5_final(&m, md5);
	return 0;
}

/* sha256 of a whole file, in hex, and its size; -1 if it cannot be read. */
int
file_sha256(const char *path, char out[65], long long *size)
{
	struct stat st;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		close(fd);
		return -1;
	}
	*size = st.st_size;
	rc = range_sums(fd, 0, st.st_size, out, NULL);
	close(fd);
	return rc;
}

static const char *
decompressor(const char *file)
{
	if (has_suffix(file, ".zst"))
		return "zstd";
	if (has_suffix(file, ".gz"))
		return "gzip";
	return NULL;
}

/* Decompress SRC into a new file DST (mode 0600). */
int
decompress_to(const char *src, const char *dst, char *err, size_t errlen)
{
	const char *tool = decompressor(src);
	char *zargv[] = { (char *)tool, "-d", "-c", "-q", (char *)src, NULL };
	char *gargv[] = { (char *)tool, "-d", "-c", (char *)src, NULL };
	char **argv = tool != NULL && strcmp(tool, "gzip") == 0 ? gargv : zargv;
	struct sink s;
	int fd, rc;

	if ((fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		return -1;
	}
	sink_init(&s, fd);
	if (tool == NULL) {
		snprintf(err, errlen, "%s: unknown compression", src);
		close(fd);
		return -1;
	}
	rc = run(argv, NULL, NULL, -1, &s, tool, err, errlen);
	if (rc == 0 && fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* PRAGMA integrity_check on a plain sqlite file: 0 when it says "ok". */
int
sqlite_check(const char *file, char *err, size_t errlen)
{
	char *argv[] = { "sqlite3", "-bail", "-readonly", (char *)file,
	    "PRAGMA integrity_check;", NULL };
	char mem[512], side[PATH_MAX + 8];
	struct sink s;
	int rc;

	sink_init(&s, -1);
	s.mem = mem;
	s.memcap = sizeof(mem) - 1;
	rc = run(argv, NULL, NULL, -1, &s, "sqlite3", err, errlen);
	/* A copy of a WAL database gets -wal and -shm files when opened. */
	snprintf(side, sizeof(side), "%s-wal", file);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", file);
	unlink(side);
	if (rc == -1)
		return -1;
	mem[s.memlen] = '\0';
	if (strcmp(mem, "ok\n") != 0) {
		mem[strcspn(mem, "\n")] = '\0';
		snprintf(err, errlen, "sqlite integrity_check: %s", mem);
		return -1;
	}
	return 0;
}

/*
 * Can the database's own tool read FILE (a backup of TYPE)?  postgres:
 * pg_restore --list reads the archive's table of contents; sqlite: the
 * file decompresses and passes PRAGMA integrity_check.
 */
int
readable(const char *type, const char *file, char *err, size_t errlen)
{
	char check[PATH_MAX];
	int rc;

	if (strcmp(type, "postgres") == 0) {
		char *argv[] = { "pg_restore", "--list", (char *)file, NULL };
		struct sink s;

		sink_init(&s, -1);
		return run(argv, NULL, NULL, -1, &s, "pg_restore --list", err,
		    errlen);
	}
	if (strcmp(type, "sqlite") == 0) {
		snprintf(check, sizeof(check), "%s/.tmp-check-%ld.sqlite",
		    backups_dir, (long)getpid());
		tmp_add(check);
		rc = decompress_to(file, check, err, errlen);
		if (rc == 0)
			rc = sqlite_check(check, err, errlen);
		tmp_done(check, 1);
		return rc;
	}
	return 0;	/* a command's output: the checksum is all we know */
}

/*
 * Decrypt an encrypted backup B (stored at PATH) into a temp file whose
 * name keeps the inner suffix (.dump, .sqlite.zst ...); its path to out.
 * 0 when the plaintext matches the recorded plain_sha256; 1 when this
 * host has no secret key for it (nothing written); -1 with err otherwise.
 */
int
decrypt_to(const struct backup *b, const char *path, char *out, size_t outlen,
    char *err, size_t errlen)
{
	char *argv[] = { "gpg", "--batch", "--quiet", "--no-tty", "--decrypt",
	    (char *)path, NULL };
	char sha[65];
	struct sink s;
	int fd, rc;

	snprintf(out, outlen, "%s/.tmp-plain-%.*s", backups_dir,
	    (int)(strlen(b->file) - 4), b->file);
	tmp_add(out);
	if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		die("%s: %s", out, strerror(errno));
	sink_init(&s, fd);
	rc = run(argv, NULL, NULL, -1, &s, "gpg --decrypt", err, errlen);
	if (rc == 0 && fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", out, strerror(errno));
		rc = -1;
	}
	close(fd);
	if (rc == -1) {
		tmp_done(out, 1);
		return strstr(err, "No secret key") != NULL ? 1 : -1;
	}
	sha256_hex(&s.sha, sha);
	if (b->plain_sha256[0] != '\0' && strcmp(sha, b->plain_sha256) != 0) {
		snprintf(err, errlen, "%s decrypts to data with sha256 %s, not %s",
		    b->id, sha, b->plain_sha256);
		tmp_done(out, 1);
		return -1;
	}
	return 0;
}

int
cmd_verify(const char *id)
{
	struct backup *list, *b;
	char path[PATH_MAX], sha[65], err[1024], at[32];
	long long size;
	int fetched, lockfd, ok = 1;
	size_t n;

	lockfd = backups_lock();
	list = backups_load(&n);
	b = backup_find(list, n, id);
	backup_source(b, path, sizeof(path), &fetched);
	if (file_sha256(path, sha, &size) == -1) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		ok = 0;
	} else if (size != b->size || strcmp(sha, b->sha256) != 0) {
		snprintf(err, sizeof(err), "%s%s is corrupt: %lld bytes with sha256 %s, but it was %lld bytes with sha256 %s",
		    b->id, fetched ? "'s remote copy" : "", size, sha, b->size,
		    b->sha256);
		ok = 0;
	} else if (b->encrypted) {
		char plain[PATH_MAX];

		switch (decrypt_to(b, path, plain, sizeof(plain), err, sizeof(err))) {
		case 1:
			say("%s: no secret key here to decrypt it; only its checksum was checked",
			    b->id);
			break;
		case 0:
			if (readable(b->type, plain, err, sizeof(err)) == -1)
				ok = 0;
			tmp_done(plain, 1);
			break;
		default:
			ok = 0;
		}
	} else if (readable(b->type, path, err, sizeof(err)) == -1)
		ok = 0;
	if (fetched)
		tmp_done(path, 1);
	iso_utc((long long)time(NULL), at, sizeof(at));
	if (!ok) {
		meta_set(b, "status", "corrupt");
		meta_save(b);
		die("%s", err);
	}
	if (strcmp(b->status, "completed") != 0 || !fetched) {
		meta_set(b, "status", "completed");
		meta_set(b, "verified", at);
		meta_save(b);
	}
	say("%s%s is intact: %lld bytes, sha256 %s", b->id,
	    fetched ? "'s remote copy" : "", size, sha);
	backups_free(list, n);
	close(lockfd);
	return 0;
}
