/*
 * lock.c: one supervisor per app.  The lock is an flock on run/lock, held
 * for the process's life and released by the kernel when it dies, so a
 * kill -9 never leaves a stale lock.  The file also holds the holder's pid
 * for dyno-scale's SIGHUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dyno.h"

int
lock_take(const char *path, pid_t *holder)
{
	char buf[32];
	int fd, n;

	*holder = 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	(void)fchmod(fd, 0644);	/* the mode dyno(7) names, whatever the umask */
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int saved = errno;
		ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);
		if (r > 0) {
			long pid;
			buf[r] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			if (parse_long(buf, 1, 1L << 30, &pid) == 0)
				*holder = (pid_t)pid;
		}
		close(fd);
		errno = saved == EWOULDBLOCK ? EWOULDBLOCK : saved;
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)n, 0) != n) {
		close(fd);
		return -1;
	}
	return fd;
}
