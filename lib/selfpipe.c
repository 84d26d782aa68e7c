/*
 * selfpipe.c: the classic self-pipe.  A handler writes the signal number as
 * one byte and does nothing else; the event loop polls the read end.  Plain
 * POSIX, so it works wherever signalfd does not.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "dyno.h"

static int selfpipe_fds[2] = { -1, -1 };

static void
selfpipe_handler(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;

	(void)!write(selfpipe_fds[1], &c, 1);
	errno = saved;
}

int
selfpipe_open(const int *signals, size_t n)
{
	struct sigaction sa;
	size_t i;

	if (pipe2(selfpipe_fds, O_CLOEXEC | O_NONBLOCK) == -1)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = selfpipe_handler;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	for (i = 0; i < n; i++)
		if (sigaction(signals[i], &sa, NULL) == -1)
			return -1;
	return selfpipe_fds[0];
}

int
selfpipe_read(int *sig)
{
	unsigned char c;
	ssize_t n = read(selfpipe_fds[0], &c, 1);

	if (n == 1) {
		*sig = c;
		return 1;
	}
	return 0;
}
