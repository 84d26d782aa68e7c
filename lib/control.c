/*
 * control.c: say one line to the supervisor through run/control, and the
 * supervisor's side: cut what it reads into lines and lines into commands.
 * The FIFO is opened non-blocking for writing, which fails with ENXIO when
 * no supervisor holds it open: a command is never left waiting in a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "dyno.h"

int
control_send(const struct app *a, const char *line)
{
	char buf[1024];
	int fd, n;
	ssize_t w;

	n = snprintf(buf, sizeof(buf), "%s\n", line);
	if (n < 0 || (size_t)n >= sizeof(buf) || strchr(line, '\n') != NULL) {
		errno = EINVAL;
		return -1;
	}
	fd = app_openat(a, "run/control", O_WRONLY | O_NONBLOCK, 0);
	if (fd == -1)
		return -1;	/* ENOENT or ENXIO: no supervisor */
	w = write(fd, buf, (size_t)n);	/* <= PIPE_BUF: atomic */
	close(fd);
	return w == n ? 0 : -1;
}

/*
 * Take n bytes read from the FIFO; call fn with each whole, non-empty line
 * (its newline and a CR before it dropped).  A line fn gets may be cut up
 * by fn.  A line with a NUL in it, or too long for the buffer, is dropped
 * whole: it is no command, and neither is any piece of it.
 */
void
control_lines_feed(struct control_lines *cl, const char *data, size_t n,
    void (*fn)(char *line, void *arg), void *arg)
{
	size_t len;

	for (; n > 0; data++, n--) {
		if (*data != '\n') {
			if (cl->len < sizeof(cl->buf) - 2)
				cl->buf[cl->len++] = *data;
			else
				cl->overlong = 1;
			continue;
		}
		len = cl->len;
		cl->len = 0;
		if (cl->overlong) {
			cl->overlong = 0;
			continue;
		}
		if (len > 0 && cl->buf[len - 1] == '\r')
			len--;
		if (len == 0 || memchr(cl->buf, '\0', len) != NULL)
			continue;
		cl->buf[len] = '\0';
		fn(cl->buf, arg);
	}
}

/*
 * "reload", "restart [WHAT]" or "stop NAME": the verb, with *arg the rest
 * after the first space (NULL if none); -1 for anything else.  The line is
 * cut at that space.
 */
int
control_parse(char *line, const char **arg)
{
	char *sp = strchr(line, ' ');

	if (sp != NULL)
		*sp++ = '\0';
	*arg = sp;
	if (strcmp(line, "reload") == 0 && sp == NULL)
		return CONTROL_RELOAD;
	if (strcmp(line, "restart") == 0)
		return CONTROL_RESTART;
	if (strcmp(line, "stop") == 0 && sp != NULL)
		return CONTROL_STOP;
	return -1;
}
