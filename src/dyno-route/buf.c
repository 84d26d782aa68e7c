/*
 * buf.c: the byte buffers of the connections, their spare pool, and the
 * writers that fill them (headers, chunks).
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

/*
 * Buffers of IO_CHUNK bytes come and go with every request; a small free
 * list keeps malloc out of the hot path while idle connections still hold
 * no memory at all.
 */
#define SPARE_MAX 256
static char *spare[SPARE_MAX];
static size_t nspare;

void
buf_free(struct buf *b)
{
	if (b->data != NULL && b->cap == IO_CHUNK && nspare < SPARE_MAX)
		spare[nspare++] = b->data;
	else
		free(b->data);
	memset(b, 0, sizeof(*b));
}

int
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

size_t
buf_pending(const struct buf *b)
{
	return b->len - b->off;
}

/* Idle connections hold no buffer: that keeps 10,000 of them small. */
void
buf_release(struct buf *b)
{
	if (buf_pending(b) == 0)
		buf_free(b);
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* "Name: value\r\n" by memcpy: header copying is the hot path, not printf's. */
int
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

int
buf_put(struct buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return 0;
}


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
ssize_t
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
void
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

int
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
