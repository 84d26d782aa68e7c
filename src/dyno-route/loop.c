/*
 * loop.c: the event loop of a worker: poll rounds, the writes at a round's
 * end, the clock, timers and their sweep, the drain.
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

static int64_t drain_deadline;
static int64_t log_flushed;	/* when it was last flushed */
static struct tag listen_tag = { K_LISTEN }, signal_tag = { K_SIGNAL },
    watch_tag = { K_WATCH };
/*
 * Written at the end of the round, after every event of it was read: the
 * requests to the dynos go out together, then the responses to the clients,
 * as haproxy runs its tasks after its I/O.  Each dyno and client is woken
 * once per round, not once per message; every wakeup could preempt us.
 */
static struct upstream *uflush_head, **uflush_tail = &uflush_head;
static struct client *cflush_head, **cflush_tail = &cflush_head;

void
upstream_flush_later(struct upstream *u)
{
	if (u->flushq)
		return;
	u->flushq = 1;
	u->flush_next = NULL;
	*uflush_tail = u;
	uflush_tail = &u->flush_next;
}

void
client_flush_later(struct client *c)
{
	if (c->flushq)
		return;
	c->flushq = 1;
	c->flush_next = NULL;
	*cflush_tail = c;
	cflush_tail = &c->flush_next;
}

/* The round's writes; those they lead to (a pipelined request) too. */
static void
flush_round(void)
{
	while (uflush_head != NULL || cflush_head != NULL) {
		while (uflush_head != NULL) {
			struct upstream *u = uflush_head;
			if ((uflush_head = u->flush_next) == NULL)
				uflush_tail = &uflush_head;
			u->flushq = 0;
			if (u->fd >= 0)
				upstream_writable(u);
		}
		while (cflush_head != NULL) {
			struct client *c = cflush_head;
			if ((cflush_head = c->flush_next) == NULL)
				cflush_tail = &cflush_head;
			c->flushq = 0;
			if (c->fd >= 0)
				client_writable(c);
		}
	}
}

int64_t
now_ms(void)
{
	return rt.now;
}

void
set_deadline(struct client *c, enum timer t, int64_t at)
{
	c->timer = t;
	c->deadline = at;
	if (at < rt.due.next_sweep)
		rt.due.next_sweep = at;
}

/* The request went out to a dyno: a byte is due within --stall-timeout. */
void
stall_arm(struct client *c)
{
	struct backend *b = c->up != NULL ? c->up->b : NULL;

	if (b != NULL && b->probe == PROBE_WANTED && resendable(c))
		b->probe = PROBE_SENT;
	c->stall_at = now_ms() + rt.opt.stall_ms;
	if (c->stall_at < rt.due.next_sweep)
		rt.due.next_sweep = c->stall_at;
}

static void
client_timeout(struct client *c)
{
	switch (c->timer) {
	case T_KEEPALIVE:
		client_close(c);
		break;
	case T_HEADER:
		if (buf_pending(&c->in) == 0 && c->req == REQ_NONE &&
		    c->resp == RESP_NONE) {
			client_close(c);	/* never sent a byte */
			break;
		}
		client_error(c, 408, "H28", "Client connection idle");
		break;
	case T_BOOT:
		client_error(c, 503, "H20", "App boot timeout");
		break;
	case T_QUEUE:
	case T_FIRSTBYTE:
		client_error(c, 503, "H12", "Request timeout");
		break;
	case T_CONNECT:
		connect_failed(c, 0);
		break;
	case T_IDLE:
		if (c->buffering) {	/* its body stopped coming */
			client_error(c, 408, "H28", "Client connection idle");
			break;
		}
		if (c->resp == RESP_DONE && buf_pending(&c->out) > 0) {
			client_close(c);
			break;
		}
		client_error(c, 503, "H15", "Idle connection");
		break;
	}
}

/*
 * Passive detection of a stuck dyno (Envoy's outlier detection, haproxy's
 * observe layer7): requests on it waited --stall-timeout for a first byte
 * and no byte came from any of its connections meanwhile.  One slow request
 * alone is what a slow endpoint looks like, so it takes two waiting, or
 * one probe to a dyno already found stuck.  A request waiting alone makes
 * the dyno a suspect: the next request that may go elsewhere is sent to it
 * as a probe, and once that one also waited stall_ms with no byte, it is
 * stuck.  It then takes no new request for five stall times, and its
 * waiting requests that may go elsewhere do.
 */
static int
stall_check(int64_t now)
{
	size_t i;
	int found = 0;

	for (i = 0; i < rt.dynos.n; i++) {
		struct backend *b = rt.dynos.list[i];

		if (b->sweep_overdue == 0 || now - b->last_byte < rt.opt.stall_ms)
			continue;
		if (b->stalled) {
			if (b->stall_until > now)
				continue;	/* on hold: its requests were seen to */
		} else if (b->sweep_waiting < 2 ||
		    (b->probe == PROBE_SENT && b->sweep_overdue < 2)) {
			if (b->sweep_waiting < 2)
				b->probe = PROBE_WANTED;
			continue;
		} else {
			b->probe = PROBE_NONE;
			b->stalled = 1;
			b->stalls++;
			b->stall_since = now;
			rt.due.counters_dirty = 1;
			log_event(stdout, "heroku", "router", "at=warning "
			    "desc=\"no response byte for %lldms with %d requests "
			    "waiting: stalled\" dyno=%s",
			    (long long)rt.opt.stall_ms, b->sweep_waiting, b->name);
			rt.due.log_unflushed = 1;
		}
		b->stall_until = now + 5 * rt.opt.stall_ms;
		found = 1;
	}
	return found;
}

/* Send the requests a stuck dyno holds elsewhere, those that may go. */
static void
stall_resend(int64_t now)
{
	struct client *c, *next;

	for (c = rt.conns.list; c != NULL; c = next) {
		struct upstream *u = c->up;
		int full, none;

		next = c->next;
		if (u == NULL || u->b == NULL || !u->b->stalled ||
		    u->b->stall_until <= now || u->got_bytes ||
		    c->resp != RESP_NONE || c->tunnel || c->req != REQ_DONE ||
		    !resendable(c) || c->resends >= rt.opt.retries)
			continue;
		if (backend_pick(c, &full, &none) == NULL && !full)
			continue;	/* nowhere else to go: it waits here */
		c->resends++;
		c->refused = 2;
		c->stall_at = 0;
		upstream_discard(c);
		dispatch(c);
	}
}

static void
sweep(int64_t now)
{
	struct client *c, *next;
	int64_t min = INT64_MAX;
	size_t i;
	int overdue = 0;

	rt.due.next_sweep = INT64_MAX;
	for (i = 0; i < rt.dynos.n; i++)
		rt.dynos.list[i]->sweep_waiting = rt.dynos.list[i]->sweep_overdue = 0;
	for (c = rt.conns.list; c != NULL; c = next) {
		next = c->next;
		if (c->deadline > 0 && c->deadline <= now) {
			client_timeout(c);
			continue;
		}
		if (c->deadline > 0 && c->deadline < min)
			min = c->deadline;
		if (c->stall_at == 0)
			continue;
		if (c->up == NULL || c->up->b == NULL || c->up->got_bytes ||
		    c->resp != RESP_NONE) {
			c->stall_at = 0;
			continue;
		}
		c->up->b->sweep_waiting++;
		if (c->stall_at <= now) {
			c->up->b->sweep_overdue++;
			overdue = 1;
		} else if (c->stall_at < min)
			min = c->stall_at;
	}
	if (overdue && stall_check(now))
		stall_resend(now);
	/* Pooled connections idle longer than the idle timeout are closed. */
	for (i = 0; i < rt.dynos.n; i++) {
		struct upstream **pp = &rt.dynos.list[i]->idle;
		while (*pp != NULL) {
			struct upstream *u = *pp;
			if (now - u->idle_since >= rt.opt.idle_ms) {
				*pp = u->pool_next;
				upstream_free(u);
				continue;
			}
			if (u->idle_since + rt.opt.idle_ms < min)
				min = u->idle_since + rt.opt.idle_ms;
			pp = &u->pool_next;
		}
	}
	if (min < rt.due.next_sweep)
		rt.due.next_sweep = min;
	quarantine_wake(now);
}

void
drain_begin(void)
{
	struct client *c, *next;

	if (rt.draining)
		return;
	rt.draining = 1;
	drain_deadline = now_ms() + rt.opt.drain_ms;
	/*
	 * Idle between requests: closed after DRAIN_IDLE_MS, not at once, so
	 * that a client's next request, maybe already on its way, is answered
	 * (with Connection: close) instead of lost with the connection.  A
	 * new connection, whose first request may be unread, is served.
	 */
	for (c = rt.conns.list; c != NULL; c = next) {
		next = c->next;
		if (c->req == REQ_NONE && c->resp == RESP_NONE &&
		    buf_pending(&c->in) == 0 && c->timer == T_KEEPALIVE &&
		    c->deadline > now_ms() + DRAIN_IDLE_MS)
			set_deadline(c, T_KEEPALIVE, now_ms() + DRAIN_IDLE_MS);
	}
	/*
	 * Connections already in the listen queue are reset when the socket
	 * closes, even with another router on the port (SO_REUSEPORT): take
	 * them all first, and serve them while draining.  After the close the
	 * kernel hashes new ones to the other listeners only.
	 */
	if (rt.worker.listen_fd >= 0) {
		client_accept(-1);
		poller_del(rt.poller, rt.worker.listen_fd);
		close(rt.worker.listen_fd);
		rt.worker.listen_fd = -1;
	}
}

int
event_loop(int sigfd)
{
	struct poller_event ev[256];
	int watchfd = -1;

	poller_set(rt.poller, rt.worker.listen_fd, POLLER_IN, &listen_tag);
	poller_set(rt.poller, sigfd, POLLER_IN, &signal_tag);
	if (rt.worker.app_mode) {
		if ((watchfd = watch_open(".")) >= 0)	/* run/ */
			poller_set(rt.poller, watchfd, POLLER_IN, &watch_tag);
	}
	for (;;) {
		int64_t now = rt.now = clock_ms(), wake = rt.due.next_sweep;
		int n, i, timeout;

		if (rt.worker.app_mode && rt.due.counters_dirty &&
		    rt.due.counters_written + 1000 < wake)
			wake = rt.due.counters_written + 1000;
		if (rt.draining && drain_deadline < wake)
			wake = drain_deadline;
		if (rt.due.accept_resume_at && rt.due.accept_resume_at < wake)
			wake = rt.due.accept_resume_at;
		/*
		 * The log is written when stdio's 64 KiB buffer fills or
		 * LOG_FLUSH_MS after the last write, not once per round: a
		 * write(2) to a file per round of a few events cost the loop
		 * more than the lines did.
		 */
		if (rt.due.log_unflushed && now - log_flushed >= LOG_FLUSH_MS) {
			fflush(stdout);
			rt.due.log_unflushed = 0;
			log_flushed = now;
		}
		if (rt.due.log_unflushed && log_flushed + LOG_FLUSH_MS < wake)
			wake = log_flushed + LOG_FLUSH_MS;
		timeout = wake == INT64_MAX ? -1 : wake <= now ? 0 :
		    (wake - now > INT_MAX ? INT_MAX : (int)(wake - now));
		n = poller_wait(rt.poller, ev, 256, timeout);
		if (n == -1 && errno != EINTR)
			return 1;
		rt.now = clock_ms();
		for (i = 0; i < n; i++) {
			struct tag *t = ev[i].data;

			switch (t->kind) {
			case K_LISTEN:
				if (rt.worker.listen_fd >= 0)
					client_accept(64);
				break;
			case K_SIGNAL: {
				int sig;
				while (selfpipe_read(&sig)) {
					if (sig == SIGHUP)
						routes_reload();
					else if (sig == SIGTERM || sig == SIGINT)
						drain_begin();
				}
				break;
			}
			case K_WATCH:
				if (watch_changed(watchfd, "routes"))
					routes_reload();
				break;
			case K_CLIENT: {
				struct client *c = (struct client *)t;
				if (c->fd < 0)
					break;	/* closed earlier this round */
				/* A hangup or error reports both ways even
				 * when we asked for neither: with nothing to
				 * write, read, to learn of it and not spin. */
				if ((ev[i].events & POLLER_OUT) &&
				    buf_pending(&c->out) > 0)
					client_writable(c);
				else if ((ev[i].events & POLLER_IN) &&
				    !c->flushq)
					client_readable(c);
				/* With a response due at the round's end, what
				 * it sent waits a round (level-triggered): a
				 * client that hung up after its request gets
				 * the answer first, as when it was written at
				 * once, not a 499. */
				break;
			}
			case K_UPSTREAM: {
				struct upstream *u = (struct upstream *)t;
				if (u->fd < 0)
					break;
				if ((ev[i].events & POLLER_OUT) &&
				    (u->connecting || buf_pending(&u->out) > 0))
					upstream_writable(u);
				else if (ev[i].events & POLLER_IN)
					upstream_readable(u);
				break;
			}
			}
		}
		flush_round();
		graveyard_empty();
		now = rt.now = clock_ms();
		if (rt.due.accept_resume_at && now >= rt.due.accept_resume_at) {
			rt.due.accept_resume_at = 0;
			if (rt.worker.listen_fd >= 0)
				poller_set(rt.poller, rt.worker.listen_fd, POLLER_IN,
				    &listen_tag);
		}
		if (now >= rt.due.next_sweep)
			sweep(now);
		/* Not from backend_done itself: it runs inside dispatch. */
		while (rt.due.queue_kick) {
			rt.due.queue_kick = 0;
			queue_drain();
			flush_round();
		}
		flush_round();
		graveyard_empty();
		counters_write(now);
		if (rt.draining && (rt.conns.list == NULL || now >= drain_deadline))
			return 0;
	}
}
