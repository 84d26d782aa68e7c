/*
 * control.c: say one line to the supervisor through run/control.  The FIFO
 * is opened non-blocking for writing, which fails with ENXIO when no
 * supervisor holds it open: a command is never left waiting in a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "dyno.h"

int
control_send(const struct app *a, const char *line)
{
	char path[4096], buf[1024];
	int fd, n;
	ssize_t w;

	n = snprintf(buf, sizeof(buf), "%s\n", line);
	if (n < 0 || (size_t)n >= sizeof(buf) || strchr(line, '\n') != NULL) {
		errno = EINVAL;
		return -1;
	}
	if (app_path(a, path, sizeof(path), "run/control") == -1)
		return -1;
	fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return -1;	/* ENOENT or ENXIO: no supervisor */
	w = write(fd, buf, (size_t)n);	/* <= PIPE_BUF: atomic */
	close(fd);
	return w == n ? 0 : -1;
}
