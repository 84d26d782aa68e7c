/*
 * balance.c: the dynos: routes reload, the pick (less loaded of two),
 * quarantine, stalls, the queue of requests waiting for one, dispatch.
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

static int web_known;		/* a status line was read: no -b, no old dyno-run */

/* The queue of requests waiting for a dyno with room: FIFO, O(1) removal. */
static void
queue_push(struct client *c)
{
	c->qnext = NULL;
	c->qprev = rt.queue.tail;
	if (rt.queue.tail)
		rt.queue.tail->qnext = c;
	else
		rt.queue.head = c;
	rt.queue.tail = c;
	rt.queue.len++;
	c->queued = 1;
	c->t_queued = now_ms();
}

void
queue_remove(struct client *c)
{
	if (!c->queued)
		return;
	if (c->qprev)
		c->qprev->qnext = c->qnext;
	else
		rt.queue.head = c->qnext;
	if (c->qnext)
		c->qnext->qprev = c->qprev;
	else
		rt.queue.tail = c->qprev;
	c->qprev = c->qnext = NULL;
	rt.queue.len--;
	c->queued = 0;
	c->queue_ms += now_ms() - c->t_queued;
}

void
backend_sample(struct backend *b, int ms)
{
	b->samples[b->sample_pos].at = now_ms();
	b->samples[b->sample_pos].ms = ms;
	b->sample_pos = (b->sample_pos + 1) % SAMPLES_MAX;
	if (b->nsamples < SAMPLES_MAX)
		b->nsamples++;
	rt.due.counters_dirty = 1;
}

static int
resolve(const char *hostport, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128], *colon;
	struct addrinfo hints, *res;
	int rc;

	if (snprintf(host, sizeof(host), "%s", hostport) >= (int)sizeof(host))
		return -1;
	if ((colon = strrchr(host, ':')) == NULL)
		return -1;
	*colon = '\0';
	if (host[0] == '[' && colon[-1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
		return -1;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

void
backend_drop_pool(struct backend *b)
{
	while (b->idle != NULL) {
		struct upstream *u = b->idle;
		b->idle = u->pool_next;
		upstream_free(u);
	}
}

static void
backend_free_if_done(size_t i)
{
	struct backend *b = rt.dynos.list[i];
	struct client *c;
	int k;

	/* Clients keep pointers to dynos they tried only to compare them. */
	if (!b->gone || b->inflight > 0 || b->tunnels > 0)
		return;
	/* A dyno added later may get this address: a request waiting for one
	 * to boot must not take it for the one it tried. */
	for (c = rt.conns.list; c != NULL; c = c->next)
		for (k = 0; k < c->ntries; k++)
			if (c->tried[k] == b)
				c->tried[k] = NULL;
	backend_drop_pool(b);
	free(b);
	memmove(&rt.dynos.list[i], &rt.dynos.list[i + 1],
	    (rt.dynos.n - i - 1) * sizeof(rt.dynos.list[0]));
	rt.dynos.n--;
}

/* Merge a new list of "NAME HOST:PORT" in: keep counters, mark the missing gone. */
void
backends_load(const char *text, int from_routes)
{
	size_t i;
	const char *p = text;

	/*
	 * gone: 0 listed, 1 left the routes (kept while requests finish);
	 * during the load 2 (was listed) or 3 (was not) until seen again.
	 */
	for (i = 0; i < rt.dynos.n; i++)
		rt.dynos.list[i]->gone = rt.dynos.list[i]->gone ? 3 : 2;
	if (from_routes)
		web_known = 0;
	while (p != NULL && *p != '\0') {
		char name[DYNO_NAME_MAX], addr[128], line[256];
		const char *start = p;
		const char *eol = from_routes ? strchr(p, '\n') : strchr(p, ',');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		struct sockaddr_storage ss;
		socklen_t sslen;
		struct backend *b = NULL;

		copy_field(line, sizeof(line), p, len);
		p = eol ? eol + 1 : NULL;
		if (line[0] == '\0')
			continue;
		if (from_routes && line[0] == '@') {
			/* One status line; two mean the file is not dyno-run's. */
			if (web_status_parse(start, len, &rt.dynos.web) == 0)
				web_known = web_known ? -1 : 1;
			continue;
		}
		if (from_routes) {
			if (route_parse(start, len, name, sizeof(name), addr,
			    sizeof(addr)) == -1)
				continue;
		} else {
			snprintf(addr, sizeof(addr), "%s", line);
			snprintf(name, sizeof(name), "%s", line);
		}
		for (i = 0; i < rt.dynos.n; i++)
			if (strcmp(rt.dynos.list[i]->name, name) == 0 &&
			    strcmp(rt.dynos.list[i]->addrtext, addr) == 0)
				b = rt.dynos.list[i];
		if (b != NULL) {
			if (b->gone == 3) {
				/* Back on the routes after it left them: a new
				 * process, which its old one's refusal must not
				 * keep out, nor its old connections reach. */
				b->quarantined_until = 0;
				backend_drop_pool(b);
			}
			b->gone = 0;
			continue;
		}
		if (resolve(addr, &ss, &sslen) == -1) {
			log_event(stdout, "heroku", "router",
			    "at=warning desc=\"cannot resolve %s for %s\"", addr,
			    name);
			rt.due.log_unflushed = 1;
			continue;
		}
		if (rt.dynos.n >= BACKENDS_MAX || (b = calloc(1, sizeof(*b))) == NULL)
			break;
		snprintf(b->name, sizeof(b->name), "%s", name);
		snprintf(b->addrtext, sizeof(b->addrtext), "%s", addr);
		b->addr = ss;
		b->addrlen = sslen;
		rt.dynos.list[rt.dynos.n++] = b;
	}
	if (web_known == -1)
		web_known = 0;
	for (i = rt.dynos.n; i-- > 0;) {
		if (rt.dynos.list[i]->gone == 3)
			rt.dynos.list[i]->gone = 1;
		if (rt.dynos.list[i]->gone == 2) {
			rt.dynos.list[i]->gone = 1;
			/* Idle keep-alive connections to a dyno that left the
			 * routes would be the next request's trap: close them. */
			backend_drop_pool(rt.dynos.list[i]);
			backend_free_if_done(i);
		}
	}
	rt.due.counters_dirty = 1;
	/* A dyno came, or the status changed: waiting requests may go now,
	 * or learn that none will come. */
	rt.due.queue_kick = 1;		/* after this round */
}

void
routes_reload(void)
{
	char *text;
	size_t len;

	if (!rt.worker.app_mode)
		return;
	if (file_read_alloc(rt.worker.routes_path, &text, &len, 1 << 20) == -1) {
		backends_load("", 1);	/* no routes file: no routable dyno */
		return;
	}
	backends_load(text, 1);
	free(text);
}

/* A request on b ended; a dyno gone from the routes goes when idle. */
void
backend_done(struct backend *b)
{
	size_t i;

	b->inflight--;
	rt.due.counters_dirty = 1;
	rt.due.queue_kick = 1;
	if (!b->gone || b->inflight > 0 || b->tunnels > 0)
		return;
	for (i = 0; i < rt.dynos.n; i++)
		if (rt.dynos.list[i] == b) {
			backend_free_if_done(i);
			return;
		}
}

/*
 * A stalled dyno takes no new request while its hold lasts; after it, only
 * one that can be sent elsewhere if it is still stuck: a probe.
 */
static int
backend_stuck_for(const struct backend *b, const struct client *c,
    int64_t now)
{
	return b->stalled && (b->stall_until > now || !resendable(c));
}

/* A byte from the dyno: it is not stuck. */
void
backend_heard(struct backend *b)
{
	b->last_byte = now_ms();
	b->probe = PROBE_NONE;
	if (!b->stalled)
		return;
	b->stalled = 0;
	log_event(stdout, "heroku", "router", "at=warning desc=\"dyno answers "
	    "again after %lldms stalled\" dyno=%s",
	    (long long)(b->last_byte - b->stall_since), b->name);
	rt.due.log_unflushed = 1;
	rt.due.counters_dirty = 1;
	rt.due.queue_kick = 1;
}

static int
backend_usable(struct backend *b, struct client *c, int64_t now)
{
	int i;

	if (b->gone || b->quarantined_until > now)
		return 0;
	for (i = 0; i < c->ntries; i++)
		if (c->tried[i] == b)
			return 0;
	return 1;
}

/*
 * Two random choices, then the one with fewer requests in flight.
 * Returns NULL with *full set when every usable dyno is at its limit.
 */
struct backend *
backend_pick(struct client *c, int *full, int *none)
{
	struct backend *cand[BACKENDS_MAX];
	size_t n = 0, i;
	int64_t now = now_ms();
	struct backend *a, *b;

	*full = *none = 0;
	for (i = 0; i < rt.dynos.n; i++)
		if (backend_usable(rt.dynos.list[i], c, now))
			cand[n++] = rt.dynos.list[i];
	if (n == 0) {
		*none = 1;
		return NULL;
	}
	/* Drop the full ones so the two choices are among those with room. */
	for (i = 0; i < n;) {
		if (cand[i]->inflight >= rt.opt.max_inflight ||
		    backend_stuck_for(cand[i], c, now))
			cand[i] = cand[--n];
		else
			i++;
	}
	if (n == 0) {
		*full = 1;
		return NULL;
	}
	if (n == 1)
		return cand[0];
	/* A suspect dyno gets the probe it waits for. */
	for (i = 0; i < n && resendable(c); i++)
		if (cand[i]->probe == PROBE_WANTED)
			return cand[i];
	a = cand[rand_next() % n];
	do
		b = cand[rand_next() % n];
	while (b == a);
	return b->inflight < a->inflight ? b : a;
}

/*
 * No dyno can take c now: is one coming that could?  A listed dyno it has
 * not tried (quarantined for now), one starting, or a crashed one due to
 * restart before c's boot timeout, as dyno-run's status line says; with no
 * status line (-b, or an older dyno-run) nothing is known to be coming.
 */
static int
web_coming(const struct client *c)
{
	size_t i;
	int k;

	if (!web_known || rt.dynos.web.want == 0 ||
	    c->ntries >= (int)(sizeof(c->tried) / sizeof(c->tried[0])))
		return 0;
	if (rt.dynos.web.starting > 0 ||
	    (rt.dynos.web.crashed > 0 && rt.dynos.web.restart <= c->t_start + rt.opt.boot_ms))
		return 1;
	for (i = 0; i < rt.dynos.n; i++) {
		if (rt.dynos.list[i]->gone)
			continue;
		for (k = 0; k < c->ntries && c->tried[k] != rt.dynos.list[i]; k++)
			;
		if (k == c->ntries)
			return 1;
	}
	return 0;
}

/* Requests waiting for a boot look again when a dyno's quarantine ends. */
void
quarantine_wake(int64_t now)
{
	size_t i;

	for (i = 0; i < rt.dynos.n; i++) {
		struct backend *b = rt.dynos.list[i];
		if (b->gone || b->quarantined_until == 0)
			continue;
		if (b->quarantined_until <= now) {
			b->quarantined_until = 0;
			rt.due.queue_kick = 1;
		} else if (rt.queue.head != NULL &&
		    b->quarantined_until < rt.due.next_sweep)
			rt.due.next_sweep = b->quarantined_until;
	}
}

/*
 * Wait in the queue: for a slot (full; H12 at the service timeout) or for
 * a dyno to boot (H20 at the boot timeout from the request's arrival).
 */
static void
queue_wait(struct client *c, int boot)
{
	if (boot && c->timer != T_BOOT)
		set_deadline(c, T_BOOT, c->t_start + rt.opt.boot_ms);
	else if (!boot && c->timer == T_BOOT) {
		c->t_ready = now_ms();
		set_deadline(c, T_QUEUE, c->t_ready + rt.opt.service_ms);
	}
	queue_push(c);
	rt.due.counters_dirty = 1;	/* run/router's queue= shows who waits */
	if (boot)
		quarantine_wake(now_ms());
	client_update(c);
}

/* No dyno now and none coming: say why, as Heroku's router does. */
static void
no_dyno_error(struct client *c)
{
	if (c->ntries > 0 && c->refused == 2)
		client_error(c, 503, "H13", "Connection closed without response");
	else if (c->ntries > 0 && c->refused)
		client_error(c, 503, "H21", "Backend connection refused");
	else if (c->ntries > 0)
		client_error(c, 503, "H19", "Backend connection timeout");
	else if (web_known && rt.dynos.web.want > 0 && rt.dynos.web.crashed > 0)
		client_error(c, 503, "H10", "App crashed");
	else
		client_error(c, 503, "H14", "No web dynos running");
}

void
dispatch(struct client *c)
{
	for (;;) {
		struct backend *b;
		struct upstream *u;
		int full, none, refused;

		if (c->ntries >= (int)(sizeof(c->tried) / sizeof(c->tried[0]))) {
			full = 0;	/* tried every dyno it may: not a backlog */
			none = 1;
			b = NULL;
		} else
			b = backend_pick(c, &full, &none);
		if (b == NULL) {
			int boot = !full && web_coming(c);

			if ((full || boot) && rt.queue.len < (size_t)rt.opt.queue_max)
				queue_wait(c, boot);
			else if (full || boot)
				client_error(c, 503, "H11", "Backlog too deep");
			else
				no_dyno_error(c);
			return;
		}
		if (c->timer == T_BOOT)
			c->t_ready = now_ms();	/* the wait for a boot is over */
		c->tried[c->ntries++] = b;
		memcpy(c->dyno, b->name, sizeof(c->dyno));	/* same size */
		b->inflight++;
		b->total++;
		rt.due.counters_dirty = 1;
		/* A pooled keep-alive connection if there is one. */
		if ((u = b->idle) != NULL) {
			b->idle = u->pool_next;
			u->pool_next = NULL;
			u->reused = 1;
			upstream_attach(c, u);
			return;
		}
		u = upstream_connect(b, &refused);
		if (u != NULL) {
			upstream_attach(c, u);
			return;
		}
		if (refused < 0) {
			/*
			 * Out of fds or memory: not the dyno's fault, so no
			 * quarantine, and no other dyno would fare better.
			 * Answered at once: a queued request would hold the
			 * fd that is short.
			 */
			int err = errno;
			b->total--;
			backend_done(b);
			log_event(stdout, "heroku", "router", "at=error code=H99 "
			    "desc=\"cannot connect to %s: %s\" dyno=%s",
			    b->addrtext, strerror(err), b->name);
			client_error(c, 503, "H99", "Platform error");
			return;
		}
		b->quarantined_until = now_ms() + rt.opt.quarantine_ms;
		b->errors++;
		backend_done(b);
		c->refused = refused;
		if (c->ntries >= rt.opt.retries) {
			client_error(c, 503, refused ? "H21" : "H19", refused ?
			    "Backend connection refused" :
			    "Backend connection timeout");
			return;
		}
	}
}

/* A dyno has room again, or came up: the oldest waiting request goes first. */
void
queue_drain(void)
{
	while (rt.queue.head != NULL) {
		struct client *c = rt.queue.head;
		int full, none;
		struct backend *b = backend_pick(c, &full, &none);

		if (b == NULL && (full || web_coming(c)))
			return;
		queue_remove(c);
		dispatch(c);
	}
}
