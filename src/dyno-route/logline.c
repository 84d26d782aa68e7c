/*
 * logline.c: the Heroku router log line and the counters file
 * (run/router).
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

void
text_put(struct text *t, const char *s, size_t n)
{
	if (n > t->cap - t->len)
		n = t->cap - t->len;
	memcpy(t->p + t->len, s, n);
	t->len += n;
}


void
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
void
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
	text_str(&t, rt.opt.proto);
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
	rt.due.log_unflushed = 1;
}

static int
cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int counters_failing;

/* run/router: one line per dyno, rewritten at most once a second, never idle. */
void
counters_write(int64_t now)
{
	static int v[SAMPLES_MAX];
	struct buf b = { 0 };
	size_t i, k, n;

	if (!rt.worker.app_mode || !rt.due.counters_dirty ||
	    now - rt.due.counters_written < 1000)
		return;
	buf_printf(&b, "updated=%lld\n", (long long)time(NULL));
	for (i = 0; i < rt.dynos.n; i++) {
		struct backend *be = rt.dynos.list[i];
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
	buf_printf(&b, "queue=%zu clients=%zu\n", rt.queue.len, rt.conns.n);
	/* Said once, and again once it works (not every second). */
	if (atomicfile_write(rt.worker.counters_path, b.data, b.len, 0644, 0) == -1) {
		if (!counters_failing)
			fprintf(stderr, "dyno-route: cannot write run/%s: %s "
			    "(said once)\n", rt.worker.counters_path, strerror(errno));
		counters_failing = 1;
	} else if (counters_failing) {
		fprintf(stderr, "dyno-route: run/%s written again\n",
		    rt.worker.counters_path);
		counters_failing = 0;
	}
	free(b.data);
	rt.due.counters_written = now;
	rt.due.counters_dirty = 0;
}
