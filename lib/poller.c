/*
 * poller.c: one readiness API over epoll (Linux) or poll (elsewhere), so the
 * router's loop has one backend per OS, as redis's ae.c does.  Level-triggered:
 * callers say what they want now; the poller reports what is ready.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dyno.h"

#ifdef __linux__
#include <sys/epoll.h>

struct poller {
	int epfd;
	struct epoll_event buf[1024];
};

struct poller *
poller_new(void)
{
	struct poller *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	if ((p->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		free(p);
		return NULL;
	}
	return p;
}

int
poller_set(struct poller *p, int fd, int events, void *data)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = (events & POLLER_IN ? EPOLLIN | EPOLLRDHUP : 0) |
	    (events & POLLER_OUT ? EPOLLOUT : 0);
	ev.data.ptr = data;
	if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	if (errno != ENOENT)
		return -1;
	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int
poller_del(struct poller *p, int fd)
{
	return epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int
poller_wait(struct poller *p, struct poller_event *ev, int max, int timeout_ms)
{
	int n, i;

	if (max > 1024)
		max = 1024;
	n = epoll_wait(p->epfd, p->buf, max, timeout_ms);
	for (i = 0; i < n; i++) {
		uint32_t e = p->buf[i].events;
		ev[i].data = p->buf[i].data.ptr;
		ev[i].events = (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR) ?
		    POLLER_IN : 0) | (e & (EPOLLOUT | EPOLLHUP | EPOLLERR) ?
		    POLLER_OUT : 0);
	}
	return n;
}

void
poller_free(struct poller *p)
{
	close(p->epfd);
	free(p);
}

#else
#include <poll.h>

struct poller {
	struct pollfd *fds;
	void **data;
	size_t n, cap;
};

struct poller *
poller_new(void)
{
	return calloc(1, sizeof(struct poller));
}

static ssize_t
poller_find(struct poller *p, int fd)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->fds[i].fd == fd)
			return (ssize_t)i;
	return -1;
}

int
poller_set(struct poller *p, int fd, int events, void *data)
{
	ssize_t i = poller_find(p, fd);

	if (i < 0) {
		if (p->n == p->cap) {
			size_t cap = p->cap * 2 + 64;
			struct pollfd *f = realloc(p->fds, cap * sizeof(*f));
			void **d;
			if (f == NULL)
				return -1;
			p->fds = f;
			if ((d = realloc(p->data, cap * sizeof(*d))) == NULL)
				return -1;
			p->data = d;
			p->cap = cap;
		}
		i = (ssize_t)p->n++;
		p->fds[i].fd = fd;
	}
	p->fds[i].events = (short)((events & POLLER_IN ? POLLIN : 0) |
	    (events & POLLER_OUT ? POLLOUT : 0));
	p->data[i] = data;
	return 0;
}

int
poller_del(struct poller *p, int fd)
{
	ssize_t i = poller_find(p, fd);

	if (i < 0) {
		errno = ENOENT;
		return -1;
	}
	p->fds[i] = p->fds[p->n - 1];
	p->data[i] = p->data[p->n - 1];
	p->n--;
	return 0;
}

int
poller_wait(struct poller *p, struct poller_event *ev, int max, int timeout_ms)
{
	int n = poll(p->fds, p->n, timeout_ms), out = 0;
	size_t i;

	for (i = 0; n > 0 && i < p->n && out < max; i++) {
		short r = p->fds[i].revents;
		if (r == 0)
			continue;
		ev[out].data = p->data[i];
		ev[out].events = (r & (POLLIN | POLLHUP | POLLERR) ? POLLER_IN : 0) |
		    (r & (POLLOUT | POLLHUP | POLLERR) ? POLLER_OUT : 0);
		out++;
	}
	return n < 0 ? n : out;
}

void
poller_free(struct poller *p)
{
	free(p->fds);
	free(p->data);
	free(p);
}
#endif
