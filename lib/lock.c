/*
 * lock.c: one supervisor per app.  The lock is an flock on run/lock, held
 * for the process's life and released by the kernel when it dies, so a
 * kill -9 never leaves a stale lock.  The file also holds the holder's pid
 * for dyno-scale's SIGHUP.  A pid file such as run/router.pid is locked the
 * same way, so that a pid in it is signalled only while its writer lives,
 * and only if that pid holds the file open: anyone who can open a file can
 * flock it, and write someone else's pid in it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dyno.h"

int
lock_take(int dirfd, const char *path, pid_t *holder)
{
	char buf[32];
	struct stat st;
	int fd, n;

	*holder = 0;
	/* Not through a symlink, and only a regular file: a planted one
	 * would have us truncate and chmod what it names. */
	fd = openat(dirfd, path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK, 0644);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
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

/*
 * Write our pid to path, locked for as long as the returned fd stays open:
 * a temp file is locked, then renamed over path, so a second writer (an
 * upgrade in place) takes the name while the first keeps its own lock.
 */
int
pidfile_lock(int dirfd, const char *path)
{
	char tmp[4096], buf[32];
	int fd, n;

	if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (fchmod(fd, 0644) == -1 || flock(fd, LOCK_EX | LOCK_NB) == -1 ||
	    write(fd, buf, (size_t)n) != n ||
	    renameat(dirfd, tmp, dirfd, path) == -1) {
		int saved = errno;
		close(fd);
		unlinkat(dirfd, tmp, 0);
		errno = saved;
		return -1;
	}
	return fd;
}

/*
 * At exit: if path is still the file fd (from pidfile_lock) locks, remove
 * it; where the folder is not ours to change any more (a privilege drop
 * since), empty it instead, which names no one.  A file another writer
 * renamed over ours is left alone.  Closes fd.
 */
void
pidfile_release(int dirfd, const char *path, int fd)
{
	struct stat ours, now;

	if (fstat(fd, &ours) == 0 &&
	    fstatat(dirfd, path, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    ours.st_dev == now.st_dev && ours.st_ino == now.st_ino &&
	    unlinkat(dirfd, path, 0) == -1)
		(void)ftruncate(fd, 0);
	close(fd);
}

/*
 * Has process pid the file of fd open?  Its /proc/PID/fd links lead to the
 * same inode, whatever the file system, where only its owner (or root) may
 * look.  Not ourselves: we hold it open to ask.
 */
static int
pid_has_open(pid_t pid, int fd)
{
	char dir[64], link[320];
	struct stat ours, theirs;
	struct dirent *de;
	DIR *d;
	int found = 0;

	if (pid == getpid() || fstat(fd, &ours) == -1)
		return 0;
	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		found = stat(link, &theirs) == 0 &&
		    theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino;
	}
	closedir(d);
	return found;
}

/*
 * The pid in a file pidfile_lock or lock_take wrote, if its writer still
 * holds the lock, and holds the file open; 0 if the file is missing,
 * malformed or not locked (left by a process that is gone: its pid may be
 * anyone's now), or if the pid is not the file's (a lock taken, and a pid
 * written, by someone else).
 */
pid_t
pidfile_holder(int dirfd, const char *path)
{
	char buf[32];
	ssize_t r;
	long pid;
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK);

	if (fd == -1)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK ||
	    (r = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0) {
		close(fd);
		return 0;
	}
	buf[r] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (parse_long(buf, 1, 1L << 30, &pid) == -1 ||
	    !pid_has_open((pid_t)pid, fd))
		pid = 0;
	close(fd);
	return (pid_t)pid;
}
