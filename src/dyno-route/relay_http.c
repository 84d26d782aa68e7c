/*
 * relay_http.c: HTTP on both sides: the request head rebuilt for the
 * dyno, bodies, the response head and body, hop-by-hop rules, upgrades,
 * the end of a request and its retry.
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

static size_t body_total;	/* bytes in every client's body buffer */
static struct http_msg msg;	/* scratch: one parse at a time */

static int body_buffer_wanted(struct client *c, const struct http_msg *m);

/*
 * The request state machine, and the only code that changes a client's
 * req and resp states (and the tunnel and close-after flags that go with
 * them).  req: NONE (between requests), BODY (its body is still coming),
 * DONE (all of it read).  resp: NONE (no byte from the dyno yet), HEAD
 * (reading its head), BODY (passing its body on), DONE (all of it read).
 */
void
req_transition(struct client *c, enum req_event ev)
{
	switch (ev) {
	case RQ_HEAD:
		c->req = (c->req_chunked || c->req_left > 0) ? REQ_BODY : REQ_DONE;
		c->resp = RESP_NONE;
		break;
	case RQ_BODY_END:
		c->req = REQ_DONE;
		break;
	case RQ_ANSWER:
		c->resp = RESP_HEAD;
		break;
	case RQ_RESP_HEAD:
		c->resp = c->resp_mode == BODY_NONE ? RESP_DONE : RESP_BODY;
		break;
	case RQ_UPGRADE:
		/* Both ways until either side closes; never reused. */
		c->tunnel = 1;
		c->req = REQ_DONE;
		c->resp = RESP_BODY;
		c->resp_mode = BODY_CLOSE;
		c->close_after = 1;
		break;
	case RQ_RESP_END:
		c->resp = RESP_DONE;
		break;
	case RQ_ERROR:
		c->tunnel = 0;
		c->req = REQ_DONE;
		c->resp = RESP_DONE;
		c->close_after = 1;
		break;
	case RQ_NEXT:
		c->req = REQ_NONE;
		c->resp = RESP_NONE;
		break;
	}
}

void
copy_field(char *dst, size_t dstlen, const char *src, size_t len)
{
	if (len >= dstlen)
		len = dstlen - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static int
idempotent(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
	    strcmp(method, "OPTIONS") == 0;
}

/* It may go to another dyno if this one never answers (RFC 9110 9.2.2). */
int
resendable(const struct client *c)
{
	return !c->req_body && idempotent(c->method);
}

static const char *
status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 501: return "Not Implemented";
	case 408: return "Request Timeout";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

/* Answer with an error page unless the response has begun, then close. */
void
client_error(struct client *c, int status, const char *code, const char *desc)
{
	char body[256];
	int n;
	size_t before;

	if (client_oom_seen(c)) {
		/* Whatever the caller took it for, memory ran out. */
		status = 503;
		code = "H99";
		desc = "Platform error";
	}
	if (c->up != NULL && c->up->b != NULL && strcmp(code, "H99") != 0) {
		c->up->b->errors++;
		/* The client waited on this dyno for nothing: count the wait. */
		if (c->resp == RESP_NONE || c->resp == RESP_HEAD)
			backend_sample(c->up->b, (int)(now_ms() - c->t_start));
	}
	c->status = status;
	queue_remove(c);	/* its queue time ends now, for the log */
	if (c->resp == RESP_BODY || c->resp == RESP_DONE) {
		/* Mid-response: nothing honest to add.  The log counts what
		 * went out, not what was still buffered. */
		bytes_unsent(c);
		log_request(c, code, desc);
		client_close(c);
		return;
	}
	n = snprintf(body, sizeof(body), "%d %s%s%s\n", status,
	    status_text(status), code ? ": " : "", code ? desc : "");
	upstream_discard(c);
	req_transition(c, RQ_ERROR);
	c->in.off = c->in.len;	/* whatever else it sent is not read */
	before = buf_pending(&c->out);
	if (buf_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %d\r\nConnection: close\r\n\r\n%s", status,
	    status_text(status), n, body) == -1) {
		/* Not even room for the page: the static one, and close. */
		c->status = 503;
		buf_free(&c->out);
		c->bytes = oom_answer(c->fd);
		log_request(c, "H99", "Platform error");
		client_close(c);
		return;
	}
	c->bytes = (uint64_t)(buf_pending(&c->out) - before);	/* the page */
	log_request(c, code, desc);
	set_deadline(c, T_IDLE, now_ms() + rt.opt.idle_ms);
	client_update(c);
}

/* A header's name is the lowercase literal `lit`: lengths first, cheaply. */
#define NAME_IS(h, lit) ((h)->name_len == sizeof(lit) - 1 && \
	http_token_eq((h)->name, (h)->name_len, (lit)))

/* Heroku's rule for a client's X-Request-Id: 20 to 200 of [A-Za-z0-9+/=-]. */
static int
valid_request_id(const char *v, size_t len)
{
	size_t i;

	if (len < 20 || len > 200)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' ||
		    ch == '=' || ch == '-'))
			return 0;
	}
	return 1;
}

/* "Name: 123\r\n" by hand: request_build is the hot path, not printf's. */
static void
buf_number(struct buf *b, const char *name, unsigned long long v)
{
	char num[24], *q = num + sizeof(num);

	do
		*--q = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	buf_put(b, name, strlen(name));
	buf_put(b, q, (size_t)(num + sizeof(num) - q));
	buf_lit(b, "\r\n");
}

/* Build the head the dyno gets: our view of the request, never the raw bytes. */
int
request_build(struct client *c, const struct http_msg *m)
{
	struct buf b = { 0 };
	const char *xff = NULL, *xfp = NULL, *xfport = NULL, *via = NULL;
	size_t xfflen = 0, xfplen = 0, xfportlen = 0, vialen = 0, i;
	struct timespec now;
	int have_id = 0, conn[HTTP_HEADERS_MAX + 1];

	buf_put(&b, m->method, m->method_len);
	buf_lit(&b, " ");
	if (m->path_len == 0 || m->path[0] == '?')
		buf_lit(&b, "/");	/* "http://a?q": the empty path is "/" */
	buf_put(&b, m->path, m->path_len);
	http_connection_headers(m, conn, sizeof(conn) / sizeof(conn[0]));
	if (m->minor == 1)
		buf_lit(&b, " HTTP/1.1\r\n");
	else
		buf_lit(&b, " HTTP/1.0\r\n");
	for (i = 0; i < m->nheaders; i++) {
		const struct http_header *h = &m->headers[i];

		if (NAME_IS(h, "x-forwarded-for")) {
			xff = h->value;
			xfflen = h->value_len;
			continue;
		}
		if (NAME_IS(h, "x-forwarded-proto")) {
			xfp = h->value;
			xfplen = h->value_len;
			continue;
		}
		if (NAME_IS(h, "x-forwarded-port")) {
			xfport = h->value;
			xfportlen = h->value_len;
			continue;
		}
		if (NAME_IS(h, "via")) {
			via = h->value;
			vialen = h->value_len;
			continue;
		}
		if (NAME_IS(h, "x-request-start"))
			continue;
		if (NAME_IS(h, "x-request-id")) {
			if (valid_request_id(h->value, h->value_len) && !have_id) {
				copy_field(c->reqid, sizeof(c->reqid), h->value,
				    h->value_len);
				have_id = 1;
			}
			continue;
		}
		if (http_hop_by_hop(h, m, conn))
			continue;
		if (NAME_IS(h, "transfer-encoding")) {
			/* te_codings let only this through: say it plainly. */
			buf_lit(&b, "Transfer-Encoding: chunked\r\n");
			continue;
		}
		if (NAME_IS(h, "content-length")) {
			/* The number we framed by, without "007"'s zeros. */
			buf_number(&b, "Content-Length: ",
			    (unsigned long long)m->content_length);
			continue;
		}
		if (m->host_from_target && NAME_IS(h, "host"))
			continue;	/* the target's authority, below */
		buf_header(&b, h);
	}
	if (m->host_from_target) {
		/* The authority of an absolute-form target, which the log
		 * shows too, whatever Host said (or if there was none, 1.0). */
		buf_lit(&b, "Host: ");
		buf_put(&b, m->host, m->host_len);
		buf_lit(&b, "\r\n");
	}
	if (!have_id)
		rand_uuid(c->reqid);
	{
		/* "earlier, ours" as snprintf made it, truncation included. */
		struct text t = { c->fwd, 0, sizeof(c->fwd) - 1 };
		if (xff) {
			text_put(&t, xff, xfflen);
			text_lit(&t, ", ");
		}
		text_str(&t, c->peer);
		c->fwd[t.len] = '\0';
	}
	buf_forward(&b, "X-Forwarded-For", xff, xfflen, c->peer);
	buf_forward(&b, "X-Forwarded-Proto", xfp, xfplen, rt.opt.proto);
	buf_forward(&b, "X-Forwarded-Port", xfport, xfportlen, rt.opt.listen_port);
	clock_gettime(CLOCK_REALTIME, &now);	/* wall clock: the dyno compares */
	buf_number(&b, "X-Request-Start: ",
	    (unsigned long long)now.tv_sec * 1000 +
	    (unsigned long long)(now.tv_nsec / 1000000));
	buf_forward(&b, "X-Request-Id", NULL, 0, c->reqid);
	buf_forward(&b, "Via", via, vialen, "1.1 dyno-route");
	if (c->upgrade)
		buf_lit(&b, "Connection: upgrade\r\n");
	else if (m->minor == 0)
		buf_lit(&b, "Connection: close\r\n");
	buf_lit(&b, "\r\n");
	if (b.data == NULL || b.failed) {
		buf_free(&b);
		return -1;
	}
	/* From the buffer free list, and back to it when done. */
	buf_free(&c->head);
	c->head = b;
	return 0;
}

/* A whole request head is in c->in: check it, note it, send it on. */
static void
request_start(struct client *c, int headlen)
{
	struct http_msg *m = &msg;
	const char *upgrade = NULL;
	size_t i;

	c->t_start = c->t_ready = now_ms();
	c->t_connect = c->t_connected = 0;
	c->stall_at = c->queue_ms = 0;
	c->ntries = 0;
	c->status = 0;
	c->bytes = 0;
	c->refused = 0;
	c->resends = 0;
	c->logged = 0;
	copy_field(c->method, sizeof(c->method), m->method, m->method_len);
	copy_field(c->path, sizeof(c->path), m->path, m->path_len);
	copy_field(c->host, sizeof(c->host), m->host ? m->host : "",
	    m->host_len);
	c->reqid[0] = c->fwd[0] = '\0';
	c->minor = m->minor;
	c->keepalive = m->keep_alive;
	c->is_head = http_token_eq(m->method, m->method_len, "HEAD");
	for (i = 0; i < m->nheaders; i++)
		if (NAME_IS(&m->headers[i], "upgrade"))
			upgrade = m->headers[i].value;
	c->upgrade = upgrade != NULL && m->conn_upgrade && m->minor == 1;
	c->req_chunked = m->chunked;
	c->req_left = m->content_length > 0 ? m->content_length : 0;
	c->req_body = m->chunked || c->req_left > 0;
	req_transition(c, RQ_HEAD);
	if (m->chunked)
		chunked_init(&c->req_ch);
	if (request_build(c, m) == -1) {
		client_error(c, 503, "H99", "Platform error");
		return;
	}
	if (c->upgrade) {
		/* The Upgrade header itself was stripped as hop-by-hop. */
		for (i = 0; i < m->nheaders; i++)
			if (NAME_IS(&m->headers[i], "upgrade")) {
				c->head.len -= 2;	/* the blank line */
				buf_printf(&c->head, "Upgrade: %.*s\r\n\r\n",
				    (int)m->headers[i].value_len,
				    m->headers[i].value);
			}
	}
	c->in.off += (size_t)headlen;
	set_deadline(c, T_QUEUE, c->t_start + rt.opt.service_ms);
	if (c->upgrade && rt.conns.tunnels >= rt.opt.max_tunnels) {
		client_error(c, 503, "H11", "Backlog too deep");
		return;
	}
	if (body_buffer_wanted(c, m)) {
		c->buffering = 1;
		body_buffer_more(c);
		return;
	}
	dispatch(c);
}

/*
 * Move body bytes of the current request from c->in to dst, framed for the
 * dyno, while dst holds less than room.
 */
static int
request_copy(struct client *c, struct buf *dst, size_t room)
{
	size_t avail, take;

	while ((avail = buf_pending(&c->in)) > 0 && buf_pending(dst) < room &&
	    c->req == REQ_BODY) {
		const char *p = c->in.data + c->in.off;

		take = avail;
		if (take > IO_CHUNK)
			take = IO_CHUNK;
		if (c->req_chunked) {
			ssize_t k = chunked_copy(&c->req_ch, dst, p, take, 0);
			if (k < 0)
				return -1;
			take = (size_t)k;
			if (chunked_done(&c->req_ch))
				req_transition(c, RQ_BODY_END);
		} else {
			if ((int64_t)take > c->req_left)
				take = (size_t)c->req_left;
			c->req_left -= (int64_t)take;
			if (c->req_left == 0)
				req_transition(c, RQ_BODY_END);
			if (buf_append(dst, p, take) == -1)
				return -1;
		}
		c->in.off += take;
	}
	return 0;
}

/* A new request begins: nothing of the last one goes into its log line. */
static void
request_forget(struct client *c)
{
	c->t_start = now_ms();
	c->t_connect = c->t_connected = c->stall_at = c->queue_ms = 0;
	c->ntries = c->resends = c->refused = c->status = 0;
	c->bytes = 0;
	c->method[0] = c->path[0] = c->host[0] = c->reqid[0] = '\0';
	c->fwd[0] = c->dyno[0] = '\0';
}

/* Move body bytes of the current request from c->in to the dyno's buffer. */
int
request_pump(struct client *c)
{
	struct upstream *u = c->up;

	if (u == NULL || c->req != REQ_BODY || u->connecting)
		return 0;
	return request_copy(c, &u->out, IO_CHUNK);
}

/* The body buffer goes, and its bytes leave the worker's total. */
void
body_drop(struct client *c)
{
	body_total -= c->body.len;
	buf_free(&c->body);
	c->body_whole = 0;
	c->buffering = 0;
}

/*
 * Buffer more of a body before dispatch (haproxy's http-buffer-request): a
 * client trickling its body holds no slot on a dyno.  The request goes to
 * a dyno when its body is whole or --body-buffer is full.
 */
void
body_buffer_more(struct client *c)
{
	size_t before = c->body.len;
	int r = request_copy(c, &c->body, rt.opt.body_buffer);

	body_total += c->body.len - before;
	if (r == -1) {
		client_error(c, 400, "H26", "Request Error");
		return;
	}
	if (c->req == REQ_DONE || buf_pending(&c->body) >= rt.opt.body_buffer) {
		c->buffering = 0;
		c->body_whole = c->req == REQ_DONE;
		/* The service timeout counts from here: the client was slow. */
		set_deadline(c, T_QUEUE, now_ms() + rt.opt.service_ms);
		dispatch(c);
		return;
	}
	set_deadline(c, T_IDLE, now_ms() + rt.opt.idle_ms);
	client_update(c);
}

/*
 * Does the body of the request m heads wait in c->body before dispatch?
 * Not when nothing is to be buffered, not for "Expect: 100-continue" (its
 * client waits for the dyno's 100 before sending the body), nor when the
 * worker's bodies fill their total.
 */
static int
body_buffer_wanted(struct client *c, const struct http_msg *m)
{
	size_t i, want = rt.opt.body_buffer;

	if (rt.opt.body_buffer == 0 || c->req != REQ_BODY || c->upgrade)
		return 0;
	if (!c->req_chunked && (uint64_t)c->req_left < want)
		want = (size_t)c->req_left;
	if (body_total + want > rt.opt.body_buffer * BODY_TOTAL_FACTOR)
		return 0;
	for (i = 0; i < m->nheaders; i++)
		if (NAME_IS(&m->headers[i], "expect"))
			return 0;
	return 1;
}

void
client_try_request(struct client *c)
{
	int n;

	if (c->req != REQ_NONE || c->resp != RESP_NONE || c->close_after)
		return;
	if (buf_pending(&c->in) == 0) {
		buf_release(&c->in);
		/* Draining: not closed at once, its next request may already
		 * be on the way (drain_begin). */
		set_deadline(c, T_KEEPALIVE, now_ms() +
		    (rt.draining ? DRAIN_IDLE_MS : rt.opt.keepalive_ms));
		client_update(c);
		return;
	}
	/* A new request began to arrive, after an idle spell or pipelined
	 * behind the last one: its head has header_ms from now, and if it
	 * fails, its log line names none of the last request's values. */
	if (c->timer != T_HEADER) {
		set_deadline(c, T_HEADER, now_ms() + rt.opt.header_ms);
		request_forget(c);
	}
	n = http_parse_request(c->in.data + c->in.off, buf_pending(&c->in), &msg);
	if (n == 0) {
		if (buf_pending(&c->in) > HTTP_HEAD_MAX) {
			c->status = 431;
			client_error(c, 431, "H25", "HTTP Restriction");
			return;
		}
		client_update(c);
		return;
	}
	if (n < 0) {
		int h25 = msg.error == 414 || msg.error == 431;
		/* A request line that parsed is logged, as data like any. */
		if (msg.method != NULL && msg.target != NULL) {
			copy_field(c->method, sizeof(c->method), msg.method,
			    msg.method_len);
			copy_field(c->path, sizeof(c->path), msg.target,
			    msg.target_len);
		}
		client_error(c, msg.error, h25 ? "H25" : "H26",
		    h25 ? "HTTP Restriction" : "Request Error");
		return;
	}
	request_start(c, n);
}

/* The response went out whole: log, recycle, and look at the next request. */
void
request_finish(struct client *c)
{
	struct upstream *u = c->up;
	int reuse_up;

	if (u && u->b) {
		/* All the client waited: queue and retries included. */
		backend_sample(u->b, (int)(now_ms() - c->t_start));
		if (c->status >= 500)
			u->b->errors++;
	}
	log_request(c, NULL, NULL);
	reuse_up = u != NULL && c->resp_keepalive && c->resp_mode != BODY_CLOSE &&
	    c->req == REQ_DONE && c->minor == 1 && buf_pending(&u->in) == 0;
	if (u != NULL) {
		c->up = NULL;
		if (reuse_up)
			upstream_pool(u);
		else {
			upstream_free(u);
			backend_done(u->b);
		}
	}
	/* Draining, a response whose head went out before the drain began
	 * promised keep-alive: the connection stays for the client's next
	 * request, answered with Connection: close (client_try_request). */
	if (!c->keepalive || c->close_after || c->req != REQ_DONE) {
		client_close(c);
		queue_drain();
		return;
	}
	req_transition(c, RQ_NEXT);
	buf_free(&c->head);
	body_drop(c);
	queue_drain();
	client_try_request(c);	/* a pipelined request may be waiting */
}

/* The response head arrived: check it and pass our version of it on. */
int
response_head(struct client *c, struct upstream *u)
{
	struct http_msg *m = &msg;
	struct buf *o = &c->out;
	size_t i, start = buf_pending(o);
	int n, no_body, conn[HTTP_HEADERS_MAX + 1];

	n = http_parse_response(u->in.data + u->in.off, buf_pending(&u->in), m);
	if (n == 0) {
		if (buf_pending(&u->in) > HTTP_HEAD_MAX)
			return -1;
		return 0;
	}
	if (n < 0)
		return -1;
	u->in.off += (size_t)n;
	c->status = m->status;
	if (m->status >= 100 && m->status < 200 && m->status != 101) {
		/* 100 Continue and friends: pass on to 1.1 clients, keep reading. */
		if (c->minor == 1)
			buf_append(o, u->in.data + u->in.off - (size_t)n,
			    (size_t)n);
		return 2;
	}
	if (m->status == 101) {
		if (!c->upgrade)
			return -1;
		buf_append(o, u->in.data + u->in.off - (size_t)n, (size_t)n);
		req_transition(c, RQ_UPGRADE);
		if (u->b != NULL) {
			/* Out of --max-inflight, into --max-tunnels. */
			c->tunnel_slot = 1;
			u->b->tunnels++;
			u->b->inflight--;
			rt.conns.tunnels++;
			rt.due.counters_dirty = 1;
			rt.due.queue_kick = 1;
		}
		/* Bytes after the head already belong to the tunnel. */
		buf_append(o, u->in.data + u->in.off, buf_pending(&u->in));
		u->in.off = u->in.len;
		/* And so does whatever the client sent after its request. */
		if (buf_pending(&c->in) > 0) {
			buf_append(&u->out, c->in.data + c->in.off,
			    buf_pending(&c->in));
			c->in.off = c->in.len;
		}
		return 1;
	}
	no_body = c->is_head || m->status == 204 || m->status == 304;
	if (no_body)
		c->resp_mode = BODY_NONE;
	else if (m->chunked) {
		c->resp_mode = BODY_CHUNKED;
		chunked_init(&c->resp_ch);
	} else if (m->content_length >= 0) {
		c->resp_mode = m->content_length > 0 ? BODY_LENGTH : BODY_NONE;
		c->resp_left = m->content_length;
	} else
		c->resp_mode = BODY_CLOSE;
	c->resp_keepalive = m->keep_alive;
	if (c->resp_mode == BODY_CLOSE || (c->resp_mode == BODY_CHUNKED &&
	    c->minor == 0))
		c->close_after = 1;
	if (c->req != REQ_DONE)	/* answered before the body: cannot reuse */
		c->close_after = 1;
	if (rt.draining)
		c->close_after = 1;
	{
		/* Our status line, with the dyno's own reason phrase. */
		const char *line = u->in.data + u->in.off - (size_t)n;
		const char *cr = memchr(line, '\r', (size_t)n);
		size_t rlen = cr && cr - line > 13 ?
		    (size_t)(cr - line - 13) : 0;
		/* The parser took line[9..12) for three digits, m->status. */
		buf_lit(o, "HTTP/1.1 ");
		buf_put(o, line + 9, 3);
		buf_lit(o, " ");
		buf_put(o, line + 13, rlen);
		buf_lit(o, "\r\n");
	}
	http_connection_headers(m, conn, sizeof(conn) / sizeof(conn[0]));
	for (i = 0; i < m->nheaders; i++) {
		const struct http_header *h = &m->headers[i];
		if (http_hop_by_hop(h, m, conn))
			continue;
		if (c->minor == 0 && NAME_IS(h, "transfer-encoding"))
			continue;
		buf_header(o, h);
	}
	if (c->close_after || !c->keepalive)
		buf_lit(o, "Connection: close\r\n");
	else if (c->minor == 0)
		buf_lit(o, "Connection: keep-alive\r\n");
	buf_lit(o, "\r\n");
	if (o->failed) {
		/* Out of memory: none of a half-built head goes out; the
		 * caller sees o->failed and answers H99. */
		o->len = o->off + start;
		return -1;
	}
	c->bytes += (uint64_t)buf_pending(o);
	req_transition(c, RQ_RESP_HEAD);
	return 1;
}

/* Pass body bytes of the response on, stopping exactly at its end. */
int
response_body(struct client *c, const char *p, size_t n)
{
	size_t take = n, before = c->out.len;

	if (c->resp_mode == BODY_CHUNKED) {
		/* Re-framed as for a request; a 1.0 client reads to the close
		 * (response_head dropped Transfer-Encoding for it). */
		ssize_t k = chunked_copy(&c->resp_ch, &c->out, p, n,
		    c->minor == 0);
		if (k < 0)
			return -1;
		take = (size_t)k;
		if (chunked_done(&c->resp_ch))
			req_transition(c, RQ_RESP_END);
	} else {
		if (c->resp_mode == BODY_LENGTH) {
			if ((int64_t)take > c->resp_left)
				take = (size_t)c->resp_left;
			c->resp_left -= (int64_t)take;
			if (c->resp_left == 0)
				req_transition(c, RQ_RESP_END);
		}
		if (buf_append(&c->out, p, take) == -1)
			return -1;
	}
	c->bytes += c->out.len - before;
	if (take < n)
		c->resp_keepalive = 0;	/* the dyno sent more than it framed */
	return 0;
}

/* The dyno closed or failed before the response was whole. */
void
upstream_eof(struct client *c, struct upstream *u, int err)
{
	if (c->tunnel) {
		log_request(c, NULL, NULL);
		req_transition(c, RQ_RESP_END);
		c->up = NULL;
		upstream_free(u);
		tunnel_end(c, u->b);
		backend_done(u->b);
		if (buf_pending(&c->out) == 0)
			client_close(c);
		else
			client_update(c);
		return;
	}
	if (c->resp == RESP_BODY && c->resp_mode == BODY_CLOSE && !err) {
		req_transition(c, RQ_RESP_END);
		c->up = NULL;
		upstream_free(u);
		backend_done(u->b);
		client_update(c);
		if (buf_pending(&c->out) == 0)
			client_writable(c);
		return;
	}
	if (c->resp == RESP_NONE && !u->got_bytes &&
	    (!c->req_body || c->body_whole) &&
	    c->req == REQ_DONE && c->resends < rt.opt.retries &&
	    (u->reused || idempotent(c->method))) {
		/* No response byte came and the request has no body, or one
		 * wholly buffered in c->body (a body streamed through was not
		 * kept, so it could not go again).  Either
		 * the dyno closed an idle keep-alive connection as we reused it
		 * (the classic race: a fresh connection is safe), or a GET,
		 * HEAD or OPTIONS met a dyno that died (RFC 9110 9.2.2 lets
		 * those be sent again).  Nothing else is ever re-sent. */
		struct backend *b = u->b;
		int reused = u->reused;
		c->resends++;
		c->refused = 2;	/* if no dyno is left, H13 says what happened */
		/* Its other idle connections are likely dead too. */
		backend_drop_pool(b);
		if (!reused) {
			b->quarantined_until = now_ms() + rt.opt.quarantine_ms;
			b->errors++;
		}
		upstream_discard(c);
		if (reused)
			c->ntries--;	/* the same dyno may take it afresh */
		dispatch(c);
		return;
	}
	if (c->resp == RESP_NONE)
		client_error(c, 503, "H13", "Connection closed without response");
	else {
		c->status = c->status ? c->status : 502;
		log_request(c, "H13", "Connection closed without response");
		client_close(c);
	}
}
