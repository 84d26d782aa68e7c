/*
 * relay.c: client and upstream connections: accept, read, write,
 * connect, attach, the keep-alive pool, errors and their pages.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "route.h"

/* Closed this round: one poll round may still hold events naming them. */
static struct client *dead_clients;
static struct upstream *dead_upstreams;

static void upstream_update(struct upstream *u);

void
upstream_free(struct upstream *u)
{
	if (u->fd < 0)
		return;
	poller_del(rt.poller, u->fd);
	close(u->fd);
	u->fd = -1;
	u->c = NULL;
	u->dead_next = dead_upstreams;
	dead_upstreams = u;
}

void
graveyard_empty(void)
{
	while (dead_clients != NULL) {
		struct client *c = dead_clients;
		dead_clients = c->dead_next;
		buf_free(&c->in);
		buf_free(&c->out);
		buf_free(&c->head);
		free(c);
	}
	while (dead_upstreams != NULL) {
		struct upstream *u = dead_upstreams;
		dead_upstreams = u->dead_next;
		buf_free(&u->out);
		buf_free(&u->in);
		free(u);
	}
}

static void
pool_remove(struct upstream *u)
{
	struct upstream **pp;

	for (pp = &u->b->idle; *pp != NULL; pp = &(*pp)->pool_next)
		if (*pp == u) {
			*pp = u->pool_next;
			return;
		}
}

/*
 * A tunnel holds no request slot on its dyno (so WebSockets cannot starve
 * the app), only a tunnel count: give its slot back for backend_done.
 */
void
tunnel_end(struct client *c, struct backend *b)
{
	if (!c->tunnel_slot || b == NULL)
		return;
	c->tunnel_slot = 0;
	b->tunnels--;
	b->inflight++;
	rt.conns.tunnels--;
}

void
upstream_discard(struct client *c)
{
	struct upstream *u = c->up;

	if (u == NULL)
		return;
	tunnel_end(c, u->b);
	c->up = NULL;
	upstream_free(u);
	if (u->b != NULL)
		backend_done(u->b);
}

/* What is still in the client's buffer never reached it: not in bytes=. */
void
bytes_unsent(struct client *c)
{
	size_t left = buf_pending(&c->out);

	c->bytes = c->bytes > left ? c->bytes - left : 0;
}

/*
 * Out of memory, the answer needs none: a static page, written at once
 * (a socket's buffer takes it whole), then a close that does not reset
 * the connection under it: what the client sent is read and dropped
 * first, so the kernel has nothing unread to answer with a RST.
 */
#define PLATFORM_ERROR "503 Service Unavailable: Platform error\n"
static const char oom_page[] = "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: text/plain\r\nContent-Length: 40\r\n"
    "Connection: close\r\n\r\n" PLATFORM_ERROR;
_Static_assert(sizeof(PLATFORM_ERROR) - 1 == 40, "Content-Length");

static void
oom_drain(int fd)
{
	static char scratch[4096];
	int k;

	for (k = 0; k < 64 && read(fd, scratch, sizeof(scratch)) > 0; k++)
		;
}

/* The page, and our side shut; the caller closes the fd. */
size_t
oom_answer(int fd)
{
	ssize_t n;

	oom_drain(fd);
	n = write(fd, oom_page, sizeof(oom_page) - 1);
	shutdown(fd, SHUT_WR);
	oom_drain(fd);
	return n > 0 ? (size_t)n : 0;
}

/* Did an allocation for this request fail?  Then it is our error, H99. */
int
client_oom_seen(const struct client *c)
{
	return c->in.failed || c->out.failed || c->head.failed ||
	    c->body.failed || (c->up != NULL && (c->up->out.failed ||
	    c->up->in.failed));
}

void
client_update(struct client *c)
{
	int ev = 0;

	if (buf_pending(&c->out) > 0 && !c->flushq)
		ev |= POLLER_OUT;
	if (c->tunnel) {
		if (c->up && buf_pending(&c->up->out) == 0)
			ev |= POLLER_IN;
	} else if (c->req == REQ_NONE && !c->close_after && c->resp == RESP_NONE)
		ev |= POLLER_IN;
	else if (c->req == REQ_BODY && c->up != NULL && !c->up->connecting &&
	    buf_pending(&c->up->out) == 0 && buf_pending(&c->in) == 0)
		ev |= POLLER_IN;
	else if (c->req == REQ_BODY && c->buffering)
		ev |= POLLER_IN;
	else if (c->req == REQ_DONE && !c->close_after &&
	    buf_pending(&c->in) < HTTP_HEAD_MAX)
		ev |= POLLER_IN;	/* buffer what comes next; notice hangups */
	/* Only real changes reach the kernel: epoll_ctl per request adds up. */
	if (c->fd < 0 || ev == c->ev)
		return;
	c->ev = ev;
	poller_set(rt.poller, c->fd, ev, c);
}

void
client_close(struct client *c)
{
	if (c->fd < 0)
		return;
	upstream_discard(c);
	queue_remove(c);
	body_drop(c);
	poller_del(rt.poller, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		rt.conns.list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	rt.conns.n--;
	c->dead_next = dead_clients;
	dead_clients = c;
}

/*
 * Out of file descriptors or memory: the connection stays queued and the
 * listener readable, so the loop would spin on it.  Stop polling it for
 * ACCEPT_PAUSE_MS, as nginx does, and try again then (event_loop).
 */
#define ACCEPT_PAUSE_MS 500

static void
accept_pause(int err)
{
	if (rt.due.accept_resume_at == 0) {
		poller_del(rt.poller, rt.worker.listen_fd);
		log_event(stdout, "heroku", "router", "at=error code=H99 "
		    "desc=\"cannot accept: %s, paused for %dms\"",
		    strerror(err), ACCEPT_PAUSE_MS);
		rt.due.log_unflushed = 1;
	}
	rt.due.accept_resume_at = now_ms() + ACCEPT_PAUSE_MS;
}

/* No memory for the client: a static answer, and the connection closes. */
static void
client_refuse(int fd)
{
	oom_answer(fd);
	close(fd);
	log_event(stdout, "heroku", "router", "at=error code=H99 "
	    "desc=\"Platform error\" status=503 cause=\"out of memory\"");
	rt.due.log_unflushed = 1;
}

/*
 * Up to max connections from the listen queue (-1: until it is empty).
 */
void
client_accept(int max)
{
	for (int k = 0; max < 0 || k < max; k++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct client *c;
		int fd, one = 1;

		fd = accept4(rt.worker.listen_fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				accept_pause(errno);
			return;
		}
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			client_refuse(fd);
			return;
		}
		c->tag.kind = K_CLIENT;
		/* The poller needs memory too (epoll's own): without it the
		 * client would never be heard, so it is refused now. */
		if (poller_set(rt.poller, fd, POLLER_IN, c) == -1) {
			free(c);
			client_refuse(fd);
			return;
		}
		c->ev = POLLER_IN;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
			    c->peer, sizeof(c->peer));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6,
			    &((struct sockaddr_in6 *)&ss)->sin6_addr, c->peer,
			    sizeof(c->peer));
		c->next = rt.conns.list;
		if (rt.conns.list)
			rt.conns.list->prev = c;
		rt.conns.list = c;
		rt.conns.n++;
		/* Slowloris: the first request's head must arrive in time too. */
		set_deadline(c, T_HEADER, now_ms() + rt.opt.header_ms);
		c->t_start = now_ms();
		client_update(c);
	}
}

/*
 * The client left before its response was whole: H27 with status 499, as
 * the man page says, whatever the dyno had answered, and the bytes that
 * reached it.  A request the dyno was working on counts for the dyno.
 */
static void
client_gone(struct client *c)
{
	c->status = 499;
	bytes_unsent(c);
	if (c->up && c->up->b) {
		c->up->b->errors++;
		backend_sample(c->up->b, (int)(now_ms() - c->t_start));
	}
	queue_remove(c);
	log_request(c, "H27", "Client Request Interrupted");
}

void
client_readable(struct client *c)
{
	ssize_t n;

	if (buf_reserve(&c->in, IO_CHUNK) == -1) {
		client_error(c, 503, "H99", "Platform error");
		return;
	}
	n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
	if (n == 0 && !c->tunnel && c->req == REQ_DONE && c->resp != RESP_DONE) {
		/* A half-close after a whole request: answer, then close (as
		 * haproxy does without abortonclose).  A reset still aborts. */
		c->close_after = 1;
		client_update(c);
		return;
	}
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
		/* The client went away: the normal end of a tunnel. */
		if (c->tunnel)
			log_request(c, NULL, NULL);
		else if (c->req != REQ_NONE || c->resp != RESP_NONE)
			client_gone(c);
		client_close(c);
		return;
	}
	if (n < 0)
		return;
	c->in.len += (size_t)n;
	if (c->tunnel) {
		if (buf_append(&c->up->out, c->in.data + c->in.off,
		    buf_pending(&c->in)) == -1) {
			client_close(c);
			return;
		}
		c->in.off = c->in.len;
		set_deadline(c, T_IDLE, now_ms() + rt.opt.idle_ms);
		upstream_update(c->up);
		client_update(c);
		return;
	}
	if (c->req == REQ_NONE) {
		client_try_request(c);
		return;
	}
	if (c->req == REQ_BODY && c->buffering) {
		body_buffer_more(c);
		return;
	}
	if (c->req == REQ_BODY) {
		if (request_pump(c) == -1) {
			client_error(c, 400, "H26", "Request Error");
			return;
		}
		set_deadline(c, c->timer, c->timer == T_IDLE ?
		    now_ms() + rt.opt.idle_ms : c->deadline);
		upstream_update(c->up);
	}
	client_update(c);
}

void
client_writable(struct client *c)
{
	ssize_t n;

	while (buf_pending(&c->out) > 0) {
		n = write(c->fd, c->out.data + c->out.off, buf_pending(&c->out));
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			if (c->resp != RESP_DONE || buf_pending(&c->out) > 0)
				client_gone(c);
			client_close(c);
			return;
		}
		c->out.off += (size_t)n;
	}
	if (buf_pending(&c->out) == 0) {
		buf_release(&c->out);
		if (c->resp == RESP_DONE) {	/* a tunnel is done when closed */
			if (c->logged) {	/* an error page or a tunnel */
				client_close(c);
				return;
			}
			request_finish(c);
			return;
		}
	}
	client_update(c);
	/* Backpressure: the dyno is read only while the client keeps up. */
	if (c->up)
		upstream_update(c->up);
}

static void
upstream_update(struct upstream *u)
{
	int ev = 0;
	struct client *c = u->c;

	if (u->connecting || (buf_pending(&u->out) > 0 && !u->flushq))
		ev |= POLLER_OUT;
	if (c == NULL)
		ev |= POLLER_IN;	/* pooled: notice the dyno closing it */
	else if (!u->connecting && buf_pending(&c->out) == 0 &&
	    c->resp != RESP_DONE)
		ev |= POLLER_IN;
	if (u->fd < 0 || ev == u->ev)
		return;
	u->ev = ev;
	poller_set(rt.poller, u->fd, ev, u);
}

struct upstream *
upstream_connect(struct backend *b, int *refused)
{
	struct upstream *u;
	int fd, one = 1;

	/* -1: our own failure (fds, memory, local ports), not the dyno's. */
	*refused = -1;
	fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&b->addr, b->addrlen) == -1 &&
	    errno != EINPROGRESS) {
		if (errno != EADDRNOTAVAIL && errno != ENOBUFS && errno != ENOMEM)
			*refused = errno == ECONNREFUSED;
		close(fd);
		return NULL;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		close(fd);
		return NULL;
	}
	*refused = 0;
	u->tag.kind = K_UPSTREAM;
	u->fd = fd;
	u->b = b;
	u->connecting = 1;
	return u;
}

/* A connect failed before any byte of the request went out: try elsewhere. */
void
connect_failed(struct client *c, int refused)
{
	struct backend *b = c->up ? c->up->b : NULL;

	if (b != NULL) {
		b->quarantined_until = now_ms() + rt.opt.quarantine_ms;
		b->errors++;
		log_event(stdout, "heroku", "router",
		    "at=warning desc=\"%s %s, quarantined for %lldms\" dyno=%s",
		    refused ? "connection refused by" : "cannot connect to",
		    b->addrtext, (long long)rt.opt.quarantine_ms, b->name);
		rt.due.log_unflushed = 1;
	}
	c->refused = refused;
	upstream_discard(c);
	if (c->ntries >= rt.opt.retries) {
		if (refused)
			client_error(c, 503, "H21", "Backend connection refused");
		else
			client_error(c, 503, "H19", "Backend connection timeout");
		return;
	}
	dispatch(c);
}

void
upstream_attach(struct client *c, struct upstream *u)
{
	u->c = c;
	c->up = u;
	u->got_bytes = 0;	/* per request: a pooled one answered before */
	u->out.off = u->out.len = 0;
	buf_append(&u->out, c->head.data + c->head.off,
	    buf_pending(&c->head));
	/* A buffered body goes with it, kept if whole in case of a resend. */
	if (buf_pending(&c->body) > 0)
		buf_append(&u->out, c->body.data + c->body.off,
		    buf_pending(&c->body));
	if (!c->body_whole)
		body_drop(c);
	if (u->out.failed) {
		/* No room for the request: the dyno never hears of it. */
		client_error(c, 503, "H99", "Platform error");
		return;
	}
	c->t_connect = now_ms();
	if (!u->connecting) {
		c->t_connected = c->t_connect;
		set_deadline(c, T_FIRSTBYTE, c->t_ready + rt.opt.service_ms);
		stall_arm(c);
	} else
		set_deadline(c, T_CONNECT, now_ms() + rt.opt.connect_ms);
	request_pump(c);
	if (!u->connecting) {
		/* Connected already (pooled): written at the end of this round,
		 * with no wait for EPOLLOUT. */
		upstream_flush_later(u);
		client_update(c);
		return;
	}
	upstream_update(u);
	client_update(c);
}

void
upstream_pool(struct upstream *u)
{
	struct backend *b = u->b;

	u->c = NULL;
	if (b->gone || rt.draining) {
		upstream_free(u);
		backend_done(b);
		return;
	}
	b->inflight--;
	rt.due.counters_dirty = 1;
	buf_release(&u->out);
	u->in.off = u->in.len = 0;
	buf_release(&u->in);
	u->idle_since = now_ms();
	u->pool_next = b->idle;
	b->idle = u;
	upstream_update(u);
}

/* No response head yet, or part of one: read, and pass on what parses. */
static void
upstream_read_head(struct client *c, struct upstream *u)
{
	size_t mark;
	ssize_t n;

	if (buf_reserve(&u->in, IO_CHUNK) == -1) {
		client_error(c, 503, "H99", "Platform error");
		return;
	}
	n = read(u->fd, u->in.data + u->in.len, u->in.cap - u->in.len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		upstream_eof(c, u, n < 0);
		return;
	}
	u->got_bytes = 1;
	c->stall_at = 0;
	backend_heard(u->b);
	u->in.len += (size_t)n;
	req_transition(c, RQ_ANSWER);
	mark = c->out.len;	/* none of this response was written */
	for (;;) {
		int r = response_head(c, u);
		if (r == 0)
			break;
		if (r < 0) {
			client_error(c, 502, "H17",
			    "Poorly formatted HTTP response");
			return;
		}
		if (r == 2) {	/* 1xx: the real head follows */
			req_transition(c, RQ_ANSWER);
			if (buf_pending(&u->in) == 0)
				break;
			continue;
		}
		if (c->resp == RESP_BODY && !c->tunnel &&
		    buf_pending(&u->in) > 0) {
			if (response_body(c, u->in.data + u->in.off,
			    buf_pending(&u->in)) == -1) {
				/* Its head is still ours to take
				 * back: the client gets a 502. */
				c->out.len = mark;
				req_transition(c, RQ_ANSWER);
				client_error(c, 502, "H17",
				    "Poorly formatted HTTP response");
				return;
			}
		}
		u->in.off = u->in.len;
		break;
	}
	set_deadline(c, T_IDLE, now_ms() + rt.opt.idle_ms);
	if (c->resp != RESP_DONE && c->resp != RESP_BODY && !c->tunnel &&
	    c->resp == RESP_HEAD) {
		set_deadline(c, T_FIRSTBYTE, c->t_ready + rt.opt.service_ms);
	}
	/* Written at the round's end: usually it all goes, and no
	 * interest changes. */
	if (buf_pending(&c->out) > 0)
		client_flush_later(c);
	else {
		client_update(c);
		upstream_update(u);
	}
}

void
upstream_readable(struct upstream *u)
{
	struct client *c = u->c;
	ssize_t n;

	if (c == NULL) {	/* pooled and idle: the dyno closed it */
		char tmp[64];
		n = read(u->fd, tmp, sizeof(tmp));
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		pool_remove(u);
		upstream_free(u);
		return;
	}
	if (c->resp == RESP_NONE || c->resp == RESP_HEAD) {
		upstream_read_head(c, u);
		return;
	}
	/* Body or tunnel: read straight into the client's buffer. */
	if (buf_reserve(&c->out, IO_CHUNK) == -1) {
		client_error(c, 503, "H99", "Platform error");
		return;
	}
	if (c->tunnel) {
		n = read(u->fd, c->out.data + c->out.len, c->out.cap - c->out.len);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			upstream_eof(c, u, n < 0);
			return;
		}
		c->out.len += (size_t)n;
		c->bytes += (uint64_t)n;
		backend_heard(u->b);
	} else {
		char *tmp = c->out.data + c->out.len;
		size_t room = c->out.cap - c->out.len;

		n = read(u->fd, tmp, room);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			upstream_eof(c, u, n < 0);
			return;
		}
		backend_heard(u->b);
		/* Framing looks at the bytes in place; response_body appends
		 * them, so move them aside first. */
		{
			char stack[IO_CHUNK];
			size_t k = (size_t)n;
			while (k > 0) {
				size_t part = k > sizeof(stack) ? sizeof(stack) : k;
				memcpy(stack, tmp + ((size_t)n - k), part);
				if (response_body(c, stack, part) == -1) {
					/* Mid-body: logged, and cut off. */
					client_error(c, 502, "H17",
					    "Poorly formatted HTTP response");
					return;
				}
				k -= part;
			}
		}
	}
	set_deadline(c, T_IDLE, now_ms() + rt.opt.idle_ms);
	client_flush_later(c);	/* it updates both sides' interest */
}

void
upstream_writable(struct upstream *u)
{
	struct client *c = u->c;
	ssize_t n;

	if (c == NULL)
		return;
	if (u->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		/* Connected to itself (lib/sock.c): nothing listens there. */
		if (err == 0 && sock_is_self(u->fd) == 1)
			err = ECONNREFUSED;
		if (err != 0) {
			connect_failed(c, err == ECONNREFUSED);
			return;
		}
		u->connecting = 0;
		c->t_connected = now_ms();
		set_deadline(c, T_FIRSTBYTE, c->t_ready + rt.opt.service_ms);
		stall_arm(c);
		request_pump(c);
	}
	while (buf_pending(&u->out) > 0) {
		n = write(u->fd, u->out.data + u->out.off, buf_pending(&u->out));
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			upstream_eof(c, u, 1);
			return;
		}
		u->out.off += (size_t)n;
		if (c->req == REQ_BODY || c->tunnel)
			set_deadline(c, c->tunnel ? T_IDLE : c->timer,
			    c->tunnel ? now_ms() + rt.opt.idle_ms : c->deadline);
		if (buf_pending(&u->out) == 0 && c->req == REQ_BODY &&
		    buf_pending(&c->in) > 0) {
			if (request_pump(c) == -1) {
				client_error(c, 400, "H26", "Request Error");
				return;
			}
		}
	}
	if (buf_pending(&u->out) == 0)
		buf_release(&u->out);
	upstream_update(u);
	client_update(c);
}
