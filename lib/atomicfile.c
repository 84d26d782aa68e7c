/*
 * atomicfile.c: the one way state is written.  A temp file in the same
 * folder, fsync, rename over the old name, then (for durable data) fsync the
 * folder so the rename itself survives a power cut.  A reader sees the old
 * file or the new one, never half of one.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dyno.h"

/* fsync a folder, so that the names made or removed in it last. */
int
dir_fsync(const char *dir)
{
	return dir_fsync_at(AT_FDCWD, dir);
}

/* dir_fsync of dir relative to dirfd. */
int
dir_fsync_at(int dirfd, const char *dir)
{
	int fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc,
	    saved;

	if (fd == -1)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* fsync the folder that holds name, relative to dirfd. */
static int
fsync_dir_of(int dirfd, const char *name)
{
	char copy[4096];

	if (snprintf(copy, sizeof(copy), "%s", name) >= (int)sizeof(copy)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return dir_fsync_at(dirfd, dirname(copy));
}

int
atomicfile_write(const char *path, const void *data, size_t len, mode_t mode,
    int durable)
{
	return atomicfile_writeat(AT_FDCWD, path, data, len, mode, durable);
}

/* atomicfile_write of name relative to dirfd: the temp file and the rename
 * never leave the folder dirfd leads to, whatever its name is now. */
int
atomicfile_writeat(int dirfd, const char *path, const void *data, size_t len,
    mode_t mode, int durable)
{
	char tmp[4096];
	const char *p = data;
	int fd, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, mode);
	if (fd == -1)
		return -1;
	if (fchmod(fd, mode) == -1)	/* umask must not loosen or tighten it */
		goto fail;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if ((durable && fsync(fd) == -1) || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, path) == -1)
		goto fail;
	if (durable && fsync_dir_of(dirfd, path) == -1)
		return -1;
	return 0;
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	errno = saved;
	return -1;
}

int
file_read(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return -1;
	return file_read_fd(fd, buf, len);
}

/* file_read of an open fd, which it closes. */
int
file_read_fd(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (int)got;
}

/* Read fd whole (at most max bytes) into a new NUL-terminated buffer; closes fd. */
int
file_read_alloc_fd(int fd, char **out, size_t *outlen, size_t max)
{
	size_t got = 0, cap = 4096;
	char *buf, *nb;

	if ((buf = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		ssize_t n;
		if (got + 1 >= cap) {
			if (cap >= max) {
				errno = EFBIG;
				goto fail;
			}
			cap *= 2;
			if ((nb = realloc(buf, cap)) == NULL)
				goto fail;
			buf = nb;
		}
		n = read(fd, buf + got, cap - 1 - got);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	if (outlen != NULL)
		*outlen = got;
	return 0;
fail:
	{
		int saved = errno;
		free(buf);
		close(fd);
		errno = saved;
	}
	return -1;
}

int
file_read_alloc(const char *path, char **out, size_t *outlen, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return -1;
	return file_read_alloc_fd(fd, out, outlen, max);
}

/*
 * openat2(2)'s how, and the two ways of resolving we ask for: never out of
 * dirfd (RESOLVE_BENEATH), never through /proc's magic links.  Spelled out
 * here, as not every libc's headers have them.
 */
struct open_how_beneath {
	uint64_t flags, mode, resolve;
};
#define RESOLVE_NO_MAGICLINKS_ 0x02
#define RESOLVE_BENEATH_ 0x08
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/*
 * Read name, relative to dirfd, where a file of untrusted code is read:
 * symlinks are followed only while they stay inside dirfd's tree (EXDEV
 * otherwise; where the kernel has no openat2, none is followed: ELOOP), and
 * only a regular file is read (EINVAL otherwise), so a FIFO or a device
 * neither blocks nor feeds us.  At most max bytes (EFBIG).
 */
int
file_read_beneath(int dirfd, const char *name, char **out, size_t *outlen,
    size_t max)
{
	struct open_how_beneath how;
	struct stat st;
	int fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
	how.resolve = RESOLVE_BENEATH_ | RESOLVE_NO_MAGICLINKS_;
	fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	if (fd == -1 && (errno == ENOSYS || errno == EPERM))
		fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
		    O_NOCTTY | O_NOFOLLOW);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return file_read_alloc_fd(fd, out, outlen, max);
}

/*
 * Read path as file_read_beneath reads a file of untrusted code, beneath
 * its own folder: a Procfile or .env in an app directory its dynos' user
 * may write, read by root.
 */
int
file_read_in(const char *path, char **out, size_t *outlen, size_t max)
{
	char copy[4096];
	const char *base;
	int dirfd, rc, saved;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	dirfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd == -1)
		return -1;
	rc = file_read_beneath(dirfd, base, out, outlen, max);
	saved = errno;
	close(dirfd);
	errno = saved;
	return rc;
}

/* Why file_read_beneath or file_read_in failed, for a message. */
const char *
file_read_error(int err)
{
	if (err == EXDEV || err == ELOOP)
		return "a symlink that leads out of its folder";
	if (err == EINVAL)
		return "not a regular file";
	return strerror(err);
}

int
mkdir_mode(const char *path, mode_t mode)
{
	return mkdir_modeat(AT_FDCWD, path, mode);
}

int
mkdir_modeat(int dirfd, const char *path, mode_t mode)
{
	struct stat st;
	int fd, rc = 0;

	if (mkdirat(dirfd, path, mode) == -1 && errno != EEXIST)
		return -1;
	/* Never through a symlink (ELOOP): a planted one would have us
	 * chmod whatever it points to. */
	fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		rc = -1;
	else if ((st.st_mode & 07777) != mode)
		rc = fchmod(fd, mode);
	close(fd);
	return rc;
}
