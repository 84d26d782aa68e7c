/*
 * watch.c: notice when a file in a folder is replaced.  Writers rename a
 * temp file over the name, so the event to watch is a move into the folder.
 * Linux has inotify; elsewhere the caller relies on SIGHUP alone.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "dyno.h"

#ifdef __linux__
#include <sys/inotify.h>

int
watch_open(const char *dir)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd == -1)
		return -1;
	if (inotify_add_watch(fd, dir, IN_MOVED_TO | IN_CLOSE_WRITE |
	    IN_DELETE) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
watch_changed(int fd, const char *name)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	int changed = 0;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		char *p = buf;
		while (p < buf + n) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->len > 0 && strcmp(ev->name, name) == 0)
				changed = 1;
			p += sizeof(*ev) + ev->len;
		}
	}
	return changed;
}
#else
int
watch_open(const char *dir)
{
	(void)dir;
	errno = ENOSYS;
	return -1;
}

int
watch_changed(int fd, const char *name)
{
	(void)fd;
	(void)name;
	return 0;
}
#endif
