/*
 * route.h: what the files of dyno-route share: the connections, the
 * dynos, the options, and each file's functions that the others call.
 * See main.c.
 */
#ifndef ROUTE_H
#define ROUTE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

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
/* What moves a request's states: req_transition in relay_http.c. */
enum req_event {
	RQ_HEAD,	/* its head was parsed: a body follows, or none */
	RQ_BODY_END,	/* the last byte of its body was read */
	RQ_ANSWER,	/* a response head is being read (again after a 1xx) */
	RQ_RESP_HEAD,	/* our response head is out: a body follows, or none */
	RQ_UPGRADE,	/* 101: the connection is a tunnel both ways */
	RQ_RESP_END,	/* the last byte of the response was read */
	RQ_ERROR,	/* we answer instead, and close */
	RQ_NEXT,	/* the exchange is over: the connection waits for another */
};
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

struct route_opts {
	int64_t connect_ms, service_ms, idle_ms, header_ms, keepalive_ms;
	int64_t quarantine_ms, drain_ms, boot_ms, stall_ms;
	int max_inflight, queue_max, retries, workers;
	const char *proto, *user;
	char listen_port[16];
	size_t body_buffer;
	int max_tunnels;
};

/*
 * Request bodies held before dispatch, in all, are at most this many times
 * --body-buffer per worker; past it a body streams as it comes.
 */
#define BODY_TOTAL_FACTOR 64
/* The longest a log line waits in stdio's buffer. */
#define LOG_FLUSH_MS 10

/*
 * The router: what the files share, one instance (rt), as relayd has one
 * env and redis one server.  State that only one file uses stays static
 * in that file.
 */
struct router {
	struct route_opts opt;	/* the command line, fixed once parsed */
	struct poller *poller;
	/*
	 * The monotonic clock in ms, read once per poll round, not some ten
	 * times per request: every timeout is counted in whole ms, and a
	 * round takes well under one.
	 */
	int64_t now;
	int draining;		/* SIGTERM came: finish what is in flight */
	struct {		/* this worker process and where it routes */
		int index, listen_fd, app_mode;
		struct app app;
		char routes_path[4096], counters_path[4096];
	} worker;
	struct {
		struct backend *list[BACKENDS_MAX];
		size_t n;
		/* The web dynos as dyno-run last described them (run/routes'
		 * status line). */
		struct web_status web;
	} dynos;
	struct {		/* this worker's clients, for the timer sweep */
		struct client *list;
		size_t n;
		int tunnels;	/* open tunnels */
	} conns;
	struct {		/* requests waiting for a dyno: FIFO */
		struct client *head, *tail;
		size_t len;
	} queue;
	struct {		/* what the loop owes at the end of a round */
		int counters_dirty;	/* run/router is to be written */
		int64_t counters_written;
		int queue_kick;	/* a slot came free: drain the queue */
		int log_unflushed;	/* stdout holds lines not yet written */
		int64_t next_sweep;	/* the earliest timer */
		int64_t accept_resume_at;	/* 0: accepting */
	} due;
};

extern struct router rt;

#define buf_lit(b, s) buf_put((b), (s), sizeof(s) - 1)

/* Text that stops growing at its capacity, as snprintf truncates. */
struct text {
	char *p;
	size_t len, cap;
};

#define text_lit(t, s) text_put((t), (s), sizeof(s) - 1)

/* loop.c */
void upstream_flush_later(struct upstream *u);
void client_flush_later(struct client *c);
int64_t now_ms(void);
void set_deadline(struct client *c, enum timer t, int64_t at);
void stall_arm(struct client *c);
void drain_begin(void);
int event_loop(int sigfd);

/* relay.c */
void upstream_free(struct upstream *u);
void graveyard_empty(void);
void tunnel_end(struct client *c, struct backend *b);
void upstream_discard(struct client *c);
void bytes_unsent(struct client *c);
size_t oom_answer(int fd);
int client_oom_seen(const struct client *c);
void client_update(struct client *c);
void client_close(struct client *c);
void client_accept(int max);
void client_readable(struct client *c);
void client_writable(struct client *c);
struct upstream *upstream_connect(struct backend *b, int *refused);
void connect_failed(struct client *c, int refused);
void upstream_attach(struct client *c, struct upstream *u);
void upstream_pool(struct upstream *u);
void upstream_readable(struct upstream *u);
void upstream_writable(struct upstream *u);

/* relay_http.c */
void req_transition(struct client *c, enum req_event ev);
void copy_field(char *dst, size_t dstlen, const char *src, size_t len);
int resendable(const struct client *c);
void client_error(struct client *c, int status, const char *code,
    const char *desc);
int request_build(struct client *c, const struct http_msg *m);
int request_pump(struct client *c);
void body_drop(struct client *c);
void body_buffer_more(struct client *c);
void client_try_request(struct client *c);
void request_finish(struct client *c);
int response_head(struct client *c, struct upstream *u);
int response_body(struct client *c, const char *p, size_t n);
void upstream_eof(struct client *c, struct upstream *u, int err);

/* balance.c */
void queue_remove(struct client *c);
void backend_sample(struct backend *b, int ms);
void backend_drop_pool(struct backend *b);
void backends_load(const char *text, int from_routes);
void routes_reload(void);
void backend_done(struct backend *b);
void backend_heard(struct backend *b);
struct backend *backend_pick(struct client *c, int *full, int *none);
void quarantine_wake(int64_t now);
void dispatch(struct client *c);
void queue_drain(void);

/* buf.c */
void buf_free(struct buf *b);
int buf_reserve(struct buf *b, size_t room);
size_t buf_pending(const struct buf *b);
void buf_release(struct buf *b);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_header(struct buf *b, const struct http_header *h);
int buf_put(struct buf *b, const char *s, size_t n);
ssize_t chunked_copy(struct chunked *ch, struct buf *b, const char *p,
    size_t n, int raw);
void buf_forward(struct buf *b, const char *name, const char *old,
    size_t oldlen, const char *ours);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* logline.c */
void text_put(struct text *t, const char *s, size_t n);
void text_str(struct text *t, const char *s);
void log_request(struct client *c, const char *code, const char *desc);
void counters_write(int64_t now);

#endif
