/*
 * fuzz_http.c: libFuzzer harness for the router's HTTP/1.x head parsers and
 * chunked framer.
 *
 * The same input is read three ways: as a request head, as a response head,
 * and as a chunked body (the whole input, and the bytes after a chunked
 * request's head).  Each is also fed the way a socket delivers it, in
 * pieces of pseudo-random size (seeded from the input, so every run of a
 * reproducer is the same), and must agree with the one-shot reading:
 *
 *   - a head is found at the same length however it arrives, and a prefix
 *     never reports a head longer than itself or an error the whole input
 *     does not also have;
 *   - on success head_len <= len, nheaders <= HTTP_HEADERS_MAX, and every
 *     header has a non-empty token name and a value without CR, LF or NUL,
 *     all inside the head;
 *   - chunked_feed never takes more than it is given, takes less only when
 *     the body ended, hands out data spans only inside what it took, and
 *     gives the same answer and the same data bytes for any split; the
 *     data it hands out, re-framed the router's way, reads back the same.
 *
 * Every piece is copied to its own exact-size allocation so ASan sees any
 * read past what the parser was handed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static uint64_t
seed_of(const uint8_t *data, size_t size)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	return h | 1;
}

static size_t
next_piece(uint64_t *s, size_t left)
{
	uint64_t x = *s;
	size_t n;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	/* Mostly small pieces, sometimes large ones, never zero. */
	switch (x & 3) {
	case 0:
		n = 1;
		break;
	case 1:
		n = 1 + (size_t)((x >> 8) % 8);
		break;
	case 2:
		n = 1 + (size_t)((x >> 8) % 64);
		break;
	default:
		n = 1 + (size_t)((x >> 8) % 4096);
		break;
	}
	return n < left ? n : left;
}

static char *
dup_exact(const uint8_t *data, size_t len)
{
	/* Zeroed: gcc cannot tell that a 0-byte copy is never read. */
	char *p = calloc(1, len ? len : 1);

	CHECK(p != NULL);
	if (len)
		memcpy(p, data, len);
	return p;
}

static int
is_tchar(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return 1;
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return 1;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
has_byte(const char *s, size_t len, int c)
{
	return len > 0 && memchr(s, c, len) != NULL;
}

/* Invariants of a parse of buf[0..len) that returned n. */
static void
check_msg(const char *buf, size_t len, int n, const struct http_msg *m,
    int request)
{
	const char *end;

	if (n == 0)
		return;
	if (n < 0) {
		CHECK(n == -1);
		if (request)
			CHECK(m->error == 400 || m->error == 414 ||
			    m->error == 431 || m->error == 501);
		else
			CHECK(m->error == 502);
		return;
	}
	CHECK((size_t)n == m->head_len);
	CHECK(m->head_len <= len);
	CHECK(m->head_len >= 4);
	CHECK(memcmp(buf + m->head_len - 4, "\r\n\r\n", 4) == 0);
	CHECK(m->error == 0);
	CHECK(m->nheaders <= HTTP_HEADERS_MAX);
	CHECK(m->minor == 0 || m->minor == 1);
	CHECK(m->content_length >= -1);
	CHECK(!(m->chunked && m->content_length != -1));	/* CL + TE */
	CHECK(m->chunked == m->has_te);
	CHECK(m->keep_alive == 0 || m->keep_alive == 1);
	end = buf + m->head_len;
	for (size_t i = 0; i < m->nheaders; i++) {
		const struct http_header *h = &m->headers[i];

		CHECK(h->name_len > 0);
		CHECK(h->name_len <= HTTP_NAME_MAX);
		CHECK(h->name >= buf && h->name + h->name_len <= end);
		for (size_t j = 0; j < h->name_len; j++)
			CHECK(is_tchar((unsigned char)h->name[j]));
		CHECK(h->name[h->name_len] == ':');
		CHECK(h->value >= h->name + h->name_len &&
		    h->value + h->value_len <= end);
		CHECK(!has_byte(h->value, h->value_len, '\r'));
		CHECK(!has_byte(h->value, h->value_len, '\n'));
		CHECK(!has_byte(h->value, h->value_len, '\0'));
		CHECK(h->line_len >= h->name_len + 3);
		CHECK(h->name + h->line_len <= end);
		CHECK(memcmp(h->name + h->line_len - 2, "\r\n", 2) == 0);
		if (i > 0)
			CHECK(h->name == m->headers[i - 1].name +
			    m->headers[i - 1].line_len);
	}
	if (m->nheaders > 0) {
		const struct http_header *last = &m->headers[m->nheaders - 1];
		CHECK(last->name + last->line_len + 2 == end);
	}
	if (request) {
		CHECK(m->method == buf && m->method_len > 0);
		for (size_t j = 0; j < m->method_len; j++)
			CHECK(is_tchar((unsigned char)m->method[j]));
		CHECK(m->target == buf + m->method_len + 1);
		CHECK(m->target_len > 0 && m->target + m->target_len < end);
		for (size_t j = 0; j < m->target_len; j++)
			CHECK((unsigned char)m->target[j] > 0x20 &&
			    (unsigned char)m->target[j] != 0x7f);
		CHECK(m->status == 0);
		if (m->minor == 1)
			CHECK(m->host != NULL);
		if (m->host != NULL)
			CHECK(m->host >= buf && m->host + m->host_len <= end);
		if (m->has_te)
			CHECK(m->minor == 1);
		CHECK(m->path != NULL && m->path + m->path_len <= end);
		CHECK(m->path_len == 0 || m->path[0] == '/' ||
		    m->path[0] == '?');
		if (m->host != NULL)
			CHECK(http_host_valid(m->host, m->host_len));
	} else {
		CHECK(m->status >= 100 && m->status <= 599);
		CHECK(memcmp(buf, "HTTP/1.", 7) == 0);
	}
}

/*
 * Parse as a router would while bytes arrive: after each piece, reparse the
 * whole buffer so far.  Each prefix must agree with the full parse.
 */
static void
parse_both_ways(const uint8_t *data, size_t size, uint64_t *seed, int request,
    struct http_msg *full, struct http_msg *part)
{
	int (*parse)(const char *, size_t, struct http_msg *) =
	    request ? http_parse_request : http_parse_response;
	char *buf;
	int n, k;
	size_t have = 0;

	buf = dup_exact(data, size);
	n = parse(buf, size, full);
	check_msg(buf, size, n, full, request);
	free(buf);

	while (have < size) {
		have += next_piece(seed, size - have);
		buf = dup_exact(data, have);
		k = parse(buf, have, part);
		check_msg(buf, have, k, part, request);
		if (k > 0) {
			/* The head was complete here: the full parse agrees. */
			CHECK(n == k);
			CHECK(full->nheaders == part->nheaders);
			CHECK(full->content_length == part->content_length);
			CHECK(full->chunked == part->chunked);
			CHECK(full->keep_alive == part->keep_alive);
			CHECK(full->minor == part->minor);
			CHECK(full->status == part->status);
		} else if (k < 0) {
			/*
			 * No error that more bytes would undo.  The full
			 * buffer may still read as incomplete: a line is only
			 * checked once its CRLF is whole, so "A\nB\r" is 0
			 * while its prefix "A\n" is already a bare-LF error.
			 */
			CHECK(n <= 0);
		} else {
			CHECK(n <= 0 || (size_t)n > have);
		}
		free(buf);
		if (k != 0)
			break;
	}
}

/*
 * Feed buf[0..len) to c whole, the way dyno-route's chunked_copy does:
 * call again with the rest until it is taken or the body ends.  The data
 * spans are appended to out (of size outcap, at *outlen).  Returns the
 * bytes taken, or -1.
 */
static ssize_t
feed_all(struct chunked *c, const char *buf, size_t len, char *out,
    size_t *outlen)
{
	size_t took = 0;

	while (took < len && !chunked_done(c)) {
		const char *d;
		size_t dl;
		ssize_t k = chunked_feed(c, buf + took, len - took, &d, &dl);

		if (k < 0) {
			CHECK(k == -1);
			return -1;
		}
		CHECK(k > 0);
		CHECK((size_t)k <= len - took);
		if (dl > 0) {
			/* Inside what it took, and at its end. */
			CHECK(d >= buf + took && d + dl == buf + took + k);
			memcpy(out + *outlen, d, dl);
			*outlen += dl;
		} else
			CHECK(d == NULL);
		took += (size_t)k;
	}
	return (ssize_t)took;
}

/* Feed one body in pieces; returns bytes taken, or -1. */
static ssize_t
feed_pieces(const uint8_t *data, size_t size, uint64_t *seed, int *done,
    char *out, size_t *outlen)
{
	struct chunked c;
	size_t have = 0;
	ssize_t total = 0;

	chunked_init(&c);
	CHECK(!chunked_done(&c));
	while (have < size) {
		size_t len = next_piece(seed, size - have);
		char *buf = dup_exact(data + have, len);
		ssize_t k = feed_all(&c, buf, len, out, outlen);

		free(buf);
		if (k < 0)
			return -1;
		CHECK((size_t)k == len || chunked_done(&c));
		total += k;
		have += len;
		if (chunked_done(&c)) {
			/* A finished body takes nothing more. */
			char one = 'x';
			const char *d;
			size_t dl;
			CHECK(chunked_feed(&c, &one, 1, &d, &dl) == 0);
			CHECK(dl == 0);
			break;
		}
	}
	*done = chunked_done(&c);
	return total;
}

/* The body as the router frames it: one chunk of all the data, and 0. */
static void
check_reframed(const char *data, size_t len)
{
	char *framed = malloc(len + 32), *out = malloc(len + 1);
	size_t n, outlen = 0;
	struct chunked c;

	CHECK(framed != NULL && out != NULL);
	n = 0;
	if (len > 0) {
		n = (size_t)snprintf(framed, 32, "%zx\r\n", len);
		memcpy(framed + n, data, len);
		n += len;
		memcpy(framed + n, "\r\n", 2);
		n += 2;
	}
	memcpy(framed + n, "0\r\n\r\n", 5);
	n += 5;
	chunked_init(&c);
	CHECK(feed_all(&c, framed, n, out, &outlen) == (ssize_t)n);
	CHECK(chunked_done(&c));
	CHECK(outlen == len && (len == 0 || memcmp(out, data, len) == 0));
	free(framed);
	free(out);
}

static void
check_chunked(const uint8_t *data, size_t size, uint64_t *seed)
{
	struct chunked c;
	char *buf = dup_exact(data, size);
	char *out1 = malloc(size + 1), *out2 = malloc(size + 1);
	size_t len1 = 0, len2 = 0;
	ssize_t whole, split;
	int done_whole, done_split = 0;

	CHECK(out1 != NULL && out2 != NULL);
	chunked_init(&c);
	whole = feed_all(&c, buf, size, out1, &len1);
	free(buf);
	done_whole = chunked_done(&c);
	CHECK(whole >= -1 && whole <= (ssize_t)size);
	if (whole >= 0)
		CHECK((size_t)whole == size || done_whole);
	if (done_whole)
		CHECK(whole >= 5);	/* at least "0\r\n\r\n" */

	split = feed_pieces(data, size, seed, &done_split, out2, &len2);
	CHECK(split == whole);
	if (whole >= 0) {
		CHECK(done_split == done_whole);
		CHECK(len1 == len2 && (len1 == 0 ||
		    memcmp(out1, out2, len1) == 0));
		if (done_whole)
			check_reframed(out1, len1);
	}
	free(out1);
	free(out2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_msg full, part;	/* large: keep off the stack */
	uint64_t seed = seed_of(data, size);

	if (size > 2 * HTTP_HEAD_MAX)
		return 0;

	parse_both_ways(data, size, &seed, 0, &full, &part);

	parse_both_ways(data, size, &seed, 1, &full, &part);
	if (full.head_len > 0 && full.chunked)
		check_chunked(data + full.head_len, size - full.head_len, &seed);

	check_chunked(data, size, &seed);
	return 0;
}
