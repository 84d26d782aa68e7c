/*
 * dyno-route: the HTTP router in front of the web dynos.  One
 * single-threaded event loop (lib/poller.c) per worker process moves bytes
 * between clients and dynos through small per-connection buffers, so bodies
 * stream both ways in flat memory.  Each request goes to the less loaded of
 * two random dynos; a refused connect is retried elsewhere and the dyno is
 * quarantined.  Heads are parsed strictly (lib/http.c) and rebuilt, so what
 * the dyno sees is exactly what we understood.  See dyno-route(1).
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

#define IO_CHUNK 16384		/* one read or one buffer's worth */
#define BACKENDS_MAX 1024
#define SAMPLES_MAX 4096	/* service times kept per dyno for p50/p95/p99 */
#define PATH_LOG_MAX 1024
#define DRAIN_IDLE_MS 1000	/* draining: an idle client's next request may be on its way */

enum kind { K_LISTEN, K_SIGNAL, K_WATCH, K_CLIENT, K_UPSTREAM };
struct tag {
	enum kind kind;
};

struct buf {
	char *data;
	size_t off, len, cap;	/* pending bytes are data[off..len) */
	int failed;		/* an allocation for it failed: out of memory */
};

struct backend {
	char name[DYNO_NAME_MAX];
	char addrtext[128];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int inflight, gone;
	int tunnels;		/* upgraded: out of inflight, still using it */
	int64_t quarantined_until;
	uint64_t total, errors;
	/*
	 * Stuck: requests waited stall_ms with no byte from any of its
	 * connections.  It gets no new request until stall_until, then only
	 * idempotent ones (probes) until a byte comes.
	 */
	int stalled;
	int64_t last_byte, stall_since, stall_until;
	/*
	 * Suspect: one request waited stall_ms alone with no byte.  The next
	 * request that may go elsewhere goes to it as a probe (WANTED, then
	 * SENT).
	 */
	enum { PROBE_NONE, PROBE_WANTED, PROBE_SENT } probe;
	uint64_t stalls;
	int sweep_waiting, sweep_overdue;	/* scratch for sweep */
	struct upstream *idle;	/* keep-alive pool, most recent first */
	struct {
		int64_t at;
		int ms;
	} samples[SAMPLES_MAX];
	size_t nsamples, sample_pos;
};

enum req_state { REQ_NONE, REQ_BODY, REQ_DONE };
enum resp_state { RESP_NONE, RESP_HEAD, RESP_BODY, RESP_DONE };
enum resp_mode { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE };
enum timer { T_KEEPALIVE, T_HEADER, T_QUEUE, T_BOOT, T_CONNECT, T_FIRSTBYTE,
    T_IDLE };

struct client {
	struct tag tag;
	int fd;				/* -1 once closed; freed after the round */
	struct client *dead_next;
	struct client *prev, *next;	/* every client, for the timer sweep */
	struct client *qprev, *qnext;	/* waiting for a dyno */
	int queued;
	struct buf in, out;
	struct upstream *up;
	struct backend *tried[8];
	int ntries;
	struct buf head;		/* the request head as the dyno gets it */
	/* what the log line needs */
	char method[24], host[256], reqid[201], fwd[256];
	char path[PATH_LOG_MAX];
	char peer[64];
	char dyno[DYNO_NAME_MAX];	/* the last dyno tried, for the log */
	int minor, keepalive, upgrade, is_head, close_after, tunnel;
	enum req_state req;
	int64_t req_left;
	int req_chunked;
	int req_body;		/* it has one: streamed, so never sent twice */
	struct chunked req_ch;
	struct buf body;	/* the body so far, framed for the dyno */
	int buffering;		/* reading its body before taking a slot */
	int body_whole;		/* body holds all of it: may go again */
	int tunnel_slot;	/* counted in its dyno's tunnels */
	enum resp_state resp;
	enum resp_mode resp_mode;
	int64_t resp_left;
	struct chunked resp_ch;
	int status, resp_keepalive, resends;
	int refused;			/* how the last try failed: 0 timed out,
					 * 1 refused, 2 closed with no answer */
	int logged;			/* this request's line is out */
	uint64_t bytes;
	int64_t t_start, t_connect, t_connected, deadline;
	int64_t t_ready;	/* a dyno was there for it: t_start, or when
				 * the one it waited for came up (H12 counts
				 * from here, not through a boot) */
	int64_t stall_at;		/* no byte by then: the dyno may be stuck */
	int64_t t_queued, queue_ms;	/* time spent in our queue */
	enum timer timer;
	int ev;				/* the interest the poller has now */
	int flushq;			/* on the write-at-round-end list */
	struct client *flush_next;
};

struct upstream {
	struct tag tag;
	int fd;			/* -1 once closed; freed after the event round */
	struct upstream *dead_next;
	struct backend *b;
	struct client *c;
	struct upstream *pool_next;
	struct buf out, in;
	int connecting, reused, got_bytes;
	int ev;			/* the interest the poller has now */
	int flushq;		/* on the write-at-round-end list */
	struct upstream *flush_next;
	int64_t idle_since;
};

static struct {
	int64_t connect_ms, service_ms, idle_ms, header_ms, keepalive_ms;
	int64_t quarantine_ms, drain_ms, boot_ms, stall_ms;
	int max_inflight, queue_max, retries, workers;
	const char *proto, *user;
	char listen_port[16];
	size_t body_buffer;
	int max_tunnels;
} opt = {
	5000, 30000, 55000, 10000, 90000,
	5000, 30000, 75000, 1000,
	50, 1000, 3, 1,
	"http", NULL, "8080",
	1 << 20, 10000,
};
/*
 * Request bodies held before dispatch, in all, are at most this many times
 * --body-buffer per worker; past it a body streams as it comes.
 */
#define BODY_TOTAL_FACTOR 64
static size_t body_total;	/* bytes in every client's body buffer */
static int ntunnels;		/* this worker's open tunnels */

static struct poller *poller;
static struct backend *backends[BACKENDS_MAX];
static size_t nbackends;
static struct client *clients;
static size_t nclients;
static struct client *queue_head, *queue_tail;
static size_t queue_len;
static int64_t next_sweep = INT64_MAX;
static struct app app;
static int app_mode, worker_index, listen_fd = -1, draining;
static int64_t drain_deadline;
static const char *fixed_backends;
static char routes_path[4096], counters_path[4096];
static int counters_dirty;
static int queue_kick;		/* a slot came free: drain the queue this round */
/* The web dynos as dyno-run last described them (run/routes' status line). */
static struct web_status web;
static int web_known;		/* a status line was read: no -b, no old dyno-run */
/*
 * The monotonic clock in ms, read once per poll round, not some ten times
 * per request: every timeout is counted in whole ms, and a round takes
 * well under one.
 */
static int64_t loop_ms;
/* The longest a log line waits in stdio's buffer. */
#define LOG_FLUSH_MS 10
static int log_unflushed;	/* stdout holds lines not yet written */
static int64_t log_flushed;	/* when it was last flushed */
static char logbuf[1 << 16];	/* stdout's buffer */
static int64_t counters_written;
static struct tag listen_tag = { K_LISTEN }, signal_tag = { K_SIGNAL },
    watch_tag = { K_WATCH };
static struct http_msg msg;	/* scratch: one parse at a time */
/*
 * Written at the end of the round, after every event of it was read: the
 * requests to the dynos go out together, then the responses to the clients,
 * as haproxy runs its tasks after its I/O.  Each dyno and client is woken
 * once per round, not once per message; every wakeup could preempt us.
 */
static struct upstream *uflush_head, **uflush_tail = &uflush_head;
static struct client *cflush_head, **cflush_tail = &cflush_head;
/* Closed this round: one poll round may still hold events naming them. */
static struct client *dead_clients;
static struct upstream *dead_upstreams;

static void client_close(struct client *c);
static void client_update(struct client *c);
static void upstream_update(struct upstream *u);
static void dispatch(struct client *c);
static void request_finish(struct client *c);
static void client_try_request(struct client *c);
static void body_drop(struct client *c);
static void body_buffer_more(struct client *c);
static int body_buffer_wanted(struct client *c, const struct http_msg *m);
static void upstream_writable(struct upstream *u);
static void client_writable(struct client *c);

static void
upstream_flush_later(struct upstream *u)
{
	if (u->flushq)
		return;
	u->flushq = 1;
	u->flush_next = NULL;
	*uflush_tail = u;
	uflush_tail = &u->flush_next;
}

static void
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

/* ---- small helpers ------------------------------------------------------ */

static int64_t
now_ms(void)
{
	return loop_ms;
}

/*
 * Buffers of IO_CHUNK bytes come and go with every request; a small free
 * list keeps malloc out of the hot path while idle connections still hold
 * no memory at all.
 */
#define SPARE_MAX 256
static char *spare[SPARE_MAX];
static size_t nspare;

static void
buf_free(struct buf *b)
{
	if (b->data != NULL && b->cap == IO_CHUNK && nspare < SPARE_MAX)
		spare[nspare++] = b->data;
	else
		free(b->data);
	memset(b, 0, sizeof(*b));
}

static int
buf_reserve(struct buf *b, size_t room)
{
	char *d;
	size_t cap;

	if (b->data == NULL && room <= IO_CHUNK && nspare > 0) {
		b->data = spare[--nspare];
		b->cap = IO_CHUNK;
		b->off = b->len = 0;
		return 0;
	}
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->cap - b->len >= room)
		return 0;
	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= room)
			return 0;
	}
	cap = b->cap ? b->cap : IO_CHUNK;
	while (cap - b->len < room)
		cap *= 2;
	if ((d = realloc(b->data, cap)) == NULL) {
		b->failed = 1;
		return -1;
	}
	b->data = d;
	b->cap = cap;
	return 0;
}

static size_t
buf_pending(const struct buf *b)
{
	return b->len - b->off;
}

/* Idle connections hold no buffer: that keeps 10,000 of them small. */
static void
buf_release(struct buf *b)
{
	if (buf_pending(b) == 0)
		buf_free(b);
}

static int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static int
buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "Name: value\r\n" by memcpy: header copying is the hot path, not printf's. */
static int
buf_header(struct buf *b, const struct http_header *h)
{
	size_t n = h->name_len + h->value_len + 4;

	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->len, h->name, h->name_len);
	b->len += h->name_len;
	b->data[b->len++] = ':';
	b->data[b->len++] = ' ';
	memcpy(b->data + b->len, h->value, h->value_len);
	b->len += h->value_len;
	b->data[b->len++] = '\r';
	b->data[b->len++] = '\n';
	return 0;
}

static int
buf_put(struct buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return 0;
}

#define buf_lit(b, s) buf_put((b), (s), sizeof(s) - 1)

/*
 * One chunk of our own framing around n data bytes: a hex size line with no
 * extensions, the data, CRLF.  Whatever chunk lines came in are not copied.
 */
static int
buf_chunk(struct buf *b, const char *p, size_t n)
{
	char hex[2 * sizeof(size_t) + 2];
	size_t k = sizeof(hex), v = n;

	hex[--k] = '\n';
	hex[--k] = '\r';
	do
		hex[--k] = "0123456789abcdef"[v & 15];
	while ((v >>= 4) > 0);
	if (buf_reserve(b, sizeof(hex) - k + n + 2) == -1)
		return -1;
	memcpy(b->data + b->len, hex + k, sizeof(hex) - k);
	b->len += sizeof(hex) - k;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len++] = '\r';
	b->data[b->len++] = '\n';
	return 0;
}

/*
 * Re-frame up to n bytes of a chunked body from p into b: only the data
 * spans go, under our chunk lines (or bare, when raw: a 1.0 client reads to
 * the close), and our last chunk when the body ends.  Trailers are parsed
 * and dropped.  The bytes taken, or -1 on a framing error.
 */
static ssize_t
chunked_copy(struct chunked *ch, struct buf *b, const char *p, size_t n,
    int raw)
{
	size_t took = 0;

	while (took < n && !chunked_done(ch)) {
		const char *d;
		size_t dl;
		ssize_t k = chunked_feed(ch, p + took, n - took, &d, &dl);

		if (k < 0)
			return -1;
		took += (size_t)k;
		if (dl > 0 && (raw ? buf_put(b, d, dl) : buf_chunk(b, d, dl)) == -1)
			return -1;
		if (chunked_done(ch) && !raw && buf_lit(b, "0\r\n\r\n") == -1)
			return -1;
	}
	return (ssize_t)took;
}

/* "Name: earlier, ours\r\n": an appended forwarding header, no printf. */
static void
buf_forward(struct buf *b, const char *name, const char *old, size_t oldlen,
    const char *ours)
{
	buf_put(b, name, strlen(name));
	buf_lit(b, ": ");
	if (old != NULL) {
		buf_put(b, old, oldlen);
		buf_lit(b, ", ");
	}
	buf_put(b, ours, strlen(ours));
	buf_lit(b, "\r\n");
}

static int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (buf_reserve(b, 512) == -1)
		return -1;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < b->cap - b->len)
			break;
		if (buf_reserve(b, (size_t)n + 1) == -1)
			return -1;
	}
	b->len += (size_t)n;
	return 0;
}

/* The queue of requests waiting for a dyno with room: FIFO, O(1) removal. */
static void
queue_push(struct client *c)
{
	c->qnext = NULL;
	c->qprev = queue_tail;
	if (queue_tail)
		queue_tail->qnext = c;
	else
		queue_head = c;
	queue_tail = c;
	queue_len++;
	c->queued = 1;
	c->t_queued = now_ms();
}

static void
queue_remove(struct client *c)
{
	if (!c->queued)
		return;
	if (c->qprev)
		c->qprev->qnext = c->qnext;
	else
		queue_head = c->qnext;
	if (c->qnext)
		c->qnext->qprev = c->qprev;
	else
		queue_tail = c->qprev;
	c->qprev = c->qnext = NULL;
	queue_len--;
	c->queued = 0;
	c->queue_ms += now_ms() - c->t_queued;
}

static void
set_deadline(struct client *c, enum timer t, int64_t at)
{
	c->timer = t;
	c->deadline = at;
	if (at < next_sweep)
		next_sweep = at;
}

static int resendable(const struct client *c);

/* The request went out to a dyno: a byte is due within --stall-timeout. */
static void
stall_arm(struct client *c)
{
	struct backend *b = c->up != NULL ? c->up->b : NULL;

	if (b != NULL && b->probe == PROBE_WANTED && resendable(c))
		b->probe = PROBE_SENT;
	c->stall_at = now_ms() + opt.stall_ms;
	if (c->stall_at < next_sweep)
		next_sweep = c->stall_at;
}

static void
copy_field(char *dst, size_t dstlen, const char *src, size_t len)
{
	if (len >= dstlen)
		len = dstlen - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* ---- logging and counters ------------------------------------------------ */

/* Text that stops growing at its capacity, as snprintf truncates. */
struct text {
	char *p;
	size_t len, cap;
};

static void
text_put(struct text *t, const char *s, size_t n)
{
	if (n > t->cap - t->len)
		n = t->cap - t->len;
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

#define text_lit(t, s) text_put((t), (s), sizeof(s) - 1)

static void
text_str(struct text *t, const char *s)
{
	text_put(t, s, strlen(s));
}

static void
text_num(struct text *t, long long v)
{
	char d[24], *p = d + sizeof(d);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		*--p = '-';
	text_put(t, p, (size_t)(d + sizeof(d) - p));
}

static void
text_unum(struct text *t, unsigned long long u)
{
	char d[24], *p = d + sizeof(d);

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	text_put(t, p, (size_t)(d + sizeof(d) - p));
}

/*
 * What a quoted path may take of the line: with 256 each for host and fwd,
 * a 200-byte id, a 64-byte dyno name and the rest at their longest, the
 * line stays under log_event's 2047 bytes with room to spare.
 */
#define LOG_PATH_BUDGET 900

/* A byte that goes into a quoted log value as it is. */
#define LOG_PLAIN(ch) ((unsigned char)((ch) - 0x20) < 0x5f && (ch) != '"' && \
	(ch) != '\\')

/*
 * A client's text as one quoted logfmt value, at most max bytes between the
 * quotes: '"' and '\\' escaped by a backslash, any other byte outside
 * printable ASCII as \xNN, and an escape never cut.  Runs of plain bytes
 * go by memcpy.
 */
static void
text_quoted(struct text *t, const char *s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t used = 0, run;

	text_lit(t, "\"");
	for (;;) {
		for (run = 0; s[run] != '\0' && LOG_PLAIN(s[run]); run++)
			;
		if (run > max - used)
			run = max - used;
		text_put(t, s, run);
		used += run;
		s += run;
		if (*s == '\0' || used == max)
			break;
		if (*s == '"' || *s == '\\') {
			char e[2] = { '\\', *s };
			if (max - used < 2)
				break;
			text_put(t, e, 2);
			used += 2;
		} else {
			unsigned char ch = (unsigned char)*s;
			char e[4] = { '\\', 'x', hex[ch >> 4], hex[ch & 15] };
			if (max - used < 4)
				break;
			text_put(t, e, 4);
			used += 4;
		}
		s++;
	}
	text_lit(t, "\"");
}

/*
 * One logfmt line per request, as Heroku's router writes it: the line
 * log_event would make (its 2047-byte cap on the text included), built by
 * memcpy and written with one fwrite; printf was a quarter of the router's
 * instructions.
 */
static void
log_request(struct client *c, const char *code, const char *desc)
{
	char line[64 + 2048];
	struct text t = { line, 0, 64 };
	int64_t now = now_ms();
	long connect = c->t_connected && c->t_connect ?
	    (long)(c->t_connected - c->t_connect) : 0;
	long service = c->t_connected ? (long)(now - c->t_connected) : 0;
	int64_t queue = c->queue_ms + (c->queued ? now - c->t_queued : 0);
	size_t start;

	c->logged = 1;
	t.len = log_timestamp(line, t.cap);
	text_lit(&t, " heroku[router]: ");
	start = t.len;
	t.cap = start + 2047;		/* log_event's text[2048] */
	if (code != NULL) {
		text_lit(&t, "at=error code=");
		text_str(&t, code);
		text_lit(&t, " desc=\"");
		text_str(&t, desc);
		text_lit(&t, "\" ");
	} else
		text_lit(&t, "at=info ");
	text_lit(&t, "method=");
	text_str(&t, c->method[0] ? c->method : "-");
	/*
	 * What the client wrote is data: quoted and escaped, each within a
	 * budget, so that the line keeps one of each field under the cap.
	 * The request id needs no quotes: request_build keeps only ids of
	 * [A-Za-z0-9+/=-].
	 */
	text_lit(&t, " path=");
	text_quoted(&t, c->path, LOG_PATH_BUDGET);
	text_lit(&t, " host=");
	text_quoted(&t, c->host[0] ? c->host : "-", 256);
	text_lit(&t, " request_id=");
	text_str(&t, c->reqid[0] ? c->reqid : "-");
	text_lit(&t, " fwd=");
	text_quoted(&t, c->fwd[0] ? c->fwd : c->peer, 256);
	text_lit(&t, " dyno=");
	text_str(&t, c->dyno[0] ? c->dyno : "-");
	text_lit(&t, " connect=");
	text_num(&t, connect);
	text_lit(&t, "ms service=");
	text_num(&t, service);
	text_lit(&t, "ms status=");
	text_num(&t, c->status);
	text_lit(&t, " bytes=");
	text_unum(&t, (unsigned long long)c->bytes);
	text_lit(&t, " protocol=");
	text_str(&t, opt.proto);
	/* Ours: what the client waited in all, queue and retries included. */
	text_lit(&t, " queue=");
	text_num(&t, (long long)queue);
	text_lit(&t, "ms tries=");
	text_num(&t, c->ntries);
	text_lit(&t, " total=");
	text_num(&t, c->t_start ? (long long)(now - c->t_start) : 0);
	text_lit(&t, "ms");
	t.cap++;
	text_lit(&t, "\n");
	fwrite(line, 1, t.len, stdout);
	log_unflushed = 1;
}

static void
backend_sample(struct backend *b, int ms)
{
	b->samples[b->sample_pos].at = now_ms();
	b->samples[b->sample_pos].ms = ms;
	b->sample_pos = (b->sample_pos + 1) % SAMPLES_MAX;
	if (b->nsamples < SAMPLES_MAX)
		b->nsamples++;
	counters_dirty = 1;
}

static int
cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int counters_failing;

/* run/router: one line per dyno, rewritten at most once a second, never idle. */
static void
counters_write(int64_t now)
{
	static int v[SAMPLES_MAX];
	struct buf b = { 0 };
	size_t i, k, n;

	if (!app_mode || !counters_dirty || now - counters_written < 1000)
		return;
	buf_printf(&b, "updated=%lld\n", (long long)time(NULL));
	for (i = 0; i < nbackends; i++) {
		struct backend *be = backends[i];
		int p50 = 0, p95 = 0, p99 = 0;

		for (k = 0, n = 0; k < be->nsamples; k++)
			if (now - be->samples[k].at <= 60000)
				v[n++] = be->samples[k].ms;
		if (n > 0) {
			qsort(v, n, sizeof(v[0]), cmp_int);
			p50 = v[(n - 1) * 50 / 100];
			p95 = v[(n - 1) * 95 / 100];
			p99 = v[(n - 1) * 99 / 100];
		}
		buf_printf(&b, "dyno=%s addr=%s inflight=%d total=%llu errors=%llu "
		    "requests_1m=%zu p50_ms=%d p95_ms=%d p99_ms=%d gone=%d "
		    "stalled=%llu stuck=%d\n",
		    be->name, be->addrtext, be->inflight,
		    (unsigned long long)be->total, (unsigned long long)be->errors,
		    n, p50, p95, p99, be->gone, (unsigned long long)be->stalls,
		    be->stalled);
	}
	buf_printf(&b, "queue=%zu clients=%zu\n", queue_len, nclients);
	/* Said once, and again once it works (not every second). */
	if (atomicfile_write(counters_path, b.data, b.len, 0644, 0) == -1) {
		if (!counters_failing)
			fprintf(stderr, "dyno-route: cannot write run/%s: %s "
			    "(said once)\n", counters_path, strerror(errno));
		counters_failing = 1;
	} else if (counters_failing) {
		fprintf(stderr, "dyno-route: run/%s written again\n",
		    counters_path);
		counters_failing = 0;
	}
	free(b.data);
	counters_written = now;
	counters_dirty = 0;
}

/* ---- backends ------------------------------------------------------------ */

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

static void
upstream_free(struct upstream *u)
{
	if (u->fd < 0)
		return;
	poller_del(poller, u->fd);
	close(u->fd);
	u->fd = -1;
	u->c = NULL;
	u->dead_next = dead_upstreams;
	dead_upstreams = u;
}

static void
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

static void
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
	struct backend *b = backends[i];
	struct client *c;
	int k;

	/* Clients keep pointers to dynos they tried only to compare them. */
	if (!b->gone || b->inflight > 0 || b->tunnels > 0)
		return;
	/* A dyno added later may get this address: a request waiting for one
	 * to boot must not take it for the one it tried. */
	for (c = clients; c != NULL; c = c->next)
		for (k = 0; k < c->ntries; k++)
			if (c->tried[k] == b)
				c->tried[k] = NULL;
	backend_drop_pool(b);
	free(b);
	memmove(&backends[i], &backends[i + 1],
	    (nbackends - i - 1) * sizeof(backends[0]));
	nbackends--;
}

/* Merge a new list of "NAME HOST:PORT" in: keep counters, mark the missing gone. */
static void
backends_load(const char *text, int from_routes)
{
	size_t i;
	const char *p = text;

	/*
	 * gone: 0 listed, 1 left the routes (kept while requests finish);
	 * during the load 2 (was listed) or 3 (was not) until seen again.
	 */
	for (i = 0; i < nbackends; i++)
		backends[i]->gone = backends[i]->gone ? 3 : 2;
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
			if (web_status_parse(start, len, &web) == 0)
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
		for (i = 0; i < nbackends; i++)
			if (strcmp(backends[i]->name, name) == 0 &&
			    strcmp(backends[i]->addrtext, addr) == 0)
				b = backends[i];
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
			log_unflushed = 1;
			continue;
		}
		if (nbackends >= BACKENDS_MAX || (b = calloc(1, sizeof(*b))) == NULL)
			break;
		snprintf(b->name, sizeof(b->name), "%s", name);
		snprintf(b->addrtext, sizeof(b->addrtext), "%s", addr);
		b->addr = ss;
		b->addrlen = sslen;
		backends[nbackends++] = b;
	}
	if (web_known == -1)
		web_known = 0;
	for (i = nbackends; i-- > 0;) {
		if (backends[i]->gone == 3)
			backends[i]->gone = 1;
		if (backends[i]->gone == 2) {
			backends[i]->gone = 1;
			/* Idle keep-alive connections to a dyno that left the
			 * routes would be the next request's trap: close them. */
			backend_drop_pool(backends[i]);
			backend_free_if_done(i);
		}
	}
	counters_dirty = 1;
	/* A dyno came, or the status changed: waiting requests may go now,
	 * or learn that none will come. */
	queue_kick = 1;		/* after this round */
}

static void
routes_reload(void)
{
	char *text;
	size_t len;

	if (!app_mode)
		return;
	if (file_read_alloc(routes_path, &text, &len, 1 << 20) == -1) {
		backends_load("", 1);	/* no routes file: no routable dyno */
		return;
	}
	backends_load(text, 1);
	free(text);
}

/* A request on b ended; a dyno gone from the routes goes when idle. */
static void
backend_done(struct backend *b)
{
	size_t i;

	b->inflight--;
	counters_dirty = 1;
	queue_kick = 1;
	if (!b->gone || b->inflight > 0 || b->tunnels > 0)
		return;
	for (i = 0; i < nbackends; i++)
		if (backends[i] == b) {
			backend_free_if_done(i);
			return;
		}
}

static int
idempotent(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
	    strcmp(method, "OPTIONS") == 0;
}

/* It may go to another dyno if this one never answers (RFC 9110 9.2.2). */
static int
resendable(const struct client *c)
{
	return !c->req_body && idempotent(c->method);
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
static void
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
	log_unflushed = 1;
	counters_dirty = 1;
	queue_kick = 1;
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
static struct backend *
backend_pick(struct client *c, int *full, int *none)
{
	struct backend *cand[BACKENDS_MAX];
	size_t n = 0, i;
	int64_t now = now_ms();
	struct backend *a, *b;

	*full = *none = 0;
	for (i = 0; i < nbackends; i++)
		if (backend_usable(backends[i], c, now))
			cand[n++] = backends[i];
	if (n == 0) {
		*none = 1;
		return NULL;
	}
	/* Drop the full ones so the two choices are among those with room. */
	for (i = 0; i < n;) {
		if (cand[i]->inflight >= opt.max_inflight ||
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

/* ---- errors ---------------------------------------------------------------- */

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

/*
 * A tunnel holds no request slot on its dyno (so WebSockets cannot starve
 * the app), only a tunnel count: give its slot back for backend_done.
 */
static void
tunnel_end(struct client *c, struct backend *b)
{
	if (!c->tunnel_slot || b == NULL)
		return;
	c->tunnel_slot = 0;
	b->tunnels--;
	b->inflight++;
	ntunnels--;
}

static void
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
static void
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
static size_t
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
static int
client_oom_seen(const struct client *c)
{
	return c->in.failed || c->out.failed || c->head.failed ||
	    c->body.failed || (c->up != NULL && (c->up->out.failed ||
	    c->up->in.failed));
}

/* Answer with an error page unless the response has begun, then close. */
static void
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
	c->close_after = 1;
	c->req = REQ_DONE;
	c->tunnel = 0;
	c->resp = RESP_DONE;
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
	set_deadline(c, T_IDLE, now_ms() + opt.idle_ms);
	client_update(c);
}

/* ---- clients ----------------------------------------------------------------- */

static void
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
	poller_set(poller, c->fd, ev, c);
}

static void
client_close(struct client *c)
{
	if (c->fd < 0)
		return;
	upstream_discard(c);
	queue_remove(c);
	body_drop(c);
	poller_del(poller, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nclients--;
	c->dead_next = dead_clients;
	dead_clients = c;
}

/*
 * Out of file descriptors or memory: the connection stays queued and the
 * listener readable, so the loop would spin on it.  Stop polling it for
 * ACCEPT_PAUSE_MS, as nginx does, and try again then (event_loop).
 */
#define ACCEPT_PAUSE_MS 500
static int64_t accept_resume_at;	/* 0: accepting */

static void
accept_pause(int err)
{
	if (accept_resume_at == 0) {
		poller_del(poller, listen_fd);
		log_event(stdout, "heroku", "router", "at=error code=H99 "
		    "desc=\"cannot accept: %s, paused for %dms\"",
		    strerror(err), ACCEPT_PAUSE_MS);
		log_unflushed = 1;
	}
	accept_resume_at = now_ms() + ACCEPT_PAUSE_MS;
}

/* No memory for the client: a static answer, and the connection closes. */
static void
client_refuse(int fd)
{
	oom_answer(fd);
	close(fd);
	log_event(stdout, "heroku", "router", "at=error code=H99 "
	    "desc=\"Platform error\" status=503 cause=\"out of memory\"");
	log_unflushed = 1;
}

/*
 * Up to max connections from the listen queue (-1: until it is empty).
 */
static void
client_accept(int max)
{
	for (int k = 0; max < 0 || k < max; k++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct client *c;
		int fd, one = 1;

		fd = accept4(listen_fd, (struct sockaddr *)&ss, &len,
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
		if (poller_set(poller, fd, POLLER_IN, c) == -1) {
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
		c->next = clients;
		if (clients)
			clients->prev = c;
		clients = c;
		nclients++;
		/* Slowloris: the first request's head must arrive in time too. */
		set_deadline(c, T_HEADER, now_ms() + opt.header_ms);
		c->t_start = now_ms();
		client_update(c);
	}
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

/* Build the head the dyno gets: our view of the request, never the raw bytes. */
static int
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
			char num[24], *q = num + sizeof(num);
			unsigned long long v = (unsigned long long)m->content_length;
			do
				*--q = (char)('0' + v % 10);
			while ((v /= 10) > 0);
			buf_lit(&b, "Content-Length: ");
			buf_put(&b, q, (size_t)(num + sizeof(num) - q));
			buf_lit(&b, "\r\n");
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
	buf_forward(&b, "X-Forwarded-Proto", xfp, xfplen, opt.proto);
	buf_forward(&b, "X-Forwarded-Port", xfport, xfportlen, opt.listen_port);
	clock_gettime(CLOCK_REALTIME, &now);	/* wall clock: the dyno compares */
	{
		char ms[24], *p = ms + sizeof(ms);
		unsigned long long v = (unsigned long long)now.tv_sec * 1000 +
		    (unsigned long long)(now.tv_nsec / 1000000);
		do
			*--p = (char)('0' + v % 10);
		while ((v /= 10) > 0);
		buf_lit(&b, "X-Request-Start: ");
		buf_put(&b, p, (size_t)(ms + sizeof(ms) - p));
		buf_lit(&b, "\r\n");
	}
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
	c->resp = RESP_NONE;
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
	c->req = (c->req_chunked || c->req_left > 0) ? REQ_BODY : REQ_DONE;
	set_deadline(c, T_QUEUE, c->t_start + opt.service_ms);
	if (c->upgrade && ntunnels >= opt.max_tunnels) {
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
				c->req = REQ_DONE;
		} else {
			if ((int64_t)take > c->req_left)
				take = (size_t)c->req_left;
			c->req_left -= (int64_t)take;
			if (c->req_left == 0)
				c->req = REQ_DONE;
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
static int
request_pump(struct client *c)
{
	struct upstream *u = c->up;

	if (u == NULL || c->req != REQ_BODY || u->connecting)
		return 0;
	return request_copy(c, &u->out, IO_CHUNK);
}

/* The body buffer goes, and its bytes leave the worker's total. */
static void
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
static void
body_buffer_more(struct client *c)
{
	size_t before = c->body.len;
	int r = request_copy(c, &c->body, opt.body_buffer);

	body_total += c->body.len - before;
	if (r == -1) {
		client_error(c, 400, "H26", "Request Error");
		return;
	}
	if (c->req == REQ_DONE || buf_pending(&c->body) >= opt.body_buffer) {
		c->buffering = 0;
		c->body_whole = c->req == REQ_DONE;
		/* The service timeout counts from here: the client was slow. */
		set_deadline(c, T_QUEUE, now_ms() + opt.service_ms);
		dispatch(c);
		return;
	}
	set_deadline(c, T_IDLE, now_ms() + opt.idle_ms);
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
	size_t i, want = opt.body_buffer;

	if (opt.body_buffer == 0 || c->req != REQ_BODY || c->upgrade)
		return 0;
	if (!c->req_chunked && (uint64_t)c->req_left < want)
		want = (size_t)c->req_left;
	if (body_total + want > opt.body_buffer * BODY_TOTAL_FACTOR)
		return 0;
	for (i = 0; i < m->nheaders; i++)
		if (NAME_IS(&m->headers[i], "expect"))
			return 0;
	return 1;
}

static void
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
		    (draining ? DRAIN_IDLE_MS : opt.keepalive_ms));
		client_update(c);
		return;
	}
	/* A new request began to arrive, after an idle spell or pipelined
	 * behind the last one: its head has header_ms from now, and if it
	 * fails, its log line names none of the last request's values. */
	if (c->timer != T_HEADER) {
		set_deadline(c, T_HEADER, now_ms() + opt.header_ms);
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

static void
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
		set_deadline(c, T_IDLE, now_ms() + opt.idle_ms);
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
		    now_ms() + opt.idle_ms : c->deadline);
		upstream_update(c->up);
	}
	client_update(c);
}

static void
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

/* ---- upstreams --------------------------------------------------------------- */

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
	poller_set(poller, u->fd, ev, u);
}

static struct upstream *
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
static void
connect_failed(struct client *c, int refused)
{
	struct backend *b = c->up ? c->up->b : NULL;

	if (b != NULL) {
		b->quarantined_until = now_ms() + opt.quarantine_ms;
		b->errors++;
		log_event(stdout, "heroku", "router",
		    "at=warning desc=\"%s %s, quarantined for %lldms\" dyno=%s",
		    refused ? "connection refused by" : "cannot connect to",
		    b->addrtext, (long long)opt.quarantine_ms, b->name);
		log_unflushed = 1;
	}
	c->refused = refused;
	upstream_discard(c);
	if (c->ntries >= opt.retries) {
		if (refused)
			client_error(c, 503, "H21", "Backend connection refused");
		else
			client_error(c, 503, "H19", "Backend connection timeout");
		return;
	}
	dispatch(c);
}

static void
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
		set_deadline(c, T_FIRSTBYTE, c->t_ready + opt.service_ms);
		stall_arm(c);
	} else
		set_deadline(c, T_CONNECT, now_ms() + opt.connect_ms);
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

	if (!web_known || web.want == 0 ||
	    c->ntries >= (int)(sizeof(c->tried) / sizeof(c->tried[0])))
		return 0;
	if (web.starting > 0 ||
	    (web.crashed > 0 && web.restart <= c->t_start + opt.boot_ms))
		return 1;
	for (i = 0; i < nbackends; i++) {
		if (backends[i]->gone)
			continue;
		for (k = 0; k < c->ntries && c->tried[k] != backends[i]; k++)
			;
		if (k == c->ntries)
			return 1;
	}
	return 0;
}

/* Requests waiting for a boot look again when a dyno's quarantine ends. */
static void
quarantine_wake(int64_t now)
{
	size_t i;

	for (i = 0; i < nbackends; i++) {
		struct backend *b = backends[i];
		if (b->gone || b->quarantined_until == 0)
			continue;
		if (b->quarantined_until <= now) {
			b->quarantined_until = 0;
			queue_kick = 1;
		} else if (queue_head != NULL && b->quarantined_until < next_sweep)
			next_sweep = b->quarantined_until;
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
		set_deadline(c, T_BOOT, c->t_start + opt.boot_ms);
	else if (!boot && c->timer == T_BOOT) {
		c->t_ready = now_ms();
		set_deadline(c, T_QUEUE, c->t_ready + opt.service_ms);
	}
	queue_push(c);
	counters_dirty = 1;	/* run/router's queue= shows who waits */
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
	else if (web_known && web.want > 0 && web.crashed > 0)
		client_error(c, 503, "H10", "App crashed");
	else
		client_error(c, 503, "H14", "No web dynos running");
}

static void
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

			if ((full || boot) && queue_len < (size_t)opt.queue_max)
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
		counters_dirty = 1;
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
		b->quarantined_until = now_ms() + opt.quarantine_ms;
		b->errors++;
		backend_done(b);
		c->refused = refused;
		if (c->ntries >= opt.retries) {
			client_error(c, 503, refused ? "H21" : "H19", refused ?
			    "Backend connection refused" :
			    "Backend connection timeout");
			return;
		}
	}
}

/* A dyno has room again, or came up: the oldest waiting request goes first. */
static void
queue_drain(void)
{
	while (queue_head != NULL) {
		struct client *c = queue_head;
		int full, none;
		struct backend *b = backend_pick(c, &full, &none);

		if (b == NULL && (full || web_coming(c)))
			return;
		queue_remove(c);
		dispatch(c);
	}
}

static void
upstream_pool(struct upstream *u)
{
	struct backend *b = u->b;

	u->c = NULL;
	if (b->gone || draining) {
		upstream_free(u);
		backend_done(b);
		return;
	}
	b->inflight--;
	counters_dirty = 1;
	buf_release(&u->out);
	u->in.off = u->in.len = 0;
	buf_release(&u->in);
	u->idle_since = now_ms();
	u->pool_next = b->idle;
	b->idle = u;
	upstream_update(u);
}

/* The response went out whole: log, recycle, and look at the next request. */
static void
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
	c->req = REQ_NONE;
	c->resp = RESP_NONE;
	buf_free(&c->head);
	body_drop(c);
	queue_drain();
	client_try_request(c);	/* a pipelined request may be waiting */
}

/* The response head arrived: check it and pass our version of it on. */
static int
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
		c->tunnel = 1;
		if (u->b != NULL) {
			/* Out of --max-inflight, into --max-tunnels. */
			c->tunnel_slot = 1;
			u->b->tunnels++;
			u->b->inflight--;
			ntunnels++;
			counters_dirty = 1;
			queue_kick = 1;
		}
		c->resp = RESP_BODY;
		c->resp_mode = BODY_CLOSE;
		/* Bytes after the head already belong to the tunnel. */
		buf_append(o, u->in.data + u->in.off, buf_pending(&u->in));
		u->in.off = u->in.len;
		/* And so does whatever the client sent after its request. */
		if (buf_pending(&c->in) > 0) {
			buf_append(&u->out, c->in.data + c->in.off,
			    buf_pending(&c->in));
			c->in.off = c->in.len;
		}
		c->req = REQ_DONE;
		c->close_after = 1;
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
	if (draining)
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
	c->resp = c->resp_mode == BODY_NONE ? RESP_DONE : RESP_BODY;
	return 1;
}

/* Pass body bytes of the response on, stopping exactly at its end. */
static int
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
			c->resp = RESP_DONE;
	} else {
		if (c->resp_mode == BODY_LENGTH) {
			if ((int64_t)take > c->resp_left)
				take = (size_t)c->resp_left;
			c->resp_left -= (int64_t)take;
			if (c->resp_left == 0)
				c->resp = RESP_DONE;
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
static void
upstream_eof(struct client *c, struct upstream *u, int err)
{
	if (c->tunnel) {
		log_request(c, NULL, NULL);
		c->resp = RESP_DONE;
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
		c->resp = RESP_DONE;
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
	    c->req == REQ_DONE && c->resends < opt.retries &&
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
			b->quarantined_until = now_ms() + opt.quarantine_ms;
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

static void
upstream_readable(struct upstream *u)
{
	struct client *c = u->c;
	size_t mark;
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
		c->resp = RESP_HEAD;
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
				c->resp = RESP_HEAD;
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
					c->resp = RESP_HEAD;
					client_error(c, 502, "H17",
					    "Poorly formatted HTTP response");
					return;
				}
			}
			u->in.off = u->in.len;
			break;
		}
		set_deadline(c, T_IDLE, now_ms() + opt.idle_ms);
		if (c->resp != RESP_DONE && c->resp != RESP_BODY && !c->tunnel &&
		    c->resp == RESP_HEAD) {
			set_deadline(c, T_FIRSTBYTE, c->t_ready + opt.service_ms);
		}
		/* Written at the round's end: usually it all goes, and no
		 * interest changes. */
		if (buf_pending(&c->out) > 0)
			client_flush_later(c);
		else {
			client_update(c);
			upstream_update(u);
		}
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
	set_deadline(c, T_IDLE, now_ms() + opt.idle_ms);
	client_flush_later(c);	/* it updates both sides' interest */
}

static void
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
		set_deadline(c, T_FIRSTBYTE, c->t_ready + opt.service_ms);
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
			    c->tunnel ? now_ms() + opt.idle_ms : c->deadline);
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

/* ---- timers ---------------------------------------------------------------- */

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

	for (i = 0; i < nbackends; i++) {
		struct backend *b = backends[i];

		if (b->sweep_overdue == 0 || now - b->last_byte < opt.stall_ms)
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
			counters_dirty = 1;
			log_event(stdout, "heroku", "router", "at=warning "
			    "desc=\"no response byte for %lldms with %d requests "
			    "waiting: stalled\" dyno=%s",
			    (long long)opt.stall_ms, b->sweep_waiting, b->name);
			log_unflushed = 1;
		}
		b->stall_until = now + 5 * opt.stall_ms;
		found = 1;
	}
	return found;
}

/* Send the requests a stuck dyno holds elsewhere, those that may go. */
static void
stall_resend(int64_t now)
{
	struct client *c, *next;

	for (c = clients; c != NULL; c = next) {
		struct upstream *u = c->up;
		int full, none;

		next = c->next;
		if (u == NULL || u->b == NULL || !u->b->stalled ||
		    u->b->stall_until <= now || u->got_bytes ||
		    c->resp != RESP_NONE || c->tunnel || c->req != REQ_DONE ||
		    !resendable(c) || c->resends >= opt.retries)
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

	next_sweep = INT64_MAX;
	for (i = 0; i < nbackends; i++)
		backends[i]->sweep_waiting = backends[i]->sweep_overdue = 0;
	for (c = clients; c != NULL; c = next) {
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
	for (i = 0; i < nbackends; i++) {
		struct upstream **pp = &backends[i]->idle;
		while (*pp != NULL) {
			struct upstream *u = *pp;
			if (now - u->idle_since >= opt.idle_ms) {
				*pp = u->pool_next;
				upstream_free(u);
				continue;
			}
			if (u->idle_since + opt.idle_ms < min)
				min = u->idle_since + opt.idle_ms;
			pp = &u->pool_next;
		}
	}
	if (min < next_sweep)
		next_sweep = min;
	quarantine_wake(now);
}

/* ---- the loop ---------------------------------------------------------------- */

static void
drain_begin(void)
{
	struct client *c, *next;

	if (draining)
		return;
	draining = 1;
	drain_deadline = now_ms() + opt.drain_ms;
	/*
	 * Idle between requests: closed after DRAIN_IDLE_MS, not at once, so
	 * that a client's next request, maybe already on its way, is answered
	 * (with Connection: close) instead of lost with the connection.  A
	 * new connection, whose first request may be unread, is served.
	 */
	for (c = clients; c != NULL; c = next) {
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
	if (listen_fd >= 0) {
		client_accept(-1);
		poller_del(poller, listen_fd);
		close(listen_fd);
		listen_fd = -1;
	}
}

static int
event_loop(int sigfd)
{
	struct poller_event ev[256];
	int watchfd = -1;

	poller_set(poller, listen_fd, POLLER_IN, &listen_tag);
	poller_set(poller, sigfd, POLLER_IN, &signal_tag);
	if (app_mode) {
		if ((watchfd = watch_open(".")) >= 0)	/* run/ */
			poller_set(poller, watchfd, POLLER_IN, &watch_tag);
	}
	for (;;) {
		int64_t now = loop_ms = clock_ms(), wake = next_sweep;
		int n, i, timeout;

		if (app_mode && counters_dirty && counters_written + 1000 < wake)
			wake = counters_written + 1000;
		if (draining && drain_deadline < wake)
			wake = drain_deadline;
		if (accept_resume_at && accept_resume_at < wake)
			wake = accept_resume_at;
		/*
		 * The log is written when stdio's 64 KiB buffer fills or
		 * LOG_FLUSH_MS after the last write, not once per round: a
		 * write(2) to a file per round of a few events cost the loop
		 * more than the lines did.
		 */
		if (log_unflushed && now - log_flushed >= LOG_FLUSH_MS) {
			fflush(stdout);
			log_unflushed = 0;
			log_flushed = now;
		}
		if (log_unflushed && log_flushed + LOG_FLUSH_MS < wake)
			wake = log_flushed + LOG_FLUSH_MS;
		timeout = wake == INT64_MAX ? -1 : wake <= now ? 0 :
		    (wake - now > INT_MAX ? INT_MAX : (int)(wake - now));
		n = poller_wait(poller, ev, 256, timeout);
		if (n == -1 && errno != EINTR)
			return 1;
		loop_ms = clock_ms();
		for (i = 0; i < n; i++) {
			struct tag *t = ev[i].data;

			switch (t->kind) {
			case K_LISTEN:
				if (listen_fd >= 0)
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
		now = loop_ms = clock_ms();
		if (accept_resume_at && now >= accept_resume_at) {
			accept_resume_at = 0;
			if (listen_fd >= 0)
				poller_set(poller, listen_fd, POLLER_IN,
				    &listen_tag);
		}
		if (now >= next_sweep)
			sweep(now);
		/* Not from backend_done itself: it runs inside dispatch. */
		while (queue_kick) {
			queue_kick = 0;
			queue_drain();
			flush_round();
		}
		flush_round();
		graveyard_empty();
		counters_write(now);
		if (draining && (clients == NULL || now >= drain_deadline))
			return 0;
	}
}

/* ---- startup ------------------------------------------------------------------ */

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: dyno-route [-a APP | -b HOST:PORT,...] [-l [ADDR:]PORT] "
	    "[-u USER] [-w N] [options]\n");
}

static void
help(void)
{
	usage(stdout);
	printf(
"\nRoute HTTP to the least loaded of the app's web dynos.\n\n"
"  -a, --app DIR              route to APP/.dyno/run/routes (default $DYNO_APP)\n"
"  -b, --backends LIST        fixed HOST:PORT,... instead of an app\n"
"  -l, --listen [ADDR:]PORT   where to listen (default 0.0.0.0:8080)\n"
"  -u, --user USER            drop to USER after binding (when root)\n"
"  -w, --workers N            worker processes sharing the socket (1)\n"
"      --max-inflight N       requests in flight per dyno (50)\n"
"      --max-tunnels N        open upgraded connections per worker (10000)\n"
"      --body-buffer SIZE     read a request body up to SIZE before it takes\n"
"                             a dyno slot; bytes, K or M (1M); 0: stream\n"
"      --queue N              requests waiting for a dyno before H11 (1000)\n"
"      --boot-timeout DUR     wait this long for a booting dyno, H20 (75s)\n"
"      --retries N            connect attempts on different dynos (3)\n"
"      --quarantine DUR       rest a refusing dyno this long (5s)\n"
"      --connect-timeout DUR  (5s)\n"
"      --service-timeout DUR  to the first response byte, H12 (30s)\n"
"      --stall-timeout DUR    no byte from a dyno holding requests: stuck (1s)\n"
"      --idle-timeout DUR     no bytes either way, H15 (55s)\n"
"      --header-timeout DUR   a whole request head, 408 (10s)\n"
"      --keepalive-timeout DUR  idle client connection (90s)\n"
"      --drain-timeout DUR    on SIGTERM, finish requests in flight (30s)\n"
"      --proto PROTO          X-Forwarded-Proto value (http)\n"
"  -h, --help                 this help\n\n"
"Durations take ms, s, m or h (default s).  SIGHUP rereads the routes;\n"
"SIGTERM stops accepting and finishes what is in flight.\n");
}

static int
listen_on(const char *spec)
{
	char host[128] = "0.0.0.0", port[16];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints, *res;
	int fd, one = 1;
	long p;

	if (colon != NULL) {
		size_t hl = (size_t)(colon - spec);
		if (hl == 0 || hl >= sizeof(host))
			return -1;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		if (host[0] == '[' && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		spec = colon + 1;
	}
	if (parse_long(spec, 1, 65535, &p) == -1)
		return -1;
	snprintf(port, sizeof(port), "%ld", p);
	snprintf(opt.listen_port, sizeof(opt.listen_port), "%ld", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		freeaddrinfo(res);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A second router may bind the address while this one drains: an
	 * upgrade in place, as haproxy -sf and nginx's binary upgrade. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 4096) == -1) {
		int saved = errno;
		close(fd);
		freeaddrinfo(res);
		errno = saved;
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

/*
 * A listening socket handed over by systemd (a .socket unit) or another
 * activator: sd_listen_fds(3) without libsystemd.  The socket then outlives
 * us, so a restart refuses no connection: they wait in its queue.  Returns
 * the fd, or -1 with errno ENOENT when none was passed to this process,
 * another errno when what was passed is not one listening TCP socket.
 */
static int
listen_inherited(void)
{
	const char *pidtext = getenv("LISTEN_PID"), *fdstext = getenv("LISTEN_FDS");
	long pid, n;
	int fd = 3, v, type = 0, proto = 0, listening = 0;
	socklen_t len = sizeof(v);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	if (pidtext == NULL || fdstext == NULL ||
	    parse_long(pidtext, 1, INT_MAX, &pid) == -1 || pid != (long)getpid()) {
		errno = ENOENT;
		return -1;
	}
	/* Not for our children, should we ever have any. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (parse_long(fdstext, 1, 1, &n) == -1) {
		errno = EINVAL;	/* one address: one socket */
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1 ||
	    (len = sizeof(v), getsockopt(fd, SOL_SOCKET, SO_TYPE, &type,
	    &len)) == -1 || (len = sizeof(v), getsockopt(fd, SOL_SOCKET,
	    SO_PROTOCOL, &proto, &len)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1)
		return -1;	/* EBADF or ENOTSOCK */
	if (!listening || type != SOCK_STREAM || proto != IPPROTO_TCP ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(opt.listen_port, sizeof(opt.listen_port), "%u",
	    (unsigned)ntohs(ss.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port));
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		return -1;
	return fd;
}

static void
duration_opt(const char *name, const char *arg, int64_t *out)
{
	if (parse_duration_ms(arg, out) == -1 || *out <= 0) {
		fprintf(stderr, "dyno-route: --%s: invalid duration \"%s\"\n",
		    name, arg);
		usage(stderr);
		exit(2);
	}
}

static int
count_opt(const char *name, const char *arg, long min, long max)
{
	long v;

	if (parse_long(arg, min, max, &v) == -1) {
		fprintf(stderr, "dyno-route: --%s: expected a number from %ld to "
		    "%ld, not \"%s\"\n", name, min, max, arg);
		usage(stderr);
		exit(2);
	}
	return (int)v;
}

/* A size in bytes: N with K or M (binary); a bare N is bytes, 0 allowed. */
static size_t
size_opt(const char *name, const char *arg)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (end != arg && arg[0] >= '0' && arg[0] <= '9' && errno == 0) {
		if ((*end == 'K' || *end == 'k') && end[1] == '\0' &&
		    v <= (1ULL << 20))
			return (size_t)(v << 10);
		if ((*end == 'M' || *end == 'm') && end[1] == '\0' && v <= 1024)
			return (size_t)(v << 20);
		if (*end == '\0' && v <= (1ULL << 30))
			return (size_t)v;
	}
	fprintf(stderr, "dyno-route: --%s: expected a size up to 1G (bytes, "
	    "K or M), not \"%s\"\n", name, arg);
	usage(stderr);
	exit(2);
}

static int
drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		fprintf(stderr, "dyno-route: no such user \"%s\"\n", user);
		return -1;
	}
	if (initgroups(user, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		fprintf(stderr, "dyno-route: cannot become %s: %s\n", user,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* The parent of -w N workers: restart one that dies, pass signals on. */
static int
workers_run(int sigfd, pid_t *pids, int n)
{
	int stopping = 0, live = n;

	for (;;) {
		struct pollfd pfd = { sigfd, POLLIN, 0 };
		int sig, status, i;
		pid_t pid;

		if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
			return 1;
		while (selfpipe_read(&sig)) {
			if (sig == SIGHUP || ((sig == SIGTERM || sig == SIGINT) &&
			    !stopping)) {
				if (sig != SIGHUP && !stopping && listen_fd >= 0) {
					/* Ours would keep the socket, and the
					 * connections queued on it, alive after
					 * the workers took the last ones. */
					close(listen_fd);
					listen_fd = -1;
				}
				if (sig != SIGHUP)
					stopping = 1;
				for (i = 0; i < n; i++)
					if (pids[i] > 0)
						kill(pids[i], sig == SIGINT ?
						    SIGTERM : sig);
			}
			if (sig != SIGCHLD)
				continue;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
				for (i = 0; i < n; i++) {
					if (pids[i] != pid)
						continue;
					pids[i] = 0;
					live--;
					if (stopping)
						break;
					log_event(stdout, "heroku", "router",
					    "at=error desc=\"worker %d exited, "
					    "restarting\"", i + 1);
					fflush(stdout);
					pid = fork();
					if (pid == 0) {
						worker_index = i + 1;
						rand_seed();
						return -1;	/* the child runs the loop */
					}
					if (pid > 0) {
						pids[i] = pid;
						live++;
					}
				}
		}
		if (stopping && live == 0)
			return 0;
	}
}



int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "app", required_argument, NULL, 'a' },
		{ "backends", required_argument, NULL, 'b' },
		{ "boot-timeout", required_argument, NULL, 'B' },
		{ "connect-timeout", required_argument, NULL, 'C' },
		{ "drain-timeout", required_argument, NULL, 'D' },
		{ "header-timeout", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "keepalive-timeout", required_argument, NULL, 'K' },
		{ "listen", required_argument, NULL, 'l' },
		{ "body-buffer", required_argument, NULL, 'E' },
		{ "max-inflight", required_argument, NULL, 'M' },
		{ "max-tunnels", required_argument, NULL, 'N' },
		{ "proto", required_argument, NULL, 'P' },
		{ "quarantine", required_argument, NULL, 'Q' },
		{ "queue", required_argument, NULL, 'q' },
		{ "retries", required_argument, NULL, 'R' },
		{ "service-timeout", required_argument, NULL, 'S' },
		{ "stall-timeout", required_argument, NULL, 'T' },
		{ "user", required_argument, NULL, 'u' },
		{ "workers", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 }
	};
	static const int sigs[] = { SIGCHLD, SIGHUP, SIGINT, SIGTERM };
	const char *appdir = NULL, *listen_spec = "8080";
	char pidpath[4096] = "", rundir[4096];
	pid_t pids[64];
	int ch, sigfd, rc, i, listen_given = 0, pidfd = -1;

	while ((ch = getopt_long(argc, argv, "a:b:hl:u:w:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			appdir = optarg;
			break;
		case 'b':
			fixed_backends = optarg;
			break;
		case 'B':
			duration_opt("boot-timeout", optarg, &opt.boot_ms);
			break;
		case 'C':
			duration_opt("connect-timeout", optarg, &opt.connect_ms);
			break;
		case 'D':
			duration_opt("drain-timeout", optarg, &opt.drain_ms);
			break;
		case 'H':
			duration_opt("header-timeout", optarg, &opt.header_ms);
			break;
		case 'h':
			help();
			return 0;
		case 'I':
			duration_opt("idle-timeout", optarg, &opt.idle_ms);
			break;
		case 'K':
			duration_opt("keepalive-timeout", optarg, &opt.keepalive_ms);
			break;
		case 'l':
			listen_spec = optarg;
			listen_given = 1;
			break;
		case 'M':
			opt.max_inflight = count_opt("max-inflight", optarg, 1, 100000);
			break;
		case 'P':
			opt.proto = optarg;
			break;
		case 'Q':
			duration_opt("quarantine", optarg, &opt.quarantine_ms);
			break;
		case 'q':
			opt.queue_max = count_opt("queue", optarg, 0, 1000000);
			break;
		case 'R':
			opt.retries = count_opt("retries", optarg, 1, 8);
			break;
		case 'S':
			duration_opt("service-timeout", optarg, &opt.service_ms);
			break;
		case 'E':
			opt.body_buffer = size_opt("body-buffer", optarg);
			break;
		case 'N':
			opt.max_tunnels = count_opt("max-tunnels", optarg, 1, 1000000);
			break;
		case 'T':
			duration_opt("stall-timeout", optarg, &opt.stall_ms);
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'w':
			opt.workers = count_opt("workers", optarg, 1, 64);
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (fixed_backends != NULL && appdir != NULL)) {
		usage(stderr);
		return 2;
	}
	if (fixed_backends == NULL) {
		if (app_init(&app, appdir) == -1) {
			fprintf(stderr, "dyno-route: app directory %s: %s\n",
			    appdir ? appdir : ".", strerror(errno));
			return 1;
		}
		if (app_prepare(&app) == -1) {
			fprintf(stderr, "dyno-route: cannot prepare %s: %s\n",
			    app.state, strerror(errno));
			return 1;
		}
		/*
		 * Every file we use is in run/, named from there: after -u the
		 * app's .dyno (0700, root's) cannot be crossed any more, but
		 * run/ (0755) still lets us read the routes.
		 */
		app_path(&app, rundir, sizeof(rundir), "run");
		if (chdir(rundir) == -1) {
			fprintf(stderr, "dyno-route: cannot enter %s: %s\n",
			    rundir, strerror(errno));
			return 1;
		}
		app_mode = 1;
		snprintf(routes_path, sizeof(routes_path), "routes");
		snprintf(counters_path, sizeof(counters_path), "router");
		snprintf(pidpath, sizeof(pidpath), "router.pid");
	}
	signal(SIGPIPE, SIG_IGN);
	if ((listen_fd = listen_inherited()) >= 0) {
		if (listen_given) {
			fprintf(stderr, "dyno-route: -l with a socket passed in "
			    "LISTEN_FDS: use one or the other\n");
			usage(stderr);
			return 2;
		}
	} else if (errno != ENOENT) {
		fprintf(stderr, "dyno-route: LISTEN_FDS: fd 3 is not one "
		    "listening TCP socket: %s\n", strerror(errno));
		return 1;
	} else if ((listen_fd = listen_on(listen_spec)) == -1) {
		fprintf(stderr, "dyno-route: cannot listen on %s: %s\n", listen_spec,
		    strerror(errno));
		return 1;
	}
	/*
	 * The pid file first: .dyno may be root's, and we are about to not be.
	 * Locked for our life (the fd stays open, and -w workers share it):
	 * dyno-run signals the pid in it only while it is locked.
	 */
	if (pidpath[0]) {
		if ((pidfd = pidfile_lock(pidpath)) == -1) {
			fprintf(stderr, "dyno-route: cannot write %s/%s: %s\n",
			    rundir, pidpath, strerror(errno));
			return 1;
		}
	}
	if (opt.user != NULL && drop_privileges(opt.user) == -1)
		return 1;
	if ((sigfd = selfpipe_open(sigs, sizeof(sigs) / sizeof(sigs[0]))) == -1 ||
	    (poller = poller_new()) == NULL) {
		fprintf(stderr, "dyno-route: %s\n", strerror(errno));
		return 1;
	}
	/* Our own 64 KiB: with a NULL buffer glibc ignores the size and
	 * takes st_blksize, 4 KiB for a file, so the log went out in 4 KiB
	 * writes. */
	setvbuf(stdout, logbuf, _IOFBF, sizeof(logbuf));	/* LOG_FLUSH_MS */
	rc = -1;
	if (opt.workers > 1) {
		for (i = 0; i < opt.workers; i++) {
			pid_t pid = fork();
			if (pid == -1) {
				fprintf(stderr, "dyno-route: fork: %s\n",
				    strerror(errno));
				return 1;
			}
			if (pid == 0) {
				worker_index = i + 1;
				rand_seed();
				break;
			}
			pids[i] = pid;
		}
		if (worker_index == 0)
			rc = workers_run(sigfd, pids, opt.workers);
		if (rc >= 0)
			goto out;
		/* A worker: its own poller, its own counters file, and its own
		 * self-pipe: on the parent's, the parent could read the byte
		 * for the SIGTERM it sent us, and we would never stop. */
		poller_free(poller);
		close(sigfd);
		if ((poller = poller_new()) == NULL || (sigfd = selfpipe_open(sigs,
		    sizeof(sigs) / sizeof(sigs[0]))) == -1)
			return 1;
		if (app_mode)
			snprintf(counters_path, sizeof(counters_path),
			    "router.%d", worker_index);
	}
	loop_ms = clock_ms();
	if (app_mode)
		routes_reload();
	else
		backends_load(fixed_backends, 0);
	rc = event_loop(sigfd);
	fflush(stdout);
	if (worker_index > 0)
		_exit(rc);
out:
	if (pidfd >= 0)
		pidfile_release(pidpath, pidfd);
	fflush(stdout);
	return rc;
}
